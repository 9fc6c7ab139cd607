"""`ivr call --expect`: the demo's calls check the outcome they announce, and say so when a call ends differently.

The simulated call itself is replaced by a record (the live call is the integration tests' and the demo's).
"""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from ivr.cli import app
from ivr.cli.call import EXIT_DIFFERENT, differences, parse_expectations
from ivr.sim import simulator

RECORD = {"call_id": "sim-1", "caller": "01022223333", "customer": "C1002", "path": ["main_menu", "main_menu"],
          "turns": [], "intent": None, "queue": "general", "agent": None, "outcome": "queued", "notes": []}


@pytest.fixture
def ended_in_general(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(RECORD)

    monkeypatch.setattr(simulator.Simulator, "run", run)


def test_parse_expectations() -> None:
    assert parse_expectations(["queue=payments", " intent = transfer "]) == {"queue": "payments", "intent": "transfer"}
    for bad in ("queue", "queue=", "path=main_menu", "=payments"):
        with pytest.raises(ValueError, match=f"--expect {bad!r}: KEY=VALUE with KEY one of queue, outcome"):
            parse_expectations([bad])


def test_differences_name_what_the_call_ended_with() -> None:
    assert differences(RECORD, {"queue": "general", "outcome": "queued"}) == []
    assert differences(RECORD, {"queue": "payments", "intent": "transfer"}) == [
        "queue general (expected payments)", "intent - (expected transfer)"]


def test_a_call_that_ends_as_announced_says_it_was_checked(ended_in_general: None) -> None:
    result = CliRunner().invoke(app, ["call", "--expect", "queue=general",
                                      "--expect", "outcome=queued"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "checked: queue general, outcome queued, as announced" in result.output


def test_a_call_that_ends_differently_says_so_and_fails(ended_in_general: None) -> None:
    # Demo step 2's story: "계좌 이체" announced -> payments; an unanswered confirmation ended it in general.
    result = CliRunner().invoke(app, ["call", "--expect", "queue=payments", "--expect", "intent=transfer"],
                                catch_exceptions=False)
    assert result.exit_code == EXIT_DIFFERENT
    assert "ENDED DIFFERENTLY: queue general (expected payments); intent - (expected transfer)" in result.output
    assert "checked:" not in result.output


def test_bad_expectation_is_refused_before_any_call(ended_in_general: None) -> None:
    result = CliRunner().invoke(app, ["call", "--expect", "path=main_menu"])
    assert result.exit_code == 1
    assert "--expect 'path=main_menu'" in result.output
