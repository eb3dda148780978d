"""The demo page `up` serves at / (dev mode), in Debian's chromium driven by Playwright (nothing
downloaded): sign in, post sample events, see them arrive live through the JS client, mark read."""

from __future__ import annotations

from typing import Final

import pytest
from playwright.async_api import Browser, expect
from redis.asyncio import Redis

from tests.conftest import SettingsFactory

from .harness import like, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WAIT_MS: Final = 15_000


async def test_the_demo_page_shows_the_live_inbox(
    redis: Redis, settings_factory: SettingsFactory, browser: Browser
) -> None:
    async with running_app(settings_factory({"NOTIFIER_DEV": "1"}), redis) as app:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{app.base_url}/")
        await page.fill("#user", "dora")
        await page.click("#signin-button")
        await expect(page.locator("#who")).to_have_text("signed in as dora")
        await expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)

        await page.click("#follow")  # posted by the page with the dev service key
        await expect(page.locator("#groups li")).to_have_count(1, timeout=WAIT_MS)
        await app.accept(like("d-1", "zed", "p-1", "dora"))  # posted by a service elsewhere
        await expect(page.locator("#groups li")).to_have_count(2, timeout=WAIT_MS)
        await expect(page.locator("#unread")).to_have_text("2")
        await expect(page.locator("#groups li", has_text="zed liked p-1")).to_have_count(1)

        await page.click("#read")
        await expect(page.locator("#unread")).to_have_text("0", timeout=WAIT_MS)
        await expect(page.locator("#groups li.unread")).to_have_count(0)
        assert errors == []


async def test_no_demo_outside_dev_mode(redis: Redis, settings_factory: SettingsFactory) -> None:
    async with running_app(settings_factory(), redis) as app:
        assert (await app.http.get("/")).status_code == 404
        assert (await app.http.post("/demo/session", json={"user": "x"})).status_code == 404
