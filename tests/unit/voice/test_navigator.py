"""The navigation engine over a fake line: real flow, scripted recognizer, short prompts.

The caller is a script of AudioSocket frames fed into the session's reader; the
recognizer answers from a script too, so each rule is tested exactly and fast.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr import Alternative, ModelMissing, Partial, Result
from ivr.records.call import CallRecord
from ivr.records.customer import Customer
from ivr.telephony.audiosocket import HEADER, AudioSession, Kind
from ivr.voice.flow import load_flow
from ivr.voice.navigator import Navigator, Speech

FLOW = Path(__file__).resolve().parents[3] / "dialplans" / "hotline.yaml"
PROMPT_SECONDS = 0.4


class _Writer:
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


class ScriptedRecognizer:
    """Answers with the next scripted utterance once it has heard `speech_frames` of audio."""

    def __init__(self, answer: str | Exception | None, alternatives: list[tuple[str, float]] | None = None) -> None:
        self.answer = answer
        self.alternatives = alternatives
        self.fed = 0

    def _result(self) -> Result:
        if isinstance(self.answer, Exception):
            raise self.answer
        text = self.answer or ""
        alts = [Alternative(t, c) for t, c in (self.alternatives or [(text, 1.0)])]
        confidence = alts[0].confidence if alts else 0.0
        return Result(text=text, confidence=confidence, alternatives=alts, phrase=text or None,
                      phrase_confidence=confidence)

    #: Like Vosk's endpointer on long silence: an empty final after this much audio (None: never).
    empty_final_after: int | None = None

    def feed(self, pcm: bytes) -> Result | Partial | None:
        self.fed += len(pcm)
        if isinstance(self.answer, Exception):
            raise self.answer
        if not self.answer and self.empty_final_after is not None and self.fed >= self.empty_final_after:
            return Result(text="", confidence=0.0)
        return Partial(self.answer) if self.answer else None

    def finish(self) -> Result:
        return self._result()


class FakeSpeech(Speech):
    """Speech with scripted recognition and short synthetic prompts."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(registry=None, renderer=None)  # type: ignore[arg-type]
        self.answers = list(answers)
        self.grammars: list[list[str]] = []
        self.prompts_said: list[str] = []

    def recognizer(self, language: str, phrases: list[str]) -> Any:
        self.grammars.append(phrases)
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, ModelMissing):
            raise answer
        if isinstance(answer, tuple):
            return ScriptedRecognizer(answer[0], answer[1])
        return ScriptedRecognizer(answer)

    async def prompt(self, text: str, language: str) -> bytes:
        self.prompts_said.append(text)
        return bytes(int(8000 * 2 * PROMPT_SECONDS))


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def speech(seconds: float) -> bytes:
    """Voiced audio frames (a 300 Hz tone, well above the voicing threshold)."""
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()
    return b"".join(frame(Kind.AUDIO, pcm[i : i + 320]) for i in range(0, len(pcm) - 319, 320))


def silence(seconds: float) -> bytes:
    return frame(Kind.AUDIO, bytes(320)) * int(seconds / 0.02)


def key(digit: str) -> bytes:
    return frame(Kind.DTMF, digit.encode())


class Caller:
    """Plays the caller's side: each turn's frames are fed when the engine starts listening."""

    def __init__(self, turns: list[bytes], hang_up_after: bool = False) -> None:
        self.turns = list(turns)
        self.hang_up_after = hang_up_after
        self.reader = asyncio.StreamReader()
        self.session = AudioSession(uuid.uuid4(), "call-1", self.reader, _Writer())  # type: ignore[arg-type]
        self.session.start()

    async def on_listen(self, call: CallRecord, node: str, prompt_s: float) -> None:
        if self.turns:
            self.reader.feed_data(self.turns.pop(0))
            if not self.turns and self.hang_up_after:
                self.reader.feed_eof()


