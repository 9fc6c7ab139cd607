"""The softphone inside /agent: headless Chromium with a fake microphone registers the agent's page phone to the real
Asterisk over WSS, a routed hotline call rings in the page with its pop, the agent answers there, and audio flows
both ways, measured: the caller hears the agent's test tone (its frequency in the call's recording, what the caller
heard) and the page receives the caller's tone (its frequency in the remote track, through a WebAudio analyser).
The agent hangs up in the page and nothing of the call is left in Asterisk. Then the phone's connection drops: the
agent is made not ready with the reason shown, and ready again once the phone has registered again; signing out
removes the registration from Asterisk.

Screenshot: tests/artifacts/agent-softphone.png.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import warnings
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from ivr.audio import write_wav
from ivr.config import Settings, asterisk_path
from ivr.ops import stack
from ivr.recordings.library import RecordingLibrary
from ivr.routing.agents import AgentDirectory, Presence
from ivr.sim.simulator import Simulator
from ivr.telephony import pagephone
from ivr.telephony.ami import AmiClient
from tests.integration.browser import CHROMIUM, CHROMIUM_ARGS, demo_passwords, shot, sign_in

pytestmark = pytest.mark.integration

AGENT, EXTENSION = "A1003", "1003"
CALLER = "01012345678"  # C1001 김민준 of the demo customers
AGENT_TONE_HZ = 1000.0  # the page's fake microphone
CALLER_TONE_HZ = 600.0  # what the simulated caller plays once connected

# Test instrumentation, not the product's: every WebSocket the page opens, so the test can cut the phone's.
TRACK_SOCKETS = """(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();"""
CUT_PHONE_SOCKET = ("() => window.__sockets.filter((s) => s.url.includes(':8089') && s.readyState === 1)"
                    ".map((s) => s.close()).length")

# The remote track's spectrum in the page (WebAudio), accumulated over `seconds`: the peak and the level.
MEASURE_REMOTE = """async (seconds) => {
  const audio = document.querySelector('[data-testid=phone-audio]');
  if (!audio || !audio.srcObject) return null;
  const context = new AudioContext();
  await context.resume();
  const analyser = context.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  context.createMediaStreamSource(audio.srcObject).connect(analyser);
  const spectrum = new Float32Array(analyser.frequencyBinCount);
  const power = new Float64Array(analyser.frequencyBinCount);
  const wave = new Float32Array(analyser.fftSize);
  let energy = 0, frames = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    analyser.getFloatFrequencyData(spectrum);
    spectrum.forEach((db, i) => { power[i] += 10 ** (db / 10); });
    analyser.getFloatTimeDomainData(wave);
    energy += wave.reduce((sum, x) => sum + x * x, 0) / wave.length;
    frames += 1;
  }
  let peak = 1;
  for (let i = 2; i < power.length; i += 1) if (power[i] > power[peak]) peak = i;
  await context.close();
  return { peak_hz: peak * context.sampleRate / analyser.fftSize, rms: Math.sqrt(energy / frames) };
}"""


def tone(path: Path, hz: float, seconds: float, rate: int) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    write_wav(path, (0.4 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes(), rate)
    return path


def goertzel_share(x: np.ndarray, rate: int, hz: float) -> float:
    """The share of the signal's power at ``hz`` (a 25 Hz wide band) over 100-4000 Hz."""
    spectrum = np.abs(np.fft.rfft(x.astype(float) * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = (freqs > 100) & (freqs < 4000)
    near = band & (np.abs(freqs - hz) < 25)
    return float(spectrum[near].sum() / max(spectrum[band].sum(), 1e-9))


@pytest.fixture
def password(live_stack: Settings) -> str:
    return demo_passwords(live_stack)[AGENT]


@pytest.fixture
def page_agent(live_stack: Settings) -> Iterator[str]:
    """A1003 takes calls in the page: the directory's device is the page phone (put back afterwards)."""
    async def set_device(device: str | None) -> str:
        client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
        try:
            directory = AgentDirectory(client)
            agent = await directory.get(AGENT)
            assert agent is not None, f"{AGENT} is not in the directory"
            before = agent.device
            if device:
                await directory.put(agent.model_copy(update={"device": device}))
            await directory.set_presence(AGENT, Presence.OFFLINE)
            return before
        finally:
            await client.aclose()

    original = asyncio.run(set_device(f"PJSIP/{pagephone.endpoint_of(EXTENSION)}"))
    yield AGENT
    asyncio.run(set_device(original))


@pytest.fixture
def sounds(live_stack: Settings) -> Iterator[dict[str, Path]]:
    folder = live_stack.run_dir / "sim" / f"softphone-{uuid.uuid4().hex[:8]}"  # inside the project: Asterisk reads it
    folder.mkdir(parents=True)
    yield {"microphone": tone(folder / "agent-mic.wav", AGENT_TONE_HZ, 5, 48000),
           "caller": tone(folder / "caller-tone.wav", CALLER_TONE_HZ, 6, 8000)}
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


@pytest.fixture
async def browser(live_stack: Settings, sounds: dict[str, Path]) -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={sounds['microphone']}", "--autoplay-policy=no-user-gesture-required",
            "--ignore-certificate-errors"]  # the WSS server's self-signed certificate (tests only)
    async with playwright_api.async_playwright() as p:
        instance = await p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield instance
        await instance.close()


@pytest.fixture
async def no_one_waiting(live_stack: Settings) -> None:
    """The test's own call must be the one the page rings: a caller an earlier test left waiting for a person
    (under the lock, nobody else's) would be offered first. Such leftovers are hung up, and named."""
    ami = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                    live_stack.ami_secret.get_secret_value())
    ami.start()
    try:
        assert await ami.wait_ready(10)
        reply = await ami.action({"Action": "CoreShowChannels"})
        stale = [e for e in (reply if isinstance(reply, list) else [reply]) if e.get("Event") == "CoreShowChannel"
                 and e.get("Context") in ("ivr-hold", "ivr-offer", "ivr-queue")]
        for event in stale:
            await ami.hangup(str(event.get("Channel")))
        if stale:
            warnings.warn(f"hung up {len(stale)} caller(s) an earlier test left waiting: "
                          + ", ".join(f"{e.get('Channel')} ({e.get('Uniqueid')}, {e.get('Duration')})" for e in stale),
                          stacklevel=1)
            await asyncio.sleep(0.5)
    finally:
        ami.close()


