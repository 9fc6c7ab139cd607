"""The routing benchmark's simulation: app_queue's strategies, abandonment, and the day's metrics on scripted days."""

from __future__ import annotations

import pytest

from bench.routing import acd_throughput, decision_latency
from bench.routing_day import (
    STRATEGIES,
    DayCall,
    DayParams,
    DayRun,
    day_metrics,
    erlang_c_staff,
    make_day,
    simulate,
)
from ivr.routing.router import AgentState, Level, Policy

BASELINES = ("ringall", "leastrecent", "fewestcalls")


def agent(agent_id: str, skills: dict[str, int], *, dialects: tuple[str, ...] = (), vip: bool = False) -> AgentState:
    return AgentState(id=agent_id, skills=skills, dialects=frozenset(dialects), vip=vip)


def call(call_id: str, at: float, *, talk: float = 60.0, patience: float = 10_000.0, skill: str = "loans",
         **kwargs) -> DayCall:  # type: ignore[no-untyped-def]
    return DayCall(id=call_id, arrival=at, skill=skill, talk_s=talk, patience_s=patience, **kwargs)


def who(run: DayRun) -> dict[str, str | None]:
    return {o.call.id: o.agent for o in run.outcomes}


# --- app_queue's strategies and penalties


@pytest.mark.parametrize("strategy", BASELINES)
def test_lowest_penalty_free_member_first_whatever_the_strategy(strategy: str) -> None:
    # The weak member comes first in the configuration (and wins every tie), yet the strong one is rung.
    agents = [agent("weak", {"loans": 3}), agent("strong", {"loans": 9})]
    for seed in range(20):
        assert who(simulate(strategy, agents, [call("c1", 0)], seed=seed))["c1"] == "strong"


@pytest.mark.parametrize("strategy", BASELINES)
def test_higher_penalty_member_only_when_no_lower_one_is_free(strategy: str) -> None:
    agents = [agent("weak", {"loans": 3}), agent("strong", {"loans": 9})]
    run = simulate(strategy, agents, [call("c1", 0, talk=100), call("c2", 5)])
    assert who(run) == {"c1": "strong", "c2": "weak"}
    assert run.outcomes[1].answered_at == 5  # no waiting for the better member


def test_ringall_goes_to_a_random_member_of_the_lowest_penalty_tier() -> None:
    agents = [agent("a", {"loans": 7}), agent("b", {"loans": 7}), agent("junior", {"loans": 2})]
    winners = {who(simulate("ringall", agents, [call("c1", 0)], seed=seed))["c1"] for seed in range(40)}
    assert winners == {"a", "b"}


def test_leastrecent_and_fewestcalls_disagree_as_app_queue_does() -> None:
    # a: two short calls, the last ending at 25; b: one long call ending at 1001.
    agents = [agent("a", {"loans": 7}), agent("b", {"loans": 7})]
    calls = [call("c1", 0, talk=5), call("c2", 1, talk=1000), call("c3", 20, talk=5), call("c4", 2000)]
    least = who(simulate("leastrecent", agents, calls))
    fewest = who(simulate("fewestcalls", agents, calls))
    assert [least[c] for c in ("c1", "c2", "c3")] == ["a", "b", "a"] == [fewest[c] for c in ("c1", "c2", "c3")]
    assert least["c4"] == "a"  # a's last call ended longest ago
    assert fewest["c4"] == "b"  # b has completed fewer calls


