"""Routing benchmark: the routing core at contact-centre scale, and a simulated day against Asterisk's queues.

1. Decisions. A Router (ivr.routing.router) with 10,000 agents (8 skills, proficiency spread, Korean plus ~10 %
   English, 4 dialects, 15 % VIP-eligible, case owners) and 1,000 calls waiting, most agents busy. The
   floor keeps moving (28 to 42 calls a second arrive and as many agents come free, as in a centre that
   size) while each router call is timed with perf_counter_ns, gc enabled: a call arriving (enqueue), an
   agent becoming ready (set_ready True, usually ending in an offer), a free agent going not ready, the
   answer, a caller hanging up (withdraw), position(), and the once-a-second tick() that widens calls.
2. ACD throughput. From that state, 100 agent state changes per simulated second (ready, answered,
   ring-no-answer, not ready) plus the arrivals, hang-ups and the tick, run at full speed: the changes per
   second one core absorbs, against the 100 /s asked for.
3. A day. A discrete-event simulation (simulated clock) of 8 hours on 60 agents at ~93 % offered load with
   a morning peak, the same callers (skills, VIP, dialect, open cases, patience, talk times) through the
   router and through app_queue's ringall, leastrecent and fewestcalls with proficiency penalties; then
   the same day drawn with five more seeds, to tell differences from noise.

Prints the tables and writes bench/out/routing.json. Runs alone: ``python -m bench.routing``.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Protocol

from bench.common import percentile, report
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
"""Mean talk time per skill (lognormal, sigma TALK_SIGMA): about 3.8 min over the mix."""
TALK_SIGMA = 0.6
DIALECTS = ("gyeongsang", "jeolla", "chungcheong", "jeju")
STRATEGIES = ("router", "ringall", "leastrecent", "fewestcalls")
HOURLY_PROFILE = (0.85, 1.30, 1.20, 1.00, 0.80, 0.95, 1.00, 0.90)
"""Arrival rate per hour of the day relative to the mean (mean 1.0): the morning peak is 10:00-11:00."""


# --- the floor: agents and callers ---------------------------------------------------------------------------


def make_agents(n: int, rng: random.Random, prefix: str = "A") -> list[AgentState]:
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
            dialects=frozenset({rng.choice(DIALECTS)}) if rng.random() < 0.40 else frozenset(),
            vip=tier >= 0.10 and rng.random() < 0.15 / 0.90,
        ))
    return agents


def owners_by_skill(agents: Sequence[AgentState], policy: Policy) -> dict[str, list[str]]:
    """Who may own an open case in each skill: agents strong enough in it."""
    return {s: [a.id for a in agents if a.skills.get(s, 0) >= policy.min_proficiency] for s in SKILL_MIX}


def _skill(rng: random.Random) -> str:
    return rng.choices(list(SKILL_MIX), list(SKILL_MIX.values()))[0]


def _ms(ns: Sequence[int], q: float) -> float:
    return round(percentile([float(v) for v in ns], q) / 1e6, 4)


def _stats(ns: list[int], cpu: list[int]) -> dict[str, Any]:
    """Wall-clock percentiles, and the CPU time of the same samples: a slow sample whose CPU time is short was
    waiting for the processor (the machine is shared), not working."""
    if not ns:
        return {"samples": 0}
    slowest = max(range(len(ns)), key=ns.__getitem__)
    return {"samples": len(ns), "p50_ms": _ms(ns, 50), "p99_ms": _ms(ns, 99), "max_ms": round(ns[slowest] / 1e6, 4),
            "mean_ms": round(sum(ns) / len(ns) / 1e6, 4), "cpu_p99_ms": _ms(cpu, 99),
            "cpu_of_max_ms": round(cpu[slowest] / 1e6, 4)}


class Floor:
    """A big centre in motion around one Router: callers arriving, agents freed, breaks; every router call timed."""

    def __init__(self, n_agents: int, waiting: int, rng: random.Random, policy: Policy) -> None:
        self.rng, self.policy, self.target = rng, policy, waiting
        self.router = Router(policy)
        self.now = 50_000.0
        self.samples: dict[str, list[int]] = {}
        """Per operation: wall-clock nanoseconds of each router call."""
        self.cpu: dict[str, list[int]] = {}
        """The same calls' thread CPU time (plus ~0.6 us for reading that clock)."""
        self.router_ns = 0
        """Wall-clock time spent in router calls (each counted once, whatever breakdowns record it under)."""
        self.calls: dict[str, WaitingCall] = {}
        self.pending: list[Offer] = []
        """Offers ringing (the ACD phase answers them later; the decision phase at once)."""
        self._seq = 0
        agents = make_agents(n_agents, rng)
        self.ids = [a.id for a in agents]
        self.owners = owners_by_skill(agents, policy)
        self.maybe_free: list[str] = []
        """Agents that may be free (checked when drawn): those ready with no call they qualify for."""
        for a in agents:
            # Everyone past training is on a call; half the trainees are ready, waiting for calls that have
            # widened to any proficiency, the other half on a break.
            trainee = max(a.skills.values()) < policy.min_proficiency
            a.ready = trainee and rng.random() < 0.5
            a.status, a.idle_since = ("ready" if a.ready else "on_call"), self.now - rng.uniform(0, 60)
            self.router.upsert_agent(a, self.now)
            if a.ready:
                self.maybe_free.append(a.id)
        # The line: calls younger than the proficiency wait, so no ready trainee qualifies yet.
        for _ in range(waiting):
            call = self._new_call(self.now - rng.uniform(0, 0.8 * policy.widen_proficiency_after_s))
            self.settle(self.router.enqueue(call, self.now), answer=True)

    def _new_call(self, at: float) -> WaitingCall:
        rng = self.rng
        self._seq += 1
        skill = _skill(rng)
        owner = rng.choice(self.owners[skill]) if rng.random() < 0.03 and self.owners[skill] else None
        call = WaitingCall(id=f"c{self._seq}", skill=skill, enqueued_at=at, queue=skill,
                           language="en" if rng.random() < 0.03 else "ko",
                           dialect=rng.choice(DIALECTS) if rng.random() < 0.30 else None,
                           vip=rng.random() < 0.10, owner=owner)
        self.calls[call.id] = call
        return call

    def timed(self, op: str, fn: Callable[[], Any]) -> Any:
        cpu = time.thread_time_ns()
        start = time.perf_counter_ns()
        result = fn()
        wall = time.perf_counter_ns() - start
        self.record(op, wall, time.thread_time_ns() - cpu)
        self.router_ns += wall
        return result

    def record(self, op: str, wall_ns: int, cpu_ns: int) -> None:
        self.samples.setdefault(op, []).append(wall_ns)
        self.cpu.setdefault(op, []).append(cpu_ns)

    def stats(self) -> dict[str, Any]:
        return {op: _stats(ns, self.cpu[op]) for op, ns in sorted(self.samples.items())}

    def settle(self, offers: list[Offer], answer: bool) -> None:
        for offer in offers:
            if answer:
                self.timed("answered", partial(self.router.answered, offer.call_id))
                self.calls.pop(offer.call_id, None)
            else:
                self.pending.append(offer)

    def _draw(self, pool: list[str], ok: Callable[[str], bool]) -> str | None:
        """A random member of ``pool`` passing ``ok``; members that fail are dropped (lazy deletion)."""
        while pool:
            k = self.rng.randrange(len(pool))
            agent_id = pool[k]
            if ok(agent_id):
                return agent_id
            pool[k] = pool[-1]
            pool.pop()
        return None

    def _busy(self, agent_id: str) -> bool:
        return not self.router.agents[agent_id].ready and agent_id not in self.router.offered_agents

    def arrive(self, answer: bool = True) -> None:
        call = self._new_call(self.now)
        self.settle(self.timed("enqueue", lambda: self.router.enqueue(call, self.now)), answer)

    def agent_ready(self, answer: bool = True) -> None:
        """A random not-ready agent comes back (end of wrap-up or of a break) and takes what they qualify for."""
        for _ in range(100):
            agent_id = self.rng.choice(self.ids)
            if self._busy(agent_id):
                break
        else:
            return
        offers = self.timed("set_ready", lambda: self.router.set_ready(agent_id, True, self.now))
        self.record("set_ready (offer made)" if offers else "set_ready (stays free)", self.samples["set_ready"][-1],
                    self.cpu["set_ready"][-1])
        if not offers:
            self.maybe_free.append(agent_id)
        self.settle(offers, answer)

    def agent_not_ready(self) -> bool:
        agent_id = self._draw(self.maybe_free, self.router.free)
        if agent_id is None:
            return False
        self.timed("set_not_ready", lambda: self.router.set_ready(agent_id, False, self.now, "not_ready: break"))
        return True

    def hang_up(self, answer: bool = True) -> None:
        """A random waiting caller gives up."""
        if self.router.waiting:
            call_id = self.rng.choice(list(self.router.waiting))
            self.calls.pop(call_id, None)
            self.settle(self.timed("withdraw", lambda: self.router.withdraw(call_id, self.now)), answer)

    def tick(self, answer: bool = True) -> None:
        # Counted outside the timing: how many calls this tick widens (the tick's work beyond scanning the line).
        due = sum(1 for c in self.router.waiting.values() if self.policy.level(self.now - c.enqueued_at) != c.level)
        self.settle(self.timed("tick", lambda: self.router.tick(self.now)), answer)
        band = "0" if due == 0 else "1-9" if due < 10 else "10+"
        self.record(f"tick ({band} calls widen)", self.samples["tick"][-1], self.cpu["tick"][-1])

    def balance(self, answer: bool = True) -> None:
        """Hold the line at its target: more arrivals when short, more agents back when long."""
        for _ in range(20):
            if len(self.router.waiting) < self.target:
                self.arrive(answer)
            elif len(self.router.waiting) > self.target + 5:
                self.agent_ready(answer)
            else:
                break


