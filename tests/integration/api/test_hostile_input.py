"""Every HTTP route of the API (ingest, inbox REST, moderation) on a real redis-server, fed
hostile input: no query, path or body value gives a 5xx, every refusal stays machine-readable,
and every 401 carries a Bearer challenge (RFC 6750), an expired token's included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from starlette.routing import Route

from notifier.api.app import api_app, client_routes
from notifier.api.pressure import Pressure
from notifier.explain import explain_routes
from notifier.moderation.routes import MODERATOR_ROLE, moderation_routes
from notifier.runtime import tokens
from notifier.runtime.settings import Settings
from tests.conftest import SERVICE_KEYS, SettingsFactory

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# (method, path, credential): every route of `notifier api` that takes credentials
ROUTES: Final = [
    ("POST", "/v1/events", "service"),
    ("GET", "/v1/me/notifications", "user"),
    ("GET", "/v1/me/unread", "user"),
    ("POST", "/v1/me/notifications/read", "user"),
    ("POST", "/v1/me/notifications/seen", "user"),
    ("GET", "/v1/me/feed", "user"),
    ("GET", "/v1/me/preferences", "user"),
    ("PUT", "/v1/me/preferences", "user"),
    ("GET", "/v1/me/mutes", "user"),
    ("PUT", "/v1/me/mutes/{item_id}", "user"),
    ("DELETE", "/v1/me/blocks/{item_id}", "user"),
    ("GET", "/v1/me/muted-posts", "user"),
    ("GET", "/v1/users/{item_id}/followers", "user"),
    ("GET", "/v1/users/{item_id}/following", "user"),
    ("GET", "/v1/users/{item_id}/follows", "user"),
    ("GET", "/v1/users/{item_id}/posts", "user"),
    ("GET", "/v1/moderation/items", "moderator"),
    ("GET", "/v1/moderation/items/{item_id}", "moderator"),
    ("POST", "/v1/moderation/items/{item_id}/claim", "moderator"),
    ("POST", "/v1/moderation/items/{item_id}/release", "moderator"),
    ("POST", "/v1/moderation/items/{item_id}/approve", "moderator"),
    ("POST", "/v1/moderation/items/{item_id}/reject", "moderator"),
    ("POST", "/v1/moderation/decisions", "moderator"),
    ("GET", "/v1/moderation/bans", "moderator"),
    ("POST", "/v1/moderation/bans", "moderator"),
    ("POST", "/v1/moderation/bans/{item_id}/lift", "moderator"),
    ("GET", "/v1/moderation/actors/{item_id}", "moderator"),
    ("GET", "/v1/moderation/stats", "moderator"),
    ("GET", "/v1/moderation/audit", "moderator"),
    ("GET", "/v1/moderation/audit/verify", "moderator"),
    ("POST", "/v1/me/reports", "user"),
    ("GET", "/v1/me/reports", "user"),
    ("GET", "/v1/admin/events/{item_id}/explain", "moderator"),
]
LIVE: Final = ("GET", "/v1/moderation/live", "moderator")  # an endless event stream: 401s only
QUERY_PARAMS: Final = ["limit", "before", "state", "reason", "actor", "after", "order", "q", "user"]
BODY_FIELDS: Final = [
    "type", "id", "actor", "occurred_at", "post", "owner", "user", "comment", "text", "users",
    "mentioned", "ids", "all", "note", "decision", "reason", "duration_s", "remove_content",
    "target", "kind", "at", "off", "quiet_hours", "start", "end", "timezone",
]  # fmt: skip
DEEP: Final = b"[" * 5000 + b"]" * 5000  # past Python's recursion limit in any JSON decoder


@asynccontextmanager
async def api(redis: Redis, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    routes = [*moderation_routes(settings, redis), *explain_routes(settings, redis)]
    app = api_app(settings, redis, Pressure(redis, settings.ingest), routes)
    transport = httpx.ASGITransport(app=app)  # raises whatever the app does not answer
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def client_app_routes(redis: Redis, settings: Settings) -> list[Route]:
    """Every route `api` serves behind ingest's own path, with the moderation and explain routes."""
    routes = [
        *client_routes(settings, redis),
        *moderation_routes(settings, redis),
        *explain_routes(settings, redis),
    ]
    return [r for r in routes if isinstance(r, Route)]


