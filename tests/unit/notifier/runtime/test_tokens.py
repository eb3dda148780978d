"""Client tokens: HS256 only, with exp, aud (and iss when configured) checked, and a safe subject."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import orjson
import pytest

from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings
from schemas.errors import Reason, Rejected

AUTH = AuthSettings(jwt_secret="k" * 64, jwt_audience="notifier", jwt_leeway_s=5)


def claims(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"sub": "bob", "aud": "notifier", "exp": int(time.time()) + 600}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def signed(payload: dict[str, Any], *, key: str = AUTH.jwt_secret, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def refused(token: str, auth: AuthSettings = AUTH) -> Reason:
    with pytest.raises(Rejected) as caught:
        tokens.verify(token, auth)
    return caught.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_token() -> None:
    expires = int(time.time()) + 600
    verified = tokens.verify(signed(claims(exp=expires, role="admin")), AUTH)
    assert verified == tokens.Claims("bob", float(expires + AUTH.jwt_leeway_s), "admin")


def test_issue_and_verify_round_trip() -> None:
    auth = AuthSettings(jwt_secret="k" * 64, jwt_issuer="https://idp.example")
    verified = tokens.verify(tokens.issue(auth, "alice@x", ttl_s=60), auth)
    assert (verified.user, verified.role) == ("alice@x", "user")
    assert 0 < verified.expires_at - time.time() <= 60 + auth.jwt_leeway_s


def test_the_role_defaults_to_user() -> None:
    assert tokens.verify(signed(claims()), AUTH).role == "user"
    assert tokens.verify(signed(claims(role=["admin"])), AUTH).role == "user"


@pytest.mark.parametrize("exp", [10**400, 2**64, 1e300])
def test_an_expiry_past_any_float_is_kept_as_never_not_a_crash(exp: float) -> None:
    assert tokens.verify(signed(claims(exp=exp)), AUTH).expires_at == 2.0**53


def test_an_expired_token_says_so() -> None:
    assert refused(signed(claims(exp=int(time.time()) - 60))) is Reason.TOKEN_EXPIRED


def test_the_leeway_absorbs_clock_skew() -> None:
    exp = int(time.time()) - 2
    verified = tokens.verify(signed(claims(exp=exp)), AUTH)
    assert verified.user == "bob"
    # still in the future: a session it opens is not closed as expired at once
    assert verified.expires_at == exp + AUTH.jwt_leeway_s > time.time()


# The claims are built in the test, not at collection: a long suite would outlive their `exp`.
@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"aud": None},
        {"exp": None},
        {"sub": None},
        {"nbf": 3600},
    ],
    ids=["wrong audience", "no audience", "no expiry", "no subject", "not yet valid"],
)
def test_claims_are_checked(changes: dict[str, Any]) -> None:
    if "nbf" in changes:
        changes = {"nbf": int(time.time()) + changes["nbf"]}
    assert refused(signed(claims(**changes))) is Reason.UNAUTHORIZED


def test_the_issuer_is_checked_when_configured() -> None:
    auth = AuthSettings(jwt_secret=AUTH.jwt_secret, jwt_issuer="https://idp.example")
    assert refused(signed(claims(iss="https://evil.example")), auth) is Reason.UNAUTHORIZED
    assert refused(signed(claims()), auth) is Reason.UNAUTHORIZED
    assert tokens.verify(signed(claims(iss="https://idp.example")), auth).user == "bob"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    assert refused(signed(claims(), key="x" * 64)) is Reason.UNAUTHORIZED


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_only_hs256_is_accepted(algorithm: str) -> None:
    assert refused(signed(claims(), algorithm=algorithm)) is Reason.UNAUTHORIZED


def test_alg_none_is_refused() -> None:
    header = b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    body = b64(orjson.dumps(claims()))
    assert refused(f"{header}.{body}.") is Reason.UNAUTHORIZED


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = signed(claims()).split(".")
    forged = b64(orjson.dumps(claims(sub="admin")))
    assert refused(f"{header}.{forged}.{signature}") is Reason.UNAUTHORIZED


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b"])
def test_garbage_is_refused(token: str) -> None:
    assert refused(token) is Reason.UNAUTHORIZED


@pytest.mark.parametrize("subject", ["a b", "a{b}", "u}", "x" * 129, "é", 42])
def test_a_subject_outside_the_id_alphabet_is_refused(subject: object) -> None:
    assert refused(signed(claims(sub=subject))) is Reason.UNAUTHORIZED


def test_refusals_do_not_leak_the_secret() -> None:
    with pytest.raises(Rejected) as caught:
        tokens.verify(signed(claims(), key="x" * 64), AUTH)
    assert AUTH.jwt_secret not in str(caught.value)


def test_an_exp_that_is_not_a_number_is_refused() -> None:
    """RFC 7519's NumericDate: PyJWT takes a numeric string, so a token minted by a lax issuer
    would be honoured here and refused by stricter peers."""
    assert refused(signed(claims(exp=str(int(time.time()) + 600)))) is Reason.UNAUTHORIZED