def make(answers: list[Any], turns: list[bytes], *, customer: Customer | None = None,
         hang_up_after: bool = False, tweak: Callable[[Any], Any] | None = None,
         speech_engine: Speech | None = None) -> tuple[Navigator, Caller]:
    flow = load_flow(FLOW)
    # Short timeouts keep the tests fast; the rules are the same.
    nodes = {k: (v.model_copy(update={"listen": v.listen.model_copy(update={"no_input_s": 0.3,
                                                                             "endpoint_silence_s": 0.3})})
                 if v.type == "ask" else v) for k, v in flow.nodes.items()}
    flow = flow.model_copy(update={"nodes": nodes})
    if tweak:
        flow = tweak(flow)
    caller = Caller(turns, hang_up_after)

    async def lookup(number: str) -> Customer | None:
        return customer

    nav = Navigator(flow, speech_engine or FakeSpeech(answers), Path("/nonexistent-recordings"), customers=lookup,
                    on_listen=caller.on_listen)
    return nav, caller


async def walk(nav: Navigator, caller: Caller, number: str = "01012345678") -> tuple[Any, CallRecord]:
    call = CallRecord(call_id="call-1", caller=number)
    decision = await asyncio.wait_for(nav.run(call, caller.session), 20)
    await caller.session.close()
    return decision, call


# --- reaching intents ---------------------------------------------------------------------


@pytest.mark.parametrize(("digit", "queue", "intent"), [
    ("2", "cards", "lost_card"), ("3", "loans", "loan"), ("4", "payments", "transfer"),
    ("5", "general", "password"), ("0", "general", "agent"),
])
async def test_each_routed_intent_by_key(digit: str, queue: str, intent: str) -> None:
    nav, caller = make([None], [key(digit)])
    decision, call = await walk(nav, caller)
    assert (decision.kind, decision.queue, call.intent) == ("queue", queue, intent)
    assert call.turns[0].dtmf == digit and call.turns[0].score == 1.0


