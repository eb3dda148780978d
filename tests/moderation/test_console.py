"""The moderator console in a real headless Chromium (Debian's `chromium`, driven by Playwright;
nothing downloaded): sign in, see a held item pushed in, reject it, and see the recall of a
delivered one reach a connected WebSocket client; the shift tools (j/k without claiming, on to
the next item after a decision, a ban that asks for a reason, live actor history, bulk, search,
bans with unban, help, reporters, the newest audit records); two consoles seeing each other's
claims live. Set MODERATION_SCREENSHOT=PATH to keep a screenshot (docs/moderation-console.png
is made this way)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import anyio
import pytest
from playwright.async_api import Browser, Dialog, Page, Route, expect
from redis.asyncio import Redis

from notifier.moderation.components import Components
from notifier.moderation.records import Moderator
from notifier.moderation.reports import ReportReason
from notifier.runtime.settings import Settings

from .builders import CLEAN_TEXT, FLAGGED_TEXT, HELD_TEXT, comment, mention
from .harness import App, push_client, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WAIT_MS: Final = 10_000
# Counts, in the page, the console's API calls still unanswered (an answer counts once its body
# is read: the console renders it in the same turn), the queue fetches and the live streams
# opened, and remembers the queue rows present at a mark.
WATCH_JS: Final = """
window.watch = { unanswered: 0, queueFetches: 0, streams: 0, marked: new Set() };
const fetched = window.fetch;
window.fetch = (input, init) => {
  const url = String(input);
  if (url.startsWith("/v1/moderation/live")) {
    window.watch.streams++;
    return fetched(input, init);
  }
  if (url.startsWith("/v1/moderation/items?")) window.watch.queueFetches++;
  window.watch.unanswered++;
  const answered = () => window.watch.unanswered--;
  return fetched(input, init).then((response) => {
    const json = response.json.bind(response);
    response.json = () => json().finally(answered);
    return response;
  }, (error) => { answered(); throw error; });
};
"""
ROW_IDS: Final = "rows => rows.map(li => li.dataset.id)"
ANN_MOD: Final = Moderator("ann", "moderator", "setup")


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

        # a held comment appears in the open queue while the console is open (pushed)
        await expect(page.locator("#live")).to_have_text("live")
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
        await page.click("#verify")
        await expect(page.locator("#audit-verify")).to_contain_text(
            "chain intact (1 records", timeout=WAIT_MS
        )
        await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
        if target := os.environ.get("MODERATION_SCREENSHOT"):
            await page.screenshot(path=target, full_page=True)
        await page.click("#detail button.reject")
        await expect(page.locator("#status")).to_contain_text("rejected e2 (recall queued)")

        removed = await alice.change()
        assert removed == {"op": "remove", "id": "comment:c-e2", "unread": 1, "unseen": 1}
        await expect(page.locator("#audit-list li").first).to_contain_text(
            "ann (moderator) reject e2 — insult", timeout=WAIT_MS
        )
        await page.keyboard.press("v")
        await expect(page.locator("#audit-verify")).to_contain_text(
            "chain intact (2 records", timeout=WAIT_MS
        )
    await page.close()


class Dialogs:
    """Answers the page's prompt/confirm dialogs in order (None dismisses one)."""

    def __init__(self, page: Page) -> None:
        self.answers: list[str | None] = []
        self.seen: list[str] = []
        page.on("dialog", self._answer)

    async def _answer(self, dialog: Dialog) -> None:
        self.seen.append(dialog.message)
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            await dialog.dismiss()
        else:
            await dialog.accept(answer)


async def signed_in(app: App, browser: Browser, who: str) -> Page:
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    await page.add_init_script(WATCH_JS)
    await page.goto(f"{app.base_url}/moderation/")
    await page.fill("#token", app.token(who, "moderator"))
    await page.click("#signin-button")
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    return page


async def item_state(app: App, item_id: str) -> str:
    state: str = (await app.moderate("GET", f"/v1/moderation/items/{item_id}")).json()["item"]["state"]
    return state


