"""The turn logic (ivr.voice.navigator.turns): walking the flow, understanding, confirming, offers, self-service,
the call's language — each call's own, however many calls one navigator serves."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from asr import ModelMissing, Partial, Result
from ivr.records.call import CallRecord, Turn
from ivr.records.customer import Customer
from ivr.telephony.audiosocket import Kind
from ivr.voice.flow import NODE_MODELS, AskNode
from ivr.voice.navigator import DecisionKind, Navigator, exit_to
from ivr.voice.navigator.turns import DECLINED, GOES_ON, UNAVAILABLE
from tests.unit.voice.navigator.fakes import (
    RECORDINGS,
    Caller,
    FakeSpeech,
    ScriptedRecognizer,
    fast_flow,
    frame,
    key,
    make,
    silence,
    speech,
    walk,
)

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


# --- callback offers ------------------------------------------------------------------------


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

    def recognizer(self, language: str, phrases: list[str], sample_rate: int = 8000) -> Any:
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


async def test_a_phrase_too_short_for_the_speech_is_not_routed_on() -> None:
    # 1.2 s of voice recognized as the two-syllable phrase "항의": asked again, then a person;
    # never the complaints queue on such thin evidence.
    nav, caller = make(["항의", None], [speech(1.2) + silence(0.4), b""])
    decision, call = await walk(nav, caller)
    assert decision.queue == "general" and call.intent is None


async def test_a_bigram_artefact_is_confirmed_not_acted_on() -> None:
    class Grammar(FakeSpeech):
        def recognizer(self, language: str, phrases: list[str], sample_rate: int = 8000) -> Any:
            recognizer = super().recognizer(language, phrases)
            recognizer.grammar_phrases = frozenset({"민원", "비밀번호 변경"})
            return recognizer

    speech_engine = Grammar(["민원 바꾸고 싶어요", "아니요"])
    nav, caller = make([], [speech(1.0) + silence(0.4), speech(0.4) + silence(0.4), b""],
                       speech_engine=speech_engine)
    decision, call = await walk(nav, caller)
    assert [t.kind for t in call.turns][:2] == ["ask", "confirm"]
    assert decision.queue == "general"


# --- each call its own: one navigator serves every call at once ---------------------------


def voice(code: int, seconds: float = 0.6) -> bytes:
    """Voiced frames whose every sample is `code`: the fake packs below tell speakers and turns apart by it."""
    return frame(Kind.AUDIO, np.full(160, code, dtype="<i2").tobytes()) * int(seconds / 0.02)


class Ear(ScriptedRecognizer):
    """One language's recognizer: understands the utterances its script names (by their voice), nothing else."""

    def __init__(self, language: str, script: dict[int, str], log: list[tuple[str, int]]) -> None:
        super().__init__(None)
        self.language, self.script, self.log = language, script, log
        self.text = ""

    def feed(self, pcm: bytes) -> Result | Partial | None:
        code = int(np.abs(np.frombuffer(pcm, dtype="<i2")).max())
        if code:
            self.log.append((self.language, code))
            self.text = self.script.get(code, self.text)
        return Partial(self.text) if self.text else None

    def finish(self) -> Result:
        self.answer = self.text
        return self._result() if self.text else Result(text="", confidence=0.0)


class Packs(FakeSpeech):
    """Korean and English packs loaded; each language's recognizers understand their own speakers only."""

    def __init__(self, scripts: dict[str, dict[int, str]]) -> None:
        super().__init__([])
        self.scripts = scripts
        self.fed: list[tuple[str, int]] = []
        """(language of the recognizer, voice it heard), in order."""

    def languages_with_packs(self, languages: list[str]) -> list[str]:
        return ["ko", "en"]

    def recognizer(self, language: str, phrases: list[str], sample_rate: int = 8000) -> Any:
        return Ear(language, self.scripts[language], self.fed)


async def test_a_call_detecting_its_language_leaves_another_call_detecting_its_own() -> None:
    # Two callers of one navigator, their language unknown. A speaks Korean at once; B first presses a key
    # nobody routes, and speaks English only once A's first words made A Korean. B's words are still heard
    # by both packs: A's language was A's, not the navigator's.
    a_first, b_second = 1101, 1202
    packs = Packs({"ko": {a_first: "카드 분실 신고"}, "en": {b_second: "lost card"}})
    a = Caller([voice(a_first) + silence(0.4)], call_id="a")
    b = Caller([key("9"), voice(b_second) + silence(0.4)], call_id="b")
    callers = {"a": a, "b": b}
    a_decided = asyncio.Event()

    async def on_listen(call: CallRecord, node: str, prompt_s: float) -> None:
        await callers[call.call_id].on_listen(call, node, prompt_s)

    async def on_turn(call: CallRecord, turn: Turn) -> None:
        if call.call_id == "a":
            a_decided.set()
        elif len(call.turns) == 1:
            await a_decided.wait()  # B is asked again only once A's language is decided

    nav = Navigator(fast_flow(), packs, RECORDINGS, on_listen=on_listen, on_turn=on_turn)
    (a_decision, a_call), (b_decision, b_call) = await asyncio.gather(walk(nav, a), walk(nav, b))
    assert (a_call.language, a_call.language_source, a_decision.queue) == ("ko", "detected", "cards")
    assert (b_call.language, b_call.language_source) == ("en", "detected")
    assert (b_decision.queue, b_call.intent) == ("cards", "lost_card")
    assert ("en", b_second) in packs.fed


