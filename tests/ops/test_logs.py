"""Log lines of real role processes in both formats: JSON is one object a line with the context
fields; every response carries an X-Request-ID that the request's lines carry too; WebSocket
open and close lines exist; and no service key, JWT or Redis password ever reaches a line."""

from __future__ import annotations

import json
import secrets
import signal
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings
from tests.faults.harness import JWT_SECRET, SERVICE_KEY, RedisProcess, RoleProcess, free_port, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_lines_carry_their_context_and_never_a_secret(fmt: str, tmp_path: Path) -> None:
    anyio.run(_logs, fmt, tmp_path)


async def _logs(fmt: str, tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis", appendonly=False)
    await server.start()
    password = "redis-pass-" + secrets.token_hex(8)
    admin = Redis.from_url(server.url)
    await admin.config_set("requirepass", password)
    await admin.aclose()
    api_port, gateway_port = free_port(), free_port()
    env = service_env(
        f"redis://:{password}@127.0.0.1:{server.port}/0",
        {
            "NOTIFIER_LOG_FORMAT": fmt,
            "NOTIFIER_HTTP_API_PORT": str(api_port),
            "NOTIFIER_HTTP_GATEWAY_PORT": str(gateway_port),
        },
    )
    roles = [
        RoleProcess("api", "api", env, tmp_path / "api.log", api_port),
        RoleProcess("gateway", "gateway", env, tmp_path / "gateway.log", gateway_port),
        RoleProcess("worker", "worker", env, tmp_path / "worker.log"),
    ]
    token = tokens.issue(AuthSettings(jwt_secret=JWT_SECRET), "olga", ttl_s=3600)
    forged = tokens.issue(AuthSettings(jwt_secret="x" * 40), "olga", ttl_s=3600)
    try:
        for role in roles:
            role.spawn()
        for role in roles:
            await role.wait_ready()
        await _traffic(api_port, gateway_port, token, forged)
        for role in roles:
            role.send(signal.SIGTERM)
        for role in roles:
            assert await role.wait_exit() == 0
    finally:
        for role in roles:
            role.kill()
        server.stop()

    logs = {role.name: role.log_text() for role in roles}
    for name, text in logs.items():
        for secret in (SERVICE_KEY, token, forged, password, JWT_SECRET):
            assert secret not in text, f"{name} logged a secret"
    if fmt == "json":
        lines = {name: [json.loads(line) for line in text.splitlines()] for name, text in logs.items()}
        for name, records in lines.items():
            assert records and all(
                {"time", "level", "role", "logger", "message"} <= r.keys() for r in records
            )
            assert {r["role"] for r in records} == {name}
        traced = [r for r in lines["api"] if r.get("request_id") == "trace-me-42"]
        assert traced and traced[-1]["logger"] == "notifier.access"
        assert (traced[-1]["method"], traced[-1]["path"], traced[-1]["status"]) == ("POST", "/v1/events", 202)
        assert traced[-1]["service"] == "faults"
        ws = [r for r in lines["gateway"] if r["logger"] == "notifier.access"]
        assert any(r["message"] == "ws open" and r["user"] == "olga" for r in ws)
        assert any(r["message"] == "ws closed by client" and r["code"] == 1000 for r in ws)
        assert any(r["message"] == "ws close" and r["reason"] == "unauthorized" and r["code"] for r in ws)
    else:
        assert any(
            "POST /v1/events 202" in line and "request_id=trace-me-42" in line and "service=faults" in line
            for line in logs["api"].splitlines()
        )
        assert "ws open user=olga" in logs["gateway"]
        assert "ws closed by client user=olga code=1000" in logs["gateway"]
        assert "ws close user=- code=" in logs["gateway"] and "reason=unauthorized" in logs["gateway"]


async def _traffic(api_port: int, gateway_port: int, token: str, forged: str) -> None:
    headers = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"}
    now = datetime.now(UTC).isoformat()
    event = {"type": "like", "id": "l-1", "actor": "bob", "post": "p1", "owner": "olga", "occurred_at": now}
    ws_url = f"ws://127.0.0.1:{gateway_port}/v1/ws"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api_port}", trust_env=False, timeout=10
    ) as http:
        async with connect(ws_url + f"?token={token}", proxy=None, open_timeout=10, compression=None) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            with anyio.fail_after(10):
                assert orjson.loads(await ws.recv())["type"] == "ready"
            traced = await http.post(
                "/v1/events", content=orjson.dumps(event), headers={**headers, "X-Request-ID": "trace-me-42"}
            )
            assert traced.status_code == 202 and traced.headers["x-request-id"] == "trace-me-42"
            with anyio.fail_after(10):
                assert orjson.loads(await ws.recv())["type"] == "change"
        fresh = [(await http.get("/readyz")).headers["x-request-id"] for _ in range(2)]
        assert fresh[0] and fresh[1] and fresh[0] != fresh[1]  # generated, one per request
        refused = await http.post(
            "/v1/events", content=b"{}", headers={**headers, "Authorization": "Bearer no"}
        )
        assert refused.status_code == 401 and refused.headers["x-request-id"]
        bearer = await http.get("/v1/me/unread", headers={"Authorization": f"Bearer {forged}"})
        assert bearer.status_code == 401
    async with connect(ws_url, proxy=None, open_timeout=10, compression=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": forged}).decode())
        with anyio.fail_after(10), pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
