"""The listening loop (ivr.voice.navigator.listening): barge-in, endpointing by the caller's audio, the prompt's end."""

from __future__ import annotations

import asyncio
import time
import wave
from typing import Any

import pytest

from asr import Partial, Result
from ivr.records.call import CallRecord
from ivr.voice.flow import Listen
from ivr.voice.navigator import DecisionKind, Navigator, wall_backstop
from ivr.voice.navigator.listening import hearing_rate
from tests.unit.voice.navigator.fakes import (
    RECORDINGS,
    FakeSpeech,
    ScriptedRecognizer,
    fast_flow,
    key,
    make,
    silence,
    speech,
    walk,
)

# --- barge-in -----------------------------------------------------------------------------


async def test_speech_cuts_the_prompt_and_counts() -> None:
    nav, caller = make(["계좌 이체"], [speech(0.6) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert call.turns[0].barged_in
    assert call.intent == "transfer"


async def test_a_cough_does_not_cut_the_prompt() -> None:
    nav, caller = make([None, None], [speech(0.1) + silence(0.1), key("2")])
    decision, call = await walk(nav, caller)
    assert not call.turns[0].barged_in


async def test_no_barge_in_node_ignores_speech_during_the_prompt() -> None:
    def no_barge(flow: Any) -> Any:
        menu = flow.nodes["main_menu"]
        menu = menu.model_copy(update={"listen": menu.listen.model_copy(update={"barge_in": False})})
        return flow.model_copy(update={"nodes": {**flow.nodes, "main_menu": menu}})

    nav, caller = make([None, None], [speech(0.2), key("2")], tweak=no_barge)
    decision, call = await walk(nav, caller)
    assert not call.turns[0].barged_in


# --- the end of a turn --------------------------------------------------------------------


async def test_an_empty_final_during_a_long_prompt_is_not_no_input(monkeypatch: pytest.MonkeyPatch) -> None:
    # Vosk ends an utterance after long silence with an empty result; the caller's key, pressed
    # after a long prompt, must still count in the same turn.
    monkeypatch.setattr(ScriptedRecognizer, "empty_final_after", 3200)
    nav, caller = make([None, None, None], [silence(1.0) + key("2")])
    decision, call = await walk(nav, caller)
    assert decision.queue == "cards"
    assert len(call.turns) == 1


async def test_hangup_mid_utterance_is_recorded_without_error() -> None:
    nav, caller = make(["계좌"], [speech(0.5)], hang_up_after=True)
    decision, call = await walk(nav, caller)
    assert (decision.kind, decision.reason) == ("hangup", "caller hung up")
    assert decision.kind is DecisionKind.HANGUP and decision.caller_left  # the caller's doing, not the flow's
    assert call.turns[0].transcript == "계좌"


class SlowRecognizer(ScriptedRecognizer):
    """Recognition on a loaded machine: every feed takes longer than the endpoint's silence."""

    delay_s = 0.4

    def feed(self, pcm: bytes) -> Result | Partial | None:
        time.sleep(self.delay_s)  # in the recognition thread, as Vosk's work is
        return super().feed(pcm)


class SlowSpeech(FakeSpeech):
    def recognizer(self, language: str, phrases: list[str], sample_rate: int = 8000) -> Any:
        recognizer = SlowRecognizer(self.answers.pop(0) if self.answers else None)
        self.recognizers.append(recognizer)
        return recognizer


async def test_slow_recognition_does_not_cut_the_caller_off() -> None:
    # The whole utterance is on the line at once (the caller is ahead of us); each 100 ms of it takes the
    # recognizer 0.4 s, longer than the node's 0.3 s endpoint. By the wall clock the gaps between processed
    # voiced frames were silence and the turn ended after the first feed ("확인" for "계좌 이체" in CI).
    # By the caller's audio there is no silence until the utterance ends: all of it reaches the recognizer.
    speech_engine = SlowSpeech(["계좌 이체"])
    nav, caller = make([], [speech(1.0) + silence(0.6)], speech_engine=speech_engine)
    assert nav.flow.nodes["main_menu"].listen.endpoint_silence_s < SlowRecognizer.delay_s  # type: ignore[union-attr]
    decision, call = await walk(nav, caller)
    utterance_bytes = int(1.0 * 8000) * 2
    assert speech_engine.recognizers[0].fed >= utterance_bytes
    assert (decision.queue, call.intent) == ("payments", "transfer")


async def test_no_input_is_timed_by_the_callers_audio() -> None:
    # The question waits 2 s for an answer; 2.5 s of the caller's silence arrive in a burst just after the
    # prompt (the line catching up after a stall). By the caller's audio that is no input at once; by the wall
    # clock the turn would wait its 2 s out.
    def patient(flow: Any) -> Any:
        menu = flow.nodes["main_menu"]
        menu = menu.model_copy(update={"listen": menu.listen.model_copy(update={"no_input_s": 2.0})})
        return flow.model_copy(update={"nodes": {**flow.nodes, "main_menu": menu}})

    nav, caller = make([None, None], [silence(2.5), key("2")], tweak=patient)
    loop = asyncio.get_running_loop()

    async def answer_after_the_prompt(call: CallRecord, node: str, prompt_s: float) -> None:
        loop.call_later(prompt_s + 0.1, caller.answer)

    nav.on_listen = answer_after_the_prompt
    started = loop.time()
    decision, call = await walk(nav, caller)
    assert decision.queue == "cards" and call.turns[0].transcript == "" and call.turns[1].dtmf == "2"
    assert loop.time() - started < 2 * (0.4 + 0.1) + 1.0  # two prompts and their answers; 2 s more by the wall


def test_the_backstop_is_generous_and_bounded() -> None:
    assert wall_backstop(0.3) == pytest.approx(0.6)
    assert wall_backstop(6.0) == pytest.approx(7.0)


async def test_voiced_length_is_in_seconds_at_the_frames_rate() -> None:
    # A wideband caller (16 kHz, 640-byte frames): 0.6 s of voice is 0.6 s, not twice that.
    speech_engine = FakeSpeech([None])
    nav = Navigator(fast_flow(), speech_engine, RECORDINGS)
    _, caller = make([], [])
    call = CallRecord(call_id="call-1", caller="0101")
    caller.reader.feed_data(speech(0.6, rate=16000) + silence(0.4))
    heard = await asyncio.wait_for(nav.listen(caller.session, Listen(endpoint_silence_s=0.3, no_input_s=0.3), "",
                                              call, "main_menu", ["계좌 이체"]), 10)
    await caller.session.close()
    assert heard.voiced_s == pytest.approx(0.6, abs=0.021)


# --- the prompt's end (on_prompt_done) ----------------------------------------------------


async def test_the_prompt_done_hook_follows_each_prompt_once_before_the_answer() -> None:
    # The caller answers only once the question is over: each turn hears listen, prompt done, then its answer.
    nav, caller = make(["카드요", "네"], [speech(0.5) + silence(0.4), speech(0.3) + silence(0.4)], after_prompt=True)
    decision, call = await walk(nav, caller)
    assert call.intent == "lost_card"
    assert caller.events == [("listen", "main_menu"), ("prompt_done", "main_menu"), ("turn", "main_menu"),
                             ("listen", "main_menu"), ("prompt_done", "main_menu"), ("turn", "main_menu")]
    assert not any(turn.barged_in for turn in call.turns)


async def test_the_prompt_done_hook_when_the_caller_cuts_the_prompt() -> None:
    nav, caller = make(["계좌 이체"], [speech(0.6) + silence(0.4)])
    loop = asyncio.get_running_loop()
    done_at: list[float] = []

    async def prompt_done(call: CallRecord, node: str) -> None:
        done_at.append(loop.time())
        await caller.on_prompt_done(call, node)

    nav.on_prompt_done = prompt_done
    started = loop.time()
    decision, call = await walk(nav, caller)
    assert call.turns[0].barged_in
    assert caller.events == [("listen", "main_menu"), ("prompt_done", "main_menu"), ("turn", "main_menu")]
    assert done_at[0] - started < 0.4  # cut by the caller's voice, before the prompt's 0.4 s were out


async def test_the_prompt_done_hook_at_once_without_a_prompt() -> None:
    nav, caller = make([None], [])
    call = CallRecord(call_id="call-1", caller="0101")
    caller.reader.feed_data(key("2"))
    heard = await asyncio.wait_for(nav.listen(caller.session, Listen(), "", call, "main_menu", []), 10)
    await caller.session.close()
    assert heard.dtmf == "2"
    assert caller.events == [("listen", "main_menu"), ("prompt_done", "main_menu")]


# --- the caller's rate (HD voice) -------------------------------------------------------------


def sent_kinds(caller: Any) -> set[int]:
    """The AudioSocket kinds of the frames the session wrote to Asterisk (prompts and silence)."""
    data, kinds, at = bytes(caller.session.writer.data), set(), 0
    while at + 3 <= len(data):
        kind, length = data[at], int.from_bytes(data[at + 1:at + 3], "big")
        kinds.add(kind)
        at += 3 + length
    return kinds


async def test_a_wideband_caller_is_recognized_recorded_and_answered_at_16k() -> None:
    speech_engine = FakeSpeech(["계좌 이체"])
    # The caller answers once the question is over: speaking at once would cut the prompt (barge-in) before its
    # first 16 kHz frame left, and whether one did would depend on the machine's timing.
    nav, caller = make([], [speech(1.0, rate=16000) + silence(0.6, rate=16000)], speech_engine=speech_engine,
                       after_prompt=True)
    caller.reader.feed_data(silence(0.04, rate=16000))  # Asterisk's first frames arrive as the call connects
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == ("payments", "transfer")
    assert speech_engine.rates[-1] == 16000
    assert speech_engine.recognizers[-1].fed >= 2 * 16000  # a second of 16 kHz audio, not resampled down
    with wave.open(str(RECORDINGS / str(call.turns[0].audio))) as recording:
        assert recording.getframerate() == 16000 and recording.getnframes() >= 16000
    assert 0x12 in sent_kinds(caller)  # the prompt went back at 16 kHz too


async def test_a_rate_change_mid_turn_is_resampled_to_the_turns_rate() -> None:
    # A transfer to a narrowband leg half-way through the utterance: one recognizer, one rate, all the speech.
    speech_engine = FakeSpeech(["계좌 이체"])
    nav, caller = make([], [speech(0.6, rate=16000) + speech(0.6, rate=8000) + silence(0.6)],
                       speech_engine=speech_engine)
    caller.reader.feed_data(silence(0.04, rate=16000))
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == ("payments", "transfer")
    assert speech_engine.rates[-1] == 16000
    # 1.2 s of speech (and up to 0.6 s of silence) at 16 kHz, the 8 kHz half upsampled with soxr.
    assert 2 * 16000 * 1.2 * 0.95 <= speech_engine.recognizers[-1].fed <= 2 * 16000 * 1.9
    with wave.open(str(RECORDINGS / str(call.turns[0].audio))) as recording:
        assert recording.getframerate() == 16000


async def test_a_48k_trunk_is_heard_at_16k() -> None:
    speech_engine = FakeSpeech([None, "계좌 이체"])
    nav, caller = make([], [speech(0.8, rate=48000) + silence(0.6, rate=48000)], speech_engine=speech_engine)
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == ("payments", "transfer")
    assert speech_engine.rates == [8000, 16000]  # made at the default, remade for the first frame's rate
    assert 2 * 16000 * 0.8 * 0.95 <= speech_engine.recognizers[-1].fed <= 2 * 16000 * 1.5


def test_hearing_rate_is_the_models_rate_or_the_phone_lines() -> None:
    assert [hearing_rate(r) for r in (8000, 12000, 16000, 44100, 48000)] == [8000, 16000, 16000, 16000, 16000]
