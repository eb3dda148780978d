"""The AsyncAPI document of the WebSocket protocol: committed and current, valid for the official
parser (@asyncapi/parser, installed by ./dev.sh test from contracts/asyncapi-check's lockfile), and
describing the frames a real gateway sends and takes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Final

import anyio
import jsonschema
import orjson
import pytest
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from notifier import __version__
from notifier.runtime.settings import Settings
from schemas import asyncapi
from schemas.errors import CODES, Reason

from .harness import FRAME_TIMEOUT_S, Json, at, follow, like, push_client, running_app, ws_connect

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CHECKER: Final = Path(__file__).resolve().parents[2] / "contracts" / "asyncapi-check"


def test_the_committed_document_is_current() -> None:
    assert asyncapi.DOCUMENT_FILE.read_text(encoding="utf-8") == asyncapi.render(__version__), (
        "regenerate with `python -m schemas.asyncapi`"
    )


async def test_the_official_parser_accepts_it() -> None:
    node = shutil.which("node")
    if node is None or not (CHECKER / "node_modules" / "@asyncapi" / "parser").is_dir():
        message = "node and contracts/asyncapi-check/node_modules are needed: run ./dev.sh test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [node, "validate.mjs", str(asyncapi.DOCUMENT_FILE)], cwd=CHECKER, check=False
        )
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
    assert b"valid AsyncAPI 3.0.0" in done.stdout


def check(frame: Json, doc: dict[str, Any]) -> None:
    """`frame` is one of the document's messages, and valid against that message's payload."""
    message = doc["components"]["messages"][frame["type"]]
    schema = {**message["payload"], "components": doc["components"]}
    jsonschema.validate(frame, schema)


async def test_real_frames_match_the_document(redis: Redis, settings: Settings) -> None:
    doc = asyncapi.document(__version__)
    seen: set[str] = set()
    async with running_app(settings, redis) as app:
        async with push_client(app, "ava") as client:
            frames = [client.ready]
            await client.ws.send('{"type": "ping"}')
            frames.append(await client.frame())
            await app.accept(like("f-1", "fan", "p-1", "ava"))
            frames.append(await client.change())
            await app.accept(follow("fo-1", "ava", "star"))
            post = {"type": "post_created", "id": "pc-1", "actor": "star", "occurred_at": at(1), "post": "s1"}
            await app.accept(post)
            frames.append(await client.frame())  # the feed change of star's post
        async with push_client(app, "ava", cursor="someotherepoch.1-0") as client:
            frames += client.before_ready
        async with ws_connect(app) as ws:
            await ws.send('{"type": "auth", "token": 5}')
            with anyio.fail_after(FRAME_TIMEOUT_S):
                frames.append(orjson.loads(await ws.recv()))
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
        assert closed.value.rcvd is not None
        assert str(closed.value.rcvd.code) in doc["channels"]["inbox"]["x-close-codes"]
        assert closed.value.rcvd.code == CODES[Reason.MALFORMED].ws_close
    for frame in frames:
        check(frame, doc)
        seen.add(frame["type"])
    assert seen == {"ready", "pong", "change", "feed", "refetch", "error"}
    for client_frame in ({"type": "auth", "token": "t", "cursor": "c"}, {"type": "ping"}):
        check(client_frame, doc)
