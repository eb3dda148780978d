"""The `--compare` baseline: the same targeted push done the common way, with python-socketio's
AsyncServer under uvicorn and AsyncRedisManager carrying emits between processes.

`api`: POST /v1/events (the notifier's event bodies) emits "change" to each recipient's room
through Redis (a write-only manager: one PUBLISH per event). `gateway`: the Socket.IO server;
its connect handler verifies the same JWTs and joins the user's room. Nothing is stored, and
nothing is replayed after a disconnect: Socket.IO delivery is best effort.

Run: `python -m loadtest.baseline_socketio api|gateway --port N` with LOADTEST_REDIS_URL,
LOADTEST_JWT_SECRET and LOADTEST_KEY in the environment (loadtest/stack.py sets them)."""

from __future__ import annotations

import argparse
import hmac
import os
from typing import Any

import orjson
import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings
from schemas.errors import Rejected


def recipients(event: dict[str, Any]) -> list[str]:
    users = [event["owner"]] if event["type"] == "comment" else list(dict.fromkeys(event.get("users", [])))
    return [u for u in users if u != event["actor"]]


def api_app(redis_url: str, key: str) -> Starlette:
    manager = socketio.AsyncRedisManager(redis_url, write_only=True)

    async def post_events(request: Request) -> Response:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, key.encode()):
            return Response(b'{"error":"unauthorized"}', 401, media_type="application/json")
        body = orjson.loads(await request.body())
        events = body if isinstance(body, list) else [body]
        results = []
        for event in events:
            await manager.emit("change", {"event": event["id"]}, room=recipients(event), namespace="/")
            results.append({"id": event["id"], "status": "accepted"})
        reply = {"accepted": len(results), "duplicate": 0, "rejected": 0, "results": results}
        return Response(orjson.dumps(reply), 202, media_type="application/json")

    return Starlette(routes=[Route("/v1/events", post_events, methods=["POST"])])


def gateway_app(redis_url: str, auth: AuthSettings) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(redis_url))

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], data: dict[str, Any] | None) -> None:
        try:
            claims = tokens.verify(str((data or {}).get("token", "")), auth)
        except Rejected as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.reason.value) from None
        await sio.enter_room(sid, claims.user)

    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.baseline_socketio")
    parser.add_argument("role", choices=["api", "gateway"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    redis_url = os.environ["LOADTEST_REDIS_URL"]
    app: Any
    if args.role == "api":
        app = api_app(redis_url, os.environ["LOADTEST_KEY"])
    else:
        app = gateway_app(redis_url, AuthSettings(jwt_secret=os.environ["LOADTEST_JWT_SECRET"]))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
