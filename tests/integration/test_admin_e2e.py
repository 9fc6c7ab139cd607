"""The flow editor as an admin uses it: real headless Chromium, the controller's web server, the real Asterisk.

An admin opens the hotline on /admin, makes an edit with an error, sees it flagged (the problem with its line,
the gutter mark, publish disabled, the broken edge in the diagram), fixes it into a real change (key 2, lost
card, now goes to the payments queue) and publishes it with a comment. A call that started before the publish
still follows the old version (cards); a new call follows the new one (payments). The history shows the
version and its diff, the audit log the publish; a rollback restores the original flow, which is published
back in any case at the end (tests/integration/test_hot_reload.py changes the same flow through the API).

Screenshots in tests/artifacts/: admin-editor-error.png, admin-after-publish.png, admin-diff.png,
admin-after-rollback.png.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import PROJECT_DIR, Settings
from ivr.records.store import CONTROLLER_KEY
from ivr.sim.demo_users import env_key
from ivr.sim.simulator import Simulator
from ivr.voice.versions import FlowStore
from tests.integration.browser import ARTIFACTS, chromium, demo_passwords, shot
from tests.integration.browser import sign_in as browser_sign_in

pytestmark = pytest.mark.integration

FLOW = "hotline"
ORIGINAL = (PROJECT_DIR / "dialplans" / "hotline.yaml").read_text(encoding="utf-8")
ROUTE = "lost_card: to_cards"
CARDS_NODE = "  to_cards: {type: route, queue: cards, skills: [cards], priority: 10}"
COMMENT = "Lost cards go to the payments team during the card-system migration"
OLD_CALLER = "01055510001"  # unknown numbers: no customer data changes where a call goes
NEW_CALLER = "01055510002"


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


class HeldCaller(Simulator):
    """A simulated caller who answers a question only once ``gate`` is set (the call is already in the IVR)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gate = asyncio.Event()

    async def answer(self, sim: Any, ami: Any, turn: tuple[str, str]) -> None:
        await self.gate.wait()
        await super().answer(sim, ami, turn)


@pytest.fixture(scope="module")
def admin_password(live_stack: Settings) -> str:
    return demo_passwords(live_stack)[env_key("admin").removeprefix("IVR_DEMO_PASSWORD_")]


@pytest.fixture
async def browser(live_stack: Settings) -> AsyncIterator[Any]:
    async for instance in chromium():
        yield instance


@pytest.fixture
async def flows(live_stack: Settings) -> AsyncIterator[FlowStore]:
    """The live flow store; the hotline is the original flow before the test and again after it."""
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    store = FlowStore(client, settings=live_stack)
    await ensure_original(store, live_stack, client, "e2e: start from the shipped hotline")
    try:
        yield store
    finally:
        await ensure_original(store, live_stack, client, "e2e: restore the shipped hotline")
        await client.aclose()


async def ensure_original(store: FlowStore, settings: Settings, client: Any, comment: str) -> None:
    live = await store.live(FLOW)
    if live is None:
        await store.seed(FLOW, settings.dialplans_dir / "hotline.yaml")
        live = await store.live(FLOW)
    if live is not None and live.text != ORIGINAL:
        live = await store.publish(FLOW, ORIGINAL, "e2e-test", comment, None)
    assert live is not None
    assert await controller_runs(client, live.number), f"the controller did not take version {live.number}"


async def controller_runs(client: Any, version: int, timeout: float = 15) -> bool:
    """The controller's heartbeat (every second) names the version new calls get."""
    for _ in range(int(timeout * 10)):
        if await client.hget(CONTROLLER_KEY, "flow_version") == str(version):
            return True
        await asyncio.sleep(0.1)
    return False


async def sign_in(page: Any, settings: Settings, password: str) -> None:
    await browser_sign_in(page, settings, "/admin", "admin", password)


async def checked(page: Any, *states: str) -> None:
    selector = ", ".join(f'[data-testid="editor-status"][data-state="{state}"]' for state in states)
    await page.locator(selector).wait_for(timeout=15_000)


