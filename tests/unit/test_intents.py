"""Intent matching: spacing-insensitive containment, best coverage wins, confidence scales."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.intents import Match, compact, match_dtmf, match_intent

KO = {
    "balance": ["잔액 조회", "잔액 확인"],
    "lost_card": ["카드 분실 신고", "카드 분실"],
    "agent": ["상담원 연결", "상담원"],
}


def test_compact_lowercases_and_drops_all_whitespace() -> None:
    assert compact("  Lost \t CARD\n now ") == "lostcardnow"
    assert compact("잔액 조회") == "잔액조회"
    assert compact("") == ""


@pytest.mark.parametrize("said", ["잔액조회", "잔 액 조 회", "  잔액   조회  "])
def test_spacing_differences_still_match(said: str) -> None:
    assert match_intent(said, 1.0, KO) == Match("balance", 1.0, "잔액 조회")


def test_case_insensitive() -> None:
    match = match_intent("LOST CARD", 0.8, {"lost_card": ["lost card"]})
    assert match == Match("lost_card", 0.8, "lost card")


def test_most_covering_phrase_wins_across_phrases() -> None:
    # "카드분실신고해주세요" is 10 characters; "카드 분실 신고" explains 6, "카드 분실" only 4.
    match = match_intent("카드 분실 신고 해주세요", 1.0, KO)
    assert match == Match("lost_card", 0.8, "카드 분실 신고")


def test_most_covering_phrase_wins_across_intents() -> None:
    phrases = {"agent": ["agent"], "lost_card": ["lost card"], "card": ["card"]}
    # "lostcardagent" (13): "lostcard" covers 8 -> 0.5 + 0.5 * 8/13
    match = match_intent("lost card agent", 1.0, phrases)
    assert match == Match("lost_card", round(0.5 + 0.5 * 8 / 13, 3), "lost card")
    assert match is not None and match.score == 0.808


def test_confidence_scales_score() -> None:
    assert match_intent("상담원", 0.5, KO) == Match("agent", 0.5, "상담원")
    partial = match_intent("상담원 부탁해요", 0.9, KO)  # "상담원부탁해요": 3 of 7
    assert partial == Match("agent", round(0.9 * (0.5 + 0.5 * 3 / 7), 3), "상담원")
    assert partial is not None and partial.score == 0.643


def test_tie_keeps_first_intent() -> None:
    assert match_intent("ab", 1.0, {"first": ["a"], "second": ["b"]}) == Match("first", 0.75, "a")


@pytest.mark.parametrize("said", ["", "   ", "\n\t"])
def test_empty_transcript_is_none(said: str) -> None:
    assert match_intent(said, 1.0, KO) is None


def test_no_phrase_contained_is_none() -> None:
    assert match_intent("날씨 알려줘", 1.0, KO) is None


def test_empty_phrases_never_match() -> None:
    assert match_intent("anything", 1.0, {"blank": ["", "  "], "none": []}) is None


@given(
    said=st.text(min_size=1, max_size=30),
    confidence=st.floats(0, 1),
    phrases=st.lists(st.text(max_size=10), max_size=5),
)
def test_score_bounded_by_confidence(said: str, confidence: float, phrases: list[str]) -> None:
    match = match_intent(said, confidence, {"x": phrases})
    if match is not None:
        assert 0 <= match.score <= round(confidence, 3) + 0.0005
        assert compact(match.phrase) in compact(said)


def test_match_dtmf() -> None:
    keys = {"balance": "1", "lost_card": "2", "silent": None, "agent": "0"}
    assert match_dtmf("2", keys) == "lost_card"
    assert match_dtmf("0", keys) == "agent"
    assert match_dtmf("9", keys) is None
    assert match_dtmf("", keys) is None