def credential(kind: str, settings: Settings, *, ttl_s: float = 600) -> str:
    if kind == "service":
        return SERVICE_KEYS["posts"]
    role = MODERATOR_ROLE if kind == "moderator" else "user"
    return tokens.issue(settings.auth, "mod-1" if kind == "moderator" else "vic", ttl_s=ttl_s, role=role)


def url_of(path: str, item_id: str = "item-1") -> str:
    return path.replace("{item_id}", quote(item_id, safe=""))


def assert_problem(response: httpx.Response) -> dict[str, Any]:
    """A refusal in today's format: JSON with a reason and a detail."""
    assert response.status_code < 500, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    if response.status_code >= 400 and "results" not in body:
        assert isinstance(body["error"], str) and isinstance(body["detail"], str), body
    return body


async def test_unknown_paths_and_methods_are_refused_in_the_same_format(
    redis: Redis, settings: Settings
) -> None:
    async with api(redis, settings) as client:
        missing = await client.get("/v1/nothing-here")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
        wrong = await client.delete("/v1/me/unread")
        assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
        assert "GET" in wrong.headers["allow"]
        post_only = await client.get("/v1/events")
        assert (post_only.status_code, post_only.json()["error"]) == (405, "method_not_allowed")
        # one route per path: a 405 names every method the path takes
        prefs = await client.delete("/v1/me/preferences")
        assert (prefs.status_code, prefs.headers["allow"]) == (405, "GET, HEAD, PUT")
        for path in ("/v1/me/reports", "/v1/moderation/bans"):
            both = await client.delete(path)
            assert (both.status_code, both.headers["allow"]) == (405, "GET, HEAD, POST"), path
        paths = [r.path for r in client_app_routes(redis, settings)]
        assert {"/v1/me/preferences", "/v1/me/reports", "/v1/moderation/bans"} <= set(paths)
        assert len(paths) == len(set(paths)), sorted(p for p in paths if paths.count(p) > 1)
        # a trailing slash is not redirected (Starlette's 307 with a Location from the Host header)
        for method, path in [
            ("POST", "/v1/events/"),
            ("GET", "/v1/me/notifications/"),
            ("PUT", "/v1/me/mutes/"),
        ]:
            slashed = await client.request(method, path)
            assert (slashed.status_code, slashed.json()["error"]) == (404, "not_found"), (path, slashed.text)


async def test_a_before_cursor_of_unicode_digits_is_refused_not_a_500(
    redis: Redis, settings: Settings
) -> None:
    async with api(redis, settings) as client:
        auth = {"Authorization": f"Bearer {credential('user', settings)}"}
        for before in ["²:x", "١٢:like:p:1", "1:x\n", "1:", ":x", "1_0:x", " 1:x"]:
            response = await client.get("/v1/me/notifications", params={"before": before}, headers=auth)
            assert response.status_code == 422, (before, response.text)
            assert response.json()["pointer"] == "/before"
        ranked = ["/v1/users/bob/followers", "/v1/users/bob/posts", "/v1/me/feed", "/v1/me/mutes"]
        for path in ranked:  # the ranked lists' cursors: `SCORE:MEMBER`, the score ASCII digits
            for before in ["²:x", "١٢:x"]:
                response = await client.get(path, params={"before": before}, headers=auth)
                assert response.status_code == 422, (path, before, response.text)
        for limit in ["²", "٣", " 5", "1_0", "0", "101"]:
            response = await client.get("/v1/me/notifications", params={"limit": limit}, headers=auth)
            assert response.status_code == 422, (limit, response.text)
        ok = await client.get(
            "/v1/me/notifications", params={"before": "-5:like:p:1", "limit": "7"}, headers=auth
        )
        assert ok.status_code == 200, ok.text  # a time before 1970 is a page cursor too
        for path in ["/v1/me/notifications", "/v1/users/bob/followers", "/v1/me/feed"]:
            blank = await client.get(f"{path}?limit=&before=", headers=auth)  # a form's blank fields
            assert blank.status_code == 200, (path, blank.text)  # absent, as every empty parameter


