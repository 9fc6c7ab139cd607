"""Flow validation (ivr.voice.validation): each check on a flow that fails it, with the line the admin must fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.config import load_settings
from ivr.voice.validation import (
    MAX_FLOW_BYTES,
    Context,
    Problem,
    asterisk_queues,
    default_context,
    validate_text,
)

HOTLINE = Path(__file__).resolve().parents[3] / "dialplans" / "hotline.yaml"

BASE = """\
id: test
languages: [ko, en]
start: menu
confirmation:
  "yes": {ko: [네], en: ["yes"]}
  "no": {ko: [아니요], en: ["no"]}
messages:
  not_understood: {ko: 죄송합니다, en: Sorry}
  to_person: {ko: 연결합니다, en: Connecting you}
  keys_only: {ko: 버튼을 누르세요, en: Use your keypad}
intents:
  cards:
    dtmf: "1"
    phrases: {ko: [카드 분실], en: [lost card]}
  loan:
    dtmf: "2"
    phrases: {ko: [대출 상담], en: [loan]}
  agent:
    dtmf: "0"
    phrases: {ko: [상담원], en: [agent]}
nodes:
  menu:
    type: ask
    prompt: {ko: 무엇을 도와드릴까요, en: How can we help}
    routes: {cards: to_cards, loan: to_loans, agent: to_general}
  to_cards: {type: route, queue: cards, skills: [cards]}
  to_loans: {type: route, queue: loans}
  to_general: {type: route, queue: general}
