"""Routing benchmark: the routing core at contact-centre scale, and the realistic day against Asterisk's queues.

1. Decisions. A Router (ivr.routing.router) with 10,000 agents (8 skills, proficiency spread, Korean plus ~10 %
   English, 4 dialects, 15 % VIP-eligible, case owners, learned records) and 1,000 calls waiting, most agents
   busy with a predicted end (so holds for a better agent are weighed). The floor keeps moving (28 to 42 calls a
   second arrive and as many agents come free, as in a centre that size) while each router call is timed with
   perf_counter_ns, gc enabled: a call arriving (enqueue), an agent becoming ready (set_ready True, usually
   ending in an offer), a free agent going not ready, the answer, a caller hanging up (withdraw), position(),
   and the once-a-second tick() that widens calls, ends holds and solves the assignment.
2. ACD throughput. From that state, 100 agent state changes per simulated second (ready, answered,
   ring-no-answer, not ready) plus the arrivals, hang-ups and the tick, run at full speed: the changes per
   second one core absorbs, against the 100 /s asked for.
3. The realistic day (bench/routing_day.py) and the frontier (bench/routing_frontier.py): each strategy's
   patience knob swept, service level against first-contact resolution, drawn to bench/out/routing_frontier.png.

Prints the tables and writes bench/out/routing.json. Runs alone: ``python -m bench.routing``;
``ROUTING_BENCH_QUICK=1`` for a short run (one seed, a 3-hour day, a shorter latency run).
"""

from __future__ import annotations

import gc
import math
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from bench import routing_frontier
from bench.common import OUT, percentile, report
from bench.routing_day import DIALECTS, SKILL_MIX, STRATEGIES, make_agents
from ivr.routing.router import AgentState, Level, Offer, Policy, Router, WaitingCall

SEED = 20261122


# --- the floor: agents and callers ---------------------------------------------------------------------------


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
            a.free_at = None if a.ready else self.now + rng.uniform(0, 300)  # busy: predicted free then
            for skill in a.skills:  # months of dispositions behind each agent's record
                contacts = rng.randint(0, 400)
                self.router.model.records[(a.id, skill)] = [round(contacts * rng.uniform(0.5, 0.9)), contacts]
            self.router.upsert_agent(a, self.now)
            if a.ready:
                self.maybe_free.append(a.id)
        # The line: calls younger than the proficiency wait, so no ready trainee qualifies yet.
        for _ in range(waiting):
            call = self._new_call(self.now - rng.uniform(0, 0.8 * min(policy.widen_proficiency_after_s,
                                                                      policy.hold_max_s)))
            self.settle(self.router.enqueue(call, self.now), answer=True)

    def _new_call(self, at: float) -> WaitingCall:
        rng = self.rng
        self._seq += 1
        skill = _skill(rng)
        owner = rng.choice(self.owners[skill]) if rng.random() < 0.03 and self.owners[skill] else None
        call = WaitingCall(id=f"c{self._seq}", skill=skill, enqueued_at=at, queue=skill,
                           language="en" if rng.random() < 0.03 else "ko",
                           dialect=rng.choice(DIALECTS) if rng.random() < 0.30 else None,
                           vip=rng.random() < 0.10, owner=owner, patience_s=rng.lognormvariate(math.log(110), 0.8),
                           tier="gold" if rng.random() < 0.15 else None)
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
                self.timed("answered", partial(self.router.answered, offer.call_id,
                                               self.now + self.rng.uniform(60, 400)))
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


# --- output --------------------------------------------------------------------------------------------------

