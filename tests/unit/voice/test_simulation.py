"""Simulated calls (ivr.voice.simulation): the real engine over a text line; the hotline's saved cases."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivr.records.customer import Customer
from ivr.voice.flow import load_flow
from ivr.voice.simulation import (
    SIM_NO_INPUT_S,
    Case,
    CaseError,
    cases_path,
    customers_from_file,
    load_cases,
    parse_inputs,
    run_cases,
    simulate,
)

ROOT = Path(__file__).resolve().parents[3]
HOTLINE = ROOT / "dialplans" / "hotline.yaml"
CUSTOMERS = customers_from_file(ROOT / "dialplans" / "demo_customers.json")


@pytest.fixture(scope="module")
def flow():  # type: ignore[no-untyped-def]
    return load_flow(HOTLINE)


# --- the saved cases


async def test_the_hotline_cases_all_pass(flow) -> None:  # type: ignore[no-untyped-def]
    cases = load_cases(cases_path(HOTLINE))
    assert len(cases) >= 8
    results = await run_cases(flow, cases)
    failed = [r.message for r in results if not r.ok]
    assert not failed, "\n".join(failed)
    names = {r.name for r in results}
    assert {"balance by key for a known caller", "lost card by key", "asking for a person",
            "silence twice reaches a person", "loan advice", "complaint, callback accepted"} <= names


async def test_a_wrong_expectation_fails_with_a_clear_message(flow) -> None:  # type: ignore[no-untyped-def]
    case = Case(name="lost card to payments", inputs=["key:2"], expect={"queue": "payments", "intent": "lost_card"},
                line=12)
    [result] = await run_cases(flow, [case])
    assert not result.ok
    assert result.got == {"queue": "cards", "intent": "lost_card"}
    assert result.message == ("case 'lost card to payments' (line 12): expected queue 'payments', got 'cards' — "
                              "the call went main_menu > to_cards and ended queue in cards (flow node to_cards); "
                              "turns: main_menu: key:2 -> lost_card")


async def test_a_flow_change_breaks_the_cases_that_depend_on_it(flow) -> None:  # type: ignore[no-untyped-def]
    main = flow.nodes["main_menu"]
    edited = flow.model_copy(update={"nodes": {**flow.nodes, "main_menu": main.model_copy(
        update={"routes": {**main.routes, "lost_card": "to_payments"}})}})
    results = await run_cases(edited, load_cases(cases_path(HOTLINE)))
    failed = {r.name for r in results if not r.ok}
    assert failed == {"lost card by key", "lost card in words, half said, then confirmed",
                      "an English-speaking customer is served in English"}


def test_case_files_are_checked_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.cases.yaml"
    path.write_text("cases:\n  - name: a\n    inputs: [\"key:2\"]\n    expect: {queue: cards}\n"
                    "  - name: b\n    inputs: [\"key:2\"]\n    expect: {queu: cards}\n", encoding="utf-8")
    with pytest.raises(CaseError, match=r"x.cases.yaml:5: b: expect cannot check queu"):
        load_cases(path)
    path.write_text("- name: a\n  caller: 1588\n  inputs: [\"key:1\"]\n  expect: {queue: general}\n",
                    encoding="utf-8")
    with pytest.raises(CaseError, match="quote the number"):
        load_cases(path)
    path.write_text("- name: a\n  inputs: [\"key:x\"]\n  expect: {queue: general}\n", encoding="utf-8")
    with pytest.raises(CaseError, match="keys are 0-9"):
        load_cases(path)


# --- inputs


def test_inputs() -> None:
    answers = parse_inputs(["key:3", "12", "대출 상담", "", "silence", "hangup", " Key:# "])
    assert [(a.kind, a.value) for a in answers] == [
        ("key", "3"), ("key", "1"), ("key", "2"), ("say", "대출 상담"), ("silence", ""), ("silence", ""),
        ("hangup", ""), ("key", "#")]
    for bad in ("key:", "key:x", "?!"):
        with pytest.raises(ValueError):
            parse_inputs([bad])


# --- the engine's rules apply


async def test_each_prompt_the_scores_and_the_route(flow) -> None:  # type: ignore[no-untyped-def]
    result = await simulate(flow, ["대출 상담"])
    [step] = result.steps
    assert (step.node, step.kind, step.prompt) == ("main_menu", "ask", "안녕하십니까. 무엇을 도와드릴까요?")
    assert step.heard == "대출 상담" and step.intent == "loan"
    assert next(iter(step.scores)) == "loan" and step.scores["loan"] == 1.0 and 0 < step.scores["agent"] < 0.6
    assert result.decision == {"kind": "queue", "queue": "loans", "target": None, "priority": 0,
                               "skills": ["loans"], "reason": "flow node to_loans"}
    assert (result.record["outcome"], result.record["queue"], result.record["path"]) == (
        "queued", "loans", ["main_menu", "to_loans"])


async def test_customer_data_applies_through_the_caller_number(flow) -> None:  # type: ignore[no-untyped-def]
    result = await simulate(flow, ["key:1", "key:9"], caller="01012345678", customers=CUSTOMERS)
    assert "고객님의 잔액은 백이십삼만 사천오백 원입니다." in result.prompts
    assert (result.record["customer"], result.record["outcome"]) == ("C1001", "self_service")
    unknown = await simulate(flow, ["key:1"], caller="01099990000", customers=CUSTOMERS)
    assert unknown.record["path"] == ["main_menu", "balance", "to_general"]
    english = await simulate(flow, ["lost card"], caller="+447700900123", customers=CUSTOMERS)
    assert english.record["language"] == "en" and english.steps[0].prompt.startswith("Welcome to the bank")


async def test_customers_as_a_lookup_function(flow) -> None:  # type: ignore[no-untyped-def]
    async def lookup(number: str) -> Customer | None:
        return Customer(id="X1", name="홍길동", phones=[number], balance=5000)

    result = await simulate(flow, ["key:1", "hangup"], caller="0101", customers=lookup)
    assert "고객님의 잔액은 오천 원입니다." in result.prompts and result.record["customer"] == "X1"


async def test_only_a_grammar_phrase_is_acted_on(flow) -> None:  # type: ignore[no-untyped-def]
    # "대출이요" is no phrase of the question's grammar: the engine confirms rather than routing on it.
    result = await simulate(flow, ["대출이요", "네"])
    assert [s.kind for s in result.steps if s.kind != "say"] == ["ask", "confirm"]
    assert result.steps[1].prompt == "대출 상담을 원하십니까?" and result.decision["queue"] == "loans"


async def test_silence_is_fast_and_twice_reaches_a_person(flow) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = await simulate(flow, ["silence", ""])
    assert time.monotonic() - started < 20 * SIM_NO_INPUT_S + 1
    assert (result.decision["queue"], result.decision["reason"]) == ("general", "not understood twice")
    assert result.steps[1].prompt.startswith("죄송합니다. 잘 알아듣지 못했습니다.")
    assert result.prompts[-1] == "상담원에게 연결해 드리겠습니다. 잠시만 기다려 주십시오."


async def test_running_out_of_inputs_hangs_up_and_says_so(flow) -> None:  # type: ignore[no-untyped-def]
    result = await simulate(flow, [])
    assert result.decision["kind"] == "hangup" and result.record["outcome"] == "abandoned"
    assert "simulation: no input left at main_menu: the caller hangs up" in result.record["notes"]


async def test_interactive_answers_and_steps_as_they_happen(flow) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []
    seen: list[str] = []

    async def ask(step):  # type: ignore[no-untyped-def]
        asked.append(step.prompt)
        return {1: "key:6", 2: "2"}[len(asked)]

    result = await simulate(flow, [], ask=ask, on_step=lambda step: seen.append(step.kind))
    assert asked[0].startswith("안녕하십니까") and asked[1].startswith("민원 상담원이 모두 통화 중일 수")
    assert seen == ["ask", "offer"] and result.decision["queue"] == "complaints"


async def test_a_language_the_flow_does_not_have(flow) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="not one of the flow's languages"):
        await simulate(flow, ["key:2"], language="ja")


# --- the command line


def test_validate_with_cases_and_simulate_from_the_command_line(tmp_path: Path) -> None:
    from ivr.cli import app

    runner = CliRunner()
    env = {"IVR_REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens: the directory is not checked
    result = runner.invoke(app, ["dialplan", "validate", str(HOTLINE), "--cases", "--no-warnings"], env=env)
    assert result.exit_code == 0, result.output
    assert "hotline.yaml: ok (0 errors" in result.output and "14 passed, 0 failed" in result.output
    broken = tmp_path / "hotline.yaml"
    broken.write_text(HOTLINE.read_text(encoding="utf-8").replace("      lost_card: to_cards\n",
                                                                  "      lost_card: to_payments\n"), encoding="utf-8")
    (tmp_path / "hotline.cases.yaml").write_text(cases_path(HOTLINE).read_text(encoding="utf-8").replace(
        "customers: demo_customers.json", f"customers: {ROOT / 'dialplans' / 'demo_customers.json'}"),
        encoding="utf-8")
    result = runner.invoke(app, ["dialplan", "validate", str(broken), "--cases"], env=env)
    assert result.exit_code == 1
    line = next(n for n, text in enumerate(broken.read_text(encoding="utf-8").splitlines(), 1)
                if text.startswith("  to_cards:"))
    assert f"{broken}:{line}: error: nodes.to_cards: node 'to_cards' cannot be reached" in result.output
    result = runner.invoke(app, ["dialplan", "simulate", str(HOTLINE), "--customers",
                                 str(ROOT / "dialplans" / "demo_customers.json"), "--caller", "01012345678",
                                 "-i", "key:1", "-i", "상담원 연결"], env=env)
    assert result.exit_code == 0, result.output
    assert "[balance] IVR: 고객님의 잔액은 백이십삼만 사천오백 원입니다." in result.output
    assert "caller: 상담원 연결  ->  agent" in result.output
    assert "=> queue general: caller asked for a person" in result.output
