"""The checklist's validation: like the flow validator, every problem with its line, path and message; a checklist
with an error is refused whole."""

from __future__ import annotations

import textwrap

import pytest

from ivr.config import PROJECT_DIR
from ivr.recordings.quality.checklist import InvalidChecklist, parse_checklist, validate_checklist
from ivr.voice.validation.context import asterisk_queues

QUEUES = frozenset({"general", "cards", "loans"})

GOOD = textwrap.dedent("""\
    pass_score: 70
    every_queue:
      - id: greeting
        kind: greeting
        phrases: [안녕하세요]
        within_s: 20
      - id: promises
        kind: forbidden
        text: 과장 권유
        phrases: [원금 보장, {re: "무조건\\\\s*수익"}]
    queues:
      loans:
        - id: terms
          kind: disclosure
          phrases: [금리]
          weight: 25
""")


def problems(text: str, **kwargs: object) -> list[str]:
    report = validate_checklist(textwrap.dedent(text), "c.yaml", kwargs.get("queues", QUEUES))  # type: ignore[arg-type]
    return [p.format() for p in report.problems]


def test_a_good_checklist_parses_into_items_per_queue() -> None:
    checklist = parse_checklist(GOOD, queues=QUEUES)
    assert checklist.pass_score == 70
    assert [i.id for i in checklist.items_for("loans")] == ["greeting", "promises", "terms"]
    assert [i.id for i in checklist.items_for("cards")] == ["greeting", "promises"]
    promises = checklist.every_queue[1]
    assert (promises.kind, promises.weight, promises.text, promises.within_s) == ("forbidden", 50, "과장 권유", None)
    assert promises.phrases[0].compact == "원금보장" and promises.phrases[1].pattern is not None
    assert checklist.items_for("loans")[2].weight == 25


def test_a_broken_pattern_is_refused_naming_the_item_and_its_line() -> None:
    text = GOOD.replace('"무조건\\\\s*수익"', '"무조건(수익"')
    report = validate_checklist(text, "c.yaml", QUEUES)
    assert not report.ok and report.checklist is None  # nothing of it is used
    [error] = report.errors
    assert error.format().startswith("c.yaml:10: error: every_queue[1].phrases[1]: '무조건(수익' is not a valid "
                                      "regular expression: missing ), unterminated subpattern")
    with pytest.raises(InvalidChecklist, match=r"1 error: c.yaml:10: .*every_queue\[1\]\.phrases\[1\]"):
        parse_checklist(text, "c.yaml", QUEUES)


def test_a_pattern_matching_empty_text_and_an_empty_phrase_are_refused() -> None:
    found = problems("""\
        every_queue:
          - id: a
            kind: forbidden
            phrases: [{re: "x*"}, "  ", "ok"]
    """)
    assert found == ["c.yaml:4: error: every_queue[0].phrases[0]: 'x*' matches empty text: it would match every call",
                     "c.yaml:4: error: every_queue[0].phrases[1]: an empty phrase would match every call"]


def test_an_unknown_queue_is_named_with_the_queues_there_are() -> None:
    found = problems("""\
        queues:
          invest:
            - {id: risk, kind: disclosure, phrases: [원금 손실]}
    """)
    assert found == ["c.yaml:2: error: queues.invest: unknown queue 'invest': Asterisk's queues are cards, general, "
                     "loans (asterisk_conf/queues.conf, without the q_ prefix)"]


@pytest.mark.parametrize(("item", "expected"), [
    ("{id: a, kind: promise, phrases: [x]}", "every_queue[0].kind: one of greeting, identity_check, disclosure, "
                                             "forbidden, not 'promise'"),
    ("{id: A-1, kind: forbidden, phrases: [x]}", "every_queue[0].id: a name in lower case"),
    ("{id: a, kind: forbidden, phrases: []}", "every_queue[0].phrases: a list of at least one phrase"),
    ("{id: a, kind: forbidden, phrases: [x], within_s: 5}", "every_queue[0].within_s: a forbidden phrase is "
                                                            "forbidden all call long"),
    ("{id: a, kind: disclosure, phrases: [x], weight: 500}", "every_queue[0].weight: points from 0 to 100"),
    ("{id: a, kind: disclosure, phrases: [x], says: y}", "every_queue[0].says: unknown key 'says'"),
    ("{id: a, kind: disclosure, phrases: [{regex: x}]}", "every_queue[0].phrases[0]: a regular expression is "
                                                         "written {re: PATTERN}"),
])
def test_each_bad_field_is_named(item: str, expected: str) -> None:
    found = problems(f"every_queue:\n  - {item}\n")
    assert len(found) == 1 and f"c.yaml:2: error: {expected}" in found[0], found


def test_an_id_used_twice_for_a_queue_is_refused() -> None:
    found = problems("""\
        every_queue:
          - {id: greeting, kind: greeting, phrases: [안녕하세요]}
        queues:
          cards:
            - {id: greeting, kind: greeting, phrases: [반갑습니다]}
    """)
    assert found == ["c.yaml:5: error: queues.cards[0].id: id 'greeting' is used twice for this queue's calls "
                     "(every_queue's ids count too)"]


def test_yaml_errors_and_wrong_shapes_are_problems_not_crashes() -> None:
    assert problems("every_queue: [\n")[0].startswith("c.yaml:")
    assert problems("- a\n- b\n") == ["c.yaml:1: error: a checklist is a mapping (pass_score:, every_queue:, "
                                      "queues:), not a list"]
    assert problems("pass_score: 80\n") == ["c.yaml:1: error: the checklist has no item: add every_queue: or "
                                            "queues: items"]
    assert problems("pass_score: 1\npass_score: 2\n")[0].startswith("c.yaml:2: error: pass_score: 'pass_score' is "
                                                                   "given twice")


def test_a_phrase_word_the_model_cannot_write_is_a_warning_spacing_aside() -> None:
    known = {"원금", "보장", "no"}
    report = validate_checklist("every_queue:\n  - {id: a, kind: forbidden, phrases: [원금보장, no risk]}\n", "c.yaml",
                                QUEUES, knows=known.__contains__)
    assert report.ok  # warnings do not refuse it
    assert [p.format() for p in report.problems] == [
        "c.yaml:2: warning: every_queue[0].phrases[1]: the speech model does not know 'risk': it can never hear "
        "this phrase as written (write it as the model spells it, or use {re: ...})"]


def test_the_shipped_checklist_is_valid_against_this_installation() -> None:
    path = PROJECT_DIR / "dialplans" / "qa-checklist.yaml"
    report = validate_checklist(path.read_text(encoding="utf-8"), str(path), asterisk_queues())
    assert report.ok, [p.format() for p in report.problems]
    assert report.checklist is not None and {"general", "loans"} <= set(report.checklist.queues)
