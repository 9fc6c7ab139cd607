"""Quality checks through the real stack: a call answered by an agent's softphone goes through Asterisk (recorded
in stereo by MixMonitor), the controller indexes it at hang-up, and the quality worker the controller keeps
running (its own niced process, Vosk free dictation of the agent's channel) checks it against the shipped
checklist. The softphone says nothing, so the greeting, the identity check and the loans queue's disclosure are
missing: the call is flagged at the agent's first moment and is on the review list, which QA sees on /qa (headless
Chromium): a finding's time opens the call in the player at that moment. Screenshot: tests/artifacts/qa_quality.png.

(That the agent's words are heard and a forbidden phrase flagged at its moment: tests/unit/recordings/quality/
test_vosk.py, with real Vosk on a stereo recording; the test softphones send only silence.)"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.recordings.quality.service import QualityService
from ivr.routing.agents import AgentDirectory, Presence
from ivr.sim.agent_phone import AgentPhone
from ivr.sim.simulator import Simulator
from ivr.web.auth import UserStore
from tests.integration.browser import chromium, shot
from tests.integration.test_routing import ready

pytestmark = pytest.mark.integration

CALLER = "01077778888"
LOAN_KEY = "3"


@pytest.fixture
async def directory(live_stack: Settings) -> AsyncIterator[AgentDirectory]:
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    directory = AgentDirectory(client)
    yield directory
    for agent in await directory.all():
        await directory.set_presence(agent.id, Presence.OFFLINE)
    await client.aclose()


@pytest.fixture
async def qa_password(live_stack: Settings) -> AsyncIterator[str]:
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    password = secrets.token_urlsafe(12)
    await UserStore(client).add("qa-checks-test", password, "qa")
    yield password
    await client.delete("ivr:user:qa-checks-test")
    await client.srem("ivr:users", "qa-checks-test")
    await client.aclose()


@pytest.fixture
def phone(live_stack: Settings) -> Iterator[AgentPhone]:
    started = AgentPhone(live_stack, "1002", answer="auto", talk_s=4).start()
    yield started
    started.stop()


async def checked(service: QualityService, call_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = await asyncio.to_thread(service.jobs.state, call_id)
        if state is not None and state["state"] in ("done", "skipped", "failed"):
            return state
        await asyncio.sleep(0.5)
    progress = await asyncio.to_thread(service.progress)
    raise AssertionError(f"call {call_id} not checked within {timeout} s: {progress}")


async def test_an_answered_call_is_checked_by_the_worker_and_flagged(  # type: ignore[no-untyped-def]
        live_stack: Settings, directory: AgentDirectory, phone: AgentPhone, qa_password: str) -> None:
    await asyncio.sleep(1.5)  # registration -> DeviceStateChange NOT_INUSE
    await ready(directory, live_stack, "A1002")
    record = await Simulator(live_stack).run(CALLER, [], [LOAN_KEY], until="end", timeout=60)
    assert (record["outcome"], record["agent"], record["queue"]) == ("answered", "A1002", "loans"), record["notes"]
    service = QualityService.from_settings(live_stack)
    state = await checked(service, record["call_id"])
    assert state["state"] == "done", state
    assert state["source"] == "agent channel" and state["audio_s"] > 2, state
    findings = state["result"]["findings"]
    assert {f["item"] for f in findings} >= {"greeting", "identity_check", "loan_terms"}, findings
    assert state["flagged"] and state["score"] <= 40
    # Flagged on the recording's index entry at the agent's first moment, which the /qa timeline shows.
    row = service.library.entry(record["call_id"])
    agent = [s for s in row.timeline["segments"] if s["kind"] == "agent"]
    assert agent and {f["kind"] for f in row.flags} >= {"greeting", "identity_check", "missing_disclosure"}
    assert all(abs(f["at_s"] - agent[0]["start_s"]) < 0.05 for f in row.flags), (row.flags, agent)
    total, items = await asyncio.to_thread(service.jobs.review, 200)
    assert record["call_id"] in [i.call_id for i in items]

    # QA sees the progress and the review list on /qa; a finding's time opens the call and plays from there.
    call_id, at_s = record["call_id"], row.flags[0]["at_s"]
    async for browser in chromium():
        page = await browser.new_page(viewport={"width": 1440, "height": 1200})
        await page.goto(f"http://{live_stack.http_host}:{live_stack.http_port}/qa")
        await page.get_by_test_id("login-username").fill("qa-checks-test")
        await page.get_by_test_id("login-password").fill(qa_password)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("login").wait_for(state="hidden", timeout=10_000)
        progress = page.get_by_test_id("qa-quality-progress")
        await page.wait_for_function("() => /checked/.test(document.querySelector("
                                     "'[data-testid=qa-quality-progress]')?.textContent || '')", timeout=10_000)
        assert " flagged" in await progress.inner_text()
        item = page.locator(f'[data-testid="qa-review-item"][data-call-id="{call_id}"]')
        await item.wait_for(timeout=10_000)
        assert "loans" in await item.inner_text()
        await item.get_by_test_id("qa-review-moment").first.click()
        await page.wait_for_function(
            f"() => document.querySelector('[data-testid=qa-detail-call]')?.textContent === {call_id!r}",
            timeout=10_000)
        assert await page.locator('[data-testid="qa-flag"]').count() == len(row.flags)
        await page.wait_for_function(
            f"() => document.querySelector('[data-testid=qa-audio]').currentTime >= {at_s - 0.5}", timeout=10_000)
        await shot(page, "qa_quality")
        await page.close()
