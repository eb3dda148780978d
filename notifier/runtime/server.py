"""uvicorn as a Service, so the supervisor, not uvicorn, owns the signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp

from schemas.errors import ConfigError

from .httpguard import GuardedHttpToolsProtocol

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn installs its own SIGINT/SIGTERM handlers here; our supervisor owns them.
        yield


class HttpService:
    """Serves `app` on a socket bound at construction (so port 0 works and is known at once)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str,
        port: int,
        ping_interval_s: float,
        max_frame_bytes: int,
        ws: type[asyncio.Protocol] | str = "websockets-sansio",
    ) -> None:
        ipv6 = ":" in host  # an IPv6 address ('::' listens on both families)
        self.socket = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ipv6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="off",  # the supervisor starts and stops what the app needs (no startup hooks)
            log_config=None,
            access_log=False,
            http=GuardedHttpToolsProtocol,  # request heads bounded in size and time (httpguard)
            ws=ws,  # the gateway's lean protocol (gateway.wsserver), passed in by the composition root
            ws_max_size=max_frame_bytes,
            ws_ping_interval=ping_interval_s,
            ws_ping_timeout=ping_interval_s,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=None,
            server_header=False,
        )
        self._server = _Server(config)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        done = anyio.Event()

        async def serve() -> None:
            try:
                await self._server.serve([self.socket])
            finally:
                done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            # uvicorn has no readiness hook; poll its flag until it accepts connections
            while not self._server.started and not done.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.005)
            if not self._server.started:
                raise RuntimeError("HTTP server failed to start")
            log.info("listening on %s:%d", self.host, self.port)  # port 0 in the settings: the one given
            task_status.started()

    def stop(self) -> None:
        self._server.should_exit = True