async def test_a_shift_with_the_console(app: App, browser: Browser) -> None:
    parts = Components.build(app.redis, app.settings)
    for n in range(55):  # 110 audit records: the panel shows the newest, not the oldest 100
        await parts.bans.ban(f"old{n}", ANN_MOD, "setup")
        await parts.bans.unban(f"old{n}", ANN_MOD, f"setup {n}")
    await app.send(
        comment("e1", "bob", "alice", HELD_TEXT, post="p1"),
        comment("e2", "bob", "alice", "kys loser", post="p2"),
        comment("e3", "carl", "alice", "go unalive yourself", post="p3"),
    )
    for item_id in ("e1", "e2", "e3"):
        await app.wait_for_item(item_id)
    page = await signed_in(app, browser, "ann")
    dialogs = Dialogs(page)
    await expect(page.locator("#audit-list li").first).to_contain_text("unban old54 — setup 54")
    await expect(page.locator("#queue li")).to_have_count(3, timeout=WAIT_MS)

    # j/k look without claiming
    for key in ("j", "j", "j", "k"):
        await page.keyboard.press(key)
    await expect(page.locator("#queue li[aria-selected=true]")).to_have_count(1)
    assert {await item_state(app, i) for i in ("e1", "e2", "e3")} == {"pending"}
    order = await page.locator("#queue li").evaluate_all("items => items.map(li => li.dataset.id)")
    second = page.locator(f'#queue li[data-id="{order[1]}"]')
    await expect(second).to_have_attribute("aria-selected", "true")

    # the actor's history is live: an item that arrives later is in it
    await app.send(comment("e4", "bob", "alice", "you are a worthless idiot", post="p4"))
    await expect(page.locator('#queue li[data-id="e4"]')).to_be_visible(timeout=WAIT_MS)
    await page.locator('#queue li[data-id="e1"]').click()
    await expect(page.locator("#detail-history")).to_contain_text("you are a worthless idiot")
    await expect(page.locator("#detail-audience")).to_contain_text("sent to alice · post p1")

    # after a decision the console moves on to the next item
    selected = await page.locator("#queue li").evaluate_all("items => items.map(li => li.dataset.id)")
    following = selected[selected.index("e1") + 1]
    await page.keyboard.press("r")
    await expect(page.locator("#status")).to_contain_text("rejected e1")
    await expect(page.locator(f'#queue li[data-id="{following}"]')).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#detail h2")).to_contain_text("comment by")

    # a ban asks for a reason: none given, no ban
    await page.locator('#queue li[data-id="e2"]').click()
    await expect(page.locator("#detail-text")).to_have_text("kys loser")
    # the click claims e2; wait for it (e2 may already be shown, the console having moved on
    # to it after e1): a claim landing after the ban below would answer "already rejected"
    await expect(page.locator('#queue li[data-id="e2"]')).to_contain_text("claimed by")
    dialogs.answers = [None]
    await page.keyboard.press("b")
    await expect(page.locator("#status")).to_contain_text("a ban needs a reason")
    assert (await app.moderate("GET", "/v1/moderation/bans")).json()["bans"] == []
    dialogs.answers = ["threats", "", ""]  # reason, until lifted, not removing content (dismissed)
    await page.keyboard.press("b")
    await expect(page.locator("#status")).to_contain_text("banned bob")
    await expect(page.locator('#bans li[data-actor="bob"]')).to_contain_text("bob — threats")
    assert dialogs.seen[1].startswith("Why ban bob?")

    # bans list with unban (asks a reason too)
    dialogs.answers = ["appeal upheld"]
    await page.locator('#bans li[data-actor="bob"] button').click()
    await expect(page.locator('#bans li[data-actor="bob"]')).to_have_count(0, timeout=WAIT_MS)
    await expect(page.locator("#audit-list li").first).to_contain_text("unban bob — appeal upheld")
    await page.select_option("#filter-state", "")  # the ban rejected bob's items: show all
    await page.locator('#queue li[data-id="e4"]').click()  # the actor's enforcement history
    await expect(page.locator("#detail-enforcement li").first).to_contain_text("unban by ann: appeal upheld")
    await expect(page.locator("#detail-enforcement li").nth(1)).to_contain_text("ban by ann: threats")
    await page.select_option("#filter-state", "open")

    # text search and bulk decisions
    await app.send(
        comment("s1", "dave", "alice", "lovely weather, you moron", post="p5"),
        comment("s2", "erin", "alice", "lovely photo, you idiot", post="p6"),
    )
    await expect(page.locator('#queue li[data-id="s2"]')).to_be_visible(timeout=WAIT_MS)
    await page.keyboard.press("s")
    await page.keyboard.type("LOVELY")
    await page.keyboard.press("Enter")
    await expect(page.locator("#queue li")).to_have_count(2, timeout=WAIT_MS)
    await page.keyboard.press("Escape")
    for key in ("j", "x", "j", "x"):
        await page.keyboard.press(key)
    await expect(page.locator("#bulk-count")).to_have_text("2 selected")
    await page.keyboard.press("Shift+R")
    await expect(page.locator("#status")).to_contain_text("rejected 2 of 2")
    await expect(page.locator("#queue li")).to_have_count(0, timeout=WAIT_MS)

    # help overlay
    await page.keyboard.press("?")
    await expect(page.locator("#help")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator("#help")).to_be_hidden()
    await page.close()