@pytest.mark.parametrize(("said", "queue", "intent"), [
    ("카드 분실 신고", "cards", "lost_card"), ("대출 상담", "loans", "loan"), ("계좌 이체", "payments", "transfer"),
    ("비밀번호 변경", "general", "password"), ("상담원 연결", "general", "agent"),
])
async def test_each_routed_intent_by_voice(said: str, queue: str, intent: str) -> None:
    nav, caller = make([said], [speech(0.6) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == (queue, intent)
    assert call.turns[0].transcript == said and call.turns[0].intent == intent


async def test_lost_card_keeps_its_priority() -> None:
    nav, caller = make([None], [key("2")])
    decision, _ = await walk(nav, caller)
    assert decision.priority == 10


async def test_particles_and_spacing_do_not_break_matching() -> None:
    nav, caller = make(["카드를잃어 버렸어요"], [speech(0.6) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert call.intent == "lost_card"


async def test_dialect_variant_maps_to_the_intent_and_is_recorded() -> None:
    nav, caller = make(["상담원 좀 바꿔주이소"], [speech(0.6) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == ("general", "agent")
    assert call.turns[0].dialect == "gyeongsang"


async def test_n_best_alternatives_vote() -> None:
    # The top string is a bigram artefact; the mass of the list says transfer.
    nav, caller = make([("송금 연결", [("송금 연결", 0.4), ("계좌 이체", 0.35), ("착오 송금", 0.25)])],
                       [speech(0.6) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert call.intent == "transfer"
    assert [a["text"] for a in call.turns[0].alternatives] == ["송금 연결", "계좌 이체", "착오 송금"]


# --- self-service -------------------------------------------------------------------------


async def test_balance_is_spoken_to_a_known_caller() -> None:
    customer = Customer(id="C1", name="김민준", phones=["01012345678"], balance=1234500)
    nav, caller = make(["잔액 조회", None], [speech(0.6) + silence(0.4), key("9")], customer=customer)
    decision, call = await walk(nav, caller)
    assert decision.kind == "hangup"
    assert call.self_served
    assert call.path == ["main_menu", "balance", "after_balance", "goodbye"]
    assert any("백이십삼만 사천오백" in p for p in nav.speech.prompts_said)  # type: ignore[attr-defined]


async def test_balance_for_an_unknown_caller_goes_to_a_person() -> None:
    nav, caller = make([None], [key("1")], customer=None)
    decision, call = await walk(nav, caller)
    assert (decision.kind, decision.queue) == ("queue", "general")
    assert not call.self_served
    assert call.path == ["main_menu", "balance", "to_general"]


# --- confidence bands, context, corrections -----------------------------------------------


async def test_middle_band_is_confirmed_by_voice() -> None:
    # "카드요" alone is only half of a lost-card phrase: the engine asks, the caller says yes.
    nav, caller = make(["카드요", "네"], [speech(0.5) + silence(0.4), speech(0.3) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert call.intent == "lost_card"
    assert [t.kind for t in call.turns] == ["ask", "confirm"]
    assert "카드 분실 신고를 원하십니까?" in nav.speech.prompts_said  # type: ignore[attr-defined]


async def test_confirmation_by_key() -> None:
    nav, caller = make(["카드요", None], [speech(0.5) + silence(0.4), key("1")])
    decision, call = await walk(nav, caller)
    assert call.intent == "lost_card"


async def test_context_across_turns() -> None:
    # "카드요" is unsure; the caller's next words "잃어버렸어요" are read together with it.
    nav, caller = make(["카드요", "잃어버렸어요"], [speech(0.5) + silence(0.4), speech(0.5) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == ("cards", "lost_card")
    assert call.turns[-1].intent == "lost_card"


async def test_correction_replaces_the_intent() -> None:
    nav, caller = make(["카드요", "아니요 대출이요"], [speech(0.5) + silence(0.4), speech(0.8) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == ("loans", "loan")
    assert call.turns[-1].correction


async def test_no_to_a_confirmation_is_a_miss_then_a_person() -> None:
    nav, caller = make(["카드요", "아니요", None], [speech(0.5) + silence(0.4), speech(0.3) + silence(0.4), b""])
    decision, call = await walk(nav, caller)
    assert (decision.queue, decision.reason) == ("general", "not understood twice")


# --- never a dead end ---------------------------------------------------------------------


async def test_two_silent_turns_go_to_a_person_with_what_was_heard() -> None:
    nav, caller = make([None, None], [b"", b""])
    decision, call = await walk(nav, caller)
    assert (decision.queue, decision.reason) == ("general", "not understood twice")
    assert call.path == ["main_menu", "main_menu"]
    assert "상담원에게 연결해 드리겠습니다. 잠시만 기다려 주십시오." in nav.speech.prompts_said  # type: ignore[attr-defined]


async def test_engine_caps_failures_even_if_the_flow_allows_more() -> None:
    nav, caller = make(["뭐라고요", "글쎄요"], [speech(0.4) + silence(0.4), speech(0.4) + silence(0.4)])
    decision, call = await walk(nav, caller)
    assert decision.queue == "general"
    assert len([t for t in call.turns if t.kind == "ask"]) == 2


async def test_reprompt_gives_examples() -> None:
    nav, caller = make(["뭐라고요", None], [speech(0.4) + silence(0.4), key("2")])
    decision, call = await walk(nav, caller)
    assert decision.queue == "cards"
    said = nav.speech.prompts_said  # type: ignore[attr-defined]
    assert any(p.startswith("죄송합니다.") and "카드 분실 신고" in p for p in said)


async def test_missing_model_falls_back_to_keys_and_says_so() -> None:
    nav, caller = make([ModelMissing("ko", "test: no model installed")], [key("2")])
    decision, call = await walk(nav, caller)
    assert (decision.queue, call.intent) == ("cards", "lost_card")
    assert call.turns[0].error is not None and "no model installed" in call.turns[0].error


async def test_recognizer_crash_mid_turn_goes_on_with_keys() -> None:
    nav, caller = make([RuntimeError("kaldi exploded"), None], [speech(0.5) + silence(0.4), key("3")])
    decision, call = await walk(nav, caller)
    assert decision.queue == "loans"
    assert "kaldi exploded" in (call.turns[0].error or "")
    said = nav.speech.prompts_said  # type: ignore[attr-defined]
    assert any(p.startswith("지금은 음성 인식을 사용할 수 없습니다") for p in said)


async def test_hangup_mid_utterance_is_recorded_without_error() -> None:
    nav, caller = make(["계좌"], [speech(0.5)], hang_up_after=True)
    decision, call = await walk(nav, caller)
    assert (decision.kind, decision.reason) == ("hangup", "caller hung up")
    assert call.turns[0].transcript == "계좌"


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


async def test_callback_offer_accepted() -> None:
    nav, caller = make([None, None], [key("6"), key("1")])
    decision, call = await walk(nav, caller)
    assert (decision.kind, decision.queue) == ("callback", "complaints")
    assert call.turns[-1].kind == "offer" and call.turns[-1].intent == "callback"


async def test_callback_offer_declined_holds_in_the_queue() -> None:
    nav, caller = make([None, None], [key("6"), key("2")])
    decision, call = await walk(nav, caller)
    assert (decision.kind, decision.queue) == ("queue", "complaints")


# --- language packs -----------------------------------------------------------------------


class TwoPacks(FakeSpeech):
    """Korean and English packs loaded; each answers from its own script."""

    def __init__(self, by_language: dict[str, list[tuple[str, float]]]) -> None:
        super().__init__([])
        self.by_language = by_language

    def languages_with_packs(self, languages: list[str]) -> list[str]:
        return ["ko", "en"]

    def recognizer(self, language: str, phrases: list[str]) -> Any:
        self.grammars.append(phrases)
        script = self.by_language[language]
        text, confidence = script.pop(0) if script else ("", 0.0)
        return ScriptedRecognizer(text, [(text, confidence)])


async def test_first_utterance_picks_the_most_confident_pack() -> None:
    speech_engine = TwoPacks({"ko": [("카드", 0.3)], "en": [("lost card", 0.95)]})
    nav, caller = make([], [speech(0.6) + silence(0.4)], speech_engine=speech_engine)
    decision, call = await walk(nav, caller)
    assert (call.language, call.language_source) == ("en", "detected")
    assert (decision.queue, call.intent) == ("cards", "lost_card")
    assert any("lost card" in g for g in speech_engine.grammars)  # the English grammar was built too


async def test_stored_preference_skips_detection() -> None:
    speech_engine = TwoPacks({"ko": [("계좌 이체", 0.9)], "en": [("lost card", 0.99)]})
    nav, caller = make([], [speech(0.6) + silence(0.4)], speech_engine=speech_engine)
    call = CallRecord(call_id="call-1", caller="0101", language="ko", language_source="customer")
    decision = await asyncio.wait_for(nav.run(call, caller.session), 20)
    await caller.session.close()
    assert (call.language, decision.queue) == ("ko", "payments")
    assert len(speech_engine.grammars) == 1  # no English recognizer was even built


async def test_an_empty_final_during_a_long_prompt_is_not_no_input(monkeypatch: pytest.MonkeyPatch) -> None:
    # Vosk ends an utterance after long silence with an empty result; the caller's key, pressed
    # after a long prompt, must still count in the same turn.
    monkeypatch.setattr(ScriptedRecognizer, "empty_final_after", 3200)
    nav, caller = make([None, None, None], [silence(1.0) + key("2")])
    decision, call = await walk(nav, caller)
    assert decision.queue == "cards"
    assert len(call.turns) == 1


async def test_a_phrase_too_short_for_the_speech_is_not_routed_on() -> None:
    # 1.2 s of voice recognized as the two-syllable phrase "항의": asked again, then a person;
    # never the complaints queue on such thin evidence.
    nav, caller = make(["항의", None], [speech(1.2) + silence(0.4), b""])
    decision, call = await walk(nav, caller)
    assert decision.queue == "general" and call.intent is None


async def test_a_bigram_artefact_is_confirmed_not_acted_on() -> None:
    class Grammar(FakeSpeech):
        def recognizer(self, language: str, phrases: list[str]) -> Any:
            recognizer = super().recognizer(language, phrases)
            recognizer.grammar_phrases = frozenset({"민원", "비밀번호 변경"})
            return recognizer

    speech_engine = Grammar(["민원 바꾸고 싶어요", "아니요"])
    nav, caller = make([], [speech(1.0) + silence(0.4), speech(0.4) + silence(0.4), b""],
                       speech_engine=speech_engine)
    decision, call = await walk(nav, caller)
    assert [t.kind for t in call.turns][:2] == ["ask", "confirm"]
    assert decision.queue == "general"
