"""Recordings through the real stack, with one call: Asterisk records it in stereo (caller left, what the caller
hears right), the controller indexes it with its metadata when it hangs up and hashes it into the manifest;
`ivr recordings verify` names it once a byte is changed; and QA, in headless Chromium, finds it on /qa, plays it
and sees its timeline with a flagged moment.

Screenshot: tests/artifacts/qa.png."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import subprocess
import sys
import time
import wave
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from ivr.config import PROJECT_DIR, Settings
from ivr.recordings.index import RecordingRow
from ivr.recordings.library import RecordingLibrary
from ivr.web.auth import UserStore
from tests.integration.browser import chromium, shot

pytestmark = pytest.mark.integration

CALLER = "01012345678"  # C1001 of the demo customers


async def indexed(library: RecordingLibrary, call_id: str, timeout: float = 30) -> RecordingRow:
    """The call's recording once the controller has indexed it (after the hang-up, when the file stops growing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await asyncio.to_thread(library.index.get, call_id)
        if row is not None:
            return row
        await asyncio.sleep(0.3)
    raise AssertionError(f"call {call_id} not indexed within {timeout} s")


def verify(settings: Settings) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "ivr", "recordings", "verify", "--json"], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, json.loads(result.stdout)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(float) ** 2))) if len(x) else 0.0


@pytest.fixture
async def qa_password(live_stack: Settings) -> Any:
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    password = secrets.token_urlsafe(12)
    await UserStore(client).add("qa-test", password, "qa")
    yield password
    await client.delete("ivr:user:qa-test")
    await client.srem("ivr:users", "qa-test")
    await client.aclose()


async def test_a_call_is_recorded_in_stereo_indexed_verified_and_played_on_qa(  # type: ignore[no-untyped-def]
        call, say, live_stack: Settings, qa_password: str) -> None:
    record = await call(CALLER, audio=[say("상담원 연결")])
    call_id = record["call_id"]
    library = RecordingLibrary.from_settings(live_stack)
    row = await indexed(library, call_id)

    # Indexed with the call's metadata, stereo.
    assert row.state == "ok", row.problem
    # The simulated caller hangs up while waiting for a person: at hang-up the call is "abandoned".
    assert record["outcome"] == "queued" and record["queue"]
    assert (row.customer, row.queue, row.outcome, row.channels, row.rate) == \
        ("C1001", record["queue"], "abandoned", 2, 8000)
    assert row.duration_s > 2 and [s["kind"] for s in row.timeline["segments"]][:2] == ["ivr", "turn"]
    path = live_stack.recordings_dir / row.path
    assert path.suffix in (".wav", ".enc") and not path.with_suffix(".raw").exists()
    data = library.play(call_id, "integration-test", "qa", log_access=False).data
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    caller, heard = pcm[:, 0], pcm[:, 1]
    # The greeting plays before the caller says anything: it is on the right channel only.
    first = slice(0, 8000)
    assert rms(heard[first]) > 300 and rms(caller[first]) < rms(heard[first]) / 10
    # The caller's words are on the left channel.
    assert rms(caller) > 100
    assert abs(np.corrcoef(caller.astype(float), heard.astype(float))[0, 1]) < 0.5  # two channels, not a mix

    # The manifest: the call is in it, intact; one changed byte is named by `ivr recordings verify`.
    code, before = await asyncio.to_thread(verify, live_stack)
    named_before = {p["call_id"] for p in before["problems"]}
    assert call_id not in named_before, before
    assert code == (0 if not before["problems"] else 1)
    original = path.read_bytes()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    path.write_bytes(bytes(changed))
    try:
        code, after = await asyncio.to_thread(verify, live_stack)
        assert code == 1
        ours = [p for p in after["problems"] if p["call_id"] == call_id]
        assert [p["what"] for p in ours] == ["changed"] and row.path in ours[0]["message"]
    finally:
        path.write_bytes(original)
    code, restored = await asyncio.to_thread(verify, live_stack)
    assert {p["call_id"] for p in restored["problems"]} == named_before

    # QA finds the call on /qa, plays it, and sees its timeline with a flagged moment (seeded: the quality
    # checks set flags the same way).
    await asyncio.to_thread(library.set_flags, call_id,
                            [{"at_s": 1.0, "kind": "forbidden_phrase", "text": "guaranteed return (seeded)"}])
    async for browser in chromium():
        page = await browser.new_page(viewport={"width": 1440, "height": 1000})
        await page.goto(f"http://{live_stack.http_host}:{live_stack.http_port}/qa")
        await page.get_by_test_id("login-username").fill("qa-test")
        await page.get_by_test_id("login-password").fill(qa_password)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("login").wait_for(state="hidden", timeout=10_000)
        await page.get_by_test_id("qa-call-id").fill(call_id)
        await page.get_by_test_id("qa-search").click()
        result = page.locator(f'[data-testid="qa-result"][data-call-id="{call_id}"]')
        await result.wait_for(timeout=10_000)
        assert await page.locator('[data-testid="qa-result"]').count() == 1
        await result.get_by_test_id("qa-open").click()
        audio = page.get_by_test_id("qa-audio")
        await page.wait_for_function(
            "() => { const a = document.querySelector('[data-testid=qa-audio]'); return a && a.duration > 0 }",
            timeout=15_000)
        duration = await audio.evaluate("a => a.duration")
        assert abs(duration - row.duration_s) < 0.5
        kinds = await page.locator('[data-testid="qa-segment"]').evaluate_all("els => els.map(e => e.dataset.kind)")
        assert kinds[:2] == ["ivr", "turn"] and "turn" in kinds
        flag = page.get_by_test_id("qa-flag")
        assert await flag.count() == 1 and await flag.get_attribute("data-kind") == "forbidden_phrase"
        events = await page.locator('[data-testid="qa-event"][data-kind="flag"]').all_inner_texts()
        assert events == ["0:01 ⚑ forbidden phrase: guaranteed return (seeded)"]
        await flag.click()  # seeks the player to the flagged moment
        await page.wait_for_function(
            "() => document.querySelector('[data-testid=qa-audio]').currentTime >= 1.0", timeout=5_000)
        await shot(page, "qa")
        await page.close()
    access = await asyncio.to_thread(library.index.access, call_id, 10)
    assert [(a.who, a.action) for a in access if a.action == "play"] == [("qa-test", "play")]
