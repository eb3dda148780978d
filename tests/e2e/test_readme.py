"""The README's "Try it", run literally: its shell blocks are extracted from README.md and each is
run in a fresh shell (nothing carried over between them) against `./dev.sh up`, as a new user
pasting them into fresh terminals would. Only the address changes: a free port instead of 8000
(parallel runs), and the suite's own redis-server instead of whatever `up` would find."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
import pytest
from anyio.abc import Process

from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ROOT: Final = Path(__file__).resolve().parents[2]
WAIT_S: Final = 60.0  # `up` and the client start on a busy two-core machine


def try_it_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def fresh_env() -> dict[str, str]:
    """A new terminal: the user's environment, no NOTIFIER_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}


class Lines:
    """A process's stdout, line by line, waited on."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = anyio.Event()

    async def collect(self, process: Process) -> None:
        assert process.stdout is not None
        buffer = b""
        async for chunk in process.stdout:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            self.lines += [line.decode() for line in complete]
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_for(self, wanted: str) -> None:
        with anyio.fail_after(WAIT_S):
            while wanted not in self.lines:
                await self._changed.wait()


@pytest.fixture
async def up(redis_url: str) -> AsyncIterator[int]:
    port = free_port()
    env = {**fresh_env(), "NOTIFIER_HTTP_API_PORT": str(port), "NOTIFIER_REDIS_URL": redis_url}
    log = Lines()
    command = ["sh", "-c", try_it_blocks()[0]]
    assert command[2].strip() == "./dev.sh up"
    async with await anyio.open_process(
        command, cwd=ROOT, env=env, stderr=subprocess.STDOUT, start_new_session=True
    ) as process:
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.collect, process)
            with anyio.fail_after(WAIT_S):
                while not any("notifier is up" in line for line in log.lines):
                    assert process.returncode is None, "\n".join(log.lines)
                    await anyio.sleep(0.05)  # another process: its log line is the only signal
            try:
                yield port
            finally:
                os.killpg(process.pid, signal.SIGTERM)


def json_values(text: str) -> list[Any]:
    """The JSON values curl printed back to back (it adds no newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


async def run_block(block: str, port: int) -> str:
    with anyio.fail_after(WAIT_S):
        done = await anyio.run_process(
            ["bash", "-c", block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")],
            cwd=ROOT,
            env=fresh_env(),
        )
    return done.stdout.decode()


async def test_try_it_works_pasted_in_order(up: int) -> None:
    _, client_block, post_block, rest_block = try_it_blocks()
    client_out = Lines()
    script = client_block.replace("127.0.0.1:8000", f"127.0.0.1:{up}")
    opened = anyio.open_process(["bash", "-c", script], cwd=ROOT, env=fresh_env(), start_new_session=True)
    async with await opened as client, anyio.create_task_group() as tg:
        tg.start_soon(client_out.collect, client)
        try:
            await client_out.wait_for("unread=0 []")

            posted = orjson.loads(await run_block(post_block, up))
            assert (posted["accepted"], posted["duplicate"]) == (2, 0)
            await client_out.wait_for("unread=1 ['like p1 by carol, alice']")

            again = orjson.loads(await run_block(post_block, up))  # the very same body
            assert (again["accepted"], again["duplicate"]) == (0, 2)

            page, unread, marked = json_values(await run_block(rest_block, up))
            assert [g["actors"] for g in page["groups"]] == [["carol", "alice"]]
            assert (unread, marked) == ({"unread": 1, "unseen": 1}, {"marked": 1, "unread": 0})
            await client_out.wait_for("unread=0 ['like p1 by carol, alice']")
        finally:
            os.killpg(client.pid, signal.SIGTERM)  # bash and the python it runs
