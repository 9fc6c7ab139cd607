"""A call's agent words against its checklist: phrases said or missing whatever the spacing, forbidden phrases at
their moment, the score, and flags the /qa timeline accepts."""

from __future__ import annotations

from ivr.recordings.quality.checklist import parse_checklist
from ivr.recordings.quality.checks import TimedWord, check_call, find
from ivr.recordings.timeline import parse_flags

CHECKLIST = parse_checklist("""\
pass_score: 80
every_queue:
  - {id: greeting, kind: greeting, text: 첫인사, phrases: [안녕하세요], within_s: 10}
  - {id: identity, kind: identity_check, text: 본인 확인, phrases: [생년월일, 본인 확인]}
  - id: promises
    kind: forbidden
    text: 과장 권유
    phrases: [원금 보장, 무조건 수익, guaranteed return, no risk, {re: "원금\\\\s*(이|은)?\\\\s*보장"}]
queues:
  general:
    - {id: risk, kind: disclosure, text: 투자 위험 고지, phrases: [원금 손실]}
""")


def words(text: str, start: float = 30.0, step: float = 0.5) -> list[TimedWord]:
    """Words said one after another from ``start`` (seconds into the call)."""
    return [TimedWord(w, start + i * step, start + i * step + 0.4) for i, w in enumerate(text.split())]


def phrase(text: str):  # type: ignore[no-untyped-def]
    for item in CHECKLIST.every_queue + CHECKLIST.queues["general"]:
        for p in item.phrases:
            if p.text == text:
                return p
    raise KeyError(text)


def test_a_korean_phrase_is_found_whatever_the_spacing_and_the_ending() -> None:
    for said in ("이 상품은 원금 보장 됩니다", "이 상품은 원금보장 됩니다", "이 상품은 원 금보장이 됩니다",
                 "이 상품은 원금 보장이 됩니다"):
        hits = find(phrase("원금 보장"), words(said))
        assert [h.at_s for h in hits] == [31.0], said
    assert find(phrase("원금 보장"), words("이 상품은 원금 손실 가능성이 있어 보장 안 됩니다")) == []
    # Starts at a word's start: "무원금보장" is another word.
    assert find(phrase("원금 보장"), words("무원금보장")) == []


def test_a_latin_phrase_must_end_at_a_word_end_and_case_does_not_matter() -> None:
    assert [h.heard for h in find(phrase("no risk"), words("there is No Risk at all"))] == ["No Risk"]
    assert find(phrase("no risk"), words("a no risky thing")) == []
    assert [h.at_s for h in find(phrase("guaranteed return"), words("a guaranteedreturn"))] == [30.5]


def test_a_pattern_is_searched_over_the_words_and_points_at_its_first_word() -> None:
    hits = find(phrase("원금\\s*(이|은)?\\s*보장"), words("네 원금 은 보장 되고요 원금이 보장"))
    assert [(h.at_s, h.heard) for h in hits] == [(30.5, "원금 은 보장"), (32.5, "원금이 보장")]


def test_a_good_call_passes_with_100() -> None:
    said = words("안녕하세요 고객님 본인 확인 위해 생년월일 부탁드립니다 이 상품은 원금 손실 가능성이 있습니다")
    result = check_call(CHECKLIST.items_for("general"), said, agent_from_s=29.0, pass_score=80)
    assert (result.score, result.flagged, result.findings) == (100, False, ())
    assert set(result.passed) == {"greeting", "identity", "promises", "risk"}


def test_a_forbidden_phrase_is_flagged_at_the_moment_it_was_said() -> None:
    said = words("안녕하세요 생년월일 확인했습니다 원금 손실 없고 원금 보장 됩니다 무조건 수익 나요", start=40.0)
    result = check_call(CHECKLIST.items_for("general"), said, agent_from_s=39.0)
    assert result.flagged and result.score == 50  # the item's weight, once however often it was said
    # One flag per moment (the phrase and the pattern both match at 43.0).
    assert [(f.item, f.kind, f.at_s) for f in result.findings] == [
        ("promises", "forbidden_phrase", 43.0), ("promises", "forbidden_phrase", 44.5)]
    assert "원금 보장" in result.findings[0].text
    # The flags are what the recordings index and its timeline accept.
    assert [f.at_s for f in parse_flags(result.flags())] == sorted(f.at_s for f in result.findings)


def test_missing_required_items_are_flagged_at_the_agents_start_and_cost_their_weight() -> None:
    said = words("네 말씀하세요 금리는 연 5퍼센트입니다", start=60.0)
    result = check_call(CHECKLIST.items_for("general"), said, agent_from_s=58.0)
    kinds = {(f.item, f.kind, f.at_s) for f in result.findings}
    assert kinds == {("greeting", "greeting", 58.0), ("identity", "identity_check", 58.0),
                     ("risk", "missing_disclosure", 58.0)}
    assert result.score == 100 - 10 - 20 - 30 and result.flagged
    assert "not said" in next(f.text for f in result.findings if f.item == "risk")
    # Another queue has no risk warning to give.
    assert {f.item for f in check_call(CHECKLIST.items_for("cards"), said, 58.0).findings} == {"greeting", "identity"}


def test_a_greeting_said_too_late_is_flagged_where_it_was_said() -> None:
    said = words("네 고객님 생년월일 " + "음 " * 30 + "안녕하세요", start=20.0)
    result = check_call(CHECKLIST.items_for("cards"), said, agent_from_s=20.0)
    [late] = result.findings
    assert (late.item, late.at_s) == ("greeting", 20.0 + 33 * 0.5) and "later than the first 10 s" in late.text
    assert result.score == 90 and result.flagged  # any finding is for review, even above the pass score


def test_silence_from_the_agent_fails_every_required_item() -> None:
    result = check_call(CHECKLIST.items_for("general"), [], agent_from_s=12.0)
    assert result.score == 40 and {f.at_s for f in result.findings} == {12.0}
