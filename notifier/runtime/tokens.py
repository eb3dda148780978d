"""Client tokens: HS256 JWTs with the algorithm pinned and `exp`, `aud` (and `iss`) checked."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import jwt
from starlette.requests import HTTPConnection

from schemas.errors import NoCredentials, Reason, Rejected
from schemas.events import is_id

from .settings import AuthSettings

ALGORITHM: Final = "HS256"  # pinned: RFC 8725 §3.1
_NEVER: Final = 2**53  # seconds: an expiry beyond it is kept as this (exact in a float)


@dataclass(frozen=True, slots=True)
class Claims:
    user: str
    expires_at: float  # unix seconds: past `exp` and the leeway, when no route takes the token
    role: str = "user"


def bearer(authorization: str, what: str) -> str:
    """The credential of an `Authorization: Bearer ...` header; NoCredentials when there is none."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NoCredentials(f"missing {what} (send Authorization: Bearer ...)")
    return credential.strip()


def claims_of(request: HTTPConnection, auth: AuthSettings) -> Claims:
    """The verified claims of a request's `Authorization: Bearer <token>`: 401 without one or
    with a bad one."""
    return verify(bearer(request.headers.get("authorization", ""), "token"), auth)


def user_of(request: HTTPConnection, auth: AuthSettings) -> str:
    """The user a client request speaks for (any role)."""
    return claims_of(request, auth).user


def verify(token: str, auth: AuthSettings) -> Claims:
    try:
        payload = jwt.decode(
            token,
            auth.jwt_secret,
            algorithms=[ALGORITHM],
            audience=auth.jwt_audience,
            issuer=auth.jwt_issuer or None,
            leeway=auth.jwt_leeway_s,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Rejected(Reason.TOKEN_EXPIRED, "token expired") from None
    except jwt.PyJWTError as exc:
        raise Rejected(Reason.UNAUTHORIZED, _why(exc)) from None
    if isinstance(payload["exp"], bool) or not isinstance(payload["exp"], int | float):
        raise Rejected(Reason.UNAUTHORIZED, "token's exp claim is not a number (RFC 7519 NumericDate)")
    user = payload["sub"]
    if not isinstance(user, str) or not is_id(user):
        raise Rejected(Reason.UNAUTHORIZED, "invalid token subject")
    role = payload.get("role", "user")
    # PyJWT checked that exp (with the leeway) is an integer in the future; one past any float
    # means "never". A session lives as long as REST takes its token: not closed at `exp` when
    # accepted within the leeway an instant before.
    expires_at = float(min(int(payload["exp"]) + auth.jwt_leeway_s, _NEVER))
    return Claims(user, expires_at, role if isinstance(role, str) else "user")


def _why(exc: jwt.PyJWTError) -> str:
    """PyJWT's refusal in the product's words (its messages name its own internals)."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token has no {exc.claim!r} claim"
    for kind, words in _WHY:
        if isinstance(exc, kind):
            return words
    return "token not accepted"


_WHY: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.InvalidSignatureError, "token not signed by this deployment (wrong secret)"),
    (jwt.InvalidAlgorithmError, f"token must be signed with {ALGORITHM}"),
    (jwt.InvalidAudienceError, "token is meant for another audience"),
    (jwt.InvalidIssuerError, "token comes from another issuer"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.DecodeError, "token is not a JWT"),
)


def issue(auth: AuthSettings, user: str, *, ttl_s: float = 3600, role: str = "user") -> str:
    """Mint a token (for demos, tests and the load generator; production tokens come from your IdP)."""
    now = time.time()
    claims: dict[str, object] = {
        "sub": user,
        "aud": auth.jwt_audience,
        "iat": int(now),
        "exp": int(now + ttl_s),
        "role": role,
    }
    if auth.jwt_issuer:
        claims["iss"] = auth.jwt_issuer
    return jwt.encode(claims, auth.jwt_secret, algorithm=ALGORITHM)
