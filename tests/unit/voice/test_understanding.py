"""Intent understanding: pure functions, exact values."""

from __future__ import annotations

import pytest

from ivr.voice.understanding import (
    Action,
    Hypothesis,
    IntentPhrases,
    Thresholds,
    TurnContext,
    compact,
    content_words,
    phrase_similarity,
    score_intents,
    split_negation,
    stem,
    understand,
    yes_or_no,
)

INTENTS = [
    IntentPhrases("lost_card", ("카드 분실 신고", "카드 분실", "카드를 잃어버렸어요"),
                  (("gyeongsang", "카드 잃어뿟어요"),)),
    IntentPhrases("loan", ("대출 상담", "대출")),
    IntentPhrases("agent", ("상담원 연결", "상담원")),
    IntentPhrases("transfer", ("계좌 이체", "이체 오류")),
]


def one(text: str) -> list[Hypothesis]:
    return [Hypothesis(text, 1.0)]


@pytest.mark.parametrize(("word", "stemmed"), [("카드를", "카드"), ("대출이요", "대출"), ("카드요", "카드"),
                                               ("이체", "이체"), ("잃어버렸어요", "잃어버렸어"), ("네", "네")])
def test_stem(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_compact_and_content_words() -> None:
    assert compact(" 카드 분실, 신고! ") == "카드분실신고"
    assert content_words("음 카드를 좀 잃어버렸어요") == ["카드", "잃어버렸어"]


def test_split_negation() -> None:
    assert split_negation("아니요, 대출이요") == (True, "대출이요")
    assert split_negation("no loan please") == (True, "loan please")
    assert split_negation("대출이요") == (False, "대출이요")


def test_phrase_similarity_bands() -> None:
    assert phrase_similarity("카드 분실", "카드분실 신고요") == 1.0  # spacing ignored, whole phrase inside
    assert phrase_similarity("카드를 잃어버렸어요", "카드요 잃어버렸어요") == 0.9  # particles differ
    assert phrase_similarity("카드 분실", "카드요") == 0.45  # half the phrase: the confirm band
    assert phrase_similarity("상담원", "대출 상담") < 0.6  # a fragment of another word does not act
    assert phrase_similarity("상담원", "") == 0.0


def test_score_weights_n_best() -> None:
    ranked = score_intents([Hypothesis("계좌 이체", 0.6), Hypothesis("대출 상담", 0.4)], INTENTS)
    assert [(s.intent, s.score) for s in ranked[:2]] == [("transfer", 0.6), ("loan", 0.4)]


def test_confidence_scales_scores() -> None:
    assert score_intents(one("대출 상담"), INTENTS, confidence=0.5)[0].score == 0.5


def test_variant_names_its_dialect() -> None:
    best = score_intents(one("카드 잃어뿟어요"), INTENTS)[0]
    assert (best.intent, best.dialect, best.phrase) == ("lost_card", "gyeongsang", "카드 잃어뿟어요")


def test_bands_act_confirm_reprompt() -> None:
    assert understand(one("카드 분실 신고"), INTENTS, TurnContext()).action is Action.ACT
    assert understand(one("카드요"), INTENTS, TurnContext()).action is Action.CONFIRM
    assert understand(one("날씨가 좋네요"), INTENTS, TurnContext()).action is Action.REPROMPT
    assert understand([], INTENTS, TurnContext()).action is Action.REPROMPT


def test_close_runner_up_is_confirmed_not_acted_on() -> None:
    # Both intents fully named: the caller must say which.
    decision = understand([Hypothesis("대출 상담", 0.5), Hypothesis("계좌 이체", 0.5)], INTENTS, TurnContext())
    assert decision.action is Action.CONFIRM


def test_thresholds_are_configurable() -> None:
    strict = Thresholds(act=0.95, confirm=0.5, margin=0.1)
    assert understand(one("카드를 잃어버렸어요 요"), INTENTS, TurnContext(), thresholds=strict).action is Action.ACT
    assert understand(one("카드요"), INTENTS, TurnContext(), thresholds=strict).action is Action.REPROMPT


def test_context_joins_unresolved_words() -> None:
    context = TurnContext()
    first = understand(one("카드요"), INTENTS, context)
    assert first.action is not Action.ACT and context.pending == ["카드요"]
    second = understand(one("잃어버렸어요"), INTENTS, context)
    assert (second.action, second.best.intent, second.best.used_context) == (Action.ACT, "lost_card", True)
    assert context.pending == []


def test_correction_drops_context_and_takes_the_new_intent() -> None:
    context = TurnContext(pending=["카드요"])
    decision = understand(one("아니요 대출이요"), INTENTS, context)
    assert (decision.action, decision.best.intent, decision.correction) == (Action.ACT, "loan", True)
    assert context.pending == []


YES = {"ko": ["네", "예", "맞아요"], "en": ["yes"]}
NO = {"ko": ["아니요", "아뇨"], "en": ["no"]}


@pytest.mark.parametrize(("text", "dtmf", "answer"), [
    ("네", "", True), ("네 맞아요", "", True), ("예", "", True), ("아니요", "", False), ("아니요 대출이요", "", False),
    ("", "1", True), ("", "2", False), ("", "5", None), ("대출", "", None), ("", "", None),
])
def test_yes_or_no(text: str, dtmf: str, answer: bool | None) -> None:
    assert yes_or_no(text, dtmf, YES, NO, "ko") is answer


def test_spoken_units() -> None:
    from ivr.voice.understanding import spoken_units

    assert spoken_units("대출 상담") == 4
    assert spoken_units("lost card") == 2
    assert spoken_units("") == 0


def test_acoustic_support_flags_text_too_short_for_the_voice() -> None:
    from ivr.voice.understanding import acoustic_support

    # 1.22 s of "대출 상담" recognized as the two-syllable "항의": weak evidence.
    assert acoustic_support("항의", 1.22, "ko") < 0.3
    # A recognition that accounts for the voice keeps full trust.
    assert acoustic_support("계좌 이체", 0.94, "ko") == 1.0
    assert acoustic_support("상담원 연결", 1.42, "ko") > 0.9
    assert acoustic_support("항의", None, "ko") == 1.0  # unknown duration: no judgement


def test_only_an_exact_grammar_phrase_is_acted_on() -> None:
    grammar = {"민원", "민원 접수", "계좌 이체", "아니요", "대출"}.__contains__
    artefact = understand(one("민원 접수 변경"), [*INTENTS, IntentPhrases("complaint", ("민원 접수", "민원"))],
                          TurnContext(), is_phrase=grammar)
    assert artefact.action is Action.CONFIRM
    exact = understand(one("계좌 이체"), INTENTS, TurnContext(), is_phrase=grammar)
    assert exact.action is Action.ACT
    # a correction is judged on what follows the no
    correction = understand(one("아니요 대출"), INTENTS, TurnContext(), is_phrase=grammar)
    assert (correction.action, correction.best.intent) == (Action.ACT, "loan")
