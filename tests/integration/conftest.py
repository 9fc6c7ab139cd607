"""The real stack, once per test session: Redis, Asterisk 22 in its Debian root, the controller.

The controller is restarted at the start so it runs this checkout's code; the stack is
stopped at the end only if the session started it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings, load_settings
from ivr.ops import stack
from ivr.ops.provision import provision
from ivr.sim.simulator import Simulator
from ivr.telephony.ami import AmiClient


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def live_stack(settings: Settings) -> Iterator[Settings]:
    was_running = stack.asterisk_answers(settings)
    # The controller under test rings an agent 6 s before the next one, and wraps up in 2 s.
    os.environ.setdefault("IVR_ACD_RING_TIMEOUT_S", "6")
    os.environ.setdefault("IVR_ACD_WRAP_UP_S", "2")
    provision(settings)
    stack.controller_down(settings)
    stack.up(settings, controller=False)
    if was_running:  # pick up configuration edits without a restart
        stack.asterisk_rx(settings, "core reload")
    asyncio.run(_import_demo_data(settings))
    stack.up(settings)  # the controller, now reading this session's agents
    yield settings
    if not was_running:
        stack.down(settings)


async def _import_demo_data(settings: Settings) -> None:
    """The demo customers and agents; every agent starts offline (a test says who is ready)."""
    import redis.asyncio as aioredis

    from ivr.routing.customers import load_rows
    from ivr.sim.demo_users import DEMO_CUSTOMERS_FILE, import_demo_data

    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        imported = await import_demo_data(client)
        assert imported == len(load_rows(DEMO_CUSTOMERS_FILE.read_text(encoding="utf-8")))
        await client.delete("ivr:callbacks:pending")
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def say(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Synthesize a caller's utterance with espeak-ng (8 kHz WAV, as a phone line carries it)."""
    folder = tmp_path_factory.mktemp("speech")

    def _say(text: str, voice: str = "ko", rate: int = 140) -> Path:
        path = folder / f"{abs(hash((text, voice, rate)))}.wav"
        if not path.exists():
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True)
        return path

    return _say


