"""A realistic contact-centre day, simulated: the router against app_queue's strategies on the same callers.

What a planner would recognise (figures and where they come from: README.md, "Routing: the realistic day"):

- an intraday arrival curve with a morning peak (``HOURLY_PROFILE``), staffed per hour from Erlang C for 80 % in
  20 s at the forecast load (first contacts plus the repeats a 70 % first-contact resolution brings);
- multi-skilled agents (2 to 4 of 8 skills, proficiency spread by seniority), 35 % speaking one of four
  dialects, 15 % VIP-eligible, each with their own first-contact resolution per skill and their own pace;
- callers: 30 % with a dialect, 5 % VIP, 15 % gold, 3 % English, 12 % with an open case whose owner (a roster
  agent, often off shift or busy) should take it; patience lognormal (median 110 s);
- handle time and first-contact resolution depend on the match (``Truth``); an unresolved contact brings a
  repeat call later in the day (60 %, median 90 min later), as a follow-up case owned by the agent who took it;
- a callback offer before the caller's patience runs out; 40 % accept and keep their place.

Every strategy sees the same callers: each call's random draws (talk, resolution, repeat, callback) are fixed by
the seed and the call's id (common random numbers), so differences are the routing's, not luck's.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.common import percentile
from ivr.routing.router import AgentState, Level, Offer, Policy, Router, WaitingCall

SEED = 20261122

SKILL_MIX: dict[str, float] = {
    "general": 0.24, "cards": 0.18, "payments": 0.16, "loans": 0.12,
    "deposits": 0.10, "complaints": 0.08, "fraud": 0.07, "fx": 0.05,
}
"""Share of calls needing each skill (the flow's intents); agents' skills are drawn from the same mix."""
TALK_MEAN_S: dict[str, float] = {
    "general": 180, "cards": 210, "payments": 200, "loans": 300,
    "deposits": 240, "complaints": 300, "fraud": 270, "fx": 240,
}
"""Mean talk time per skill of a proficiency-5 agent (lognormal, sigma TALK_SIGMA): about 3.8 min over the mix."""
TALK_SIGMA = 0.6
DIALECTS = ("gyeongsang", "jeolla", "chungcheong", "jeju")
DIALECT_WEIGHTS = (0.5, 0.25, 0.2, 0.05)
"""Which dialect a dialect caller (or agent) speaks: Gyeongsang is the largest group, Jeju the smallest."""
STRATEGIES = ("router", "ringall", "leastrecent", "fewestcalls")
BASELINES = STRATEGIES[1:]
HOURLY_PROFILE = (0.80, 1.35, 1.30, 1.10, 0.85, 0.95, 1.00, 0.90, 0.75)
"""Arrival rate per hour of the day (09:00-18:00) relative to the mean (mean 1.0): the peak is 10:00-12:00."""


# --- what the day is made of -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truth:
    """How the world responds to a match (the simulation's, not the router's: the router learns the agent part).

    First-contact resolution: logit(p) = logit(base_fcr) + proficiency × (p − 5) + the agent's own skill offset
    + dialect_match + case_owner + language_mismatch. Handle time: the call's talk × (1 − speed × (p − 5)) ×
    owner_speed (owner) × dialect_speed (dialect spoken) × language_speed (language not spoken) × the agent's pace.
    """

    base_fcr: float = 0.70
    proficiency: float = 0.12
    agent_sigma: float = 0.5
    """Spread (logit) of agents' own resolution per skill around what their proficiency says."""
    dialect_match: float = 0.30
    case_owner: float = 1.0
    language_mismatch: float = -1.5
    speed: float = 0.04
    """Handle time shorter by this share per proficiency point above 5 (longer below)."""
    pace_sigma: float = 0.15
    """Spread of agents' own pace (lognormal)."""
    owner_speed: float = 0.85
    dialect_speed: float = 0.95
    language_speed: float = 1.30


@dataclass(frozen=True, slots=True)
class DayParams:
    hours: int = 9
    calls_per_hour: float = 560.0
    """First contacts per hour on average (repeats come on top)."""
    wrap_s: float = 10.0
    vip_share: float = 0.05
    gold_share: float = 0.15
    dialect_share: float = 0.30
    agent_dialect_share: float = 0.35
    english_share: float = 0.03
    open_case_share: float = 0.12
    patience_median_s: float = 110.0
    patience_sigma: float = 0.8
    repeat_share: float = 0.60
    """Unresolved contacts that call again the same day (if the day lasts)."""
    repeat_median_s: float = 5400.0
    repeat_owned_share: float = 0.80
    """Repeats whose follow-up case is owned by the agent who took the first contact."""
    callback_accept: float = 0.40
    callback_offer_before_s: float = 10.0
    history_contacts: int = 300
    """Dispositions per agent in the router's history before the day (months of work), 0 = cold start."""
    forecast_fcr: float = 0.70
    """The planner's first-contact resolution, for the repeats in the staffing forecast."""
    service_target: float = 0.80
    service_within_s: float = 20.0
    customers: int = 30_000
    seed: int = SEED


@dataclass(frozen=True, slots=True)
class DayCall:
    """One caller of the simulated day: the same for every strategy (a repeat is made the same way for all)."""

    id: str
    arrival: float
    skill: str
    talk_s: float
    """Talk time with a proficiency-5 agent of average pace (the match changes it, see ``Truth``)."""
    patience_s: float
    """The caller hangs up once their wait would exceed this (unless they took a callback)."""
    language: str = "ko"
    dialect: str | None = None
    vip: bool = False
    owner: str | None = None
    """The agent owning the caller's open case."""
    tier: str = "standard"
    resolve_u: float = 0.5
    """The call's uniform draw for resolution: resolved when below the pair's probability."""
    repeat_u: float = 1.0
    """Below ``repeat_share``: an unresolved contact calls again."""
    callback_u: float = 1.0
    """Below ``callback_accept``: the caller takes the callback offer."""
    repeat_of: str | None = None


@dataclass(slots=True)
class Outcome:
    call: DayCall
    agent: str | None = None
    answered_at: float | None = None
    abandoned_at: float | None = None
    callback: bool = False
    """The caller took a callback (kept their place, hung up)."""
    resolved: bool | None = None
    """First-contact resolution (None without a ``Truth``)."""
    rule: str = ""
    level: int = -1
    fcr_estimate: float = float("nan")
    """The router's estimate for the pair (router only)."""


def _skill(rng: random.Random) -> str:
    return rng.choices(list(SKILL_MIX), list(SKILL_MIX.values()))[0]


def _dialect(rng: random.Random) -> str:
    return rng.choices(DIALECTS, DIALECT_WEIGHTS)[0]


def make_agents(n: int, rng: random.Random, prefix: str = "A", dialect_share: float = 0.40) -> list[AgentState]:
    """A realistic mix: 10 % trainees (below the strict proficiency everywhere), 65 % regulars, 25 % seniors."""
    skills, weights = list(SKILL_MIX), list(SKILL_MIX.values())
    agents: list[AgentState] = []
    for i in range(n):
        tier = rng.random()
        lo, hi = (1, 4) if tier < 0.10 else (3, 8) if tier < 0.75 else (5, 10)
        mine: list[str] = []
        for _ in range(rng.choice((2, 3, 3, 4))):
            left = [s for s in skills if s not in mine]
            mine.append(rng.choices(left, [weights[skills.index(s)] for s in left])[0])
        proficiency = {s: rng.randint(lo, hi) for s in mine}
        if tier >= 0.10:
            proficiency[mine[0]] = rng.randint(max(lo, 5), hi)  # everyone past training is strong in something
        agents.append(AgentState(
            id=f"{prefix}{i:05d}", skills=proficiency,
            languages=frozenset({"ko", "en"}) if rng.random() < 0.10 else frozenset({"ko"}),
            dialects=frozenset({_dialect(rng)}) if rng.random() < dialect_share else frozenset(),
            vip=tier >= 0.10 and rng.random() < 0.15 / 0.90,
        ))
    return agents


# --- Erlang C staffing --------------------------------------------------------------------------------------------


def erlang_c(agents: int, erlangs: float) -> float:
    """Probability a caller waits (Erlang C), by the Erlang B recursion (stable for hundreds of agents)."""
    if agents <= erlangs:
        return 1.0
    b = 1.0
    for k in range(1, agents + 1):
        b = erlangs * b / (k + erlangs * b)
    return agents * b / (agents - erlangs * (1 - b))


def erlang_c_staff(calls_per_hour: float, handle_s: float, target: float = 0.80, within_s: float = 20.0) -> int:
    """Fewest agents answering ``target`` of calls within ``within_s`` (Erlang C, no abandonment)."""
    erlangs = calls_per_hour * handle_s / 3600
    n = max(1, math.floor(erlangs) + 1)
    while 1 - erlang_c(n, erlangs) * math.exp(-(n - erlangs) * within_s / handle_s) < target:
        n += 1
    return n


@dataclass(slots=True)
class Day:
    """A day to simulate: the roster, who is on shift each hour, the first contacts, and the world's truth."""

    params: DayParams
    agents: list[AgentState]
    calls: list[DayCall]
    shifts: list[int]
    """Agents on shift each hour: the first ``shifts[h]`` of the roster."""
    offset: dict[tuple[str, str], float]
    """(agent, skill) -> the agent's own resolution offset (logit)."""
    pace: dict[str, float]
    """Agent -> their pace factor on handle time."""
    truth: Truth = field(default_factory=Truth)
    handle_forecast_s: float = 0.0


def make_day(params: DayParams, truth: Truth | None = None) -> Day:
    truth = truth or Truth()
    rng = random.Random(params.seed)
    mean_talk = sum(SKILL_MIX[s] * TALK_MEAN_S[s] for s in SKILL_MIX)
    handle = mean_talk + params.wrap_s
    # Forecast: first contacts plus the repeats the planner's resolution rate brings (those of the day).
    repeats = (1 - params.forecast_fcr) * params.repeat_share * 0.8
    shifts = [erlang_c_staff(params.calls_per_hour * f * (1 + repeats), handle, params.service_target,
                             params.service_within_s) for f in HOURLY_PROFILE[:params.hours]]
    agents = make_agents(max(shifts), rng, dialect_share=params.agent_dialect_share)
    rng.shuffle(agents)  # who works which hours has nothing to do with skill
    offset = {(a.id, s): rng.gauss(0, truth.agent_sigma) for a in agents for s in a.skills}
    pace = {a.id: rng.lognormvariate(0, truth.pace_sigma) for a in agents}
    owners = {s: [a.id for a in agents if a.skills.get(s, 0) >= 5] for s in SKILL_MIX}
    customers: list[dict[str, Any]] = []
    for _ in range(params.customers):
        tier_u = rng.random()
        case_skill = _skill(rng) if rng.random() < params.open_case_share else None
        customers.append({
            "tier": "vip" if tier_u < params.vip_share else "gold" if tier_u < params.vip_share + params.gold_share
            else "standard",
            "dialect": _dialect(rng) if rng.random() < params.dialect_share else None,
            "language": "en" if rng.random() < params.english_share else "ko",
            "patience_s": rng.lognormvariate(math.log(params.patience_median_s), params.patience_sigma),
            "case": (case_skill, rng.choice(owners[case_skill])) if case_skill and owners[case_skill] else None,
        })
    calls: list[DayCall] = []
    t, day_s = 0.0, params.hours * 3600
    while True:
        hour = min(int(t // 3600), params.hours - 1)
        gap = rng.expovariate(params.calls_per_hour / 3600 * HOURLY_PROFILE[hour])
        if int((t + gap) // 3600) != hour and (hour + 1) * 3600 < day_s:
            t = (hour + 1) * 3600.0  # piecewise-constant rate: memoryless, so restart at the hour
            continue
        t += gap
        if t >= day_s:
            break
        who = customers[rng.randrange(len(customers))]
        skill, owner = who["case"] if who["case"] else (_skill(rng), None)
        calls.append(DayCall(
            id=f"d{len(calls)}", arrival=t, skill=skill,
            talk_s=rng.lognormvariate(math.log(TALK_MEAN_S[skill]) - TALK_SIGMA**2 / 2, TALK_SIGMA),
            patience_s=who["patience_s"], language=who["language"], dialect=who["dialect"],
            vip=who["tier"] == "vip", owner=owner, tier=who["tier"], resolve_u=rng.random(), repeat_u=rng.random(),
            callback_u=rng.random()))
    return Day(params, agents, calls, shifts, offset, pace, truth, handle)


def true_fcr(day: Day, call: DayCall, agent: AgentState) -> float:
    t = day.truth
    x = (math.log(t.base_fcr / (1 - t.base_fcr)) + t.proficiency * (agent.skills.get(call.skill, 0) - 5)
         + day.offset.get((agent.id, call.skill), 0.0)
         + (t.dialect_match if call.dialect and call.dialect in agent.dialects else 0.0)
         + (t.case_owner if call.owner == agent.id else 0.0)
         + (t.language_mismatch if call.language not in agent.languages else 0.0))
    return 1 / (1 + math.exp(-x))


def handle_s(day: Day, call: DayCall, agent: AgentState) -> float:
    t = day.truth
    factor = (1 - t.speed * (agent.skills.get(call.skill, 0) - 5)) * day.pace.get(agent.id, 1.0)
    if call.owner == agent.id:
        factor *= t.owner_speed
    if call.dialect and call.dialect in agent.dialects:
        factor *= t.dialect_speed
    if call.language not in agent.languages:
        factor *= t.language_speed
    return call.talk_s * factor


def repeat_of(day: Day, call: DayCall, agent_id: str, ended: float) -> DayCall | None:
    """The repeat an unresolved contact brings, or None (it does not call again today). Deterministic in the
    seed and the call, so every strategy that leaves the same call unresolved gets the same repeat."""
    p = day.params
    if call.repeat_u >= p.repeat_share:
        return None
    rng = random.Random(f"{p.seed}:{call.id}")
    at = ended + rng.lognormvariate(math.log(p.repeat_median_s), 0.8)
    if at >= p.hours * 3600:
        return None
    owner = agent_id if rng.random() < p.repeat_owned_share else call.owner
    return DayCall(id=f"{call.id}r", arrival=at, skill=call.skill,
                   talk_s=rng.lognormvariate(math.log(TALK_MEAN_S[call.skill]) - TALK_SIGMA**2 / 2, TALK_SIGMA),
                   patience_s=call.patience_s * 0.8,  # a repeat caller is less patient
                   language=call.language, dialect=call.dialect, vip=call.vip, owner=owner, tier=call.tier,
                   resolve_u=rng.random(), repeat_u=rng.random(), callback_u=rng.random(), repeat_of=call.id)


def history(day: Day, agent: AgentState, rng: random.Random) -> list[tuple[str, bool]]:
    """The agent's past dispositions (skill, resolved), drawn from their true resolution in each skill."""
    skills = [s for s, p in agent.skills.items() if p >= 1]
    if not skills:
        return []
    weights = [SKILL_MIX[s] * (agent.skills[s] + 1) for s in skills]
    probes = {s: DayCall(id="history", arrival=0.0, skill=s, talk_s=0.0, patience_s=0.0) for s in skills}
    out = []
    for _ in range(day.params.history_contacts):
        skill = rng.choices(skills, weights)[0]
        out.append((skill, rng.random() < true_fcr(day, probes[skill], agent)))
    return out


# --- the engines ------------------------------------------------------------------------------------------------


class Engine(Protocol):
    """Who answers which caller: the router, or one of app_queue's strategies."""

    def arrive(self, call: DayCall, now: float) -> list[tuple[str, str]]: ...
    def agent_free(self, agent_id: str, now: float) -> list[tuple[str, str]]: ...
    def agent_off(self, agent_id: str, now: float) -> None: ...
    def abandon(self, call_id: str, now: float) -> bool: ...
    def tick(self, now: float) -> list[tuple[str, str]]: ...
    def connected(self, call: DayCall, agent_id: str, now: float, ends_at: float) -> None: ...
    def ended(self, call: DayCall, agent_id: str, resolved: bool | None, now: float) -> None: ...


class RouterEngine:
    """The pure Router as the ACD drives it: offers ring one agent and, in the simulation, are always answered;
    a busy agent's predicted free time is the skill's mean handle time (what the ACD knows), and every
    disposition is taught to the value model as the call ends."""

    def __init__(self, agents: Sequence[AgentState], policy: Policy, wrap_s: float = 10.0) -> None:
        self.router = Router(policy)
        self.offers: dict[str, Offer] = {}
        self.wrap_s = wrap_s
        for a in agents:
            self.router.upsert_agent(AgentState(a.id, dict(a.skills), a.languages, a.dialects, a.vip, ready=False,
                                                idle_since=0.0, status="off shift"), 0.0)

    def _answer(self, offers: list[Offer], now: float) -> list[tuple[str, str]]:
        for offer in offers:
            self.offers[offer.call_id] = offer
        return [(o.call_id, o.agent_id) for o in offers]

    def arrive(self, call: DayCall, now: float) -> list[tuple[str, str]]:
        return self._answer(self.router.enqueue(WaitingCall(
            id=call.id, skill=call.skill, enqueued_at=call.arrival, language=call.language, dialect=call.dialect,
            vip=call.vip, owner=call.owner, queue=call.skill, patience_s=call.patience_s, tier=call.tier), now), now)

    def agent_free(self, agent_id: str, now: float) -> list[tuple[str, str]]:
        return self._answer(self.router.set_ready(agent_id, True, now), now)

    def agent_off(self, agent_id: str, now: float) -> None:
        self.router.set_ready(agent_id, False, now, "off shift")

    def abandon(self, call_id: str, now: float) -> bool:
        waiting = call_id in self.router.waiting
        self.router.withdraw(call_id, now)
        return waiting

    def tick(self, now: float) -> list[tuple[str, str]]:
        return self._answer(self.router.tick(now), now)

    def connected(self, call: DayCall, agent_id: str, now: float, ends_at: float) -> None:
        predicted = now + TALK_MEAN_S.get(call.skill, 240.0) + self.wrap_s
        self.router.answered(call.id, free_at=predicted)

    def ended(self, call: DayCall, agent_id: str, resolved: bool | None, now: float) -> None:
        if resolved is not None:
            self.router.model.learn(agent_id, call.skill, "resolved" if resolved else "follow_up")
        agent = self.router.agents[agent_id]
        if not agent.ready and agent.status == "on_call":
            # After-call work: free at a known time.
            self.router.set_ready(agent_id, False, now, "wrap_up", free_at=now + self.wrap_s)


def penalty(proficiency: int) -> int:
    """Queue member penalty for a proficiency: the better the agent, the lower the penalty (10 -> 0, 1 -> 9)."""
    return 10 - proficiency


class QueueEngine:
    """app_queue as configured per skill: one queue per skill, its members every agent with the skill.

    Faithful to app_queue where the strategies differ: a caller rings only the free members with the
    lowest penalty (metric = penalty * 1,000,000 + the strategy's metric, lowest first; a tie goes to the
    first in a fixed member order, here the directory's, in Asterisk the members container's). ringall
    rings that whole tier and the first to pick up wins (a random one); leastrecent prefers the member
    whose last call ended longest ago (never called first); fewestcalls the one with the fewest completed
    calls. lastcall and calls are per agent across queues (shared_lastcall, on by default).

    The patience knob is a queue rule (queuerules.conf): a caller starts with QUEUE_MAX_PENALTY = 10 −
    min_proficiency (members of proficiency ≥ 5 only) and ``penaltychange => <knob>,10`` lifts it after
    ``knob`` seconds; knob 0 = no rule (every member at once, lowest penalty first).

    Callers wait in order of QUEUE_PRIO (VIP first), then arrival; with autofill, as many callers as there
    are free members are tried at once, each within its own max penalty. When an agent comes free and
    several of their queues have callers, the callers' retry timers race for them: the winner is a random one
    of those queues. Nothing knows dialects, languages, case owners or tiers below VIP.
    """

    def __init__(self, strategy: str, agents: Sequence[AgentState], seed: int, knob_s: float = 0.0,
                 min_proficiency: int = 5) -> None:
        if strategy not in BASELINES:
            raise ValueError(f"unknown app_queue strategy {strategy}")
        self.strategy = strategy
        self.knob_s = knob_s
        self.strict_penalty = penalty(min_proficiency)
        self.rng = random.Random(seed)
        self.members: dict[str, list[tuple[int, str]]] = {s: [] for s in SKILL_MIX}
        self.queues_of: dict[str, list[str]] = {}
        for a in agents:  # configuration order = the directory's order
            mine = [s for s, p in a.skills.items() if p >= 1]
            self.queues_of[a.id] = mine
            for s in mine:
                self.members.setdefault(s, []).append((penalty(a.skills[s]), a.id))
        self.free: set[str] = set()
        self.lastcall: dict[str, float] = {}
        self.calls: dict[str, int] = {a.id: 0 for a in agents}
        self.waiting: dict[str, list[tuple[int, float, str]]] = {s: [] for s in self.members}
        self.skill_of: dict[str, str] = {}
        self.arrival: dict[str, float] = {}

    def metric(self, agent_id: str, member_penalty: int, now: float) -> float:
        if self.strategy == "leastrecent":
            last = self.lastcall.get(agent_id)
            strategy_metric = 0.0 if last is None else 1_000_000 - (now - last)
        elif self.strategy == "fewestcalls":
            strategy_metric = self.calls[agent_id]
        else:
            strategy_metric = 0.0
        return member_penalty * 1_000_000 + strategy_metric

    def max_penalty(self, call_id: str, now: float) -> int:
        if self.knob_s <= 0 or now - self.arrival[call_id] >= self.knob_s:
            return 10
        return self.strict_penalty

    def pick(self, skill: str, now: float, max_penalty: int = 10) -> str | None:
        """The member a caller in ``skill``'s queue reaches now, or None when no member is free."""
        ringing = [(self.metric(a, p, now), a) for p, a in self.members.get(skill, ())
                   if a in self.free and p <= max_penalty]
        if not ringing:
            return None
        best = min(m for m, _ in ringing)
        tier = [a for m, a in ringing if m == best]
        return self.rng.choice(tier) if self.strategy == "ringall" else tier[0]

    def _fill(self, skill: str, now: float) -> list[tuple[str, str]]:
        line, connected = self.waiting.get(skill, []), []
        k = 0
        while k < len(line) and self.free:
            call_id = line[k][2]
            agent_id = self.pick(skill, now, self.max_penalty(call_id, now))
            if agent_id is None:
                if self.knob_s <= 0:
                    break  # nobody free for the head: nobody for anyone behind (same penalty limit)
                k += 1
                continue
            line.pop(k)
            self.free.discard(agent_id)
            connected.append((call_id, agent_id))
        return connected

    def arrive(self, call: DayCall, now: float) -> list[tuple[str, str]]:
        self.skill_of[call.id] = call.skill
        self.arrival[call.id] = call.arrival
        bisect.insort(self.waiting.setdefault(call.skill, []), (-int(call.vip), call.arrival, call.id))
        return self._fill(call.skill, now)

    def agent_free(self, agent_id: str, now: float) -> list[tuple[str, str]]:
        self.free.add(agent_id)
        queues = [s for s in self.queues_of[agent_id] if self.waiting[s]]
        self.rng.shuffle(queues)
        for s in queues:
            connected = self._fill(s, now)
            if connected:
                return connected
        return []

    def agent_off(self, agent_id: str, now: float) -> None:
        self.free.discard(agent_id)

    def abandon(self, call_id: str, now: float) -> bool:
        line = self.waiting.get(self.skill_of.get(call_id, ""), [])
        for k, entry in enumerate(line):
            if entry[2] == call_id:
                del line[k]
                return True
        return False

    def tick(self, now: float) -> list[tuple[str, str]]:
        connected: list[tuple[str, str]] = []
        for skill in self.waiting:
            connected += self._fill(skill, now)
        return connected

    def connected(self, call: DayCall, agent_id: str, now: float, ends_at: float) -> None:
        # update_queue() runs at hang-up; the agent is busy until then, so setting it now is read no earlier.
        self.lastcall[agent_id] = ends_at
        self.calls[agent_id] += 1

    def ended(self, call: DayCall, agent_id: str, resolved: bool | None, now: float) -> None:
        pass


# --- the loop --------------------------------------------------------------------------------------------------

SHIFT, FREE, END, TICK, ARRIVE, CALLBACK, ABANDON = range(7)
"""Event order at equal times: an agent freed at the very second a caller's patience runs out still gets them."""
WIDEN_EPSILON_S = 1e-6


@dataclass(slots=True)
class DayRun:
    strategy: str
    outcomes: list[Outcome]
    busy_s: dict[str, float] = field(default_factory=dict)
    """Per agent: talk plus wrap-up within the day."""
    day_s: float = 0.0
    staffed_s: float = 0.0
    """Agent-seconds on shift."""


def simulate(strategy: str, agents: Sequence[AgentState], calls: Sequence[DayCall], *, wrap_s: float = 10.0,
             day_s: float | None = None, policy: Policy | None = None, seed: int = SEED, knob: float | None = None,
             day: Day | None = None) -> DayRun:
    """Run the day's callers through one strategy; a discrete-event loop on a simulated clock.

    Without ``day`` every agent works all day, handle time is the call's talk and nothing is resolved or
    repeated (the scripted days of the tests); with it, the day's shifts, truth, repeats and callbacks apply.
    ``knob``: the router's hold limit (``hold_max_s``), or app_queue's queue-rule wait.
    """
    policy = policy or Policy()
    if strategy == "router" and knob is not None:
        policy = policy.with_changes(hold_max_s=float(knob))
    engine: Engine
    if strategy == "router":
        router_engine = RouterEngine(agents, policy, wrap_s)
        if day is not None and day.params.history_contacts:
            rng = random.Random(f"history:{day.params.seed}")
            for a in agents:
                for skill, resolved in history(day, a, rng):
                    router_engine.router.model.learn(a.id, skill, "resolved" if resolved else "follow_up")
        engine = router_engine
    else:
        engine = QueueEngine(strategy, agents, seed, knob_s=knob or 0.0, min_proficiency=policy.min_proficiency)
    by_agent = {a.id: a for a in agents}
    day_s = day_s if day_s is not None else (day.params.hours * 3600 if day else
                                             max((c.arrival for c in calls), default=0.0))
    by_id = {c.id: c for c in calls}
    outcomes: dict[str, Outcome] = {}
    busy = {a.id: 0.0 for a in agents}
    on_shift: set[str] = set()
    on_call: set[str] = set()
    events: list[tuple[float, int, int, str]] = []
    seq = 0

    def push(at: float, kind: int, ident: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, kind, seq, ident))

    def add_call(c: DayCall) -> None:
        by_id[c.id] = c
        outcomes[c.id] = Outcome(c)
        push(c.arrival, ARRIVE, c.id)
        if day is not None and c.callback_u < day.params.callback_accept:
            push(c.arrival + max(5.0, c.patience_s - day.params.callback_offer_before_s), CALLBACK, c.id)
        push(c.arrival + c.patience_s, ABANDON, c.id)
        if strategy == "router":
            thresholds = [policy.widen_proficiency_after_s, policy.widen_language_after_s, policy.overflow_after_s]
            thresholds = [min(t, s * c.patience_s) for t, s in zip(thresholds, policy.patience_share, strict=True)]
            if c.vip:
                thresholds.append(policy.vip_overflow_after_s)
            for after in {*thresholds, policy.hold_limit_s(c.patience_s, c.vip),
                          policy.target(c.skill).within_s * 0.75}:
                push(c.arrival + after + WIDEN_EPSILON_S, TICK, c.id)
        elif knob:
            push(c.arrival + knob + WIDEN_EPSILON_S, TICK, c.id)

    for c in calls:
        add_call(c)
    if day is not None:
        for hour, staffed in enumerate(day.shifts):
            push(hour * 3600.0, SHIFT, str(staffed))
    else:
        for a in agents:
            push(0.0, FREE, a.id)
            on_shift.add(a.id)
    staffed_s = 0.0 if day is not None else len(agents) * day_s
    while events:
        now, kind, _, ident = heapq.heappop(events)
        connected: list[tuple[str, str]] = []
        if kind == SHIFT:
            assert day is not None
            wanted = {a.id for a in agents[:int(ident)]}
            staffed_s += len(wanted) * min(3600.0, max(0.0, day_s - now))
            for agent_id in sorted(on_shift - wanted):
                on_shift.discard(agent_id)
                if agent_id not in on_call:
                    engine.agent_off(agent_id, now)
            for agent_id in sorted(wanted - on_shift):
                on_shift.add(agent_id)
                if agent_id not in on_call:
                    connected += engine.agent_free(agent_id, now)
        elif kind == FREE:
            on_call.discard(ident)
            if ident in on_shift:
                connected = engine.agent_free(ident, now)
            else:
                engine.agent_off(ident, now)
        elif kind == END:
            call_id, agent_id = ident.split("|")
            outcome = outcomes[call_id]
            engine.ended(outcome.call, agent_id, outcome.resolved, now)
            if day is not None and outcome.resolved is False:
                again = repeat_of(day, outcome.call, agent_id, now)
                if again is not None:
                    add_call(again)
            push(now + wrap_s, FREE, agent_id)
        elif kind == ARRIVE:
            connected = engine.arrive(by_id[ident], now)
        else:
            outcome = outcomes[ident]
            if outcome.answered_at is not None or outcome.abandoned_at is not None:
                continue
            if kind == TICK:
                connected = engine.tick(now)
            elif kind == CALLBACK:
                outcome.callback = True
            elif not outcome.callback and engine.abandon(ident, now):
                outcome.abandoned_at = now
        for call_id, agent_id in connected:
            outcome, call, agent = outcomes[call_id], by_id[call_id], by_agent[agent_id]
            outcome.agent, outcome.answered_at = agent_id, now
            if isinstance(engine, RouterEngine):
                offer = engine.offers[call_id]
                outcome.rule, outcome.level, outcome.fcr_estimate = offer.rule, int(offer.level), offer.fcr
            talk = handle_s(day, call, agent) if day is not None else call.talk_s
            if day is not None:
                outcome.resolved = call.resolve_u < true_fcr(day, call, agent)
            on_call.add(agent_id)
            engine.connected(call, agent_id, now, now + talk)
            done = now + talk + wrap_s
            busy[agent_id] += max(0.0, min(done, day_s) - min(now, day_s))
            push(now + talk, END, f"{call_id}|{agent_id}")
    ordered = sorted(outcomes.values(), key=lambda o: o.call.arrival)
    return DayRun(strategy, ordered, busy, day_s, staffed_s)


def day_metrics(run: DayRun, agents: Sequence[AgentState], policy: Policy | None = None,
                within_s: float = 20.0) -> dict[str, Any]:
    """The comparison's numbers for one strategy. Waits are of answered callers (speed of answer); the service
    level is over every caller (answered within ``within_s`` over all who called)."""
    policy = policy or Policy()
    by_id = {a.id: a for a in agents}
    calls = len(run.outcomes)
    answered = [o for o in run.outcomes if o.answered_at is not None and o.agent is not None]
    abandoned = sum(1 for o in run.outcomes if o.abandoned_at is not None)

    def wait(o: Outcome) -> float:
        return (o.answered_at or 0.0) - o.call.arrival

    def proficient(o: Outcome) -> bool:
        return by_id[o.agent or ""].skills.get(o.call.skill, 0) >= policy.min_proficiency

    def dialect_ok(o: Outcome) -> bool:
        return o.call.dialect is None or o.call.dialect in by_id[o.agent or ""].dialects

    waits = [wait(o) for o in answered]
    vip_waits = [wait(o) for o in answered if o.call.vip]
    dialect_callers = [o for o in answered if o.call.dialect]
    with_case = [o for o in run.outcomes if o.call.owner]
    judged = [o for o in answered if o.resolved is not None]

    def share(part: int, whole: int) -> float:
        return round(part / whole, 4) if whole else float("nan")

    metrics: dict[str, Any] = {
        "calls": calls,
        "first_contacts": sum(1 for o in run.outcomes if o.call.repeat_of is None),
        "repeats": sum(1 for o in run.outcomes if o.call.repeat_of is not None),
        "answered": len(answered),
        "abandoned": abandoned,
        "callbacks": sum(1 for o in run.outcomes if o.callback),
        "abandon_rate": share(abandoned, calls),
        "service_level": share(sum(1 for w in waits if w <= within_s), calls),
        "fcr": share(sum(1 for o in judged if o.resolved), len(judged)),
        "skill_match_rate": share(sum(1 for o in answered if proficient(o) and dialect_ok(o)), len(answered)),
        "proficiency_match_rate": share(sum(1 for o in answered if proficient(o)), len(answered)),
        "dialect_match_rate": share(sum(1 for o in dialect_callers if dialect_ok(o)), len(dialect_callers)),
        "language_match_rate": share(sum(1 for o in answered if o.call.language in by_id[o.agent or ""].languages),
                                     len(answered)),
        "wait_avg_s": round(sum(waits) / len(waits), 1) if waits else float("nan"),
        "wait_p95_s": round(percentile(waits, 95), 1),
        "vip_wait_p95_s": round(percentile(vip_waits, 95), 1),
        "owner_rate": share(sum(1 for o in with_case if o.agent == o.call.owner), len(with_case)),
        "utilisation": round(sum(run.busy_s.values()) / (run.staffed_s or 1), 4),
    }
    metrics["service_level_20s"] = metrics["service_level"]
    if run.strategy == "router":
        metrics["answered_by_level"] = {lvl.name.lower(): sum(1 for o in answered if o.level == lvl)
                                        for lvl in Level}
        estimates = [(o.fcr_estimate, o.resolved) for o in judged if not math.isnan(o.fcr_estimate)]
        if estimates:
            metrics["fcr_estimated"] = round(sum(e for e, _ in estimates) / len(estimates), 4)
    return metrics
