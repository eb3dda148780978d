"""Request heads bounded in size and time, and bodies in time, for every HTTP server of the product.

uvicorn's httptools protocol (the fast parser, the one `http="auto"` picks) has no bound: a client
could send header lines for ever (each kept: hundreds of MB for one connection) or hold a
connection open by sending a head byte by byte (slowloris), or its body never (a handler, and a
slot of ingest's in-flight bound, held for as long as the connection). This subclass is the one place that
reaches into uvicorn's private protocol class (`uvicorn.protocols.http.httptools_impl`): it
overrides seven of its callbacks and reads `transport`, `loop` and `parser`.
tests/ops/test_httpguard.py fails loudly if an upgrade of uvicorn changes them."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

MAX_HEAD_BYTES: Final = 32 * 1024  # request line and headers
MAX_URL_BYTES: Final = 8 * 1024  # the request line's target
_HEAD_END: Final = b"\r\n\r\n"
HEAD_TIMEOUT_S: Final = 10.0  # from the connection, or the next request's first byte, to its head's end
BODY_TIMEOUT_S: Final = 30.0  # from a head's end to its body's (a slot of ingest's in-flight bound)

_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\nrequest head larger than 32 KiB"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S
    body_timeout_s = BODY_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._body_timer: asyncio.TimerHandle | None = None
        self._seam = b""  # the last bytes read: a head's end may straddle two reads
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._url_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        if self._in_head and not self.transport.is_closing():
            log.info("closed a connection whose request head took over %.0f s", self.head_timeout_s)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        # counted before the parser sees the read: a head that ends inside it would otherwise be
        # taken whole, however large, and a body in the same read is not part of the head
        keep = len(_HEAD_END) - 1
        if self._in_head and not self.transport.is_closing():
            straddles = (self._seam + data[:keep]).find(_HEAD_END)
            if straddles >= 0:
                self._head_bytes += straddles + len(_HEAD_END) - len(self._seam)
            else:
                end = data.find(_HEAD_END)
                self._head_bytes += len(data) if end < 0 else end + len(_HEAD_END)
            if self._head_bytes > self.max_head_bytes:
                self._disarm()
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        self._seam = data[-keep:] if len(data) >= keep else (self._seam + data)[-keep:]
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        """A target over MAX_URL_BYTES fails the parse (uvicorn answers a plain-text 400)."""
        self._url_bytes += len(url)  # (httptools may hand it over in pieces)
        if self._url_bytes > MAX_URL_BYTES:
            raise ValueError(f"request target longer than {MAX_URL_BYTES} bytes")
        super().on_url(url)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if not self.parser.should_upgrade():  # (a WebSocket's connection is its protocol's then)
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._body_done()
        super().on_message_complete()

    def _body_done(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        """A body that stalls would hold its handler (and an ingest slot) for as long as the
        client keeps the connection: closed, the handler sees the client gone."""
        self._body_timer = None
        if self.transport.get_protocol() is self and not self.transport.is_closing():
            log.info("closed a connection whose request body took over %.0f s", self.body_timeout_s)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._body_done()
        super().connection_lost(exc)
