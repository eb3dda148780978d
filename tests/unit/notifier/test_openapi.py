"""The OpenAPI document describes every HTTP route the API serves, and only those."""

from __future__ import annotations

from redis.asyncio import Redis
from starlette.routing import Route

from notifier import __version__, openapi
from notifier.api.app import INGEST_PATH, client_routes
from notifier.cli import _routes
from notifier.runtime.health import Health, ops_routes
from notifier.runtime.metrics import Metrics
from notifier.runtime.settings import Settings
from tests.conftest import base_env


def test_every_route_is_in_the_document() -> None:
    settings = Settings.from_env({**base_env("redis://127.0.0.1:1/0"), "NOTIFIER_DEV": "1"})  # + the demo
    redis = Redis()  # never connected: building the routes does no I/O
    served = {("post", INGEST_PATH)}
    ops = ops_routes(Health(redis), Metrics(enabled=True))
    for route in [*client_routes(settings, redis), *_routes(settings, redis), *ops]:
        assert isinstance(route, Route) and route.methods
        served |= {(m.lower(), route.path) for m in route.methods if m != "HEAD"}
    paths = openapi.document(__version__)["paths"]
    documented = {(method, path) for path, methods in paths.items() for method in methods}
    assert documented == served


def test_requests_are_described_by_the_types_that_decode_them() -> None:
    doc = openapi.document(__version__)
    schemas = doc["components"]["schemas"]
    assert {"Like", "Mention", "MarkRead", "BulkBody", "BanBody", "DecisionBody"} <= set(schemas)
    read = doc["paths"]["/v1/me/notifications/read"]["post"]["requestBody"]["content"]
    assert read["application/json"]["schema"] == {"$ref": "#/components/schemas/MarkRead"}
    assert schemas["MarkRead"]["properties"]["ids"]