async def test_reporters_and_reasons_are_shown(app: App, browser: Browser) -> None:
    async with push_client(app, "alice") as alice:
        await app.send(comment("e1", "bob", "alice", CLEAN_TEXT))
        assert (await alice.change())["group"]["id"] == "comment:c-e1"
    parts = Components.build(app.redis, app.settings)
    await parts.reports.file("alice", "comment", "c-e1", ReportReason.HARASSMENT, "he stalks me")
    await parts.reports.file("dave", "comment", "c-e1", ReportReason.SPAM, "")
    page = await signed_in(app, browser, "ann")
    await expect(page.locator('#queue li[data-id="e1"]')).to_contain_text("2 reports")
    await page.locator('#queue li[data-id="e1"]').click()
    await expect(page.locator("#detail")).to_contain_text("Reports (2): harassment ×1, spam ×1")
    await expect(page.locator("#detail-reports")).to_contain_text("alice: harassment — he stalks me")
    await page.close()


async def test_two_consoles_see_each_others_claims_live(app: App, browser: Browser) -> None:
    ann = await signed_in(app, browser, "ann")
    ben = await signed_in(app, browser, "ben")
    await app.send(comment("e1", "bob", "alice", HELD_TEXT))
    for page in (ann, ben):
        await expect(page.locator('#queue li[data-id="e1"]')).to_be_visible(timeout=WAIT_MS)
    await ann.locator('#queue li[data-id="e1"]').click()
    await expect(ann.locator("#detail")).to_contain_text("claimed by ann")
    # ben's console is told, nobody reloads
    await expect(ben.locator('#queue li[data-id="e1"]')).to_contain_text("claimed by ann", timeout=WAIT_MS)
    await ben.locator('#queue li[data-id="e1"]').click()
    await expect(ben.locator("#detail button.approve")).to_be_disabled()
    await expect(ben.locator("#detail")).to_contain_text("claimed by ann")
    await ann.keyboard.press("a")
    await expect(ben.locator('#queue li[data-id="e1"]')).to_have_count(0, timeout=WAIT_MS)
    await expect(ben.locator("#audit-list li").first).to_contain_text("ann (moderator) approve e1")
    await ann.close()
    await ben.close()


async def test_a_key_pressed_while_the_next_item_loads_does_not_act_on_the_previous(
    app: App, browser: Browser
) -> None:
    await app.send(comment("e1", "bob", "alice", HELD_TEXT, post="p1"))
    await app.send(comment("e2", "bob", "alice", "kys loser", post="p2"))
    for item_id in ("e1", "e2"):
        await app.wait_for_item(item_id)
    page = await signed_in(app, browser, "ann")
    await expect(page.locator("#queue li")).to_have_count(2, timeout=WAIT_MS)
    await page.keyboard.press("j")
    await expect(page.locator("#detail-text")).to_have_text(HELD_TEXT)
    gate = anyio.Event()

    async def slow(route: Route) -> None:
        await gate.wait()
        await route.continue_()

    await page.route("**/v1/moderation/items/e2", slow)
    await page.keyboard.press("j")  # e2 is loading, e1 still shown
    await page.keyboard.press("r")
    await expect(page.locator("#status")).to_have_text("still loading the selected item")
    gate.set()
    await expect(page.locator("#detail-text")).to_have_text("kys loser")
    assert {await item_state(app, "e1"), await item_state(app, "e2")} == {"pending"}
    await page.close()


