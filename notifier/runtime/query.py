"""Query parameters, read one way by every route: a parameter is given at most once, and empty
counts as absent."""

from __future__ import annotations

from starlette.requests import Request

from schemas.errors import Reason, Rejected

# digits an integer parameter may have: enough for 2**62, few enough that int() stays cheap
_MAX_DIGITS = 19


def param(request: Request, name: str) -> str | None:
    """The parameter's value; None when absent or empty."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Rejected(Reason.INVALID, f"{name} is given {len(values)} times; give it once", f"/{name}")
    return values[0] if values and values[0] else None


def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A decimal integer parameter in low..high, `default` when absent."""
    text = param(request, name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS) or not low <= int(text) <= high:
        raise Rejected(Reason.INVALID, f"{name} must be an integer {low}..{high}", f"/{name}")
    return int(text)
