"""One logging configuration for every role: one line per event, key=value context."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # uvicorn logs every WebSocket open/close at INFO: noise at thousands of connections
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLogger().level))