async def settled(page: Page, unanswered: int = 0) -> None:
    """Until `unanswered` of the console's API calls are still out (a debounced refresh that is
    still due is not counted: wait for what it shows first)."""
    await page.wait_for_function("n => window.watch.unanswered === n", arg=unanswered, timeout=WAIT_MS)


async def test_a_change_refetches_once_and_replaces_only_the_changed_row(app: App, browser: Browser) -> None:
    await app.send(*(comment(f"e{n}", "bob", "alice", HELD_TEXT, post=f"p{n}") for n in (1, 2, 3)))
    for item_id in ("e1", "e2", "e3"):
        await app.wait_for_item(item_id)
    page = await signed_in(app, browser, "ann")
    await expect(page.locator("#queue li")).to_have_count(3, timeout=WAIT_MS)
    await settled(page)
    # the token check (items?limit=1), then the queue once
    assert await page.evaluate("window.watch.queueFetches") == 2
    await page.locator("#queue li").evaluate_all("rows => rows.forEach(li => window.watch.marked.add(li))")

    claimed = await app.moderate("POST", "/v1/moderation/items/e2/claim", "ben")
    assert claimed.status_code == 200, claimed.text
    await expect(page.locator('#queue li[data-id="e2"]')).to_contain_text("claimed by ben", timeout=WAIT_MS)
    await app.send(comment("e4", "carl", "alice", HELD_TEXT, post="p4"))
    await expect(page.locator('#queue li[data-id="e4"]')).to_be_visible(timeout=WAIT_MS)
    await settled(page)

    kept = await page.locator("#queue li").evaluate_all(
        "rows => rows.filter(li => window.watch.marked.has(li)).map(li => li.dataset.id)"
    )
    assert sorted(kept) == ["e1", "e3"]  # e2's row was redrawn for its claim, the others kept
    # one stream all along (no reconnects), one queue fetch per change
    assert await page.evaluate("[window.watch.streams, window.watch.queueFetches]") == [1, 4]
    await page.close()


async def test_a_slow_answer_for_the_previous_filter_does_not_replace_the_new_one(
    app: App, browser: Browser
) -> None:
    await app.send(
        comment("e1", "bob", "alice", HELD_TEXT, post="p1"),
        comment("e2", "bob", "alice", "kys loser", post="p2"),
    )
    for item_id in ("e1", "e2"):
        await app.wait_for_item(item_id)
    rejected = await app.moderate("POST", "/v1/moderation/items/e2/reject", body={"note": ""})
    assert rejected.status_code == 200, rejected.text
    page = await signed_in(app, browser, "ann")
    await expect(page.locator("#queue li")).to_have_count(1, timeout=WAIT_MS)  # open items: e1
    await settled(page)

    gate = anyio.Event()

    async def slow(route: Route) -> None:
        await gate.wait()
        await route.continue_()

    await page.route(lambda url: "state=open" in url, slow)
    async with page.expect_request(lambda request: "state=open" in request.url):
        # a change: the console refetches the open queue, and that answer is slow
        claimed = await app.moderate("POST", "/v1/moderation/items/e1/claim", "ben")
        assert claimed.status_code == 200, claimed.text
    await page.select_option("#filter-state", "")  # meanwhile the moderator asks for every item
    await settled(page, unanswered=1)  # all but the slow answer is in
    gate.set()
    await settled(page)
    rows = await page.locator("#queue li").evaluate_all(ROW_IDS)
    assert sorted(rows) == ["e1", "e2"]
    await page.close()
