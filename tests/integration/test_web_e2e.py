"""The screen pop as people use it: real headless Chromium, the controller's web server, the real Asterisk.

Screenshots of every page are kept in tests/artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.routing.agents import AgentDirectory, Presence
from ivr.sim.agent_phone import AgentPhone
from ivr.sim.simulator import Simulator
from tests.integration.browser import chromium, demo_passwords, shot, sign_in
from tests.integration.conftest import YES

pytestmark = pytest.mark.integration

VIP_CALLER = "01012345678"  # C1001 김민준: VIP, gyeongsang, loans case owned by F2001


@pytest.fixture(scope="module")
def passwords(live_stack: Settings) -> dict[str, str]:
    return demo_passwords(live_stack)


@pytest.fixture
async def browser(live_stack: Settings) -> AsyncIterator[Any]:
    async for instance in chromium():
        yield instance


@pytest.fixture
async def directory(live_stack: Settings) -> AsyncIterator[AgentDirectory]:
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    yield AgentDirectory(client)
    for agent in await AgentDirectory(client).all():
        await AgentDirectory(client).set_presence(agent.id, Presence.OFFLINE)
    await client.aclose()


@pytest.fixture
def phone(live_stack: Settings) -> Iterator[Any]:
    started: list[AgentPhone] = []

    def _start(extension: str) -> AgentPhone:
        started.append(AgentPhone(live_stack, extension, answer="auto", answer_after_s=1.5, talk_s=3).start())
        return started[-1]

    yield _start
    for p in started:
        p.stop()


async def acd_shows(settings: Settings, agent_id: str, shown: str, timeout: float = 10) -> bool:
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        for _ in range(int(timeout * 10)):
            raw = await client.get("ivr:acd")
            agent = json.loads(raw)["agents"].get(agent_id, {}) if raw else {}
            if agent.get("shown") == shown and agent.get("device_state") == "NOT_INUSE":
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await client.aclose()


async def test_agent_signs_in_goes_ready_and_the_call_pops(  # type: ignore[no-untyped-def]
        live_stack, passwords, browser, directory, phone, say, recognizable) -> None:
    recognizable(say("상담원 연결"), "상담원 연결")  # the pop shows what was heard: it must be heard right
    phone("1002")
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    await sign_in(page, live_stack, "/agent", "A1002", passwords["A1002"])
    await shot(page, "agent-signed-in")
    await page.get_by_test_id("presence-ready").click()
    await page.locator('[data-testid="presence-state"][data-presence="ready"]').wait_for(timeout=5_000)
    assert await acd_shows(live_stack, "A1002", "ready"), "the ACD did not see the agent ready"

    record = await Simulator(live_stack).run(VIP_CALLER, [say("상담원 연결")], [YES], until="answered", timeout=60)
    assert (record["outcome"], record["agent"]) == ("answered", "A1002"), record["notes"]
    pop = page.get_by_test_id("pop")
    await pop.wait_for(timeout=5_000)
    assert await pop.get_attribute("data-call-id") == record["call_id"]
    assert await page.get_by_test_id("pop-customer-name").inner_text() == "김민준"
    assert "VIP" in await page.get_by_test_id("pop-vip").inner_text()
    assert "상담원 연결" in await page.get_by_test_id("pop-transcript-text").first.inner_text()
    assert await page.get_by_test_id("pop-intent").get_attribute("data-intent") == "agent"
    cases = await page.get_by_test_id("pop-cases").inner_text()
    assert "F2001" in cases  # the open loans case and its owner
    await shot(page, "agent-pop")

    # After the call: the disposition, with a card number typed by mistake, lands masked in the history.
    await page.get_by_test_id("disposition-form").wait_for(timeout=15_000)
    await page.get_by_test_id("disposition-resolved").check()
    await page.get_by_test_id("disposition-notes").fill("explained options; card 4111 1111 1111 1111 mentioned")
    await page.get_by_test_id("disposition-submit").click()
    await page.get_by_test_id("disposition-confirmation").wait_for(timeout=5_000)
    await shot(page, "agent-after-call")
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    try:
        from ivr.routing.customers import CustomerStore

        history = await CustomerStore(client, timeout_s=5).history("C1001", 20)
    finally:
        await client.aclose()
    saved = [c for c in history if c.call_id == record["call_id"] and c.disposition]
    assert saved and saved[0].disposition == "resolved"
    assert "4111 1111 1111 1111" not in (saved[0].notes or "") and "411111" in (saved[0].notes or "")


async def test_field_manager_phone_page_pops_for_the_mobile_extension(  # type: ignore[no-untyped-def]
        live_stack, passwords, browser, directory, phone) -> None:
    phone("2001")
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await sign_in(page, live_stack, "/field", "F2001", passwords["F2001"])
    switch = page.get_by_test_id("field-switch")
    await switch.click()
    await page.locator('[data-testid="field-switch"][aria-checked="true"]').wait_for(timeout=5_000)
    assert await acd_shows(live_stack, "F2001", "ready"), "the ACD did not see the field manager ready"

    record = await Simulator(live_stack).run(VIP_CALLER, [], ["3"], until="answered", timeout=60)
    assert (record["outcome"], record["agent"]) == ("answered", "F2001"), record["notes"]
    assert record["routing"][0]["rule"] == "case owner"
    await page.get_by_test_id("pop").wait_for(timeout=5_000)
    assert await page.get_by_test_id("pop-customer-name").inner_text() == "김민준"
    assert await page.get_by_test_id("pop-intent").get_attribute("data-intent") == "loan"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone page scrolls sideways ({width} px)"
    await shot(page, "field-pop-390x844")


async def test_supervisor_sees_the_waiting_call_appear_and_leave(  # type: ignore[no-untyped-def]
        live_stack, passwords, browser, directory) -> None:
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    await sign_in(page, live_stack, "/supervisor", "S0001", passwords["S0001"])
    total = page.get_by_test_id("wall-total-waiting")
    await total.wait_for(timeout=10_000)
    before = await count(total)
    simulator = Simulator(live_stack)
    record = await simulator.run("01033334444", [], ["3"], until="queued", timeout=60, keep=True)
    assert record["outcome"] == "queued"
    card = page.get_by_test_id("wall-queue-loans")
    await card.wait_for(timeout=10_000)
    assert await wait_for_count(total, before + 1, 10), await total.inner_text()
    assert int(await card.get_attribute("data-waiting") or 0) >= 1
    await shot(page, "supervisor-waiting")
    # The caller hangs up: the wall updates by push.
    from ivr.telephony.ami import AmiClient

    ami = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                    live_stack.ami_secret.get_secret_value())
    ami.start()
    try:
        assert await ami.wait_ready(10)
        assert simulator.last_call is not None
        await ami.hangup(simulator.last_call.caller_channel)
    finally:
        ami.close()
    assert await wait_for_count(total, before, 10), await total.inner_text()
    await shot(page, "supervisor-after")


async def count(locator: Any) -> int:
    """The number a wall tile shows ("3\nCalls waiting" -> 3)."""
    found = re.match(r"\s*(\d+)", await locator.inner_text())
    assert found, await locator.inner_text()
    return int(found.group(1))


async def wait_for_count(locator: Any, expected: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await count(locator) == expected:
            return True
        await asyncio.sleep(0.1)
    return False