@pytest.fixture(scope="session")
def recognizable(settings: Settings):  # type: ignore[no-untyped-def]
    """Asserts the product's recognizer hears a WAV as the given main-menu phrase, surely, outside any call.

    Same model, same grammar, same 8 kHz samples the call carries: a test that needs synthetic
    speech recognized asserts this first, so a voice espeak-ng renders unrecognizably fails as
    that, not as a routing fault. The margin: the phrase's share of the n-best list; and the engine's
    own understanding (the flow's thresholds, word confidence times acoustic support) acts on it
    without asking "…, right?" — a test may then expect one turn. A test answers a confirmation all
    the same (``YES``, a key): Vosk's scores vary a little in the call.
    """
    from asr.grammar import build_grammar
    from asr.packs import default_registry
    from asr.stream import TurnRecognizer
    from ivr.sim.simulator import to_caller_audio
    from ivr.voice.flow import AskNode, load_flow
    from ivr.voice.navigator.listening import Heard, voiced
    from ivr.voice.navigator.turns import Navigator, evidence, hypotheses, is_phrase
    from ivr.voice.understanding import Action, Thresholds, TurnContext, understand

    flow = load_flow(settings.dialplans_dir / "hotline.yaml")
    node = flow.nodes["main_menu"]
    assert isinstance(node, AskNode)
    model = default_registry().get("ko")
    grammar = build_grammar(flow.grammar_phrases(node, "ko"), model)
    intents = Navigator(flow, None, settings.recordings_dir)._intent_phrases(node, "ko")  # type: ignore[arg-type]
    thresholds = Thresholds(act=flow.thresholds.act, confirm=flow.thresholds.confirm)

    def _recognizable(wav: Path, phrase: str, rate: int = 8000) -> None:
        heard_as = wav.with_name(f"{wav.stem}-{rate // 1000}k.wav")
        to_caller_audio(wav, heard_as, rate)
        with wave.open(str(heard_as), "rb") as audio:
            speech = audio.readframes(audio.getnframes())
        frame, per_ms = rate // 50 * 2, rate // 1000 * 2  # bytes in 20 ms, in 1 ms
        # How long the caller waits before speaking (the recognizer's online feature normalization
        # runs over that silence) and where the utterance falls inside the call's 20 ms frames differ
        # from call to call; a phrase on the edge is heard right in one and wrong in another (espeak's
        # "계좌 이체" in the default voice at 140 words a minute: "확인" in 51 of 70). Check them all, with a
        # margin: Vosk's scores also vary a little from run to run (+-0.05 seen), so a phrase that only just
        # wins offline can lose in the call.
        for lead_s in (0.0, 0.5, 1.0, 2.0, 4.0):
            for shift_ms in range(0, 20, 4):
                pcm = bytes(int(lead_s * 1000) * per_ms + shift_ms * per_ms) + speech + bytes(600 * per_ms)
                recognizer = TurnRecognizer(model, grammar, sample_rate=rate)
                for offset in range(0, len(pcm), frame):
                    recognizer.feed(pcm[offset:offset + frame])
                result = recognizer.finish()
                top = result.alternatives[0] if result.alternatives else None
                where = (f"synthetic {phrase!r} at {rate} Hz ({lead_s} s of silence before it, {shift_ms} ms into"
                         " a frame)")
                assert top is not None and top.text == phrase and top.confidence >= RECOGNITION_MARGIN, (
                    f"{where} is heard offline as {[(a.text, round(a.confidence, 2)) for a in result.alternatives]}:"
                    " a test cannot rely on it")
                # The voiced span as the listening loop measures it (first to last voiced 20 ms frame).
                frames = [i for i in range(0, len(pcm), frame) if voiced(pcm[i:i + frame])]
                heard = Heard(result=result, language="ko", grammar=recognizer.grammar_phrases, rate=rate,
                              voiced_s=(frames[-1] - frames[0] + frame) / (2 * rate) if frames else None)
                decision = understand(hypotheses(result), intents, TurnContext(), evidence(heard, "ko"), thresholds,
                                      is_phrase(heard))
                assert decision.action is Action.ACT and decision.best is not None, (
                    f"{where}: the engine would {decision.action.value}, not act, on it "
                    f"({[(c.intent, round(c.score, 2)) for c in decision.ranked[:3]]}): a test cannot rely on it")

    return _recognizable


#: The share of the n-best list a synthetic phrase must have offline before a test relies on it.
RECOGNITION_MARGIN = 0.6

#: The key that answers the engine's "…, right?" with yes (a key, not a spoken 네: nothing left to recognition).
#: A call given ``dtmf=[YES]`` after its audio uses it only if a confirmation is asked.
YES = "1"


@pytest.fixture
async def call(live_stack: Settings):  # type: ignore[no-untyped-def]
    """Place a simulated call through the real Asterisk; returns the call record."""

    async def _call(caller: str = "01012345678", audio: list[Path] | None = None, dtmf: list[str] | None = None,
                    **kwargs: Any) -> dict[str, Any]:
        return await Simulator(live_stack).run(caller, audio or [], dtmf or [], **kwargs)

    return _call


@pytest.fixture
async def ami_events(live_stack: Settings) -> AsyncIterator[list[Any]]:
    """Every AMI event Asterisk sends during the test, through our own AMI login."""
    events: list[Any] = []
    client = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                       live_stack.ami_secret.get_secret_value())
    client.on("*", events.append)
    client.start()
    assert await client.wait_ready(10), client.last_error
    yield events
    client.close()


async def wait_for(predicate, timeout: float = 10.0, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def waiting_for_person(events: list[Any], call_id: str) -> str | None:
    """Where Asterisk holds the call for a person: the ACD's waiting room (UserEvent IvrHold) or an
    Asterisk queue (QueueCallerJoin, q_ prefix dropped); None if neither happened."""
    for event in events:
        if event.get("Uniqueid") != call_id:
            continue
        if event.get("Event") == "UserEvent" and event.get("UserEvent") == "IvrHold":
            return str(event.get("Queue"))
        if event.get("Event") == "QueueCallerJoin":
            return str(event.get("Queue", "")).removeprefix("q_")
    return None