def test_never_called_member_counts_as_least_recent() -> None:
    agents = [agent("a", {"loans": 7}), agent("b", {"loans": 7})]
    run = simulate("leastrecent", agents, [call("c1", 0, talk=5), call("c2", 100)])
    assert who(run) == {"c1": "a", "c2": "b"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_vip_caller_is_answered_before_earlier_callers(strategy: str) -> None:
    agents = [agent("a", {"loans": 7})]
    run = simulate(strategy, agents, [call("busy", 0, talk=50), call("plain", 1), call("vip", 2, vip=True)])
    assert run.outcomes[2].answered_at == 60  # the first free moment (50 s talk + 10 s wrap-up)
    assert run.outcomes[1].answered_at == 130


def test_a_freed_agent_goes_to_a_random_one_of_their_queues_with_callers() -> None:
    agents = [agent("both", {"loans": 7, "cards": 7})]
    calls = [call("busy", 0, talk=50), call("loan", 1, skill="loans"), call("card", 2, skill="cards")]
    first = set()
    for seed in range(30):
        run = simulate("fewestcalls", agents, calls, seed=seed)
        first.add(min(run.outcomes[1:], key=lambda o: o.answered_at or 0.0).call.id)
    assert first == {"loan", "card"}  # the callers' retry timers race: no FIFO across queues


def test_members_without_the_skill_never_answer_in_the_baselines() -> None:
    agents = [agent("cards_only", {"cards": 9})]
    run = simulate("ringall", agents, [call("c1", 0, patience=500)])
    assert run.outcomes[0].agent is None and run.outcomes[0].abandoned_at == 500


# --- abandonment


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_caller_abandons_exactly_when_the_wait_would_exceed_the_patience(strategy: str) -> None:
    agents = [agent("a", {"loans": 7})]  # busy until 110: 100 s of talk and 10 s of wrap-up
    patient = simulate(strategy, agents, [call("c1", 0, talk=100), call("c2", 0.5, patience=109.5)])
    assert patient.outcomes[1].answered_at == 110 and patient.outcomes[1].abandoned_at is None
    impatient = simulate(strategy, agents, [call("c1", 0, talk=100), call("c2", 0.5, patience=109.25)])
    assert impatient.outcomes[1].answered_at is None and impatient.outcomes[1].abandoned_at == 109.75
    assert day_metrics(impatient, agents)["abandon_rate"] == 0.5


# --- the router in the simulation


def test_router_holds_a_call_for_a_strong_agent_then_widens_at_the_hold_limit() -> None:
    agents = [agent("expert", {"loans": 8}), agent("junior", {"loans": 3})]
    run = simulate("router", agents, [call("c1", 0, talk=600), call("c2", 1)])
    second = run.outcomes[1]
    assert second.agent == "junior" and second.level == Level.ANY_LANGUAGE
    # the hold limit (the patience knob), not the expert's 610 s
    assert second.answered_at == pytest.approx(1 + Policy().hold_max_s)
    assert who(simulate("leastrecent", agents, [call("c1", 0, talk=600), call("c2", 1)]))["c2"] == "junior"


def test_router_knob_zero_takes_the_free_agent_at_once() -> None:
    agents = [agent("expert", {"loans": 8}), agent("junior", {"loans": 3})]
    run = simulate("router", agents, [call("c1", 0, talk=600), call("c2", 1)], knob=0)
    assert (run.outcomes[1].agent, run.outcomes[1].answered_at) == ("junior", 1)


def test_router_prefers_the_dialect_and_the_case_owner() -> None:
    agents = [agent("A1", {"loans": 7}), agent("B2", {"loans": 7}, dialects=("jeolla",)),
              agent("C3", {"loans": 5})]
    run = simulate("router", agents, [call("d", 0, dialect="jeolla"), call("o", 1, owner="C3")])
    assert who(run) == {"d": "B2", "o": "C3"}
    assert [o.rule for o in run.outcomes] == ["best match", "case owner"]
    metrics = day_metrics(run, agents)
    assert metrics["owner_rate"] == 1.0 and metrics["dialect_match_rate"] == 1.0


# --- the day's metrics


def test_metrics_of_a_scripted_day() -> None:
    agents = [agent("x", {"loans": 8}, dialects=("jeolla",)), agent("y", {"loans": 3})]
    calls = [
        call("d1", 0, talk=100, dialect="jeolla", vip=True),  # x: proficient, speaks it -> match
        call("d2", 1),  # x busy -> y (penalty 7): not proficient
        call("d3", 1000, dialect="gyeongsang", owner="y"),  # x: proficient, not the dialect; not the owner
        call("d4", 2000),  # x: match
    ]
    run = simulate("leastrecent", agents, calls, day_s=2100)
    assert who(run) == {"d1": "x", "d2": "y", "d3": "x", "d4": "x"}
    m = day_metrics(run, agents)
    assert (m["calls"], m["answered"], m["abandoned"]) == (4, 4, 0)
    assert m["skill_match_rate"] == 0.5
    assert m["proficiency_match_rate"] == 0.75
    assert m["dialect_match_rate"] == 0.5
    assert m["owner_rate"] == 0.0
    assert m["wait_avg_s"] == 0.0 and m["vip_wait_p95_s"] == 0.0
    # Busy: x 3 calls x (60 + 10) + (100 - 60) s, y 70 s, over 2 agents x 2100 s.
    assert m["utilisation"] == round((3 * 70 + 40 + 70) / (2 * 2100), 4)


def test_the_router_day_on_the_same_script() -> None:
    agents = [agent("x", {"loans": 8}, dialects=("jeolla",)), agent("y", {"loans": 3})]
    calls = [call("d1", 0, talk=100, dialect="jeolla"), call("d2", 1), call("d3", 1000, owner="y"), call("d4", 2000)]
    run = simulate("router", agents, calls, day_s=2100)
    assert who(run) == {"d1": "x", "d2": "y", "d3": "y", "d4": "x"}
    m = day_metrics(run, agents)
    assert m["owner_rate"] == 1.0
    assert m["skill_match_rate"] == 0.5  # d2 (after widening) and d3 (to its owner) went to y
    assert m["wait_avg_s"] == round(Policy().hold_max_s / 4, 1)
    assert m["answered_by_level"]["any_language"] == 1


def test_the_day_is_reproducible_and_has_the_asked_mix() -> None:
    params = DayParams(hours=2, calls_per_hour=400)
    day = make_day(params)
    again = make_day(params)
    assert (day.agents, day.calls, day.shifts) == (again.agents, again.calls, again.shifts)
    calls = day.calls
    assert 0.02 < sum(c.vip for c in calls) / len(calls) < 0.09
    assert 0.2 < sum(c.dialect is not None for c in calls) / len(calls) < 0.4
    assert 0.06 < sum(c.owner is not None for c in calls) / len(calls) < 0.18
    assert all(0 <= c.arrival < 2 * 3600 for c in calls)
    by_id = {a.id: a for a in day.agents}
    assert all(by_id[c.owner].skills.get(c.skill, 0) >= 5 for c in calls if c.owner)
    # Staffing follows the intraday curve: the 10:00 peak needs more agents than 09:00.
    assert day.shifts[1] > day.shifts[0] and len(day.agents) == max(day.shifts)


def test_erlang_c_staffing_matches_the_textbook() -> None:
    # 100 calls in 30 min of 180 s = 10 erlangs; Erlang C gives 80/20 with 14 agents (SL 0.87), 13 is short.
    assert erlang_c_staff(200, 180, 0.80, 20) == 14
    assert erlang_c_staff(0.1, 180) == 1


def test_a_day_with_match_effects_resolves_and_repeats() -> None:
    params = DayParams(hours=2, calls_per_hour=300, seed=3)
    day = make_day(params)
    run = simulate("fewestcalls", day.agents, day.calls, day=day, seed=3)
    m = day_metrics(run, day.agents)
    assert 0.5 < m["fcr"] < 0.9
    assert m["repeats"] > 0 and m["calls"] == m["first_contacts"] + m["repeats"]
    repeats = [o for o in run.outcomes if o.call.repeat_of]
    assert sum(o.call.owner is not None for o in repeats) / len(repeats) > 0.5  # mostly a follow-up case


# --- the latency and throughput harness, small


def test_decision_and_acd_harness_on_a_small_floor() -> None:
    decisions, floor = decision_latency(seconds=20, n_agents=400, waiting=40)
    assert decisions["waiting_min"] >= 30 and decisions["waiting_max"] <= 50
    assert {"enqueue", "set_ready", "tick"} <= set(decisions["ops"])
    assert decisions["decision_p99_ms"] == max(decisions["ops"][op]["p99_ms"] for op in ("enqueue", "set_ready"))
    acd = acd_throughput(floor, seconds=5, changes_per_s=100, rate=2)
    assert acd["changes"] == 500 and sum(acd["changes_by_kind"].values()) == 500
    assert acd["capacity_changes_per_s"] > 0 and acd["ticks"] == 5
