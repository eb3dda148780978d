"""A role stopping with a request in hand: past `NOTIFIER_HTTP_GRACE_S` the request is answered
503 `shutting_down` as a problem (not uvicorn's plain-text 500), nothing is logged as an error,
and the process exits 0. The api listens on `::` here, both address families."""

from __future__ import annotations

import os
import signal

import anyio
import anyio.abc
import orjson
import pytest

from tests.conftest import SERVICE_KEYS, base_env, free_port

from .test_up import _wait_accepting, started

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_a_request_the_grace_cuts_short_is_told_the_server_is_stopping(redis_url: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= base_env(redis_url) | {
        "NOTIFIER_HTTP_API_PORT": str(port),
        "NOTIFIER_HTTP_GRACE_S": "1",
        "NOTIFIER_HTTP_HOST": "::",
        "NOTIFIER_LOG_LEVEL": "INFO",
        "NOTIFIER_MODERATION_CLASSIFIER": "0",
    }
    async with started("api", env) as (process, log):
        await _wait_accepting(process, port, log)  # over IPv4
        async with await anyio.connect_tcp("::1", port) as stream:
            received = await _stopped_in_hand(stream, process)
        with anyio.fail_after(10):
            assert await process.wait() == 0, log.decode()
    status, _, rest = received.partition(b"\r\n")
    assert status == b"HTTP/1.1 503 Service Unavailable", received
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in headers.lower(), received
    assert b"retry-after: 1" in headers.lower(), received
    assert orjson.loads(body)["error"] == "shutting_down"
    assert b"Traceback" not in log and b"ERROR" not in log, log.decode()


async def _stopped_in_hand(stream: anyio.abc.SocketStream, process: anyio.abc.Process) -> bytes:
    """POST a body that never ends, SIGTERM once the handler reads it, and what comes back."""
    head = (
        "POST /v1/events HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {SERVICE_KEYS['posts']}\r\nContent-Length: 100\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    await stream.send(head.encode())
    received = bytearray()
    with anyio.fail_after(10):
        while b"\r\n\r\n" not in received:  # "100 Continue": the handler is reading the body
            received += await stream.receive()
    assert received.startswith(b"HTTP/1.1 100 Continue"), received
    await stream.send(b"[")  # and the rest never comes
    process.send_signal(signal.SIGTERM)
    received.clear()
    with anyio.fail_after(10):
        try:
            while True:
                received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return bytes(received)
