"""The trainer loop through the real stack: finished calls land in the archive and in ``ivr report``; the
trainer's page (headless Chromium) plays a turn, labels a cluster from the keyboard, shows the suggestion's diff
and runs its replay with progress; the admin publishes the candidate in /admin, where the replay is shown (the
hotline is rolled back after). /reports draws its KPI chart and table.

Screenshots in tests/artifacts/: trainer.png, trainer-replay.png, trainer-publish.png, reports.png."""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.records.archive import Archive, ArchivedCall, ArchivedTurn
from ivr.records.call import CallRecord, Outcome, Turn
from ivr.sim.demo_users import env_key
from ivr.voice.training.labels import archive_rows
from ivr.voice.versions import FlowStore
from ivr.web.auth import UserStore
from tests.integration.browser import chromium, demo_passwords, shot, sign_in
from tests.integration.test_admin_e2e import controller_runs

pytestmark = pytest.mark.integration


async def archived(archive: Archive, call_id: str, timeout: float = 15) -> tuple[ArchivedCall, list[ArchivedTurn]]:
    """The call once the controller has archived it (in the background, after the hand-over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = await asyncio.to_thread(archive.call, call_id)
        if call is not None and call.started_at:
            turns = [t for t in await asyncio.to_thread(archive.turns, call.started_at - 1) if t.call_id == call_id]
            return call, turns
        await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} not archived within {timeout} s")


async def test_finished_calls_are_archived_and_reported(call, say, recognizable, live_stack: Settings) -> None:  # type: ignore[no-untyped-def]
    recognizable(say("상담원 연결"), "상담원 연결")
    started = time.time()
    by_key = await call(dtmf=["3"])
    by_voice = await call(audio=[say("상담원 연결")])
    archive = Archive(live_stack.archive_file)

    keyed, keyed_turns = await archived(archive, by_key["call_id"])
    assert (keyed.intent, keyed.queue, keyed.flow_id) == ("loan", "loans", "hotline")
    assert [(t.node, t.dtmf, t.live_outcome, t.failed) for t in keyed_turns] == [("main_menu", "3", "key", False)]
    spoken, spoken_turns = await archived(archive, by_voice["call_id"])
    assert spoken.asked_person and spoken.queue == "general"
    [turn] = spoken_turns
    assert (turn.transcript, turn.intent, turn.live_outcome) == ("상담원 연결", "agent", "agent")
    assert turn.audio and (live_stack.recordings_dir / turn.audio).is_file()
    assert turn.audio_rate == spoken.heard_at_hz == 8000

    since = f"{int(time.time() - started) + 60}s"
    report = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ivr", "report", "navigation", "--since", since, "--json"],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "IVR_ARCHIVE_PATH": str(live_stack.archive_file)})
    rows = {r["value"]: r for r in json.loads(report.stdout)["rows"]}
    assert rows["main_menu"]["calls"] >= 2
    assert rows["all"]["asks_person"] is not None and rows["all"]["asks_person"] > 0
    kpi = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ivr", "report", "kpi", "--since", since,
                                                   "--csv"], capture_output=True, text=True, timeout=60, check=True)
    assert kpi.stdout.splitlines()[0].startswith("day,queue,flow_version,calls,containment")


def _wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x10\x00\xf0\xff" * int(seconds * rate / 2))
    return out.getvalue()


@pytest.fixture(scope="module")
def admin_password(live_stack: Settings) -> str:
    return demo_passwords(live_stack)[env_key("admin").removeprefix("IVR_DEMO_PASSWORD_")]


@pytest.fixture
async def trainer(live_stack: Settings) -> AsyncIterator[tuple[str, str]]:
    """A trainer account for this test, removed after it."""
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    users = UserStore(client)
    username, password = f"trainer-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    await users.add(username, password, "trainer")
    try:
        yield username, password
    finally:
        await client.delete(f"ivr:user:{username}")
        await client.srem("ivr:users", username)
        await client.aclose()


@pytest.fixture
async def seeded(live_stack: Settings) -> AsyncIterator[tuple[Archive, list[str], str]]:
    """Three failed turns heard alike (a word no real call says), one with a recording; removed after."""
    archive = Archive(live_stack.archive_file)
    heard = f"시험 {secrets.token_hex(2)} 트레이너"
    now = time.time()
    ids, rel = [], f"turns/{time.strftime('%Y-%m-%d')}/trainer-e2e-{secrets.token_hex(3)}-1.wav"
    (live_stack.recordings_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    (live_stack.recordings_dir / rel).write_bytes(_wav())
    for i in range(3):
        record = CallRecord(call_id=f"trainer-e2e-{secrets.token_hex(4)}", caller="", started_at=now - 60 + i,
                            outcome=Outcome.QUEUED, queue="general", heard_at_hz=8000)
        record.turns = [Turn(node="main_menu", transcript=heard, alternatives=[{"text": heard, "confidence": 0.4}],
                             language="ko", started_at=now - 60 + i, audio=rel if i == 2 else None),
                        Turn(node="main_menu", transcript=heard, language="ko", started_at=now - 55 + i)]
        archive.record_call(*archive_rows(record, "hotline"))
        ids.append(record.call_id)
    try:
        yield archive, ids, heard
    finally:
        for call_id in ids:
            archive.query("DELETE FROM turns WHERE call_id = ?", (call_id,))
            archive.query("DELETE FROM calls WHERE call_id = ?", (call_id,))
        archive.query("DELETE FROM clusters WHERE heard = ?", (heard,))
        (live_stack.recordings_dir / rel).unlink(missing_ok=True)


async def test_trainer_labels_a_cluster_sees_the_suggestion_replays_it_and_the_admin_publishes(  # type: ignore[no-untyped-def]
        live_stack: Settings, trainer, seeded, admin_password) -> None:
    archive, ids, heard = seeded
    cluster_id = next(t.cluster for t in archive.turns(time.time() - 120, failed_only=True) if t.call_id in ids)
    username, password = trainer
    async for browser in chromium():
        page = await browser.new_page(viewport={"width": 1440, "height": 900})
        await page.goto(f"http://{live_stack.http_host}:{live_stack.http_port}/trainer")
        await page.get_by_test_id("login-username").fill(username)
        await page.get_by_test_id("login-password").fill(password)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("login").wait_for(state="hidden", timeout=10_000)
        mine = page.locator(f'[data-testid="cluster"][data-cluster="{cluster_id}"]')
        await mine.wait_for(timeout=10_000)
        await mine.click()
        await page.locator('[data-testid="cluster-heard"]', has_text=heard).wait_for(timeout=5_000)
        turns = page.get_by_test_id("turn")
        shown = "ts => ts.map(t => `${t.dataset.call}-${t.dataset.index}`)"
        try:  # two failed turns of each seeded call, and nothing else
            await page.wait_for_function(
                "(ids) => { const ts = [...document.querySelectorAll('[data-testid=turn]')];"
                " return ts.length === 6 && ts.every(t => ids.includes(t.dataset.call)) }", arg=ids, timeout=10_000)
        except Exception:
            heading = await page.get_by_test_id("cluster-heard").inner_text()
            raise AssertionError((heading, await turns.evaluate_all(shown), ids)) from None
        # Newest first: the recorded turn (the third call's first) is the fourth; n moves down, space plays.
        for _ in range(3):
            await page.keyboard.press("n")
        selected = page.locator('[data-testid="turn"].is-selected')
        assert (await selected.get_attribute("data-call"), await selected.get_attribute("data-index")) == (ids[2], "1")
        await page.keyboard.press(" ")
        audio = page.get_by_test_id("turn-audio")
        await page.wait_for_function(
            "() => { const a = document.querySelector('[data-testid=turn-audio]'); return a && a.duration > 0 }",
            timeout=10_000)
        duration = await audio.evaluate("a => a.duration")
        assert 0.9 < duration < 1.1
        # The third intent of the flow (loan), from the keyboard, for the whole cluster.
        intents = await page.get_by_test_id("label-button").evaluate_all("bs => bs.map(b => b.dataset.intent)")
        await page.keyboard.press("3")
        label = page.locator(f'[data-testid="cluster"][data-cluster="{cluster_id}"] [data-testid="cluster-label"]')
        await page.wait_for_function(
            "(id) => { const n = document.querySelector(`[data-cluster=\"${id}\"] [data-testid=cluster-label]`);"
            " return n && n.textContent.includes('✓') }", arg=str(cluster_id), timeout=10_000)
        assert "✓" in await label.inner_text()
        await shot(page, "trainer")
        stored = [t for t in archive.turns(time.time() - 120) if t.call_id in ids]
        assert len(stored) == 6
        assert {(t.label, t.label_source, t.labeled_by) for t in stored} == {(intents[2], "trainer", username)}
        assert intents[2] == "loan"

        # The suggestion for the labeled cluster: a phrase of "loan" from what was heard, as a diff of the flow.
        flows = FlowStore(aioredis.from_url(live_stack.redis_url, decode_responses=True), settings=live_stack)
        original = await flows.live("hotline")
        assert original is not None
        try:
            await publish_the_suggestion(browser, page, live_stack, admin_password, flows, original.text, heard)
        finally:
            live = await flows.live("hotline")
            if live is not None and live.text != original.text:
                live = await flows.rollback("hotline", original.number, "test_trainer", "restore after the e2e")
            assert live is not None and live.text == original.text
            assert await controller_runs(flows.redis, live.number), "the controller did not take the rollback"
            await flows.redis.aclose()


async def publish_the_suggestion(browser: Any, page: Any, settings: Settings, admin_password: str,
                                 flows: FlowStore, original: str, heard: str) -> None:
    """From the labeled cluster on /trainer: suggestion, replay, then the admin publishes it in /admin."""
    await page.get_by_test_id("suggest").click()
    summary = page.get_by_test_id("suggestion-summary")
    await summary.wait_for(timeout=90_000)  # the cluster's recordings are heard again without a grammar
    said = await summary.inner_text()
    assert said.startswith("phrase for loan: “"), said
    phrase = said.split("“", 1)[1].split("”", 1)[0]
    assert phrase and set(phrase.split()) <= set(heard.split()), (phrase, heard)  # in-vocabulary words heard
    diff = await page.get_by_test_id("suggestion-diff").inner_text()
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(added) == 1 and phrase in added[0], diff  # one line changes: the loan phrases gain it
    candidate = await page.get_by_test_id("suggestion-text").input_value()
    assert phrase in candidate and candidate != original
    assert (await flows.live("hotline")).text == original  # type: ignore[union-attr]  # nothing published yet

    # The replay of the candidate, with its progress, then its result.
    await page.get_by_test_id("replay-run").click()
    await page.locator('[data-testid="replay-progress"], [data-testid="replay-result"]').first.wait_for(
        timeout=10_000)
    result = page.get_by_test_id("replay-result")
    await result.wait_for(timeout=120_000)
    numbers = {}
    for row in ("turns", "fixed", "broken"):
        numbers[row] = int(await result.get_by_test_id(f"replay-{row}").locator("td").inner_text())
    assert numbers["turns"] >= 1, numbers  # the cluster's recorded turn at least
    int(await result.get_by_test_id("replay-unreadable").locator("td").inner_text())  # files other tests removed
    await shot(page, "trainer-replay")

    # The admin publishes the candidate in /admin: the publish bar shows the same replay; stored with the version.
    admin = await browser.new_page(viewport={"width": 1440, "height": 900})
    await sign_in(admin, settings, "/admin", "admin", admin_password)
    await admin.locator('[data-testid="flow-item-hotline"][aria-current="true"]').wait_for(timeout=10_000)
    await admin.get_by_test_id("editor-text").fill(candidate)
    await admin.locator('[data-testid="editor-status"][data-state="valid"], '
                        '[data-testid="editor-status"][data-state="warnings"]').wait_for(timeout=15_000)
    shown = admin.get_by_test_id("publish-replay-summary")
    await shown.wait_for(timeout=10_000)
    assert f"replay of {numbers['turns']} turns: {numbers['fixed']} fixed, {numbers['broken']} broken" in \
        await shown.inner_text()
    await admin.get_by_test_id("publish-comment").fill(f"trainer e2e: {phrase} for loan")
    await admin.get_by_test_id("publish").click()
    if numbers["broken"] > numbers["fixed"]:  # the gate asks for an override with a comment first
        await admin.get_by_test_id("publish-override").fill("e2e: publishing the trainer's candidate regardless")
        await admin.get_by_test_id("publish-override-go").click()
    form = admin.locator('[data-testid="publish-form"][data-state="published"]')
    await form.wait_for(timeout=20_000)
    live = await flows.live("hotline")
    assert live is not None and live.text == candidate and live.author == "admin"
    assert live.replay is not None and (live.replay["fixed"], live.replay["broken"]) == \
        (numbers["fixed"], numbers["broken"])
    assert await controller_runs(flows.redis, live.number), "the controller did not take the published candidate"
    await shot(admin, "trainer-publish")


async def test_reports_draw_the_kpi_chart_and_table(  # type: ignore[no-untyped-def]
        live_stack: Settings, trainer, seeded) -> None:
    username, password = trainer
    async for browser in chromium():
        page = await browser.new_page(viewport={"width": 1440, "height": 900})
        await page.goto(f"http://{live_stack.http_host}:{live_stack.http_port}/reports")
        await page.get_by_test_id("login-username").fill(username)
        await page.get_by_test_id("login-password").fill(password)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("login").wait_for(state="hidden", timeout=10_000)
        await page.wait_for_function(
            "() => { const i = document.querySelector('[data-testid=kpi-chart]');"
            " return i && i.complete && i.naturalWidth > 0 }", timeout=15_000)
        rows = page.locator('[data-testid="kpi-table"] tbody tr')
        await rows.first.wait_for(timeout=10_000)
        assert await rows.count() >= 2  # at least one day/queue/version and the totals
        total = rows.last.locator("td")
        assert await total.nth(0).inner_text() == "all" and int(await total.nth(3).inner_text()) >= 3  # the seeded
        await shot(page, "reports")
