"""A minimal keep-alive HTTP/1.1 client: the generator's own CPU must not be what is measured
(a general-purpose client spends several times more per request, and so do anyio's socket
streams: at single-event POSTs the generator would need about as much CPU as the API). An
asyncio protocol writes each request and httptools (the parser uvicorn uses) reads the reply."""

from __future__ import annotations

import asyncio
from typing import cast
from urllib.parse import urlsplit

import httptools

Reply = tuple[int, bytes, bool]  # status, body, keep-alive


class HttpError(Exception):
    """The connection failed or the reply was not HTTP/1.1 we understand."""


class _Replies(asyncio.Protocol):
    """One connection's read side: completes `waiter` with each reply in turn."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad reply: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body, self._body = b"".join(self._body), []
        if self.waiter is not None and not self.waiter.done():
            status = int(self._parser.get_status_code())
            self.waiter.set_result((status, body, bool(self._parser.should_keep_alive())))


class HttpConnection:
    """One persistent connection; one request at a time. Reconnects lazily after a failure."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http:// URL, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        host_header = f"{self.host}:{self.port}"
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host_header, **headers}.items())
        self._replies: _Replies | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """One request; on a reused connection that fails (the server may have closed it while
        idle, as uvicorn does after 5 s) it is retried once on a fresh one. Our POSTs are
        idempotent (event ids), so a retry is safe."""
        for attempt in (1, 2):
            reused = self._replies is not None
            try:
                return await self._request(method, path, body)
            except (OSError, HttpError) as exc:
                await self.aclose()
                if reused and attempt == 1 and not isinstance(exc, HttpError):
                    continue
                raise HttpError(f"{type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        replies = self._replies
        if replies is None or replies.transport is None:
            _, replies = await loop.create_connection(_Replies, self.host, self.port)
            self._replies = replies
        assert replies.transport is not None
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        replies.waiter = loop.create_future()
        replies.transport.write(head.encode() + body)
        status, payload, keep_alive = await replies.waiter
        if not keep_alive:
            await self.aclose()
        return status, payload

    async def aclose(self) -> None:
        replies, self._replies = self._replies, None
        if replies is not None and replies.transport is not None:
            replies.transport.close()
