"""Suggestions from what was heard: vocabulary, out-of-vocabulary words named, the diff, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ivr.voice.flow import parse_flow
from ivr.voice.training.suggest import HeardTurn, SuggestionError, SuggestionKind, suggest
from ivr.voice.training.vocabulary import Vocabulary, jamo

FLOW = (Path(__file__).resolve().parents[4] / "dialplans" / "hotline.yaml").read_text(encoding="utf-8")
# A small vocabulary: the hotline's words plus what the model hears for these callers, minus a few on purpose.
WORDS = set(re.findall(r"\w+", FLOW)) - {"잃어뿟어요", "알려주랑께", "잃어버렸어요"}
VOCABULARY = Vocabulary(WORDS | {"해도", "게요", "와", "유언", "잃어버렸", "알려주"}, "ko")


def heard(*texts: str) -> list[HeardTurn]:
    return [HeardTurn(heard_freely=t) for t in texts]


def test_the_phrase_most_callers_were_heard_as_becomes_a_phrase_of_the_intent():
    s = suggest(FLOW, intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY,
                turns=heard("와 유언", "와 유언", "해도 게요"))
    assert (s.kind, s.phrase, s.source, s.support, s.turns) == (SuggestionKind.PHRASE, "와 유언", "heard_freely",
                                                                 0.667, 3)
    assert s.oov == ()
    added = [line for line in s.diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in s.diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert added == ["+      ko: [계좌 이체, 송금, 착오 송금, 이체 취소, 와 유언]"]
    assert removed == ["-      ko: [계좌 이체, 송금, 착오 송금, 이체 취소]"]
    assert "와 유언" in parse_flow(s.text).intents["transfer"].phrases["ko"]
    assert "# The demo bank hotline." in s.text  # comments survive the edit


def test_a_dialect_on_the_label_makes_a_variant():
    s = suggest(FLOW, intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY, dialect="jeolla",
                turns=heard("해도 게요"))
    assert (s.kind, s.dialect) == (SuggestionKind.VARIANT, "jeolla")
    variants = parse_flow(s.text).intents["transfer"].variants
    assert [(v.dialect, v.phrase) for v in variants] == [("jeolla", "해도 게요")]
    assert "+    variants:\n+      - {language: ko, dialect: jeolla, phrase: 해도 게요}\n" in s.diff


def test_without_free_hearing_the_nbest_votes_and_other_intents_phrases_are_skipped():
    turns = [HeardTurn("민원", (("민원", 0.6), ("해도", 0.4))), HeardTurn("민원", (("민원", 0.7), ("해도", 0.3)))]
    s = suggest(FLOW, intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY, turns=turns)
    assert (s.phrase, s.source) == ("해도", "nbest")
    assert any("'민원'" in note and "complaint" in note for note in s.notes)


def test_out_of_vocabulary_words_are_named_with_the_closest_known_spelling_and_respelled():
    s = suggest(FLOW, intent="lost_card", node="main_menu", language="ko", vocabulary=VOCABULARY,
                turns=[], phrase="카드 잃어버렸어요 흑흑")
    assert [(o.word, o.closest) for o in s.oov] == [("잃어버렸어요", "잃어버렸"), ("흑흑", None)]
    assert s.phrase == "카드 잃어버렸" and s.heard == "카드 잃어버렸어요 흑흑"
    assert all(word in VOCABULARY for word in s.phrase.split())


def test_closeness_is_measured_on_jamo():
    assert jamo("했") != "했" and len(jamo("했")) == 3
    vocabulary = Vocabulary({"했어요", "가세요"})
    assert vocabulary.spelling("햇어요").closest == "했어요"
    assert vocabulary.spelling("했어요").similarity == 1.0


def test_a_phrase_entirely_out_of_vocabulary_is_refused_with_a_message():
    with pytest.raises(SuggestionError) as refused:
        suggest(FLOW, intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY, turns=[],
                phrase="잃어뿟어요 알려주랑께")
    assert refused.value.field == "phrase"
    assert "every word of '잃어뿟어요 알려주랑께' is out of the ko model's vocabulary" in str(refused.value)
    assert "'알려주랑께' (closest known spelling: '알려주')" in str(refused.value)


def test_a_label_the_flow_does_not_have_is_refused_naming_the_label():
    with pytest.raises(SuggestionError) as refused:
        suggest(FLOW, intent="currency", node="main_menu", language="ko", vocabulary=VOCABULARY,
                turns=heard("와 유언"))
    assert refused.value.field == "label" and "'currency' is not an intent of flow 'hotline'" in str(refused.value)
    with pytest.raises(SuggestionError) as elsewhere:
        suggest(FLOW, intent="loan", node="after_balance", language="ko", vocabulary=VOCABULARY, turns=heard("와"))
    assert elsewhere.value.field == "label" and "does not listen for intent 'loan'" in str(elsewhere.value)


def test_a_phrase_another_intent_has_is_refused():
    with pytest.raises(SuggestionError) as refused:
        suggest(FLOW, intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY, turns=[],
                phrase="민원 접수")
    assert refused.value.field == "phrase" and "intent 'complaint'" in str(refused.value)


def test_callers_heard_as_the_intents_own_phrase_get_an_example_change():
    s = suggest(FLOW, intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY,
                turns=heard("송금", "송금"))
    assert (s.kind, s.phrase) == (SuggestionKind.EXAMPLE, "송금")
    assert parse_flow(s.text).intents["transfer"].examples["ko"] == "송금"


def test_nothing_heard_is_a_clear_message():
    with pytest.raises(SuggestionError) as refused:
        suggest(FLOW, intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY,
                turns=[HeardTurn(""), HeardTurn("")])
    assert refused.value.field == "turns" and "nothing was heard" in str(refused.value)
    with pytest.raises(SuggestionError):
        suggest("id: [", intent="transfer", node="main_menu", language="ko", vocabulary=VOCABULARY, turns=[])


def test_a_models_special_tokens_are_never_offered_as_a_spelling() -> None:
    """"2419" is as close to the token "[41]" as to nothing: the token is no word a caller says."""
    from ivr.voice.training.vocabulary import Vocabulary

    vocabulary = Vocabulary(["[41]", "<unk>", "시험", "트레이너"], "ko")
    assert vocabulary.spelling("2419").closest is None
    assert vocabulary.spelling("<unc>").closest is None
    assert vocabulary.spelling("시엄").closest == "시험"