async def acd_sees(settings: Settings, agent_id: str, shown: str, device_state: str, timeout: float = 10) -> bool:
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await client.get("ivr:acd")
            agent = json.loads(raw)["agents"].get(agent_id, {}) if raw else {}
            if agent.get("shown") == shown and agent.get("device_state") == device_state:
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await client.aclose()


async def contacts(settings: Settings) -> str:
    return (await asyncio.to_thread(stack.asterisk_rx, settings, "pjsip show contacts")).stdout


async def first_seen(page: Any, selectors: list[str], timeout: float) -> dict[str, float]:
    """When each selector first matched (monotonic seconds), polling every 20 ms."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(selectors) and time.monotonic() < deadline:
        for selector in selectors:
            if selector not in seen and await page.locator(selector).count():
                seen[selector] = time.monotonic()
        await asyncio.sleep(0.02)
    return seen


async def test_agent_answers_a_routed_call_in_the_page_and_audio_flows_both_ways(  # type: ignore[no-untyped-def]
        live_stack: Settings, page_agent: str, password: str, browser, sounds: dict[str, Path],
        no_one_waiting: None) -> None:
    twin = pagephone.endpoint_of(EXTENSION)
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    await page.add_init_script(TRACK_SOCKETS)
    await sign_in(page, live_stack, "/agent", AGENT, password)

    # The page registers its phone: the page says so, and so does Asterisk.
    await page.locator('[data-testid="phone-state"][data-state="registered"]').wait_for(timeout=15_000)
    assert f"{twin}/sip:" in await contacts(live_stack)
    await page.get_by_test_id("presence-ready").click()
    await page.locator('[data-testid="presence-state"][data-presence="ready"]').wait_for(timeout=5_000)
    assert await acd_sees(live_stack, AGENT, "ready", "NOT_INUSE"), "the ACD did not see the page phone ready"

    # A routed hotline call ("0": a person) rings in the page, with its pop.
    simulator = Simulator(live_stack)
    placed = asyncio.create_task(simulator.run(CALLER, [], ["0"], until="answered", timeout=60, keep=True))
    ringing, pop = '[data-testid="phone-call-status"][data-status="ringing"]', '[data-testid="pop"]'
    seen = await first_seen(page, [ringing, pop], timeout=45)
    assert set(seen) == {ringing, pop}, f"only {list(seen)} appeared"
    gap_ms = abs(seen[ringing] - seen[pop]) * 1000
    assert gap_ms < 2000, f"the pop and the ringing arrived {gap_ms:.0f} ms apart"
    call_id = await page.locator(pop).get_attribute("data-call-id")
    assert await page.get_by_test_id("pop-customer-name").inner_text() == "김민준"
    assert await page.get_by_test_id("phone-who").inner_text() == "김민준"  # the ringing line names the pop's caller
    await shot(page, "agent-softphone-ringing")
    answered_at = time.monotonic()
    await page.get_by_test_id("phone-answer").click()
    active = await first_seen(page, ['[data-testid="phone-call-status"][data-status="active"]'], timeout=10)
    assert active, "the call did not connect in the page"
    connect_ms = (min(active.values()) - answered_at) * 1000
    record = await placed
    assert (record["outcome"], record["agent"], record["call_id"]) == ("answered", AGENT, call_id), record["notes"]
    await page.locator('[data-testid="phone-call-status"][data-status="active"]').wait_for(timeout=10_000)
    await page.locator('[data-testid="call-phase"][data-phase="on_call"]').wait_for(timeout=10_000)

    # Caller -> page: the caller plays a tone; the page's remote track carries it.
    ami = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                    live_stack.ami_secret.get_secret_value())
    ami.start()
    try:
        assert await ami.wait_ready(10)
        assert simulator.last_call is not None
        caller_channel = simulator.last_call.caller_channel
        await ami.setvar(caller_channel, "SIM_PLAY", asterisk_path(sounds["caller"].with_suffix("")))
        await asyncio.sleep(0.8)
        heard_in_page = await page.evaluate(MEASURE_REMOTE, 3)
        reoffered = await page.get_by_test_id("phone").get_attribute("data-reoffered")
        await shot(page, "agent-softphone")
        mute = page.get_by_test_id("phone-mute")
        await mute.click()
        await page.locator('[data-testid="phone-mute"][aria-pressed="true"]').wait_for(timeout=5_000)
        await mute.click()
        await page.locator('[data-testid="phone-mute"][aria-pressed="false"]').wait_for(timeout=5_000)
        hold = page.get_by_test_id("phone-hold")  # a re-INVITE each way, the browser offering
        await hold.click()
        await page.locator('[data-testid="phone-hold"][aria-pressed="true"]').wait_for(timeout=5_000)
        await hold.click()
        await page.locator('[data-testid="phone-hold"][aria-pressed="false"]').wait_for(timeout=5_000)
        await page.get_by_test_id("phone-keypad-toggle").click()
        await page.get_by_test_id("phone-key-5").click()
        assert await page.get_by_test_id("phone-call-status").get_attribute("data-status") == "active"

        # The agent hangs up in the page: the call ends for everyone, and nothing of it is left in Asterisk.
        talk_s = time.monotonic() - answered_at
        await page.get_by_test_id("phone-hangup").click()
        await page.get_by_test_id("phone-call").wait_for(state="hidden", timeout=10_000)
        await page.locator('[data-testid="call-phase"][data-phase="after"]').wait_for(timeout=15_000)
        left = []
        for _ in range(50):
            reply = await ami.action({"Action": "CoreShowChannels"})
            left = [e.get("Channel") for e in (reply if isinstance(reply, list) else [reply])
                    if e.get("Event") == "CoreShowChannel"
                    and (e.get("Uniqueid") == call_id or twin in str(e.get("Channel", "")))]
            if not left:
                break
            await asyncio.sleep(0.2)
        assert left == [], f"channels left after the page hung up: {left}"
    finally:
        ami.close()
    assert heard_in_page is not None, "the page has no remote audio track"
    print(f"\nsoftphone: pop vs ringing {gap_ms:.0f} ms; answer click -> connected {connect_ms:.0f} ms;"
          f" re-offer needed (asterisk #2053): {reoffered}; page heard {heard_in_page}")
    assert heard_in_page["rms"] > 0.01, f"the page received silence: {heard_in_page}"
    assert abs(heard_in_page["peak_hz"] - CALLER_TONE_HZ) < 30, f"the page heard {heard_in_page}"

    # Page -> caller: the call's recording (right channel: what the caller heard) carries the agent's tone.
    library = RecordingLibrary.from_settings(live_stack)
    row = None
    deadline = time.monotonic() + 30
    while row is None and time.monotonic() < deadline:
        row = await asyncio.to_thread(library.index.get, call_id)
        await asyncio.sleep(0.3)
    assert row is not None and row.state == "ok", f"call {call_id} not recorded: {row}"
    data = library.play(call_id, "integration-test", "qa", log_access=False).data
    with wave.open(io.BytesIO(data), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
    heard = pcm[:, 1]
    talk = heard[-int((talk_s - 1.0) * rate):]  # from just after the answer to the hang-up: the agent on the line
    share = goertzel_share(talk, rate, AGENT_TONE_HZ)
    print(f"softphone: the caller heard {AGENT_TONE_HZ:.0f} Hz as {share:.0%} of the band's power")
    assert share > 0.5, f"the caller did not hear the agent's {AGENT_TONE_HZ:.0f} Hz tone (share {share:.2f})"

    # Ready and registered are one state: the phone's connection drops -> not ready, with the reason; the phone
    # registers again by itself -> ready again (the ACD routes to it).
    await page.locator('[data-testid="presence-state"][data-status="ready"]').wait_for(timeout=15_000)  # wrapped up
    assert await page.evaluate(CUT_PHONE_SOCKET) == 1
    not_ready = page.locator('[data-testid="presence-state"][data-presence="not_ready"]')
    await not_ready.wait_for(timeout=10_000)
    assert "Phone not registered" in await not_ready.inner_text()
    assert await acd_sees(live_stack, AGENT, "not_ready: phone", "UNAVAILABLE")
    await page.locator('[data-testid="phone-state"][data-state="registered"]').wait_for(timeout=20_000)
    await page.locator('[data-testid="presence-state"][data-presence="ready"]').wait_for(timeout=10_000)
    assert await acd_sees(live_stack, AGENT, "ready", "NOT_INUSE")

    # Signing out ends the registration (not its expiry).
    await page.get_by_test_id("signout").click()
    await page.get_by_test_id("login").wait_for(timeout=10_000)
    registered = True
    for _ in range(50):
        registered = f"{twin}/sip:" in await contacts(live_stack)
        if not registered:
            break
        await asyncio.sleep(0.2)
    assert not registered, "the page phone is still registered after sign-out"


@pytest.fixture
def field_page_phone(live_stack: Settings) -> Iterator[str]:
    """F2002 takes calls in the /field page: the directory's device is the page phone (put back afterwards)."""
    async def set_device(device: str | None) -> str:
        client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
        try:
            directory = AgentDirectory(client)
            agent = await directory.get("F2002")
            assert agent is not None
            before = agent.device
            if device:
                await directory.put(agent.model_copy(update={"device": device}))
            await directory.set_presence("F2002", Presence.OFFLINE)
            return before
        finally:
            await client.aclose()

    original = asyncio.run(set_device(f"PJSIP/{pagephone.endpoint_of('2002')}"))
    yield demo_passwords(live_stack)["F2002"]
    asyncio.run(set_device(original))


