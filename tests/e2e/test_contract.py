"""The OpenAPI document: committed and current, served, covering every route, and the live API
(real uvicorn, real Redis) conforming to it under schemathesis' generated requests."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

import anyio
import pytest
from redis.asyncio import Redis

from notifier import __version__, openapi
from notifier.runtime import tokens
from notifier.runtime.settings import Settings

from .harness import running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MAX_EXAMPLES: Final = 12  # per operation: enough to walk every parameter, bounded for the suite
# the coverage phase walks every boundary of every schema: for the event union that is ~750
# requests (40 s); ingest's refusals have their own tests (test_ingest_rejections), so it is fuzzed
PHASES: Final = {"ingest": "examples,fuzzing"}
CHECKS: Final = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def test_the_committed_document_is_current() -> None:
    assert openapi.DOCUMENT_FILE.read_text(encoding="utf-8") == openapi.render(__version__), (
        "regenerate with `python -m notifier.openapi`"
    )


async def test_served_document_and_page(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        served = await app.http.get("/openapi.json")
        assert served.status_code == 200
        # the committed document, without the demo page's routes where they are not served
        assert served.text == openapi.render(__version__, demo=settings.dev)
        assert any(op.tag == "demo" for op in openapi.OPERATIONS)
        assert ("/demo/session" in served.json()["paths"]) is settings.dev
        page = await app.http.get("/docs")
        assert page.headers["content-type"].startswith("text/html")
        assert "<script" not in page.text and "http" not in page.text.replace("/openapi.json", "")
        for path in served.json()["paths"]:
            assert path.replace("{", "").replace("}", "") in page.text.replace("{", "").replace("}", "")


async def test_the_live_api_conforms(redis: Redis, settings: Settings, tmp_path: Path) -> None:
    auth = settings.auth
    headers = {
        "ingest": f"Bearer {settings.ingest.services[0].key}",
        "inbox": f"Bearer {tokens.issue(auth, 'st-user')}",
        "moderation": f"Bearer {tokens.issue(auth, 'st-mod', role='moderator')}",
        "meta": "",
    }
    schemathesis = Path(sys.executable).with_name("st")
    async with running_app(settings, redis) as app:
        for tag, header in headers.items():
            command = [
                str(schemathesis),
                "run",
                f"{app.base_url}/openapi.json",
                f"--include-tag={tag}",
                f"--checks={CHECKS}",
                f"--max-examples={MAX_EXAMPLES * (4 if tag == 'ingest' else 1)}",
                "--generation-deterministic",
                f"--phases={PHASES.get(tag, 'examples,coverage,fuzzing')}",
                "--request-timeout=10",
                "--no-color",
                "--exclude-path=/v1/moderation/live",  # an endless event stream
                *(["--header", f"Authorization: {header}"] if header else []),
            ]
            environ = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_PROXY": "*"}
            with anyio.fail_after(90):
                done = await anyio.run_process(command, check=False, env=environ, cwd=tmp_path)
            output = done.stdout.decode() + done.stderr.decode()
            assert done.returncode == 0, f"{tag}:\n{output[-6000:]}"