"""

WORDS = {"ko": {"네", "아니요", "카드", "분실", "대출", "상담", "상담원"},
         "en": {"yes", "no", "lost", "card", "loan", "agent"}}
CONTEXT = Context(queues=frozenset({"cards", "loans", "general"}), skills=frozenset({"cards", "loans"}),
                  agents=frozenset({"1001", "2001"}), vocabulary=lambda language: WORDS.get(language))


def line(text: str, needle: str) -> int:
    """The 1-based line of the one occurrence of ``needle``."""
    assert text.count(needle) == 1, f"{needle!r} occurs {text.count(needle)} times"
    return text[: text.index(needle)].count("\n") + 1


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def problems(text: str, context: Context | None = CONTEXT, severity: str | None = None) -> list[Problem]:
    report = validate_text(text, "test.yaml", context)
    return [p for p in report.problems if severity is None or p.severity == severity]


def only_error(text: str, context: Context | None = CONTEXT) -> Problem:
    errors = problems(text, context, "error")
    assert len(errors) == 1, [p.format() for p in errors]
    return errors[0]


# --- the baseline


def test_a_correct_flow_has_no_problem() -> None:
    report = validate_text(BASE, "test.yaml", CONTEXT)
    assert report.ok and report.problems == []
    assert report.flow is not None and report.flow.id == "test"


def test_the_shipped_hotline_is_valid_against_this_installation() -> None:
    context = default_context(load_settings())
    report = validate_text(HOTLINE.read_text(encoding="utf-8"), str(HOTLINE), context)
    assert report.ok, [p.format() for p in report.errors]
    assert context.queues == {"general", "cards", "payments", "complaints", "loans"}


def test_queues_come_from_queues_conf_without_the_prefix_and_templates(tmp_path: Path) -> None:
    conf = tmp_path / "queues.conf"
    conf.write_text("[general]\npersistentmembers = no\n[queue-defaults](!)\nstrategy = rrmemory\n"
                    "[q_cards](queue-defaults)\n[q_vip]\n", encoding="utf-8")
    assert asterisk_queues(conf) == {"cards", "vip"}


# --- size and YAML


def test_yaml_syntax_error_names_its_line() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: to_cards, loan: [to_loans, agent: to_general}")
    error = only_error(text)
    assert error.message.startswith("YAML syntax error")
    assert error.line == 25 == line(BASE, "routes: {cards")
    assert error.format().startswith("test.yaml:25: error: YAML syntax error")
    assert validate_text(text).flow is None


def test_a_5_mb_file_is_refused_before_it_is_parsed() -> None:
    text = BASE + "# " + "x" * (5 * 1024 * 1024) + "\n"
    error = only_error(text)
    assert f"{MAX_FLOW_BYTES:,} bytes" in error.message and "5,24" in error.message
    assert error.line is None and error.path == ""


def test_a_file_that_is_not_a_mapping() -> None:
    assert "not an empty file" in only_error("").message
    assert "not a list" in only_error("- id: test\n").message


def test_a_key_given_twice_is_an_error_at_the_second() -> None:
    text = edit("  to_loans: {type: route, queue: loans}\n",
                "  to_loans: {type: route, queue: loans}\n  to_cards: {type: route, queue: loans}\n")
    errors = problems(text, severity="error")
    duplicate = [e for e in errors if "given twice" in e.message]
    assert len(duplicate) == 1
    assert duplicate[0].line == 28 and f"also on line {line(BASE, '  to_cards:')}" in duplicate[0].message
    assert duplicate[0].path == "nodes.to_cards"


def test_aliases_that_expand_without_bound_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for index in range(1, 7):
        bomb += f"{chr(97 + index)}: &{chr(97 + index)} [" + ", ".join([f"*{chr(96 + index)}"] * 10) + "]\n"
    error = only_error(bomb)
    assert "aliases" in error.message


# --- the format (JSON Schema)


def test_unknown_node_type() -> None:
    text = edit("  to_loans: {type: route, queue: loans}", "  to_loans: {type: rout, queue: loans}")
    error = only_error(text)
    assert error.message.startswith("unknown node type 'rout': a node's type is one of ask, say")
    assert "did you mean 'route'" in error.message
    assert (error.path, error.line) == ("nodes.to_loans.type", line(BASE, "  to_loans:"))


def test_missing_field_is_located_at_its_node() -> None:
    text = edit("    prompt: {ko: 무엇을 도와드릴까요, en: How can we help}\n", "")
    error = only_error(text)
    assert error.message == "required field 'prompt' is missing"
    assert (error.path, error.line) == ("nodes.menu.prompt", 22)


def test_misspelt_field_suggests_the_right_one() -> None:
    text = edit("  to_loans: {type: route, queue: loans}", "  to_loans: {type: route, queue: loans, priorty: 3}")
    error = only_error(text)
    assert error.message == "unknown field 'priorty' (did you mean 'priority'?)"
    assert error.path == "nodes.to_loans.priorty"


def test_pattern_errors_keep_the_path_without_pydantics_tag() -> None:
    text = edit("  to_loans: {type: route, queue: loans}", "  to_loans: {type: route, queue: Loans Desk}")
    error = only_error(text)
    assert error.path == "nodes.to_loans.queue" and "should match pattern" in error.message


def test_unquoted_yes_gets_a_hint() -> None:
    text = edit('  "yes": {ko: [네], en: ["yes"]}', "  yes: {ko: [네], en: [\"yes\"]}")
    errors = problems(text, severity="error")
    assert errors and all(e.line == 5 for e in errors)
    assert any("write \"yes\" in quotes" in e.message for e in errors)


# --- references and the graph


def test_route_to_a_missing_node_is_located_at_the_route() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: to_cards, loan: to_loan, agent: to_general}")
    found = problems(text, severity="error")
    missing = [p for p in found if "unknown node 'to_loan'" in p.message]
    assert missing and missing[0].path == "nodes.menu.routes.loan" and missing[0].line == 25
    assert any("to_loans" in p.message and "cannot be reached" in p.message for p in found)
    assert validate_text(text, "t", CONTEXT).flow is None


def test_unreachable_node() -> None:
    text = BASE + "  orphan: {type: route, queue: general}\n"
    error = only_error(text)
    assert "'orphan' cannot be reached from the start node 'menu'" in error.message
    assert (error.path, error.line) == ("nodes.orphan", 29)


def test_a_cycle_with_no_exit() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: to_cards, loan: a, agent: to_general}")
    text += ("  a: {type: say, prompt: {ko: 가, en: A}, next: b}\n"
             "  b: {type: say, prompt: {ko: 나, en: B}, next: a}\n")
    text = text.replace("  to_loans: {type: route, queue: loans}\n", "")
    errors = problems(text, severity="error")
    messages = " | ".join(e.message for e in errors)
    assert "no way to end the call from node 'a': every path from it goes round a → b → a" in messages
    assert [e.line for e in errors if "no way to end" in e.message] == [line(text, "  a: {")]


def test_a_loop_that_runs_by_itself_even_with_an_exit() -> None:
    # The self-service node can leave (unavailable -> a person), but a known caller would go round forever.
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: to_cards, loan: balance, agent: to_general}")
    text = text.replace("  to_loans: {type: route, queue: loans}\n", "")
    text += ("  balance:\n    type: self_service\n    action: balance\n"
             "    prompt: {ko: '{balance} 원', en: '{balance} won'}\n"
             "    unavailable: {ko: 없음, en: none}\n    next: again\n    on_unavailable: to_general\n"
             "  again: {type: say, prompt: {ko: 다시, en: again}, next: balance}\n")
    error = only_error(text)
    assert "goes round balance → again → balance by itself" in error.message


def test_an_ask_node_whose_routes_only_come_back() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}", "    routes: {cards: menu2}")
    text += ("  menu2:\n    type: ask\n    prompt: {ko: 다시, en: again}\n    routes: {loan: menu}\n")
    for name in ("to_cards", "to_loans", "to_general"):
        text = "\n".join(x for x in text.splitlines() if not x.startswith(f"  {name}:")) + "\n"
    found = problems(text, severity="error")
    assert len(found) == 1 and "no way to end the call from node 'menu'" in found[0].message
    assert "menu → menu2 → menu" in found[0].message


# --- a person within two failures


def test_the_fallback_queue_must_exist() -> None:
    context = Context(queues=frozenset({"cards", "loans", "operators"}))
    text = edit("  to_general: {type: route, queue: general}\n", "")
    text = text.replace(", agent: to_general}", "}")
    error = only_error(text, context)
    assert "fallback_queue 'general' is not a queue of Asterisk" in error.message and "menu" in error.message
    assert error.path == "fallback_queue"


def test_key_zero_belongs_to_the_person() -> None:
    text = edit('    dtmf: "2"', '    dtmf: "0"')
    found = [p for p in problems(text, severity="error") if "key 0" in p.message]
    assert found and found[0].path == "intents.loan.dtmf" and found[0].line == 16


def test_a_language_without_words_for_a_person_is_warned() -> None:
    text = edit("    phrases: {ko: [상담원], en: [agent]}", "    phrases: {ko: [상담원]}")
    warning = [p for p in problems(text, severity="warning") if "ask for a person" in p.message]
    assert warning and "'en'" in warning[0].message
    assert validate_text(text, "t", CONTEXT).ok


# --- what exists outside the flow


def test_a_deleted_queue() -> None:
    context = Context(queues=frozenset({"cards", "general"}), skills=None, agents=None)
    error = only_error(BASE, context)
    assert error.message.startswith("queue 'loans' does not exist in Asterisk (asterisk_conf/queues.conf has "
                                    "cards, general)")
    assert (error.path, error.line) == ("nodes.to_loans.queue", 27)


def test_an_unknown_skill_and_the_closest_known_one() -> None:
    text = edit("skills: [cards]", "skills: [card]")
    error = only_error(text)
    assert "skill 'card': no agent of the directory has it" in error.message and "did you mean 'cards'" in error.message
    assert error.path == "nodes.to_cards.skills[0]"


def test_skills_and_agents_unknown_are_not_checked() -> None:
    text = edit("skills: [cards]", "skills: [anything]")
    assert validate_text(text, "t", Context(queues=CONTEXT.queues)).ok


def test_a_transfer_to_an_unknown_extension() -> None:
    text = edit("  to_loans: {type: route, queue: loans}", "  to_loans: {type: transfer, target: '2999'}")
    error = only_error(text)
    assert "extension '2999' is no agent's desk or mobile extension" in error.message
    assert validate_text(edit("'2999'", "'2001'", text), "t", CONTEXT).ok


def test_a_placeholder_the_engine_does_not_fill() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: to_cards, loan: balance, agent: to_general}")
    text = text.replace("  to_loans: {type: route, queue: loans}\n", "")
    text += ("  balance:\n    type: self_service\n    action: balance\n"
             "    prompt: {ko: '{balanse} 원', en: '{balance} won'}\n"
             "    unavailable: {ko: 없음, en: none}\n    next: to_general\n    on_unavailable: to_general\n")
    error = only_error(text)
    assert "placeholder {balanse} is not filled in here" in error.message and "did you mean 'balance'" in error.message
    assert error.path == "nodes.balance.prompt.ko"


# --- languages


def test_every_language_has_every_prompt() -> None:
    text = edit("    prompt: {ko: 무엇을 도와드릴까요, en: How can we help}", "    prompt: {ko: 무엇을 도와드릴까요}")
    error = only_error(text)
    assert error.message.startswith("no 'en' text: callers in en would hear nothing here")
    assert (error.path, error.line) == ("nodes.menu.prompt", 24)


def test_an_optional_prompt_given_in_one_language_needs_the_others() -> None:
    text = edit("  to_loans: {type: route, queue: loans}",
                "  to_loans: {type: route, queue: loans, prompt: {ko: 대출}}")
    error = only_error(text)
    assert error.path == "nodes.to_loans.prompt" and "'en'" in error.message


def test_a_text_in_an_undeclared_language_is_warned() -> None:
    text = edit("  to_person: {ko: 연결합니다, en: Connecting you}",
                "  to_person: {ko: 연결합니다, en: Connecting you, ja: 接続します}")
    found = problems(text, severity="warning")
    assert [p.path for p in found] == ["messages.to_person.ja"]


# --- conflicts within a question


def test_one_key_for_two_intents_in_a_question() -> None:
    text = edit('    dtmf: "2"', '    dtmf: "1"')
    error = only_error(text)
    assert error.message.startswith("key 1 is claimed by intents 'cards' and 'loan' at 'menu'")
    assert (error.path, error.line) == ("nodes.menu.routes.loan", 25)


def test_one_phrase_for_two_intents_in_a_question_spacing_ignored() -> None:
    text = edit("    phrases: {ko: [대출 상담], en: [loan]}", "    phrases: {ko: [대출 상담, 카드분실], en: [loan]}")
    error = only_error(text)
    assert "phrase '카드분실' (ko) is claimed by intents 'cards' ('카드 분실') and 'loan'" in error.message
    assert (error.path, error.line) == ("intents.loan.phrases.ko[1]", 17)


def test_the_same_phrase_in_intents_of_different_questions_is_fine() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: second, agent: to_general}")
    text = edit("    phrases: {ko: [대출 상담], en: [loan]}",
                "    phrases: {ko: [대출 상담, 카드 분실], en: [loan]}", text)
    text = edit("  to_cards: {type: route, queue: cards, skills: [cards]}\n", "", text)
    text += "  second:\n    type: ask\n    prompt: {ko: 대출, en: loan}\n    routes: {loan: to_loans}\n"
    assert validate_text(text, "t", CONTEXT).ok


def test_a_route_for_the_agent_intent_elsewhere_is_never_taken() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: to_cards, loan: to_loans, agent: to_loans}")
    text = edit("  to_general: {type: route, queue: general}\n", "", text)
    [warning] = problems(text)
    assert warning.severity == "warning" and warning.path == "nodes.menu.routes.agent"
    assert "never taken" in warning.message and "fallback queue 'general'" in warning.message


# --- vocabulary


def test_words_the_model_does_not_know_are_warnings_naming_them() -> None:
    text = edit("    phrases: {ko: [대출 상담], en: [loan]}",
                "    phrases: {ko: [대출 상담, 대출 받고싶어요], en: [loan]}")
    report = validate_text(text, "t", CONTEXT)
    assert report.ok
    [warning] = report.warnings
    assert warning.message.startswith("'받고싶어요' is not in the ko speech model's vocabulary: Vosk ignores it, so "
                                      "the phrase is heard as '대출'")
    assert (warning.path, warning.line) == ("intents.loan.phrases.ko[1]", 17)


def test_a_phrase_of_unknown_words_only_can_never_be_heard() -> None:
    text = edit("en: [loan]", "en: [loan, mortgage]")
    [warning] = validate_text(text, "t", CONTEXT).warnings
    assert "'mortgage' is not in the en speech model's vocabulary" in warning.message
    assert "can never be recognized (only keys reach it)" in warning.message


def test_no_model_no_vocabulary_check() -> None:
    text = edit("en: [loan]", "en: [loan, mortgage]")
    context = Context(queues=CONTEXT.queues, vocabulary=lambda language: None)
    assert validate_text(text, "t", context).problems == []


# --- the rest


def test_confirm_threshold_above_act() -> None:
    text = edit("start: menu\n", "start: menu\nthresholds: {act: 0.5, confirm: 0.7}\n")
    error = only_error(text)
    assert error.path == "thresholds.confirm" and error.line == 4


def test_an_intent_no_question_uses_is_warned() -> None:
    text = edit("    routes: {cards: to_cards, loan: to_loans, agent: to_general}",
                "    routes: {cards: to_cards, agent: to_general}")
    text = text.replace("  to_loans: {type: route, queue: loans}\n", "")
    found = problems(text)
    assert [(p.severity, p.path) for p in found] == [("warning", "intents.loan")]


@pytest.mark.parametrize("context", [None, CONTEXT])
def test_problems_are_in_text_order(context: Context | None) -> None:
    text = edit('    dtmf: "2"', '    dtmf: "1"')
    text = edit("    prompt: {ko: 무엇을 도와드릴까요, en: How can we help}",
                "    prompt: {ko: 무엇을 도와드릴까요}", text)
    lines = [p.line for p in problems(text, context)]
    assert lines == sorted(lines) and len(lines) == 2