NOTES = [
    "Day (bench/routing_day.py): 09:00-18:00, morning peak, staffed per hour by Erlang C for 80/20 at the "
    "forecast load (first contacts plus the repeats a 70 % resolution brings); handle time and first-contact "
    "resolution depend on the match (Truth); unresolved contacts call again (60 %, median 90 min later) with a "
    "follow-up case owned by the agent who took them; callbacks offered 10 s before patience runs out (40 % "
    "accept, keep their place, count as not answered in time).",
    "Day: offers are immediate and always answered (no ring time, no ring-no-answer), for the router and the "
    "baselines alike. The router's model starts from 300 past dispositions per agent (router_cold_start: none) "
    "and learns every disposition of the day; its coefficients equal the simulation's truth for proficiency, "
    "language, dialect and ownership (an optimistic assumption: a site fits them from its own dispositions).",
    "service_level is answered within 20 s over every caller; waits (vip_wait_p95_s) are of answered callers; "
    "fcr is resolved first time over answered contacts (repeats included); owner_rate is callers with an open "
    "case answered by its owner.",
    "Baselines: app_queue semantics (penalty = 10 - proficiency, members = agents with the skill, QUEUE_PRIO "
    "for VIP, shared_lastcall, autofill, ringall = a random free member of the lowest-penalty tier, the knob a "
    "queue rule lifting QUEUE_MAX_PENALTY from 5 to 10); no dialect, language or case-owner awareness.",
    "Decisions: a moving floor (arrivals and freed agents at the centre's own pace, the line held at 1,000, "
    "busy agents with predicted ends so holds are weighed); gc enabled; times are of the router call alone. "
    "decision_p99_ms is the larger p99 of enqueue and set_ready; tick is reported beside it. cpu_of_max_ms "
    "beside max_ms tells preemption on the shared machine (wall >> CPU) from work.",
    "ACD: capacity counts the router's own time (state changes plus the arrivals, hang-ups and ticks of the "
    "same seconds); a break drawn when no agent is free counts as an agent coming back instead.",
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
    quick = routing_frontier.quick()
    decisions, floor = decision_latency(seconds=300 if quick else 3000)
    _table(f"routing decisions ({decisions['agents']} agents, ~{decisions['waiting_target']} waiting)",
           ["operation", "samples", "p50 ms", "p99 ms", "max ms"],
           [[op, s["samples"], s["p50_ms"], s["p99_ms"], s["max_ms"]] for op, s in decisions["ops"].items()])
    acd = acd_throughput(floor, seconds=30 if quick else 120)
    del floor
    _table("ACD loop (100 agent state changes per simulated second)", ["measure", "value"],
           [[f"changes: {kind}", n] for kind, n in acd["changes_by_kind"].items()]
           + [[k, v] for k, v in acd.items() if not isinstance(v, dict)])
    result = routing_frontier.frontier()
    fields = routing_frontier.FIELDS
    for strategy in STRATEGIES:
        _table(f"frontier: {strategy} (knob = {'hold limit' if strategy == 'router' else 'queue-rule wait'}, s)",
               ["knob", *fields], [[p["knob"], *(p[f] for f in fields)] for p in result["frontier"][strategy]])
    _table(f"at the defaults (mean of seeds {result['seeds']})", ["metric", *STRATEGIES],
           [[m, *(result["defaults"][s][m] for s in STRATEGIES)] for m in result["defaults"]["router"]])
    goals = routing_frontier.targets(result)
    _table("the issue's targets at the defaults", ["target", "value", "met"],
           [[name, goal["value"], goal["met"]] for name, goal in goals.items()])
    chart = routing_frontier.chart(result, OUT / "routing_frontier.png")
    data: dict[str, Any] = {
        "decision_p99_ms": decisions["decision_p99_ms"],
        "frontier": result["frontier"],
        "defaults": result["defaults"],
        "targets": goals,
        "router_cold_start": result["router_cold_start"],
        "days": result["days"],
        "seeds": result["seeds"],
        "decisions": decisions,
        "acd": acd,
        "policy": {k: v for k, v in vars_of(Policy()).items()},
        "chart": str(chart.relative_to(OUT.parent.parent)),
        "notes": NOTES,
    }
    rows: list[tuple[str, Any]] = [
        ("decision_p99_ms", decisions["decision_p99_ms"]),
        ("acd_capacity_changes_per_s", acd["capacity_changes_per_s"]),
        ("acd_keeps_up_100_per_s", acd["keeps_up"]),
    ]
    for s in STRATEGIES:
        for m in ("service_level", "fcr", "vip_wait_p95_s", "owner_rate", "abandon_rate"):
            rows.append((f"{s} {m}", result["defaults"][s][m]))
    report("routing", rows, data)
    return data


def vars_of(policy: Policy) -> dict[str, Any]:
    """The policy as plain data for the JSON."""
    from dataclasses import asdict

    return asdict(policy)


if __name__ == "__main__":
    main()
