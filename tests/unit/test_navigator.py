"""The navigator's escape hatches, with a fake line: no Asterisk, real flow, real prompts."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from asr import ModelMissing
from ivr.audiosocket import HEADER, AudioSession, Kind
from ivr.calls import CallRecord
from ivr.flow import load_flow
from ivr.navigator import Navigator, Speech
from tts import PromptRenderer

FLOW = Path(__file__).resolve().parents[2] / "dialplans" / "hotline.yaml"


class _Writer:
    """Collects what the session sends to 'Asterisk'."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


class _NoModels:
    def get(self, language: str, dialect: str | None = None):  # type: ignore[no-untyped-def]
        raise ModelMissing(language, "test: no model installed")


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> PromptRenderer:
    return PromptRenderer(tmp_path_factory.mktemp("prompts"))


def line(script: bytes) -> tuple[AudioSession, asyncio.StreamReader]:
    reader = asyncio.StreamReader()
    reader.feed_data(script)
    session = AudioSession(uuid.uuid4(), "call-1", reader, _Writer())  # type: ignore[arg-type]
    session.start()
    return session, reader


def navigator(renderer: PromptRenderer, registry, no_input_s: float = 0.3) -> Navigator:  # type: ignore[no-untyped-def]
    flow = load_flow(FLOW)
    # Short no-input timeouts keep the test fast; the logic is the same.
    nodes = {k: (v.model_copy(update={"no_input_s": no_input_s}) if v.type == "ask" else v)
             for k, v in flow.nodes.items()}
    flow = flow.model_copy(update={"nodes": nodes})
    return Navigator(flow, Speech(registry, renderer), Path("/nonexistent-recordings"))


async def test_missing_model_falls_back_to_keys(renderer: PromptRenderer) -> None:
    session, _ = line(frame(Kind.AUDIO, bytes(320)) * 5 + frame(Kind.DTMF, b"2"))
    call = CallRecord(call_id="call-1", caller="0101")
    decision = await navigator(renderer, _NoModels()).run(call, session)
    assert (decision.queue, decision.intent) == ("cards", "lost_card")
    assert call.turns[0].error is not None and "no model installed" in call.turns[0].error
    assert call.turns[0].dtmf == "2"
    await session.close()


async def test_two_silent_turns_go_to_a_person(renderer: PromptRenderer) -> None:
    session, _ = line(b"")
    call = CallRecord(call_id="call-1", caller="0101")
    decision = await navigator(renderer, _NoModels(), no_input_s=0.2).run(call, session)
    assert decision.queue == "general"
    assert call.path == ["main_menu", "main_menu"]
    assert decision.reason == "not understood twice"
    await session.close()


async def test_zero_reaches_a_person_from_any_node(renderer: PromptRenderer) -> None:
    session, _ = line(frame(Kind.DTMF, b"0"))
    call = CallRecord(call_id="call-1", caller="0101")
    decision = await navigator(renderer, _NoModels()).run(call, session)
    assert (decision.queue, decision.intent) == ("general", "agent")
    await session.close()


async def test_caller_hangup_mid_prompt_ends_the_walk_without_a_queue(renderer: PromptRenderer) -> None:
    session, reader = line(frame(Kind.AUDIO, bytes(320)))
    reader.feed_eof()
    call = CallRecord(call_id="call-1", caller="0101")
    decision = await navigator(renderer, _NoModels()).run(call, session)
    assert decision.queue is None
    assert decision.reason == "caller hung up"
    await session.close()


async def test_prompt_audio_is_streamed_to_the_caller(renderer: PromptRenderer) -> None:
    session, _ = line(b"")
    nav = navigator(renderer, _NoModels())
    pcm = await nav.speech.prompt("안녕하십니까", "ko")
    playback = session.play(pcm)
    assert await asyncio.wait_for(playback.done, 10) is True
    sent = bytes(session.writer.data)  # type: ignore[attr-defined]
    frames = [sent[i + 3 : i + 323] for i in range(0, len(sent), 323)]
    assert all(sent[i : i + 3] == HEADER.pack(Kind.AUDIO, 320) for i in range(0, len(sent), 323))
    # silence keeps the line alive until the prompt starts; then the prompt, byte for byte, in order
    first = next(i for i, f in enumerate(frames) if f != bytes(320))
    assert all(f == bytes(320) for f in frames[:first])
    played = b"".join(frames[first : first + len(pcm) // 320])
    assert played == pcm[: len(played)] and len(played) == (len(pcm) // 320) * 320
    await session.close()