async def replace_in_editor(page: Any, old: str, new: str) -> None:
    """Select ``old`` in the editor and type ``new`` over it, key by key, as a person would."""
    await page.get_by_test_id("editor-text").evaluate(
        "(area, old) => { const i = area.value.indexOf(old); area.focus();"
        " area.setSelectionRange(i, i + old.length); }", old)
    await page.keyboard.type(new, delay=15)


async def test_admin_edits_sees_the_error_fixes_publishes_and_calls_follow_the_versions(  # type: ignore[no-untyped-def]
        live_stack, admin_password, browser, flows) -> None:
    base = await flows.live(FLOW)
    assert base is not None and base.text == ORIGINAL
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page, live_stack, admin_password)
    await page.locator(f'[data-testid="flow-item-{FLOW}"][aria-current="true"]').wait_for(timeout=10_000)
    await checked(page, "valid", "warnings")
    assert await page.get_by_test_id("editor-text").input_value() == ORIGINAL
    assert await page.get_by_test_id("diagram-node-main_menu").get_attribute("data-type") == "ask"

    # 1. An edit with an error: key 2's target is a node that does not exist.
    route_line = line_of(ORIGINAL, ROUTE)
    await replace_in_editor(page, ROUTE, "lost_card: to_payment")
    await checked(page, "invalid")
    problem = page.locator(f'[data-testid="problem"][data-severity="error"][data-line="{route_line}"]')
    await problem.wait_for(timeout=5_000)
    assert "to_payment" in await problem.get_by_test_id("problem-message").inner_text()
    await page.locator(f'[data-testid="editor-gutter"] [data-line="{route_line}"][data-severity="error"]').wait_for()
    assert await page.get_by_test_id("publish").is_disabled()
    assert await page.get_by_test_id("diagram-node-to_payment").get_attribute("data-type") == "missing"
    cards_line = line_of(ORIGINAL, CARDS_NODE)  # unreachable now: flagged as well
    await page.locator(f'[data-testid="problem"][data-severity="error"][data-line="{cards_line}"]').wait_for()
    assert await page.get_by_test_id("diagram-node-to_cards").get_attribute("data-error") == "true"
    await shot(page, "admin-editor-error")

    # 2. Clicking the problem puts the cursor on its line; the fix is typed there.
    await problem.locator("button").click()
    assert await page.get_by_test_id("editor-cursor").get_attribute("data-line") == str(route_line)
    await page.keyboard.press("End")
    await page.keyboard.type("s")
    await problem.wait_for(state="detached", timeout=15_000)
    # The cards node, which nothing routes to any more, is an error too (on its own line): the admin deletes it.
    unreachable = page.locator(f'[data-testid="problem"][data-severity="error"][data-line="{cards_line}"]')
    assert "to_cards" in await unreachable.inner_text()
    assert await page.get_by_test_id("problems-summary").get_attribute("data-errors") == "1"
    assert await page.get_by_test_id("publish").is_disabled()
    await unreachable.locator("button").click()
    await page.keyboard.press("Backspace")
    await page.keyboard.press("Delete")
    await checked(page, "valid", "warnings")
    edited = await page.get_by_test_id("editor-text").input_value()
    assert edited == ORIGINAL.replace(ROUTE, "lost_card: to_payments").replace(CARDS_NODE + "\n", "")
    edge = page.locator('[data-testid="diagram-edge"][data-from="main_menu"][data-to="to_payments"]')
    assert "lost_card" in (await edge.get_attribute("data-label") or "")
    assert await page.get_by_test_id("publish").is_disabled()  # no comment yet
    await page.get_by_test_id("publish-comment").fill(COMMENT)
    assert await page.get_by_test_id("publish").is_enabled()

    # 3. A call starts before the publish: in the IVR, at the first question, it has not answered yet.
    old_caller = HeldCaller(live_stack)
    old_call = asyncio.create_task(old_caller.run(OLD_CALLER, [], ["2"], until="queued", timeout=90))
    try:
        for _ in range(300):
            sim = old_caller.last_call
            if sim is not None and any(e.get("type") == "call.listening" for e in sim.events):
                break
            assert not old_call.done(), old_call.result()
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the first call never reached the first question")

        # 4. Publish; the controller takes the new version for new calls.
        await page.get_by_test_id("publish").click()
        form = page.locator('[data-testid="publish-form"][data-state="published"]')
        await form.wait_for(timeout=20_000)
        number = int(await form.get_attribute("data-version") or 0)
        assert number == base.number + 1
        live = await flows.live(FLOW)
        assert live is not None and (live.number, live.author, live.comment, live.text) == (
            number, "admin", COMMENT, edited)
        assert await controller_runs(flows.redis, number), "the controller did not switch to the new version"
        await page.locator(f'[data-testid="history-item"][data-version="{number}"][data-live="true"]').wait_for()
        await shot(page, "admin-after-publish")

        # 5. The call that started before answers key 2 only now: it still follows the old version.
        old_caller.gate.set()
        old = await old_call
    finally:
        old_caller.gate.set()
        if not old_call.done():
            old_call.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await old_call
    assert (old["outcome"], old["queue"], old.get("flow_version")) == ("queued", "cards", base.number), old
    assert old["turns"] and old["turns"][-1].get("dtmf") == "2", old["turns"]

    # 6. A new call with the same key follows the new version.
    new = await Simulator(live_stack).run(NEW_CALLER, [], ["2"], until="queued", timeout=60)
    assert (new["outcome"], new["queue"], new.get("flow_version")) == ("queued", "payments", number), new

    # 7. History and diff of the published version; the audit log has the publish.
    diff = page.get_by_test_id("diff")
    await page.locator(f'[data-testid="diff"][data-b="{number}"]').wait_for(timeout=5_000)
    assert await diff.get_attribute("data-a") == str(base.number)
    added = await diff.locator('[data-kind="add"]').all_inner_texts()
    removed = await diff.locator('[data-kind="del"]').all_inner_texts()
    assert any("lost_card: to_payments" in line for line in added), added
    assert any("lost_card: to_cards" in line for line in removed) and any("to_cards:" in r for r in removed)
    await diff.scroll_into_view_if_needed()
    await page.locator(".diff-card").screenshot(path=str(ARTIFACTS / "admin-diff.png"))
    audit = page.locator('[data-testid="audit-row"][data-action="publish"][data-who="admin"]').first
    await audit.wait_for(timeout=5_000)
    assert COMMENT in await audit.inner_text()

    # 8. Rollback to the version before, confirmed in the dialog: the original text is live again.
    item = page.locator(f'[data-testid="history-item"][data-version="{base.number}"]')
    await item.get_by_test_id("history-rollback").click()
    dialog = page.get_by_test_id("rollback-dialog")
    await dialog.wait_for(timeout=5_000)
    assert str(base.number) in await page.get_by_test_id("rollback-text").inner_text()
    await page.get_by_test_id("rollback-comment").fill("Migration postponed: lost cards back to the cards team")
    await page.get_by_test_id("rollback-confirm").click()
    await page.locator(f'[data-testid="history-item"][data-version="{number + 1}"][data-live="true"]').wait_for(
        timeout=20_000)
    rolled = await flows.live(FLOW)
    assert rolled is not None and (rolled.number, rolled.text, rolled.author) == (number + 1, ORIGINAL, "admin")
    await page.locator('[data-testid="audit-row"][data-action="rollback"][data-who="admin"]').first.wait_for(
        timeout=5_000)
    await checked(page, "valid", "warnings")
    assert await page.get_by_test_id("editor-text").input_value() == ORIGINAL
    assert await controller_runs(flows.redis, number + 1), "the controller did not take the rollback"
    await shot(page, "admin-after-rollback")
    assert not errors, errors