def arrival_rate(second: int) -> int:
    """Calls a second for 10,000 agents (~250 s handled each): 28 to 42, swinging over five minutes.

    At the low end agents free up faster than the line of 1,000 empties and calls widen past 30 s (the tick
    has work, trainees take widened calls); at the high end the line turns over in ~25 s, nothing widens
    and ready trainees stay free (the not-ready samples come from them).
    """
    return round(35 + 7 * math.sin(2 * math.pi * second / 300))


def decision_latency(seconds: int = 3000, rate: Callable[[int], int] = arrival_rate, n_agents: int = 10_000,
                     waiting: int = 1_000, seed: int = SEED,
                     policy: Policy | None = None) -> tuple[dict[str, Any], Floor]:
    """Per-operation latency on a moving floor: ``rate(second)`` arrivals and agents freed per simulated second."""
    floor = Floor(n_agents, waiting, random.Random(seed), policy or Policy())
    gc.collect()  # start from the steady state of a running process, not from the set-up's garbage
    collections_before = sum(s["collections"] for s in gc.get_stats())
    waiting_seen: list[int] = []
    widened_seen: list[int] = []
    started = time.perf_counter()
    for second in range(seconds):
        per_s = rate(second)
        for k in range(per_s):
            floor.now += 1 / per_s
            floor.arrive()
            floor.agent_ready()
            if floor.rng.random() < 0.5:
                floor.agent_not_ready()
            if floor.rng.random() < 0.1:
                floor.hang_up()
            if k % 10 == 0:
                call_id = floor.rng.choice(list(floor.router.waiting)) if second % 5 == 0 else None
                if call_id:
                    floor.timed("position", partial(floor.router.position, call_id))
            floor.balance()
        floor.tick()
        waiting_seen.append(len(floor.router.waiting))
        widened_seen.append(sum(1 for c in floor.router.waiting.values() if c.level is not Level.STRICT))
    elapsed = time.perf_counter() - started
    ops = floor.stats()
    p99 = max(ops[op]["p99_ms"] for op in ("enqueue", "set_ready"))
    return {
        "agents": n_agents, "waiting_target": waiting, "simulated_s": seconds,
        "arrivals_per_s": f"{min(map(rate, range(seconds)))}-{max(map(rate, range(seconds)))}",
        "waiting_min": min(waiting_seen), "waiting_max": max(waiting_seen),
        "widened_waiting_avg": round(sum(widened_seen) / len(widened_seen), 1),
        "widened_waiting_max": max(widened_seen),
        "gc_collections": sum(s["collections"] for s in gc.get_stats()) - collections_before,
        "wall_s": round(elapsed, 1),
        "decision_p99_ms": p99,
        "ops": ops,
    }, floor


