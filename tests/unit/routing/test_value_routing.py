"""The value model, the assignment, the hold-for-better rule and its guard, and the policy's refusals."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.routing.assignment import NOT_ALLOWED, best_assignment
from ivr.routing.outcome import OutcomeModel, Pair, UnknownDisposition
from ivr.routing.policy import Coefficients, Policy, PolicyError, ServiceLevel, policy_from_mapping
from ivr.routing.router import AgentState, Level, Router, WaitingCall

# --- the value model


def test_cold_start_is_the_proficiency_prior() -> None:
    model = OutcomeModel()
    assert model.fcr(Pair(5, True, False, False)) == pytest.approx(0.70)
    assert model.fcr(Pair(10, True, False, False)) == pytest.approx(1 / (1 + math.exp(-(math.log(0.7 / 0.3) + 0.6))))
    assert model.fcr(Pair(3, True, False, False)) < 0.70 < model.fcr(Pair(6, True, False, False))


def test_learned_record_moves_the_estimate_and_the_explanation_says_so() -> None:
    model = OutcomeModel(Coefficients(prior_contacts=20))
    for _ in range(80):
        model.learn("A1", "loans", "resolved")
    resolved, contacts = model.record("A1", "loans")
    assert (resolved, contacts) == (80, 80)
    learned = model.estimate(Pair(5, True, False, False, resolved, contacts), weight=1.0)
    assert learned.fcr == pytest.approx((20 * 0.7 + 80) / 100)
    assert "record of 80 contacts" in learned.describe()
    assert "proficiency prior" in model.estimate(Pair(5, True, False, False), 1.0).describe()


def test_pair_effects_and_caller_weight() -> None:
    model = OutcomeModel()
    plain = model.fcr(Pair(6, True, False, False))
    assert model.fcr(Pair(6, True, True, False)) > plain  # dialect spoken
    assert model.fcr(Pair(6, True, False, True)) > model.fcr(Pair(6, True, True, False))  # owner counts most
    assert model.fcr(Pair(6, False, False, False)) < plain  # language not spoken
    assert model.weight(vip=True) == 2.0 and model.weight(False, "gold") == 1.3
    assert model.weight(False, None) == model.weight(False, "platinum") == 1.0  # no tier, unknown tier: standard


def test_unknown_disposition_is_refused_naming_the_field_and_not_counted() -> None:
    model = OutcomeModel()
    with pytest.raises(UnknownDisposition, match="disposition 'fixed'") as caught:
        model.learn("A1", "loans", "fixed")
    assert caught.value.field == "disposition" and model.record("A1", "loans") == (0, 0)
    problems = model.learn_all([("A1", "loans", "resolved"), ("A1", "loans", "maybe"), (None, "loans", "resolved")])
    assert model.record("A1", "loans") == (1, 1)
    assert len(problems) == 1 and "'maybe'" in problems[0]
    assert model.learn("A1", "loans", "no_action") is None and model.record("A1", "loans") == (1, 1)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10), st.integers(0, 10), st.booleans(), st.booleans(), st.booleans(),
       st.integers(0, 50), st.integers(0, 50))
def test_value_is_a_probability_and_monotone_in_proficiency(low: int, high: int, language: bool, dialect: bool,
                                                            owner: bool, resolved: int, more: int) -> None:
    low, high = sorted((low, high))
    model = OutcomeModel()
    contacts = resolved + more
    a = model.fcr(Pair(low, language, dialect, owner, resolved, contacts))
    b = model.fcr(Pair(high, language, dialect, owner, resolved, contacts))
    assert 0 < a <= b < 1


# --- the assignment


def test_assignment_maximises_the_total_not_the_first_row() -> None:
    # Row 0 prefers column 0 slightly; row 1 can only use column 0: the best total gives row 0 column 1.
    scores = np.array([[0.9, 0.8], [0.7, NOT_ALLOWED]])
    assert sorted(best_assignment(scores)) == [(0, 1), (1, 0)]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_assignment_is_the_best_maximal_matching(rows: int, cols: int, data: st.DataObject) -> None:
    cells = data.draw(st.lists(st.one_of(st.just(NOT_ALLOWED), st.floats(0, 3)), min_size=rows * cols,
                               max_size=rows * cols))
    scores = np.array(cells).reshape(rows, cols)
    pairs = best_assignment(scores)
    assert all(scores[r, c] > NOT_ALLOWED / 2 for r, c in pairs)
    assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})
    best = (0, 0.0)  # (pairs, total) of every matching, by brute force: most pairs, then the largest total
    for perm in itertools.permutations(range(cols), min(rows, cols)) if rows <= cols else \
            (p for p in itertools.permutations(range(rows), cols)):
        chosen = list(zip(range(rows), perm, strict=False)) if rows <= cols else list(zip(perm, range(cols),
                                                                                               strict=False))
        ok = [(r, c) for r, c in chosen if scores[r, c] > NOT_ALLOWED / 2]
        best = max(best, (len(ok), sum(scores[r, c] for r, c in ok)))
    assert len(pairs) == best[0]
    assert sum(scores[r, c] for r, c in pairs) == pytest.approx(best[1])


def test_router_solves_several_changes_at_once_with_the_assignment() -> None:
    policy = Policy(hold_max_s=0)
    r = Router(policy)
    # The VIP caller and a standard caller widen in the same tick; only "both" suits the standard caller's
    # language, "ko" suits either: the assignment gives each a match where greedy-in-line would not.
    r.upsert_agent(AgentState("both", {"loans": 6}, languages=frozenset({"ko", "en"}), ready=True), 0)
    r.upsert_agent(AgentState("ko", {"loans": 9}, ready=False), 0)
    r.enqueue(WaitingCall("en", "loans", 0, language="en"), 0)  # takes "both" at once
    assert r.offers["en"].agent_id == "both"


# --- holding for a better agent, within the guard


def floor(policy: Policy | None = None) -> Router:
    r = Router(policy or Policy())
    r.upsert_agent(AgentState("A1", {"loans": 5}, ready=True, idle_since=0, status="ready"), 0)
    r.upsert_agent(AgentState("F2001", {"loans": 9}, ready=False, status="on_call", free_at=104), 0)
    return r


def test_caller_held_for_the_case_owner_predicted_free_and_the_decision_says_so() -> None:
    r = floor()
    assert r.enqueue(WaitingCall("c1", "loans", 100, owner="F2001", queue="loans", patience_s=120), 100) == []
    held = r.waiting["c1"]
    assert held.held_for == "F2001"
    assert held.hold_note.startswith("held 8 s for F2001, predicted free in 4 s")
    assert "service level no calls yet" in held.hold_note
    offer = r.set_ready("F2001", True, 104)[0]
    assert (offer.call_id, offer.agent_id, offer.rule) == ("c1", "F2001", "case owner")
    assert offer.why[0].startswith("held 8 s for F2001")


def test_hold_ends_at_the_deadline_and_the_free_agent_takes_the_call() -> None:
    r = floor()
    r.enqueue(WaitingCall("c1", "loans", 100, owner="F2001", queue="loans", patience_s=120), 100)
    assert r.tick(107.9) == []
    offer = r.tick(108)[0]
    assert (offer.agent_id, offer.waited_s) == ("A1", 8)


def test_no_hold_when_the_better_agent_is_not_due_in_time() -> None:
    r = floor()
    r.agents["F2001"].free_at = 200  # predicted free long after the hold limit
    r.upsert_agent(r.agents["F2001"], 0)
    offer = r.enqueue(WaitingCall("c1", "loans", 100, owner="F2001", queue="loans", patience_s=120), 100)[0]
    assert offer.agent_id == "A1"
    assert any("case owner F2001 skipped" in w for w in offer.why)


def test_impatient_caller_is_not_held_past_their_patience_share() -> None:
    r = floor()
    # patience 12 s: a quarter of it is 3 s, and the owner is due in 4 s.
    offer = r.enqueue(WaitingCall("c1", "loans", 100, owner="F2001", queue="loans", patience_s=12), 100)
    assert offer and offer[0].agent_id == "A1"


def test_service_level_guard_keeps_a_hold_inside_the_threshold_unless_the_queue_can_afford_it() -> None:
    policy = Policy(hold_max_s=60, hold_patience_share=1.0)
    r = floor(policy)
    r.agents["F2001"].free_at = 130
    r.upsert_agent(r.agents["F2001"], 0)
    # No calls yet: the guard caps the hold at 15 s (three quarters of 20 s), so F2001 (due at 30 s) is too late.
    offer = r.enqueue(WaitingCall("c1", "loans", 100, owner="F2001", queue="loans", patience_s=300), 100)
    assert offer and offer[0].agent_id == "A1"
    assert r.hold_deadline(WaitingCall("x", "loans", 100, queue="loans", patience_s=300), 100)[0] == 115
    # A queue at 100 % over its last calls can take one late answer: the hold may pass the threshold.
    for _ in range(50):
        r._count_answer("loans", True)
    deadline, guard = r.hold_deadline(WaitingCall("x", "loans", 100, queue="loans", patience_s=300), 100)
    assert deadline == 160 and "hold limit" in guard


AGENT_IDS = [f"a{i}" for i in range(5)]
events_st = st.lists(st.one_of(
    st.tuples(st.just("call"), st.booleans(), st.one_of(st.none(), st.sampled_from(AGENT_IDS)),
              st.floats(5, 300)),
    st.tuples(st.just("ready"), st.sampled_from(AGENT_IDS), st.booleans(), st.floats(0, 60)),
    st.tuples(st.just("answer"), st.integers(0, 20), st.floats(0, 60)),
    st.tuples(st.just("hangup"), st.integers(0, 20)),
    st.tuples(st.just("wait"), st.floats(0, 30)),
), max_size=50)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.booleans(), st.booleans()), min_size=5, max_size=5), events_st,
       st.floats(0, 60), st.sampled_from([0.5, 0.8, 1.0]))
def test_never_held_past_the_guard_or_the_patience_share(agents: list[tuple[int, bool, bool]], events: list[tuple],
                                                         hold_max: float, share: float) -> None:
    policy = Policy(hold_max_s=hold_max, service_level=ServiceLevel(share, 20.0))
    r = Router(policy)
    now = 0.0
    for agent_id, (proficiency, dialect, vip) in zip(AGENT_IDS, agents, strict=True):
        r.upsert_agent(AgentState(agent_id, {"loans": proficiency}, dialects=frozenset({"jeolla"} if dialect else ()),
                                  vip=vip), now)
    for index, event in enumerate(events):
        kind = event[0]
        if kind == "call":
            _, vip, owner, patience = event
            r.enqueue(WaitingCall(f"c{index}", "loans", now, vip=vip, owner=owner, queue="loans",
                                  dialect="jeolla", patience_s=patience), now)
        elif kind == "ready":
            _, agent_id, ready, due = event
            r.set_ready(agent_id, ready, now, free_at=None if ready else now + due)
        elif kind == "answer" and r.offers:
            call_id = sorted(r.offers)[event[1] % len(r.offers)]
            r.answered(call_id, free_at=now + event[2])
        elif kind == "hangup" and r.waiting:
            r.withdraw(sorted(r.waiting)[event[1] % len(r.waiting)], now)
        elif kind == "wait":
            now += event[1]
            r.tick(now)
        for call in r.waiting.values():
            if call.held_for is None:
                continue
            limit = policy.hold_limit_s(call.patience_s, call.vip)
            assert call.held_until <= call.enqueued_at + limit + 1e-9  # the knob and the patience share
            assert call.held_until <= call.enqueued_at + (call.patience_s or 0) * policy.hold_patience_share + 1e-9
            assert now <= call.held_until + 1e-9  # the tick released every hold that was due
            assert call.held_for not in r.offered_agents and not r.free(call.held_for)
        # A free agent and a waiting call it qualifies for exist only while that call is held.
        for agent in r.agents.values():
            if r.free(agent.id):
                for call in r.waiting.values():
                    if r._qualifies(agent, call) and agent.id not in call.excluded:
                        assert call.held_for is not None, (agent.id, call.id, call.level)


# --- bad input


@pytest.mark.parametrize(("data", "field"), [
    ({"hold_max_s": -1}, "hold_max_s"),
    ({"widen_language_after_s": -5}, "widen_language_after_s"),
    ({"service_level": {"share": 1.2, "within_s": 20}}, "service_level.share"),
    ({"service_level": "120/20"}, "service_level.share"),
    ({"queue_service_levels": {"fraud": [0.9, -10]}}, "queue_service_levels.fraud.within_s"),
    ({"outcome": {"dialect": 0.3}}, "outcome.dialect"),
    ({"outcome": {"base_fcr": 1.5}}, "outcome.base_fcr"),
    ({"outcome": {"vip_weight": -2}}, "outcome.vip_weight"),
    ({"hold_patience_share": 2}, "hold_patience_share"),
    ({"holdmax": 3}, "holdmax"),
    ({"min_proficiency": 11}, "min_proficiency"),
])
def test_bad_policy_is_refused_naming_the_field(data: dict, field: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_mapping(data)
    assert caught.value.field == field and field in str(caught.value)


def test_policy_from_a_file_like_mapping() -> None:
    policy = policy_from_mapping(json.loads('{"service_level": "85/15", "queue_service_levels": {"fraud": "90/10"},'
                                            ' "hold_max_s": 5, "outcome": {"dialect_match": 0.4}}'))
    assert policy.target("fraud") == ServiceLevel(0.9, 10) and policy.target("loans") == ServiceLevel(0.85, 15)
    assert policy.hold_max_s == 5 and policy.outcome.dialect_match == 0.4 and policy.outcome.case_owner == 1.0


def test_agent_with_no_skills_takes_overflow_calls_only() -> None:
    r = Router(Policy(vip_overflow_after_s=1000))
    r.upsert_agent(AgentState("empty", {}, ready=True), 0)
    assert r.enqueue(WaitingCall("c1", "loans", 0, queue="loans"), 0) == []
    assert r.tick(Policy().overflow_after_s - 1) == []
    offer = r.tick(Policy().overflow_after_s)[0]
    assert (offer.agent_id, offer.rule, offer.level) == ("empty", "overflow", Level.ANY_AGENT)


# --- the service-level priority: who a freed agent takes


def line_for_one_agent(policy: Policy, callers: list[WaitingCall]) -> Router:
    """Callers in line (enqueued with nobody free, no holds), then one loans agent about to come free."""
    r = Router(policy)
    r.upsert_agent(AgentState("A1", {"loans": 7, "fraud": 7}, ready=False, status="on_call"), 0)
    for call in callers:
        assert r.enqueue(call, call.enqueued_at) == []
    return r


def test_a_freed_agent_takes_the_caller_who_can_still_make_the_service_level_before_a_more_valuable_late_one() \
        -> None:
    # At 30 s: the gold caller has waited 25 s (past 20 s, lost to the service level whoever answers now), the
    # standard caller 18 s (2 s left). Value and wait alone favour the gold caller; the service level does not.
    callers = [WaitingCall("gold_late", "loans", 5, queue="loans", tier="gold", patience_s=300),
               WaitingCall("std_in_time", "loans", 12, queue="loans", patience_s=300)]
    offer = line_for_one_agent(Policy(), callers).set_ready("A1", True, 30)[0]
    assert offer.call_id == "std_in_time"
    assert "most at risk of missing the service level (2 s of 20 s left)" in " ".join(offer.why)
    off = Policy(outcome=Coefficients(service_level_priority=0))
    assert line_for_one_agent(off, [WaitingCall(c.id, c.skill, c.enqueued_at, queue=c.queue, tier=c.tier,
                                                patience_s=c.patience_s) for c in callers]) \
        .set_ready("A1", True, 30)[0].call_id == "gold_late"


def test_inside_the_threshold_the_least_time_left_comes_first_over_value() -> None:
    # Both inside 20 s: the gold caller (1 s waited) is worth more, the standard caller (8 s) has less time left.
    callers = [WaitingCall("std_8s", "loans", 22, queue="loans", patience_s=300),
               WaitingCall("gold_1s", "loans", 29, queue="loans", tier="gold", patience_s=300)]
    assert line_for_one_agent(Policy(), callers).set_ready("A1", True, 30)[0].call_id == "std_8s"


def test_the_time_left_is_against_each_queue_s_own_threshold() -> None:
    # fraud at 90/10: 8 s waited leaves 2 s; loans at 80/20: the gold caller's 12 s waited leave 8 s.
    policy = Policy(queue_service_levels={"fraud": ServiceLevel(0.9, 10)})
    callers = [WaitingCall("loans_12s", "loans", 18, queue="loans", tier="gold", patience_s=300),
               WaitingCall("fraud_8s", "fraud", 22, queue="fraud", patience_s=300)]
    assert line_for_one_agent(policy, callers).set_ready("A1", True, 30)[0].call_id == "fraud_8s"


def test_urgency_steps_down_at_the_threshold_and_keeps_growing_after() -> None:
    model = OutcomeModel()
    inside = [model.urgency(w, 20, None) for w in (0, 10, 19.9)]
    after = [model.urgency(w, 20, None) for w in (20, 40, 80)]
    assert inside == sorted(inside) and after == sorted(after)
    assert min(inside) > max(after[:2])  # anyone who can still make it comes first (up to 40 s waited here)
    assert min(inside) > model.c.vip_weight  # and it outweighs any match's value (at most a VIP's weight)
    with pytest.raises(PolicyError, match="service_level_priority"):
        policy_from_mapping({"outcome": {"service_level_priority": -1}})
