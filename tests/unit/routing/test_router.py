"""The routing core: every rule, widening, and properties over random event sequences."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.routing.router import AgentState, Level, Policy, Router, ServiceLevel, WaitingCall

# The widening rules alone: holds for a better agent (and the guard's widening at the hold deadline) out of the way.
POLICY = Policy(min_proficiency=5, widen_proficiency_after_s=30, widen_language_after_s=60, overflow_after_s=120,
                hold_max_s=1000, hold_patience_share=1.0, hold_default_patience_s=1000,
                service_level=ServiceLevel(0.8, 1000), vip_overflow_after_s=1000)


def agent(agent_id: str, *, idle: float = 0.0, ready: bool = True, **kwargs) -> AgentState:  # type: ignore[no-untyped-def]
    kwargs.setdefault("skills", {"loans": 7})
    for name in ("languages", "dialects"):
        if name in kwargs:
            kwargs[name] = frozenset(kwargs[name])
    return AgentState(id=agent_id, ready=ready, idle_since=idle, status="ready" if ready else "not_ready: lunch",
                      **kwargs)


def call(call_id: str = "c1", *, at: float = 0.0, **kwargs) -> WaitingCall:  # type: ignore[no-untyped-def]
    kwargs.setdefault("skill", "loans")
    return WaitingCall(id=call_id, enqueued_at=at, **kwargs)


def router(*agents: AgentState) -> Router:
    r = Router(POLICY)
    for a in agents:
        r.upsert_agent(a, now=0.0)
    return r


def only(offers):  # type: ignore[no-untyped-def]
    assert len(offers) == 1, offers
    return offers[0]


# --- rule 1: the case owner


def test_case_owner_first_even_over_a_better_agent() -> None:
    r = router(agent("A1", skills={"loans": 10}, idle=0), agent("F2001", skills={"loans": 3}, idle=5))
    offer = only(r.enqueue(call(owner="F2001", at=10), now=10))
    assert (offer.agent_id, offer.rule) == ("F2001", "case owner")


def test_owner_not_ready_goes_to_best_agent_and_says_why() -> None:
    r = router(agent("A1", skills={"loans": 8}), agent("F2001", ready=False, skills={"loans": 9}))
    offer = only(r.enqueue(call(owner="F2001", at=1), now=1))
    assert offer.agent_id == "A1"
    assert any("case owner F2001 skipped: not_ready: lunch" in w for w in offer.why), offer.why


def test_owner_becoming_ready_takes_their_waiting_caller_first() -> None:
    r = router(agent("F2001", ready=False))
    r.enqueue(call("older", at=0, skill="loans"), now=0)
    r.enqueue(call("mine", at=5, owner="F2001"), now=5)
    offer = only(r.set_ready("F2001", True, now=6))
    assert (offer.call_id, offer.rule) == ("mine", "case owner")


# --- rule 2: VIP


def test_vip_only_to_vip_eligible_while_one_is_free() -> None:
    r = router(agent("A1", skills={"loans": 10}, idle=0), agent("V1", skills={"loans": 5}, vip=True, idle=50))
    offer = only(r.enqueue(call(vip=True, at=60), now=60))
    assert (offer.agent_id, offer.rule) == ("V1", "vip")


def test_vip_goes_to_any_qualified_agent_when_no_vip_eligible_is_free() -> None:
    r = router(agent("A1", skills={"loans": 6}), agent("V1", skills={"loans": 9}, vip=True, ready=False))
    offer = only(r.enqueue(call(vip=True, at=1), now=1))
    assert offer.agent_id == "A1"
    assert any("no VIP-eligible agent free" in w for w in offer.why)


def test_vip_is_first_in_line() -> None:
    r = router(agent("A1", ready=False))
    r.enqueue(call("standard", at=0), now=0)
    r.enqueue(call("vip", at=20, vip=True), now=20)
    assert r.position("vip") == 1 and r.position("standard") == 2
    assert only(r.set_ready("A1", True, now=21)).call_id == "vip"


def test_flow_priority_orders_within_the_same_tier() -> None:
    r = router(agent("A1", ready=False))
    r.enqueue(call("plain", at=0), now=0)
    r.enqueue(call("urgent", at=5, priority=10), now=5)
    assert only(r.set_ready("A1", True, now=6)).call_id == "urgent"


# --- rule 3: proficiency, dialect, idle


def test_best_proficiency_wins() -> None:
    r = router(agent("low", skills={"loans": 6}, idle=0), agent("high", skills={"loans": 9}, idle=10))
    assert only(r.enqueue(call(at=20), now=20)).agent_id == "high"


def test_dialect_breaks_a_proficiency_tie() -> None:
    r = router(agent("plain", skills={"loans": 7}, idle=0),
               agent("local", skills={"loans": 7}, dialects={"gyeongsang"}, idle=10))
    offer = only(r.enqueue(call(dialect="gyeongsang", at=20), now=20))
    assert offer.agent_id == "local"
    assert "dialect gyeongsang matched" in offer.why[-1]


def test_value_weighs_proficiency_against_dialect() -> None:
    # The dialect is worth dialect_match / proficiency = 2.5 proficiency points in the default model.
    r = router(agent("expert", skills={"loans": 9}), agent("local", skills={"loans": 7}, dialects={"jeolla"}))
    assert only(r.enqueue(call(dialect="jeolla", at=1), now=1)).agent_id == "local"
    r = router(agent("expert", skills={"loans": 10}), agent("local", skills={"loans": 7}, dialects={"jeolla"}))
    assert only(r.enqueue(call(dialect="jeolla", at=1), now=1)).agent_id == "expert"


def test_longest_idle_breaks_remaining_ties() -> None:
    r = router(agent("recent", idle=50), agent("waiting", idle=10), agent("middle", idle=30))
    assert only(r.enqueue(call(at=60), now=60)).agent_id == "waiting"


def test_agent_not_ready_is_never_offered() -> None:
    r = router(agent("A1", ready=False))
    assert r.enqueue(call(at=0), now=0) == []
    assert r.position("c1") == 1


# --- rule 4: widening


def test_low_proficiency_accepted_only_after_the_wait() -> None:
    r = router(agent("junior", skills={"loans": 2}))
    assert r.enqueue(call(at=0), now=0) == []
    assert r.tick(now=29) == []
    offer = only(r.tick(now=30))
    assert (offer.agent_id, offer.level) == ("junior", Level.ANY_PROFICIENCY)
    assert any("any proficiency" in w for w in offer.why)


def test_other_language_accepted_after_the_language_wait() -> None:
    r = router(agent("english", skills={"loans": 9}, languages={"en"}))
    r.enqueue(call(language="ko", at=0), now=0)
    assert r.tick(now=59) == []
    assert only(r.tick(now=60)).level is Level.ANY_LANGUAGE


def test_overflow_to_any_agent_so_nobody_waits_forever() -> None:
    r = router(agent("cards", skills={"cards": 9}))
    r.enqueue(call(skill="loans", at=0), now=0)
    assert r.tick(now=119) == []
    offer = only(r.tick(now=120))
    assert (offer.agent_id, offer.rule) == ("cards", "overflow")


def test_agent_freed_takes_widened_call_it_qualifies_for() -> None:
    r = router(agent("junior", skills={"loans": 2}, ready=False))
    r.enqueue(call(at=0), now=0)
    r.tick(now=40)  # widened while nobody was free
    assert only(r.set_ready("junior", True, now=41)).call_id == "c1"


def test_agent_freed_skips_calls_it_does_not_qualify_for_yet() -> None:
    r = router(agent("junior", skills={"loans": 2}, ready=False))
    r.enqueue(call(at=0), now=0)
    assert r.set_ready("junior", True, now=5) == []


# --- offers: one at a time, ring-no-answer, hang-ups


def test_one_offer_per_agent_and_per_call() -> None:
    r = router(agent("A1"))
    first = only(r.enqueue(call("c1", at=0), now=0))
    assert r.enqueue(call("c2", at=1), now=1) == []
    assert first.agent_id == "A1" and r.offered_agents == {"A1": "c1"}
    assert "c2" in r.waiting


def test_ring_no_answer_goes_to_the_next_agent_never_back_to_the_first() -> None:
    r = router(agent("A1", skills={"loans": 9}), agent("A2", skills={"loans": 6}))
    waiting = call(at=0)
    assert only(r.enqueue(waiting, now=0)).agent_id == "A1"
    r.set_ready("A1", False, now=20, status="not_ready: rona")
    offer = only(r.declined("c1", waiting, now=20))
    assert offer.agent_id == "A2"
    r.set_ready("A1", True, now=30)
    assert r.offers["c1"].agent_id == "A2"


def test_declined_call_keeps_its_place_in_line() -> None:
    r = router(agent("A1"))
    first = call("first", at=0)
    r.enqueue(first, now=0)
    r.enqueue(call("second", at=5), now=5)
    r.set_ready("A1", False, now=10, status="not_ready: rona")
    assert r.declined("first", first, now=10) == []
    assert r.position("first") == 1


def test_withdrawn_offer_frees_the_agent_for_the_next_call() -> None:
    r = router(agent("A1"))
    r.enqueue(call("c1", at=0), now=0)
    r.enqueue(call("c2", at=1), now=1)
    offer = only(r.withdraw("c1", now=2))  # the caller hung up while the agent's phone rang
    assert (offer.call_id, r.offered_agents) == ("c2", {"A1": "c2"})


def test_answered_call_leaves_and_the_agent_is_busy() -> None:
    r = router(agent("A1"))
    r.enqueue(call("c1", at=0), now=0)
    assert r.answered("c1") is not None
    assert r.enqueue(call("c2", at=1), now=1) == []
    assert not r.free("A1")


def test_enqueueing_the_same_call_twice_is_an_error() -> None:
    r = router()
    r.enqueue(call("c1"), now=0)
    try:
        r.enqueue(call("c1"), now=1)
    except ValueError as exc:
        assert "c1" in str(exc)
    else:
        raise AssertionError("second enqueue accepted")


def test_decision_explains_who_and_why() -> None:
    r = router(agent("A1", skills={"loans": 8}, dialects={"gyeongsang"}, idle=0))
    offer = only(r.enqueue(call(dialect="gyeongsang", at=12), now=12))
    assert offer.why[-1] == ("chose A1 (skill loans 8, dialect gyeongsang matched, idle 12 s); value 0.82 "
                             "(first-contact resolution 82% from proficiency prior, weight 1)")
    assert offer.fcr == pytest.approx(1 / (1 + math.exp(-(math.log(0.7 / 0.3) + 0.12 * 3 + 0.3))))


# --- properties over random event sequences

AGENT_IDS = [f"a{i}" for i in range(5)]
SKILLS = ["loans", "cards"]

agents_st = st.builds(
    lambda i, skills, lang, vip: AgentState(id=AGENT_IDS[i], skills=skills, languages=frozenset({lang}), vip=vip),
    st.integers(0, len(AGENT_IDS) - 1),
    st.dictionaries(st.sampled_from(SKILLS), st.integers(0, 10), max_size=2),
    st.sampled_from(["ko", "en"]),
    st.booleans(),
)

events_st = st.lists(st.one_of(
    st.tuples(st.just("call"), st.sampled_from(SKILLS), st.sampled_from(["ko", "en"]), st.booleans(),
              st.one_of(st.none(), st.sampled_from(AGENT_IDS))),
    st.tuples(st.just("ready"), st.sampled_from(AGENT_IDS), st.booleans()),
    st.tuples(st.just("answer"), st.integers(0, 20)),
    st.tuples(st.just("decline"), st.integers(0, 20)),
    st.tuples(st.just("hangup"), st.integers(0, 20)),
    st.tuples(st.just("wait"), st.floats(0, 80)),
), max_size=60)


def _qualifies(r: Router, agent_state: AgentState, waiting: WaitingCall) -> bool:
    if agent_state.id in waiting.excluded:
        return False
    if waiting.owner == agent_state.id or waiting.level is Level.ANY_AGENT:
        return True
    proficiency = agent_state.skills.get(waiting.skill, -1)
    floor = r.policy.min_proficiency if waiting.level is Level.STRICT else 1
    language_ok = waiting.level >= Level.ANY_LANGUAGE or waiting.language in agent_state.languages
    return proficiency >= floor and language_ok


def _check_invariants(r: Router) -> None:
    # No agent holds two offers, no call is offered to two agents, and an offered call is not also waiting.
    assert len(set(r.offered_agents.values())) == len(r.offered_agents)
    assert {o.agent_id for o in r.offers.values()} == set(r.offered_agents)
    assert set(r.offers).isdisjoint(r.waiting)
    # Maximal: no free agent qualifies for any waiting call.
    for agent_state in r.agents.values():
        if r.free(agent_state.id):
            for waiting in r.waiting.values():
                assert not _qualifies(r, agent_state, waiting), (agent_state.id, waiting.id)


@settings(max_examples=300, deadline=None)
@given(st.lists(agents_st, max_size=5), events_st)
def test_never_two_offers_and_matching_stays_maximal(agents: list[AgentState], events: list[tuple]) -> None:
    r = Router(POLICY)
    now = 0.0
    for a in agents:
        r.upsert_agent(AgentState(a.id, dict(a.skills), a.languages, a.dialects, a.vip), now)
    calls: dict[str, WaitingCall] = {}
    for index, event in enumerate(events):
        kind = event[0]
        if kind == "call":
            _, skill, language, vip, owner = event
            c = WaitingCall(id=f"c{index}", skill=skill, enqueued_at=now, language=language, vip=vip, owner=owner)
            calls[c.id] = c
            r.enqueue(c, now)
        elif kind == "ready" and event[1] in r.agents:
            r.set_ready(event[1], event[2], now)
        elif kind in ("answer", "decline", "hangup") and r.offers:
            call_id = sorted(r.offers)[event[1] % len(r.offers)]
            if kind == "answer":
                r.answered(call_id)
            elif kind == "decline":
                agent_id = r.offers[call_id].agent_id
                r.set_ready(agent_id, False, now, "not_ready: rona")
                r.declined(call_id, calls[call_id], now)
            else:
                r.withdraw(call_id, now)
        elif kind == "wait":
            now += event[1]
            r.tick(now)
        _check_invariants(r)


@settings(max_examples=200, deadline=None)
@given(st.lists(agents_st, min_size=1, max_size=5), st.lists(st.tuples(st.sampled_from(SKILLS), st.booleans()),
                                                              min_size=1, max_size=15))
def test_every_waiting_call_is_eventually_offered_when_agents_exist(agents: list[AgentState],
                                                                     arrivals: list[tuple[str, bool]]) -> None:
    r = Router(POLICY)
    for a in agents:
        r.upsert_agent(AgentState(a.id, dict(a.skills), a.languages, a.dialects, a.vip, ready=True), 0.0)
    offered: set[str] = set()
    for index, (skill, vip) in enumerate(arrivals):
        offered |= {o.call_id for o in r.enqueue(WaitingCall(id=f"c{index}", skill=skill, enqueued_at=0.0, vip=vip),
                                                 0.0)}
    now = 0.0
    for _ in range(len(arrivals) + 1):  # each round every offered call is answered and its agent freed
        now += 200  # past the overflow wait
        offered |= {o.call_id for o in r.tick(now)}
        for call_id, offer in list(r.offers.items()):
            r.answered(call_id)
            offered |= {o.call_id for o in r.set_ready(offer.agent_id, True, now)}
    assert offered == {f"c{i}" for i in range(len(arrivals))}
    assert not r.waiting
