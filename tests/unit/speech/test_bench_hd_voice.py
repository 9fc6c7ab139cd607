"""The HD voice benchmark's pure parts: the telephone band, what the caller answers, and how a call is judged."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from bench.hd_voice import (
    MENU,
    NARROWBAND,
    WIDEBAND,
    Target,
    Verdict,
    add_noise,
    answer_for,
    classify,
    menu_targets,
    rate_table,
    tally,
    telephone_band,
    verdict_line,
)
from ivr.config import PROJECT_DIR
from ivr.voice.flow import load_flow

SOURCE_RATE = 22050  # espeak-ng's
TARGETS = [
    Target("balance", "잔액 조회", None, "balance"),
    Target("lost_card", "카드 분실 신고", "cards"),
    Target("loan", "대출 상담", "loans"),
    Target("password", "비밀번호 변경", "general"),
    Target("agent", "상담원 연결", "general"),
]
BY_INTENT = {t.intent: t for t in TARGETS}


# --- the telephone band ------------------------------------------------------------------------------------------


def tone(hz: float, seconds: float = 1.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(SOURCE_RATE * seconds)) / SOURCE_RATE
    return (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2")


def gain_db(out: npt.NDArray[np.int16], source: npt.NDArray[np.int16]) -> float:
    """Level of `out` against `source`, edges left out (the filters' start-up)."""
    def rms(x: npt.NDArray[Any], rate: int) -> float:
        edge = rate // 20
        return float(np.sqrt(np.mean(x.astype(np.float64)[edge:-edge] ** 2)))

    return 20 * np.log10(max(rms(out, NARROWBAND), 1e-9) / rms(source, SOURCE_RATE))


def band_db(pcm: npt.NDArray[Any], rate: int, low: float, high: float) -> float:
    """Mean power density between `low` and `high` Hz, in dB."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    return float(10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].mean()))


def test_the_telephone_band_is_8_khz_of_the_same_length() -> None:
    out = telephone_band(tone(1000, 2.5), SOURCE_RATE)
    assert out.dtype == np.dtype("<i2")
    assert out.size == pytest.approx(2.5 * NARROWBAND, abs=2)


@pytest.mark.parametrize("hz", [500, 1000, 2500])
def test_speech_frequencies_pass(hz: int) -> None:
    assert abs(gain_db(telephone_band(tone(hz), SOURCE_RATE), tone(hz))) < 0.5


@pytest.mark.parametrize("hz", [100, 150])
def test_what_is_below_300_hz_is_removed(hz: int) -> None:
    assert gain_db(telephone_band(tone(hz), SOURCE_RATE), tone(hz)) < -40


def test_what_is_above_3_4_khz_is_removed() -> None:
    assert gain_db(telephone_band(tone(3900), SOURCE_RATE), tone(3900)) < -40
    noise = np.random.default_rng(0).normal(0, 4000, SOURCE_RATE * 2).astype("<i2")
    line = telephone_band(noise, SOURCE_RATE)
    # White noise in: the band's edges are far below its middle, which a plain resampling to 8 kHz is not.
    assert band_db(line, NARROWBAND, 500, 3000) - band_db(line, NARROWBAND, 3500, 4000) > 12
    assert band_db(line, NARROWBAND, 500, 3000) - band_db(line, NARROWBAND, 20, 250) > 20
    plain = soxr.resample(noise, SOURCE_RATE, NARROWBAND)
    assert band_db(plain, NARROWBAND, 500, 3000) - band_db(plain, NARROWBAND, 3500, 4000) < 6


def test_noise_is_seeded_and_at_the_asked_level() -> None:
    speech = tone(800)
    a, b, c = add_noise(speech, 20, seed=3), add_noise(speech, 20, seed=3), add_noise(speech, 20, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    noise = a.astype(np.float64) - speech
    snr = 20 * np.log10(np.sqrt(np.mean(speech.astype(np.float64) ** 2)) / np.sqrt(np.mean(noise**2)))
    assert snr == pytest.approx(20, abs=0.3)


# --- the phrases and their places, from the demo flow ---------------------------------------------------------------


def test_every_routed_intent_of_the_demo_menu_has_a_phrase_and_a_place() -> None:
    flow = load_flow(PROJECT_DIR / "dialplans" / "hotline.yaml")
    targets = {t.intent: t for t in menu_targets(flow)}
    # Key-only intents (card activation: no phrases, so the menu's grammar is unchanged) have nothing to say.
    spoken = {i for i in flow.nodes[MENU].routes  # type: ignore[union-attr]
              if flow.intents[i].phrases.get("ko") or flow.intents[i].examples.get("ko")}
    assert set(targets) == spoken and "card_activation" not in spoken
    assert targets["agent"] == Target("agent", "상담원 연결", "general")  # a person, by design
    assert targets["balance"] == Target("balance", "잔액 조회", None, "balance")
    assert targets["lost_card"].queue == "cards" and targets["loan"].queue == "loans"
    assert targets["complaint"].queue == "complaints"  # after the callback offer
    assert targets["password"].queue == "general"


# --- what the caller answers ------------------------------------------------------------------------------------------


def ask(intent: str | None, score: float, node: str = MENU, kind: str = "ask", dtmf: str = "") -> dict[str, Any]:
    return {"node": node, "kind": kind, "intent": intent, "score": score, "dtmf": dtmf, "transcript": ""}


CONFIRMABLE = ("balance", "lost_card", "loan", "password", "agent")


@pytest.mark.parametrize(("turns", "expected"), [
    ([], "phrase"),
    ([ask("loan", 0.45)], "yes"),  # "대출 상담을 원하십니까?" to a loan caller
    ([ask("lost_card", 0.45)], "no"),  # ... about something else
    ([ask("loan", 0.1)], "person"),  # below the confirm threshold: asked again
    ([ask(None, 0.0)], "person"),
    ([ask("lost_card", 0.45), ask(None, 0.0, kind="confirm")], "person"),  # declined, asked again
    ([ask("complaint", 0.9)], "person"),  # no confirm question for it here: asked again
])
def test_the_caller_answers_what_was_asked(turns: list[dict[str, Any]], expected: str) -> None:
    assert answer_for(MENU, turns, "loan", 0.3, CONFIRMABLE) == expected


def test_always_yes_says_yes_to_any_confirmation() -> None:
    assert answer_for(MENU, [ask("lost_card", 0.45)], "loan", 0.3, CONFIRMABLE, always_yes=True) == "yes"


def test_other_questions_get_keys() -> None:
    assert answer_for("after_balance", [ask("balance", 1.0)], "balance", 0.3, CONFIRMABLE) == "keys"
    assert answer_for("complaint_callback", [ask("complaint", 1.0)], "complaint", 0.3, CONFIRMABLE) == "keys"


# --- how a call is judged -------------------------------------------------------------------------------------------


def record(intent: str | None, queue: str | None, path: list[str], turns: list[dict[str, Any]] | None = None,
           transcript: str = "", self_served: bool = False, outcome: str = "queued") -> dict[str, Any]:
    turns = turns if turns is not None else [ask(intent, 0.9)]
    if turns:
        turns[0] = {**turns[0], "transcript": transcript}
    return {"intent": intent, "queue": queue, "path": path, "turns": turns, "self_served": self_served,
            "outcome": outcome}


def judge(wanted: str, rec: dict[str, Any]) -> Verdict:
    return classify(rec, BY_INTENT[wanted], TARGETS, "general")


def test_reaching_the_intents_queue_with_the_intent_is_routed_right() -> None:
    v = judge("lost_card", record("lost_card", "cards", [MENU, "to_cards"], transcript="카드  분실 신고"))
    assert v == Verdict("routed_right", exact=True, heard_intent=True, confirmed=False, reached="queue:cards")


def test_a_confirmed_route_is_right_and_confirmed() -> None:
    turns = [ask("loan", 0.45), ask("loan", 1.0, kind="confirm")]
    v = judge("loan", record("loan", "loans", [MENU, "to_loans"], turns, transcript="잔고 상담"))
    assert (v.outcome, v.exact, v.heard_intent, v.confirmed) == ("routed_right", False, True, True)


def test_another_intents_queue_is_a_misroute() -> None:
    assert judge("lost_card", record("loan", "loans", [MENU, "to_loans"])).outcome == "misrouted"
    # the general queue is not another intent's place, even when a general-queue intent was heard
    assert judge("lost_card", record("password", "general", [MENU, "to_general"])).outcome == "to_person"


def test_a_self_service_answer_the_caller_did_not_ask_for_is_a_misroute() -> None:
    rec = record("balance", "general", [MENU, "balance", "after_balance"], self_served=True)
    assert judge("loan", rec).outcome == "misrouted"
    assert judge("loan", rec).reached == "self_service:balance"


def test_the_balance_heard_is_routed_right_whatever_follows() -> None:
    done = record("finish", None, [MENU, "balance", "after_balance", "goodbye"], self_served=True,
                  outcome="self_service")  # "that is all" (9) after the balance: the call's intent is finish
    assert judge("balance", done).outcome == "routed_right"
    then_a_person = record("balance", "general", [MENU, "balance", "after_balance"], self_served=True)
    assert judge("balance", then_a_person).outcome == "routed_right"
    unknown_caller = record("balance", "general", [MENU, "balance", "to_general"], self_served=False)
    assert judge("balance", unknown_caller).outcome == "to_person"


def test_not_understood_ends_with_a_person() -> None:
    turns = [ask(None, 0.0), ask(None, 0.0, dtmf="0")]
    v = judge("loan", record("agent", "general", [MENU], turns))
    assert (v.outcome, v.reached) == ("to_person", "queue:general")


def test_general_queue_intents_need_their_intent() -> None:
    assert judge("agent", record("agent", "general", [MENU])).outcome == "routed_right"
    assert judge("password", record("password", "general", [MENU, "to_general"])).outcome == "routed_right"
    assert judge("password", record("agent", "general", [MENU])).outcome == "to_person"
    assert judge("agent", record("password", "general", [MENU, "to_general"])).outcome == "to_person"


def test_a_person_reached_by_key_is_not_a_spoken_route() -> None:
    # "상담원 연결" misheard, then 0: the general queue with the intent agent, but not by what was said
    turns = [ask(None, 0.0), ask("agent", 1.0, dtmf="0")]
    assert judge("agent", record("agent", "general", [MENU], turns)).outcome == "to_person"


def test_no_queue_at_all_is_lost() -> None:
    assert judge("loan", record(None, None, [MENU], [], outcome="error")).outcome == "lost"


# --- the table and the target ---------------------------------------------------------------------------------------


def verdicts(right: int, misrouted: int = 0, to_person: int = 0) -> list[Verdict]:
    return ([Verdict("routed_right", True, True, False, "queue:cards")] * right
            + [Verdict("misrouted", False, False, True, "queue:loans")] * misrouted
            + [Verdict("to_person", False, False, False, "queue:general")] * to_person)


def test_tally_counts_each_outcome() -> None:
    counts = tally(verdicts(3, 1, 2))
    assert counts["calls"] == 6 and counts["routed_right"] == 3 and counts["misrouted"] == 1
    assert counts["to_person"] == 2 and counts["confirmed"] == 1 and counts["exact_right"] == 3
    assert {"calls", "routed_right", "confirmed", "misrouted", "to_person"} <= set(counts)


@pytest.mark.parametrize(("narrow", "wide", "met"), [
    (verdicts(5, to_person=43), verdicts(10, to_person=38), True),
    (verdicts(5, to_person=43), verdicts(9, to_person=39), False),  # not twice as many
    (verdicts(5, to_person=43), verdicts(12, 1, 35), False),  # a misroute
    (verdicts(5, 1, 42), verdicts(12, to_person=36), False),  # a misroute at 8 kHz too
    (verdicts(0, to_person=48), verdicts(0, to_person=48), False),  # nothing right is no gain
    (verdicts(0, to_person=48), verdicts(3, to_person=45), True),
])
def test_the_target_is_twice_the_right_routes_and_no_misroute(narrow: list[Verdict], wide: list[Verdict],
                                                              met: bool) -> None:
    by_rate = {str(NARROWBAND): tally(narrow), str(WIDEBAND): tally(wide)}
    ok, sentence = verdict_line(by_rate)
    assert ok is met
    assert sentence.startswith("target MET" if met else "target NOT MET")


def test_the_table_has_a_column_per_rate() -> None:
    by_rate = {str(NARROWBAND): {**tally(verdicts(2, to_person=3)), "heard_at_arm_rate": 5},
               str(WIDEBAND): {**tally(verdicts(4, to_person=1)), "heard_at_arm_rate": 5}}
    lines = rate_table(by_rate).splitlines()
    assert "8 kHz" in lines[0] and "16 kHz" in lines[0]
    assert next(line for line in lines if line.startswith("routed right")).split()[-2:] == ["2", "4"]
