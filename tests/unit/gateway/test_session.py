"""Session behaviour against a fake WebSocket (a port): the parts a real socket makes racy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from feeds import changelog
from feeds.changelog import Change, Replay
from gateway.hub import Hub, Push
from gateway.session import Session
from gateway.wsserver import SEND_FRAMES, SERVER_CLOSED
from notifier.runtime import metrics, tokens
from notifier.runtime.settings import AuthSettings, GatewaySettings
from schemas import protocol
from schemas.cursor import Cursor
from schemas.errors import CODES, Reason

AUTH = AuthSettings(jwt_secret="s" * 40)
CHECK = 2**23  # a published change's check


class StuckClient:
    """Authenticates, then never reads again: every send after `ready` blocks forever."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.sent: list[str] = []
        self.ready = anyio.Event()
        self.closed = anyio.Event()
        self.close_code = 0
        self._forever = anyio.Event()

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            return {
                "type": "websocket.receive",
                "text": orjson.dumps({"type": "auth", "token": self._token}).decode(),
            }
        await self._forever.wait()
        raise AssertionError("unreachable")

    async def send_text(self, text: str) -> None:
        if self.sent and '"type":"ready"' in self.sent[-1]:
            await self._forever.wait()  # the client's buffers are full
        self.sent.append(text)
        if '"type":"ready"' in text:
            self.ready.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.close_code = code
        self.closed.set()


@pytest.mark.anyio
async def test_a_client_that_stops_reading_is_cut_off_when_its_queue_fills(redis: Redis) -> None:
    settings = GatewaySettings(send_queue_frames=4)
    client = StuckClient(tokens.issue(AUTH, "bob"))
    session = Session(client, redis, Hub(redis), settings, AUTH)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.serve)
        with anyio.fail_after(5):
            await client.ready.wait()
        for n in range(1, settings.send_queue_frames + 3):  # the writer is stuck on the first
            session.push_nowait(Push(f"e {n} {CHECK} " + '{"op":"read","all":true,"unread":0}'))
        with anyio.fail_after(5):
            await client.closed.wait()
    assert client.close_code == CODES[Reason.SLOW_CONSUMER].ws_close


class ResumingClient(StuckClient):
    """Authenticates with a cursor, so the session starts by reading the change log."""

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            frame = {"type": "auth", "token": self._token, "cursor": str(Cursor("e", 1))}
            self.sent.append("auth")
            return {"type": "websocket.receive", "text": orjson.dumps(frame).decode()}
        await self._forever.wait()
        raise AssertionError("unreachable")