# --- 2. ACD throughput ---------------------------------------------------------------------------------------

ACD_MIX = {"ready": 0.45, "offer_end": 0.45, "not_ready": 0.10}
"""What 100 agent state changes a second are made of: agents coming free, the end of an offer's ringing
(answered, or ring-no-answer for RONA_SHARE of them), free agents going on a break."""
RONA_SHARE = 0.1


def acd_throughput(floor: Floor, seconds: int = 60, changes_per_s: int = 100, rate: int = 40) -> dict[str, Any]:
    """Feed the router ``changes_per_s`` agent state changes per simulated second, plus arrivals and the tick."""
    floor.samples, floor.cpu = {}, {}
    kinds, weights = list(ACD_MIX), list(ACD_MIX.values())
    done = dict.fromkeys(("ready", "answered", "rona", "not_ready"), 0)
    per_second_ms: list[float] = []
    wall_started = time.perf_counter()
    for _ in range(seconds):
        before = floor.router_ns
        for k in range(changes_per_s):
            floor.now += 1 / changes_per_s
            kind = floor.rng.choices(kinds, weights)[0]
            if kind == "offer_end":
                # Offers end in the order they were made (they all ring about as long).
                kind = ("rona" if floor.rng.random() < RONA_SHARE else "answered") if floor.pending else "ready"
            if kind == "not_ready" and not floor.agent_not_ready():
                kind = "ready"  # nobody free to go on a break: count an agent coming back instead
            if kind == "ready":
                floor.agent_ready(answer=False)
            elif kind != "not_ready":
                offer = floor.pending.pop(0)
                if kind == "answered":
                    floor.timed("answered", partial(floor.router.answered, offer.call_id))
                    floor.calls.pop(offer.call_id, None)
                else:  # the ACD puts the agent not ready and the call back in its place, as ivr.routing.acd does
                    call = floor.calls[offer.call_id]
                    floor.timed("rona", partial(floor.router.set_ready, offer.agent_id, False, floor.now,
                                                "not_ready: rona"))
                    floor.settle(floor.timed("declined", partial(floor.router.declined, offer.call_id, call,
                                                                 floor.now)), answer=False)
            done[kind] += 1
            if (k * rate) % changes_per_s < rate:  # ``rate`` arrivals spread over the second
                floor.arrive(answer=False)
            if k % 25 == 0:
                floor.hang_up(answer=False)  # a few callers give up every second
            floor.balance(answer=False)
        floor.tick(answer=False)
        per_second_ms.append((floor.router_ns - before) / 1e6)
    wall = time.perf_counter() - wall_started
    router_s = sum(per_second_ms) / 1000
    changes = seconds * changes_per_s
    capacity = changes / router_s
    return {
        "simulated_s": seconds, "changes": changes, "changes_by_kind": done,
        "arrivals": len(floor.samples.get("enqueue", [])), "ticks": len(floor.samples.get("tick", [])),
        "router_s": round(router_s, 3), "wall_s": round(wall, 3),
        "router_ms_per_simulated_s_avg": round(sum(per_second_ms) / seconds, 2),
        "router_ms_per_simulated_s_max": round(max(per_second_ms), 2),
        "capacity_changes_per_s": round(capacity),
        "capacity_with_bookkeeping_changes_per_s": round(changes / wall),
        "headroom": round(capacity / changes_per_s, 1),
        "keeps_up": capacity >= changes_per_s and max(per_second_ms) < 1000,
        "ops": floor.stats(),
    }


