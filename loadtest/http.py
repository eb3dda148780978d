"""A minimal keep-alive HTTP/1.1 client: the generator's own CPU must not be what is measured
(a general-purpose client spends several times more per request)."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

MAX_HEADER_BYTES = 65_536


class HttpError(Exception):
    """The connection failed or the reply was not HTTP/1.1 we understand."""


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
        self._stream: SocketStream | None = None
        self._reader: BufferedByteReceiveStream | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """One request; on a reused connection that fails (the server may have closed it while
        idle, as uvicorn does after 5 s) it is retried once on a fresh one. Our POSTs are
        idempotent (event ids), so a retry is safe."""
        for attempt in (1, 2):
            reused = self._stream is not None
            try:
                return await self._request(method, path, body)
            except (OSError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError) as exc:
                await self.aclose()
                if reused and attempt == 1:
                    continue
                raise HttpError(f"{type(exc).__name__}: {exc}") from None
            except anyio.DelimiterNotFound:
                await self.aclose()
                raise HttpError("reply headers too large") from None
        raise AssertionError("unreachable")

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self._stream is None:
            self._stream = await anyio.connect_tcp(self.host, self.port)
            self._reader = BufferedByteReceiveStream(self._stream)
        assert self._reader is not None
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        await self._stream.send(head.encode() + body)
        raw = await self._reader.receive_until(b"\r\n\r\n", MAX_HEADER_BYTES)
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for line in lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            payload = await self._chunks()
        else:
            payload = await self._reader.receive_exactly(length) if length else b""
        if close:
            await self.aclose()
        return status, payload

    async def _chunks(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.receive_until(b"\r\n", 1024)).split(b";")[0], 16)
            if size == 0:
                await self._reader.receive_until(b"\r\n", MAX_HEADER_BYTES)
                return b"".join(parts)
            parts.append(await self._reader.receive_exactly(size))
            await self._reader.receive_exactly(2)

    async def aclose(self) -> None:
        stream, self._stream, self._reader = self._stream, None, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