@pytest.mark.anyio
async def test_an_error_reply_from_redis_closes_with_unavailable_not_a_traceback(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis restarted twice in a row: the script cache was empty again after the reload
    async def refused(*args: Any, **kwargs: Any) -> None:
        raise NoScriptError("No matching script. Please use EVAL.")

    monkeypatch.setattr(changelog, "read_after", refused)
    client = ResumingClient(tokens.issue(AUTH, "bob"))
    session = Session(client, redis, Hub(redis), GatewaySettings(), AUTH)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        await session.serve()
    assert client.close_code == CODES[Reason.UNAVAILABLE].ws_close


def frame_texts(data: bytes) -> list[str]:
    """The payloads of the unmasked text frames in `data`."""
    texts, at = [], 0
    while at < len(data):
        assert data[at] == 0x81, data[at:]
        size, at = data[at + 1], at + 2
        if size >= 126:
            width = 2 if size == 126 else 8
            size, at = int.from_bytes(data[at : at + width], "big"), at + width
        texts.append(data[at : at + size].decode())
        at += size
    return texts


class FramesClient(StuckClient):
    """A client behind a server that offers SEND_FRAMES (gateway/wsserver.py), recording each
    write and which way it went: the write-now call ("write", refused while `writable` is
    False), the ASGI send ("send", which waits until `drained` is set) or a single frame
    ("text")."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.writes: list[tuple[str, list[str]]] = []
        self.written = anyio.Event()
        self.writable = True
        self.drained = anyio.Event()
        self.drained.set()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)
        if '"type":"ready"' in text:
            self.ready.set()
        else:
            self._record("text", [text])

    def write_frames(self, data: bytes) -> bool:
        if self.writable:
            self._record("write", frame_texts(data))
        return self.writable

    async def send_frames(self, message: dict[str, Any]) -> None:
        assert message["type"] == SEND_FRAMES
        await self.drained.wait()
        self._record("send", frame_texts(message["data"]))

    def _record(self, way: str, texts: list[str]) -> None:
        self.writes.append((way, texts))
        self.written.set()

    async def until_writes(self, count: int) -> None:
        with anyio.fail_after(5):
            while len(self.writes) < count:
                await self.written.wait()
                self.written = anyio.Event()


def live(n: int) -> Push:
    return Push(f"e {n} {CHECK}@1700000000000 " + '{"op":"read","all":true,"unread":0}')


@contextlib.asynccontextmanager
async def live_session(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Session, FramesClient]]:
    """A live session of bob's behind a FramesClient, its writer waiting for work, at cursor e.0."""

    async def tail(redis: Redis, user: str) -> Cursor:
        return Cursor("e", 0, CHECK)

    monkeypatch.setattr(changelog, "tail", tail)
    client = FramesClient(tokens.issue(AUTH, "bob"))
    settings = GatewaySettings(send_queue_frames=4)
    session = Session(client, redis, Hub(redis), settings, AUTH, client.send_frames, client.write_frames)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.serve)
        with anyio.fail_after(5):
            await client.ready.wait()
        await anyio.wait_all_tasks_blocked()  # the writer waits for work
        yield session, client
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_changes_of_one_read_go_out_in_one_write_from_the_hub(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_session(redis, monkeypatch) as (session, client):
        pushes = [live(n) for n in (1, 2, 3)]
        for push in pushes:  # as the hub's read dispatches them, with no await between
            session.push_nowait(push)
        await client.until_writes(1)
        session.push_nowait(live(2))  # one the session sent already: skipped
        session.push_nowait(live(4))
        await client.until_writes(2)
    assert client.writes == [("write", [p.text for p in pushes]), ("write", [live(4).text])]


@pytest.mark.anyio
async def test_a_full_transport_leaves_the_changes_to_the_writer_which_waits_for_the_drain(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_session(redis, monkeypatch) as (session, client):
        client.writable, client.drained = False, anyio.Event()
        session.push_nowait(live(1))
        session.push_nowait(live(2))
        await anyio.wait_all_tasks_blocked()  # the writer waits in the ASGI send
        session.push_nowait(live(3))  # queued behind it, in order
        assert client.writes == []
        client.writable = True
        client.drained.set()
        await client.until_writes(2)
    assert client.writes == [("send", [live(1).text, live(2).text]), ("send", [live(3).text])]


@pytest.mark.anyio
async def test_the_hub_judges_a_sessions_position_only_while_its_writer_is_idle(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_session(redis, monkeypatch) as (session, client):
        assert session.cursor == Cursor("e", 0, CHECK)  # idle, everything written
        client.writable, client.drained = False, anyio.Event()
        session.push_nowait(live(1))
        await anyio.wait_all_tasks_blocked()  # the writer waits in the ASGI send
        assert session.cursor is None  # busy: not judged behind a slow socket
        client.drained.set()
        await client.until_writes(1)
        await anyio.wait_all_tasks_blocked()
        assert session.cursor == Cursor("e", 1, CHECK)


@pytest.mark.anyio
async def test_what_precedes_a_resync_is_written_then_the_writer_replays_the_log(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged = b'{"op":"read","all":true,"unread":0}'

    async def read_after(redis: Redis, user: str, cursor: Cursor, count: int) -> Replay:
        assert cursor == Cursor("e", 1, CHECK)  # after what the flush wrote
        return Replay([Change(Cursor("e", 2, CHECK), logged)])

    monkeypatch.setattr(changelog, "read_after", read_after)
    async with live_session(redis, monkeypatch) as (session, client):
        session.push_nowait(live(1))
        session.resync()  # the hub's link was rebuilt: live(2) may have been lost
        session.push_nowait(live(2))  # the replay sent it
        session.push_nowait(live(3))
        await client.until_writes(3)
    replayed = protocol.change(str(Cursor("e", 2, CHECK)), logged.decode())
    assert client.writes == [("write", [live(1).text]), ("text", [replayed]), ("send", [live(3).text])]


class LeavingClient(StuckClient):
    """Authenticates, then its connection ends with `code` (1012: the server shutting down)."""

    def __init__(self, token: str, code: int, server: bool = False) -> None:
        super().__init__(token)
        self.code = code
        self.server = server  # the server's transport closed it for the client's fault

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            self.sent.append("auth")
            return {
                "type": "websocket.receive",
                "text": orjson.dumps({"type": "auth", "token": self._token}).decode(),
            }
        with anyio.fail_after(5):
            await self.ready.wait()
        gone = {"type": "websocket.disconnect", "code": self.code, "reason": "too many frames"}
        return {**gone, SERVER_CLOSED: True} if self.server else gone


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "server", "labels"),
    [
        (1012, False, ("1012", "shutting_down")),
        (1001, False, ("", "client")),
        (1008, True, ("1008", "protocol")),  # a frame flood the transport failed (gateway/wsserver.py)
    ],
)
async def test_a_close_by_the_server_is_counted_as_the_servers(
    redis: Redis, code: int, server: bool, labels: tuple[str, str]
) -> None:
    counted = metrics.Metrics()
    metrics.use(counted)
    client = LeavingClient(tokens.issue(AUTH, "bob"), code, server)
    session = Session(client, redis, Hub(redis), GatewaySettings(), AUTH)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        await session.serve()
    sample = counted.registry.get_sample_value
    assert sample("notifier_gateway_closes_total", dict(zip(("code", "reason"), labels, strict=True))) == 1
    for other in {("", "client"), ("1012", "shutting_down"), ("1008", "protocol")} - {labels}:
        assert not sample("notifier_gateway_closes_total", dict(zip(("code", "reason"), other, strict=True)))