# --- 3. the day ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayCall:
    """One caller of the simulated day: the same for every strategy."""

    id: str
    arrival: float
    skill: str
    talk_s: float
    patience_s: float
    """The caller hangs up once their wait would exceed this."""
    language: str = "ko"
    dialect: str | None = None
    vip: bool = False
    owner: str | None = None
    """The agent owning the caller's open case."""


@dataclass(slots=True)
class Outcome:
    call: DayCall
    agent: str | None = None
    answered_at: float | None = None
    abandoned_at: float | None = None
    rule: str = ""
    """The router's rule (router strategy only)."""
    level: int = -1
    """The router's widening level when answered (router strategy only)."""


@dataclass(frozen=True, slots=True)
class DayParams:
    hours: float = 8.0
    agents: int = 60
    offered_load: float = 0.93
    """Mean offered erlangs per agent (talk plus wrap-up); the peak hour runs above 1."""
    wrap_s: float = 10.0
    vip_share: float = 0.10
    dialect_share: float = 0.30
    english_share: float = 0.03
    open_case_share: float = 0.10
    patience_median_s: float = 110.0
    patience_sigma: float = 0.8
    customers: int = 30_000
    seed: int = SEED


def make_day(params: DayParams) -> tuple[list[AgentState], list[DayCall]]:
    """Agents and the day's callers; customers carry their own patience, dialect, VIP tier and open case."""
    rng = random.Random(params.seed)
    agents = make_agents(params.agents, rng)
    owners = owners_by_skill(agents, Policy())
    mean_handle = sum(SKILL_MIX[s] * TALK_MEAN_S[s] for s in SKILL_MIX) + params.wrap_s
    base_rate = params.offered_load * params.agents / mean_handle
    customers: list[dict[str, Any]] = []
    for _ in range(params.customers):
        case_skill = _skill(rng) if rng.random() < params.open_case_share else None
        customers.append({
            "vip": rng.random() < params.vip_share,
            "dialect": rng.choice(DIALECTS) if rng.random() < params.dialect_share else None,
            "language": "en" if rng.random() < params.english_share else "ko",
            "patience_s": rng.lognormvariate(math.log(params.patience_median_s), params.patience_sigma),
            "case": (case_skill, rng.choice(owners[case_skill])) if case_skill and owners[case_skill] else None,
        })
    calls: list[DayCall] = []
    t, day_s = 0.0, params.hours * 3600
    while True:
        hour = min(int(t // 3600), len(HOURLY_PROFILE) - 1)
        gap = rng.expovariate(base_rate * HOURLY_PROFILE[hour])
        if int((t + gap) // 3600) != hour and (hour + 1) * 3600 < day_s:
            t = (hour + 1) * 3600.0  # piecewise-constant rate: memoryless, so restart at the hour
            continue
        t += gap
        if t >= day_s:
            break
        who = customers[rng.randrange(len(customers))]
        skill, owner = who["case"] if who["case"] else (_skill(rng), None)
        mean = TALK_MEAN_S[skill]
        calls.append(DayCall(
            id=f"d{len(calls)}", arrival=t, skill=skill,
            talk_s=rng.lognormvariate(math.log(mean) - TALK_SIGMA**2 / 2, TALK_SIGMA),
            patience_s=who["patience_s"], language=who["language"], dialect=who["dialect"], vip=who["vip"],
            owner=owner))
    return agents, calls


class Engine(Protocol):
    """Who answers which caller: the router, or one of app_queue's strategies."""

    def arrive(self, call: DayCall, now: float) -> list[tuple[str, str]]: ...
    def agent_free(self, agent_id: str, now: float) -> list[tuple[str, str]]: ...
    def abandon(self, call_id: str, now: float) -> bool: ...
    def tick(self, now: float) -> list[tuple[str, str]]: ...
    def connected(self, call: DayCall, agent_id: str, now: float) -> None: ...


class RouterEngine:
    """The pure Router as the ACD drives it: offers ring one agent and, in the simulation, are always answered."""

    def __init__(self, agents: Sequence[AgentState], policy: Policy) -> None:
        self.router = Router(policy)
        self.offers: dict[str, Offer] = {}
        for a in agents:
            self.router.upsert_agent(AgentState(a.id, dict(a.skills), a.languages, a.dialects, a.vip, ready=True,
                                                idle_since=0.0, status="ready"), 0.0)

    def _answer(self, offers: list[Offer]) -> list[tuple[str, str]]:
        for offer in offers:
            self.router.answered(offer.call_id)
            self.offers[offer.call_id] = offer
        return [(o.call_id, o.agent_id) for o in offers]

    def arrive(self, call: DayCall, now: float) -> list[tuple[str, str]]:
        return self._answer(self.router.enqueue(WaitingCall(
            id=call.id, skill=call.skill, enqueued_at=call.arrival, language=call.language, dialect=call.dialect,
            vip=call.vip, owner=call.owner, queue=call.skill, patience_s=call.patience_s), now))

    def agent_free(self, agent_id: str, now: float) -> list[tuple[str, str]]:
        return self._answer(self.router.set_ready(agent_id, True, now))

    def abandon(self, call_id: str, now: float) -> bool:
        waiting = call_id in self.router.waiting
        # Every offer is answered at once here, so a caller who gives up holds no offer and frees nobody.
        self.router.withdraw(call_id, now)
        return waiting

    def tick(self, now: float) -> list[tuple[str, str]]:
        return self._answer(self.router.tick(now))

    def connected(self, call: DayCall, agent_id: str, now: float) -> None:
        pass


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

    Callers wait in order of QUEUE_PRIO (VIP first), then arrival; with autofill, as many head callers as
    there are free members are connected at once. When an agent comes free and several of their queues
    have callers, the callers' retry timers race for them: the winner is a random one of those queues.
    Nothing knows dialects, languages or case owners.
    """

    def __init__(self, strategy: str, agents: Sequence[AgentState], seed: int) -> None:
        if strategy not in ("ringall", "leastrecent", "fewestcalls"):
            raise ValueError(f"unknown app_queue strategy {strategy}")
        self.strategy = strategy
        self.rng = random.Random(seed)
        self.members: dict[str, list[tuple[int, str]]] = {s: [] for s in SKILL_MIX}
        self.queues_of: dict[str, list[str]] = {}
        for a in agents:  # configuration order = the directory's order
            mine = [s for s, p in a.skills.items() if p >= 1]
            self.queues_of[a.id] = mine
            for s in mine:
                self.members.setdefault(s, []).append((penalty(a.skills[s]), a.id))
        self.free: set[str] = {a.id for a in agents}
        self.lastcall: dict[str, float] = {}
        self.calls: dict[str, int] = dict.fromkeys(self.free, 0)
        self.waiting: dict[str, list[tuple[int, float, str]]] = {s: [] for s in self.members}
        self.skill_of: dict[str, str] = {}

    def metric(self, agent_id: str, member_penalty: int, now: float) -> float:
        if self.strategy == "leastrecent":
            last = self.lastcall.get(agent_id)
            strategy_metric = 0.0 if last is None else 1_000_000 - (now - last)
        elif self.strategy == "fewestcalls":
            strategy_metric = self.calls[agent_id]
        else:
            strategy_metric = 0.0
        return member_penalty * 1_000_000 + strategy_metric

    def pick(self, skill: str, now: float) -> str | None:
        """The member a caller in ``skill``'s queue reaches now, or None when no member is free."""
        ringing = [(self.metric(a, p, now), a) for p, a in self.members.get(skill, ()) if a in self.free]
        if not ringing:
            return None
        best = min(m for m, _ in ringing)
        tier = [a for m, a in ringing if m == best]
        return self.rng.choice(tier) if self.strategy == "ringall" else tier[0]

    def _fill(self, skill: str, now: float) -> list[tuple[str, str]]:
        line, connected = self.waiting.get(skill, []), []
        while line:
            agent_id = self.pick(skill, now)
            if agent_id is None:
                break
            _, _, call_id = line.pop(0)
            self.free.discard(agent_id)
            connected.append((call_id, agent_id))
        return connected

    def arrive(self, call: DayCall, now: float) -> list[tuple[str, str]]:
        self.skill_of[call.id] = call.skill
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

    def abandon(self, call_id: str, now: float) -> bool:
        line = self.waiting.get(self.skill_of.get(call_id, ""), [])
        for k, entry in enumerate(line):
            if entry[2] == call_id:
                del line[k]
                return True
        return False

    def tick(self, now: float) -> list[tuple[str, str]]:
        return []

    def connected(self, call: DayCall, agent_id: str, now: float) -> None:
        # update_queue() runs at hang-up; the agent is busy until then, so setting it now is read no earlier.
        self.lastcall[agent_id] = now + call.talk_s
        self.calls[agent_id] += 1


FREE, TICK, ARRIVE, ABANDON = range(4)
"""Event order at equal times: an agent freed at the very second a caller's patience runs out still gets them
(the caller abandons only when the wait would exceed the patience)."""
WIDEN_EPSILON_S = 1e-6
"""Router ticks are scheduled just after each widening threshold: (arrival + 30) - arrival can round below 30."""


@dataclass(slots=True)
class DayRun:
    strategy: str
    outcomes: list[Outcome]
    busy_s: dict[str, float] = field(default_factory=dict)
    """Per agent: talk plus wrap-up within the day."""
    day_s: float = 0.0


def simulate(strategy: str, agents: Sequence[AgentState], calls: Sequence[DayCall], *, wrap_s: float = 10.0,
             day_s: float | None = None, policy: Policy | None = None, seed: int = SEED) -> DayRun:
    """Run the day's callers through one strategy; a discrete-event loop on a simulated clock."""
    policy = policy or Policy()
    engine: Engine = RouterEngine(agents, policy) if strategy == "router" else QueueEngine(strategy, agents, seed)
    day_s = day_s if day_s is not None else max((c.arrival for c in calls), default=0.0)
    by_id = {c.id: c for c in calls}
    outcomes = {c.id: Outcome(c) for c in calls}
    busy = {a.id: 0.0 for a in agents}
    events: list[tuple[float, int, int, str]] = []
    seq = 0

    def push(at: float, kind: int, ident: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, kind, seq, ident))

    for c in calls:
        push(c.arrival, ARRIVE, c.id)
        push(c.arrival + c.patience_s, ABANDON, c.id)
        if strategy == "router":
            for after in (policy.widen_proficiency_after_s, policy.widen_language_after_s, policy.overflow_after_s):
                push(c.arrival + after + WIDEN_EPSILON_S, TICK, c.id)
    while events:
        now, kind, _, ident = heapq.heappop(events)
        connected: list[tuple[str, str]] = []
        if kind == FREE:
            connected = engine.agent_free(ident, now)
        elif kind == ARRIVE:
            connected = engine.arrive(by_id[ident], now)
        else:
            outcome = outcomes[ident]
            if outcome.answered_at is not None or outcome.abandoned_at is not None:
                continue
            if kind == TICK:
                connected = engine.tick(now)
            elif engine.abandon(ident, now):
                outcome.abandoned_at = now
        for call_id, agent_id in connected:
            outcome, call = outcomes[call_id], by_id[call_id]
            outcome.agent, outcome.answered_at = agent_id, now
            if isinstance(engine, RouterEngine):
                offer = engine.offers[call_id]
                outcome.rule, outcome.level = offer.rule, int(offer.level)
            engine.connected(call, agent_id, now)
            done = now + call.talk_s + wrap_s
            busy[agent_id] += max(0.0, min(done, day_s) - min(now, day_s))
            push(done, FREE, agent_id)
    return DayRun(strategy, [outcomes[c.id] for c in calls], busy, day_s)


def day_metrics(run: DayRun, agents: Sequence[AgentState], policy: Policy | None = None) -> dict[str, Any]:
    """The comparison's numbers for one strategy. Waits are of answered callers (speed of answer)."""
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

    def share(part: int, whole: int) -> float:
        return round(part / whole, 4) if whole else float("nan")

    metrics: dict[str, Any] = {
        "calls": calls,
        "answered": len(answered),
        "abandoned": abandoned,
        "abandon_rate": share(abandoned, calls),
        "skill_match_rate": share(sum(1 for o in answered if proficient(o) and dialect_ok(o)), len(answered)),
        "proficiency_match_rate": share(sum(1 for o in answered if proficient(o)), len(answered)),
        "dialect_match_rate": share(sum(1 for o in dialect_callers if dialect_ok(o)), len(dialect_callers)),
        "language_match_rate": share(sum(1 for o in answered if o.call.language in by_id[o.agent or ""].languages),
                                     len(answered)),
        "wait_avg_s": round(sum(waits) / len(waits), 1) if waits else float("nan"),
        "wait_p95_s": round(percentile(waits, 95), 1),
        "vip_wait_p95_s": round(percentile(vip_waits, 95), 1),
        "service_level_20s": share(sum(1 for w in waits if w <= 20), calls),
        "owner_rate": share(sum(1 for o in with_case if o.agent == o.call.owner), len(with_case)),
        "utilisation": round(sum(run.busy_s.values()) / (len(agents) * run.day_s), 4) if run.day_s else 0.0,
    }
    if run.strategy == "router":
        metrics["answered_by_level"] = {lvl.name.lower(): sum(1 for o in answered if o.level == lvl)
                                        for lvl in Level}
    return metrics


REPLICATE_METRICS = ("abandon_rate", "skill_match_rate", "proficiency_match_rate", "wait_avg_s", "wait_p95_s",
                     "vip_wait_p95_s", "owner_rate", "utilisation")


def run_day(params: DayParams) -> tuple[list[AgentState], list[DayCall], dict[str, Any]]:
    """One day, every strategy, the same callers."""
    agents, calls = make_day(params)
    strategies: dict[str, Any] = {}
    for strategy in STRATEGIES:
        started = time.perf_counter()
        run = simulate(strategy, agents, calls, wrap_s=params.wrap_s, day_s=params.hours * 3600, seed=params.seed)
        strategies[strategy] = {**day_metrics(run, agents), "sim_wall_s": round(time.perf_counter() - started, 2)}
    return agents, calls, strategies


def day(params: DayParams | None = None, replicate_seeds: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[str, Any]:
    """The day at ``params.seed``, and the same day drawn with other seeds to show how much is noise."""
    params = params or DayParams()
    agents, calls, strategies = run_day(params)
    day_s = params.hours * 3600
    replicates: dict[str, dict[str, list[float]]] = {s: {m: [] for m in REPLICATE_METRICS} for s in STRATEGIES}
    for seed in replicate_seeds:
        _, _, other = run_day(DayParams(**{**asdict(params), "seed": seed}))
        for s in STRATEGIES:
            for m in REPLICATE_METRICS:
                replicates[s][m].append(other[s][m])
    mean_talk = sum(c.talk_s for c in calls) / len(calls)
    return {
        "params": {**asdict(params), "calls": len(calls), "mean_talk_s": round(mean_talk, 1),
                   "offered_erlangs_per_agent": round(len(calls) * (mean_talk + params.wrap_s) /
                                                      (params.agents * day_s), 3),
                   "hourly_profile": list(HOURLY_PROFILE), "skill_mix": SKILL_MIX,
                   "agents_vip_eligible": sum(a.vip for a in agents),
                   "agents_second_language": sum(len(a.languages) > 1 for a in agents),
                   "agents_with_dialect": sum(bool(a.dialects) for a in agents),
                   "policy": asdict(Policy())},
        "strategies": strategies,
        "replicates": {
            "seeds": list(replicate_seeds),
            "strategies": {s: {m: {"mean": round(sum(v) / len(v), 4), "min": min(v), "max": max(v)}
                               for m, v in replicates[s].items()} for s in STRATEGIES} if replicate_seeds else {},
        },
    }


# --- output --------------------------------------------------------------------------------------------------

NOTES = [
    "Callbacks are left out of the day simulation: every caller holds until answered or out of patience.",
    "Day: offers are immediate and always answered (no ring time, no ring-no-answer), for the router and the "
    "baselines alike; talk time belongs to the call, not to the agent's proficiency, so better matching does "
    "not shorten calls here.",
    "Day waits (wait_avg_s, wait_p95_s, vip_wait_p95_s) are of answered callers; service_level_20s is over all "
    "callers; a caller abandons exactly when their wait would exceed their patience.",
    "Baselines: app_queue semantics (penalty = 10 - proficiency, members = agents with the skill, QUEUE_PRIO "
    "for VIP, shared_lastcall, autofill, ringall = a random free member of the lowest-penalty tier); no "
    "dialect, language or case-owner awareness.",
    "Decisions: a moving floor (arrivals and freed agents at the centre's own pace, the line held at 1,000); "
    "gc enabled; times are of the router call alone. decision_p99_ms is the larger p99 of enqueue and "
    "set_ready; tick is reported beside it, split by how many calls the tick widens. cpu_of_max_ms beside "
    "max_ms tells preemption on the shared machine (wall >> CPU) from work.",
    "ACD: capacity counts the router's own time (state changes plus the arrivals, hang-ups and ticks of the "
    "same seconds); a break drawn when no agent is free counts as an agent coming back instead.",
    "Day size: 60 agents at ~93 % offered load with 3.8-min talk and 10 s wrap-up take ~6,700 calls in 8 h "
    "(2,500 calls would load them to ~35 %).",
]


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    shown = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in shown)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for row in shown:
        print("  ".join(f"{v:>{w}}" if i else f"{v:<{w}}" for i, (v, w) in enumerate(zip(row, widths, strict=True))))


def main() -> dict[str, Any]:
    decisions, floor = decision_latency()
    _table(f"routing decisions ({decisions['agents']} agents, ~{decisions['waiting_target']} waiting)",
           ["operation", "samples", "p50 ms", "p99 ms", "max ms"],
           [[op, s["samples"], s["p50_ms"], s["p99_ms"], s["max_ms"]] for op, s in decisions["ops"].items()])
    acd = acd_throughput(floor, seconds=120)
    del floor
    _table("ACD loop (100 agent state changes per simulated second)", ["measure", "value"],
           [[f"changes: {kind}", n] for kind, n in acd["changes_by_kind"].items()]
           + [[k, v] for k, v in acd.items() if not isinstance(v, dict)])
    the_day = day()
    metrics = ["calls", "answered", "abandon_rate", "skill_match_rate", "proficiency_match_rate",
               "dialect_match_rate", "language_match_rate", "wait_avg_s", "wait_p95_s", "vip_wait_p95_s",
               "service_level_20s", "owner_rate", "utilisation"]
    _table(f"simulated day ({the_day['params']['calls']} calls, {the_day['params']['agents']} agents, "
           f"{the_day['params']['hours']:.0f} h)", ["metric", *STRATEGIES],
           [[m, *(the_day["strategies"][s][m] for s in STRATEGIES)] for m in metrics])
    replicated = the_day["replicates"]
    if replicated["strategies"]:
        _table(f"the same day drawn with seeds {replicated['seeds']}: mean (min..max)", ["metric", *STRATEGIES],
               [[m, *(f"{r['mean']:.3f} ({r['min']:.3f}..{r['max']:.3f})"
                      for r in (replicated["strategies"][s][m] for s in STRATEGIES))] for m in REPLICATE_METRICS])
    data: dict[str, Any] = {
        "decision_p99_ms": decisions["decision_p99_ms"],
        "decisions": decisions,
        "acd": acd,
        "day": the_day,
        "notes": NOTES,
    }
    rows: list[tuple[str, Any]] = [
        ("decision_p99_ms", decisions["decision_p99_ms"]),
        ("acd_capacity_changes_per_s", acd["capacity_changes_per_s"]),
        ("acd_keeps_up_100_per_s", acd["keeps_up"]),
    ]
    for s in STRATEGIES:
        for m in ("skill_match_rate", "wait_p95_s", "vip_wait_p95_s", "abandon_rate"):
            rows.append((f"{s} {m}", the_day["strategies"][s][m]))
    report("routing", rows, data)
    return data


if __name__ == "__main__":
    main()