async def test_a_call_that_knows_its_language_is_not_detected_again_when_another_call_starts() -> None:
    # A speaks English (detected), is asked again, and answers only after B's call started: A's second words go
    # to the English pack alone.
    a_first, a_second, b_first = 1201, 1202, 1101
    packs = Packs({"ko": {b_first: "계좌 이체"}, "en": {a_first: "good morning", a_second: "lost card"}})
    a = Caller([voice(a_first) + silence(0.4), voice(a_second) + silence(0.4)], call_id="a")
    b = Caller([voice(b_first) + silence(0.4)], call_id="b")
    callers = {"a": a, "b": b}
    b_listening = asyncio.Event()
    b_walk: list[asyncio.Task[Any]] = []

    async def on_listen(call: CallRecord, node: str, prompt_s: float) -> None:
        if call.call_id == "b":
            b_listening.set()
        await callers[call.call_id].on_listen(call, node, prompt_s)

    async def on_turn(call: CallRecord, turn: Turn) -> None:
        if call.call_id == "a" and len(call.turns) == 1:
            b_walk.append(asyncio.create_task(walk(nav, b)))  # B calls in between A's turns
            await b_listening.wait()

    nav = Navigator(fast_flow(), packs, RECORDINGS, on_listen=on_listen, on_turn=on_turn)
    a_decision, a_call = await walk(nav, a)
    b_decision, b_call = await b_walk[0]
    assert (a_call.language, a_decision.queue, a_call.intent) == ("en", "cards", "lost_card")
    assert [t.transcript for t in a_call.turns] == ["good morning", "lost card"]
    assert ("en", a_second) in packs.fed and ("ko", a_second) not in packs.fed
    assert (b_call.language, b_decision.queue) == ("ko", "payments")


# --- the flow's exits ---------------------------------------------------------------------


def test_the_navigator_takes_the_exits_the_flow_models_declare() -> None:
    # What takes a call along an exit, as the models label it (the validator and the diagram read the same).
    labels = {kind: set(model.exit_fields.values()) for kind, model in NODE_MODELS.items()}
    assert GOES_ON in labels["say"] and {GOES_ON, UNAVAILABLE} <= labels["self_service"]
    assert DECLINED in labels["callback_offer"]
    flow = fast_flow()
    assert exit_to(flow.nodes["balance"], GOES_ON) == "after_balance"
    assert exit_to(flow.nodes["balance"], UNAVAILABLE) == "to_general"
    assert exit_to(flow.nodes["complaint_callback"], DECLINED) == "to_complaints"
    menu = flow.nodes["main_menu"]
    assert isinstance(menu, AskNode)
    assert all(exit_to(menu, intent) == target for intent, target in menu.routes.items())
    assert exit_to(menu, "no_such_intent") is None and exit_to(flow.nodes["to_cards"], GOES_ON) is None


async def test_a_broken_audio_line_sends_the_caller_to_a_person_not_away() -> None:
    # An oversized frame from Asterisk ends the session with a protocol error mid-call: the caller did not
    # hang up and may still be on the line, so the call goes to a person, with the reason on the record.
    nav, caller = make([], [speech(0.3) + b"\x10\xff\xff"])
    decision, call = await walk(nav, caller)
    assert (decision.kind, decision.queue, decision.caller_left) == (DecisionKind.QUEUE, "general", False)
    assert decision.line_failed  # the controller tells a broken line from a hang-up by the channel's state
    assert any(note.startswith("the audio line failed (protocol error: frame of kind 0x10 declares 65535 bytes")
               for note in call.notes)


async def test_a_caller_who_hangs_up_is_not_sent_to_a_person() -> None:
    nav, caller = make([], [speech(0.3)], hang_up_after=True)
    decision, _ = await walk(nav, caller)
    assert decision.kind is DecisionKind.HANGUP and decision.caller_left and not decision.line_failed
