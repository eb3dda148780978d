"""The moderator console in a real headless Chromium (Debian's `chromium`, driven by Playwright;
nothing downloaded): sign in, see a held item appear, reject it, and see the recall of a
delivered one reach a connected WebSocket client. Set MODERATION_SCREENSHOT=PATH to keep a
screenshot (docs/moderation-console.png is made this way)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
from playwright.async_api import Browser, async_playwright, expect
from redis.asyncio import Redis

from notifier.runtime.settings import Settings

from .builders import CLEAN_TEXT, FLAGGED_TEXT, HELD_TEXT, comment, mention
from .harness import App, push_client, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CHROMIUM: Final = "/usr/bin/chromium"
ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
WAIT_MS: Final = 10_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def app(redis: Redis, settings: Settings) -> AsyncIterator[App]:
    async with running_app(settings, redis) as running:
        yield running


async def test_sign_in_review_reject_and_recall(app: App, browser: Browser, tmp_path: Path) -> None:
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    async with push_client(app, "alice") as alice:
        await app.send(comment("e0", "carl", "alice", CLEAN_TEXT, post="p0"))
        assert (await alice.change())["group"]["id"] == "comment:c-e0"

        await page.goto(f"{app.base_url}/moderation/")
        await page.fill("#token", app.token("alice"))  # not a moderator
        await page.click("#signin-button")
        await expect(page.locator("#signin-error")).to_contain_text("not a moderator")
        await page.fill("#token", app.token("ann", "moderator"))
        await page.click("#signin-button")
        await expect(page.locator("#console")).to_be_visible()
        await expect(page.locator("#who")).to_have_text("signed in as ann")

        # a held comment appears in the open queue while the console is open (polling)
        await app.send(comment("e1", "bob", "alice", HELD_TEXT, post="p1"))
        held = page.locator('#queue li[data-id="e1"]')
        await expect(held).to_be_visible(timeout=WAIT_MS)
        await held.click()
        await expect(page.locator("#detail-text")).to_have_text(HELD_TEXT)
        await expect(page.locator("#detail")).to_contain_text("blocked terms: kill yourself")
        await expect(page.locator("#detail")).to_contain_text("claimed by ann")
        await page.keyboard.press("r")  # reject by keyboard
        await expect(page.locator("#status")).to_contain_text("rejected e1")
        await expect(held).to_have_count(0, timeout=WAIT_MS)

        # a flagged comment was delivered at once; rejecting it recalls it from alice's client
        await app.send(comment("e2", "dave", "alice", FLAGGED_TEXT, post="p2"))
        delivered = await alice.change()  # the next change: the held e1 never reached alice
        assert (delivered["op"], delivered["group"]["id"], delivered["unread"]) == (
            "upsert",
            "comment:c-e2",
            2,
        )
        await app.send(mention("m3", "erin", ["alice", "dave"], "check spam[.]example for free stuff"))
        flagged = page.locator('#queue li[data-id="e2"]')
        await expect(flagged).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator('#queue li[data-id="m3"]')).to_be_visible(timeout=WAIT_MS)
        await flagged.click()
        await expect(page.locator("#detail-text")).to_have_text(FLAGGED_TEXT)
        await page.fill("#note", "insult")
        await expect(page.locator("#audit-verify")).to_contain_text(
            "chain intact (1 records)", timeout=WAIT_MS
        )
        await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
        if target := os.environ.get("MODERATION_SCREENSHOT"):
            await page.screenshot(path=target, full_page=True)
        await page.click("button.reject")
        await expect(page.locator("#status")).to_contain_text("rejected e2 (recall queued)")

        removed = await alice.change()
        assert removed == {"op": "remove", "id": "comment:c-e2", "unread": 1}
        await expect(page.locator("#audit-verify")).to_contain_text(
            "chain intact (2 records)", timeout=WAIT_MS
        )
        await expect(page.locator("#audit-list")).to_contain_text("ann (moderator) reject e2 — insult")
    await page.close()