@pytest.mark.parametrize(("method", "path", "kind"), [*ROUTES, LIVE])
async def test_every_401_carries_a_bearer_challenge(
    redis: Redis, settings: Settings, method: str, path: str, kind: str
) -> None:
    expired = credential(kind, settings, ttl_s=-60) if kind != "service" else "no-such-key"
    cases = [
        ({}, 'Bearer realm="notifier"', "unauthorized"),
        ({"Authorization": "Basic dmljOnB3"}, 'Bearer realm="notifier"', "unauthorized"),
        ({"Authorization": "Bearer not-a-credential"}, 'error="invalid_token"', "unauthorized"),
        ({"Authorization": f"Bearer {expired}"}, 'error="invalid_token"', "token_expired"),
    ]
    async with api(redis, settings) as client:
        for headers, challenge, reason in cases:
            response = await client.request(method, url_of(path), headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"].startswith('Bearer realm="notifier"')
            assert challenge in response.headers["www-authenticate"], response.headers
            if kind != "service":
                assert response.json()["error"] == reason


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
    keys = st.sampled_from(["kind", "id"]) | st.text(max_size=5)
    return st.recursive(
        scalars | st.sampled_from(["post", "comment", "actor", "user", "spam"]),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=6,
    )


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str], bytes]:
    method, path, kind = draw(st.sampled_from(ROUTES))
    item_id = draw(
        st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s and s not in {".", ".."})
        | st.just("item-1")
    )
    names = draw(st.lists(st.sampled_from(QUERY_PARAMS), max_size=3, unique=True))
    params = {
        n: draw(
            st.text(max_size=30)
            | st.text("0123456789²٣:-\n", max_size=8)
            | st.from_regex(r"-?[0-9]{1,25}(:[a-z:]{0,9})?", fullmatch=True)
        )
        for n in names
    }
    fields = draw(
        st.dictionaries(st.sampled_from(BODY_FIELDS) | st.text(max_size=8), json_values(), max_size=6)
    )
    if "type" not in fields and draw(st.booleans()):
        fields["type"] = draw(
            st.sampled_from(["like", "follow", "comment", "mention", "unlike", "comment_deleted"])
        )
    # stdlib json: integers past 64 bits and NaN too
    body = draw(
        st.sampled_from([json.dumps(fields), json.dumps([fields])]).map(str.encode)
        | st.binary(max_size=40)
        | st.sampled_from([DEEP, b'{"x": ' + DEEP + b', "type": "like"}', b'{"quiet_hours": ' + DEEP + b"}"])
    )
    return method, url_of(path, item_id), kind, params, body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(requests(), min_size=1, max_size=5))
async def test_no_input_to_any_route_gives_a_5xx(
    redis_url: str,
    settings_factory: SettingsFactory,
    batch: list[tuple[str, str, str, dict[str, str], bytes]],
) -> None:
    settings = settings_factory()
    redis = Redis.from_url(redis_url)
    try:
        async with api(redis, settings) as client:
            for method, url, kind, params, body in batch:
                headers = {
                    "Authorization": f"Bearer {credential(kind, settings)}",
                    "Content-Type": "application/json",
                }
                response = await client.request(method, url, params=params, content=body, headers=headers)
                assert_problem(response)
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/v1/me/notifications/read", "user"),
        ("POST", "/v1/me/notifications/seen", "user"),
        ("PUT", "/v1/me/preferences", "user"),
        ("POST", "/v1/me/reports", "user"),
        ("POST", "/v1/moderation/bans", "moderator"),
        ("POST", "/v1/moderation/decisions", "moderator"),
        ("POST", "/v1/events", "service"),
    ],
)
async def test_a_body_that_is_not_json_is_malformed_wherever_its_first_type_error_lies(
    redis: Redis, settings: Settings, method: str, path: str, kind: str
) -> None:
    """A typed decode stops at the first member of the wrong type before it reaches broken
    syntax: `{"bogus":` was 422 `invalid` ("not a field") on every JSON route but ingest."""
    headers = {"Authorization": f"Bearer {credential(kind, settings)}", "Content-Type": "application/json"}
    async with api(redis, settings) as client:
        for body in (b'{"bogus":', b'{"actor": 5 ,,,', b"[", b'{"all": true, "ids": [1, }'):
            response = await client.request(method, path, headers=headers, content=body)
            assert (response.status_code, response.json()["error"]) == (400, "malformed"), (
                body,
                response.text,
            )