async def test_field_manager_accepts_and_finishes_a_call_on_a_phone_sized_page(  # type: ignore[no-untyped-def]
        live_stack: Settings, field_page_phone: str, browser, no_one_waiting: None) -> None:
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await sign_in(page, live_stack, "/field", "F2002", field_page_phone)
    await page.locator('[data-testid="phone-state"][data-state="registered"]').wait_for(timeout=15_000)
    await page.get_by_test_id("field-switch").click()
    await page.locator('[data-testid="field-switch"][aria-checked="true"]').wait_for(timeout=10_000)
    assert await acd_sees(live_stack, "F2002", "ready", "NOT_INUSE")

    simulator = Simulator(live_stack)
    placed = asyncio.create_task(simulator.run("01077776666", [], ["3"], until="answered", timeout=60, keep=True))
    await page.locator('[data-testid="phone-call-status"][data-status="ringing"]').wait_for(timeout=45_000)
    await page.get_by_test_id("field-ringing").wait_for(timeout=5_000)
    assert "Ringing here" in await page.locator("#ring-hint").inner_text()
    await page.get_by_test_id("field-accept").click()  # answers in the page
    await page.locator('[data-testid="phone-call-status"][data-status="active"]').wait_for(timeout=10_000)
    await page.locator('[data-testid="field-ringing"][data-phase="on_call"]').wait_for(timeout=10_000)
    record = await placed
    assert (record["outcome"], record["agent"]) == ("answered", "F2002"), record["notes"]
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone page scrolls sideways ({width} px)"
    await shot(page, "field-softphone-390x844")

    # A blind transfer to a queue, from the page (REFER): the caller lands in that queue, the page's line ends.
    joined: asyncio.Queue[str] = asyncio.Queue()
    ami = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                    live_stack.ami_secret.get_secret_value())
    ami.on("QueueCallerJoin", lambda event: joined.put_nowait(f"{event.get('Uniqueid')} {event.get('Queue')}"))
    ami.start()
    try:
        assert await ami.wait_ready(10)
        await page.get_by_test_id("phone-transfer-target").fill("loans")
        await page.get_by_test_id("phone-transfer").click()
        assert await asyncio.wait_for(joined.get(), 10) == f"{record['call_id']} q_loans"
        await page.get_by_test_id("phone-call").wait_for(state="hidden", timeout=10_000)
        assert simulator.last_call is not None
        await ami.hangup(simulator.last_call.caller_channel)  # the caller gives up waiting in the queue
    finally:
        ami.close()
    await page.get_by_test_id("disposition-form").wait_for(timeout=15_000)
    await page.get_by_test_id("signout").click()
    await page.get_by_test_id("login").wait_for(timeout=10_000)
