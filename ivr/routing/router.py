"""The routing core: which agent gets which waiting call. Pure: no I/O, no clock (``now`` is passed in).

Rules, in order (the issue's words, and what they mean here):

1. **Case owner.** A caller with an open case goes to the case's owner when the owner is
   free, whatever their skills (a field manager on a mobile extension counts); an owner busy on a call
   and predicted free soon is waited for, within the hold guard (rule 5).
2. **VIP first.** VIP callers are ahead of everyone in line, and go only to VIP-eligible
   agents while a qualifying one is free.
3. **Most value.** Among the qualified free agents (a shortlist: the strongest in the skill, those who speak
   the caller's dialect, the longest idle), the one whose match is worth most: the chance the contact is
   resolved first time (``ivr.routing.outcome``: proficiency, language, dialect, case ownership and the
   agent's own learned record) times the caller's value (tier). An agent coming free takes, among the
   waiting callers they qualify for (VIP and flow priority first), the one with the highest score: callers
   still inside their queue's service-level threshold first, the least time left first (the service-level
   priority), then the value the agent adds plus urgency (the wait against the threshold and the patience).
4. **Widening.** A call's requirement relaxes as it waits, so nobody waits forever for a
   perfect match: level 0 needs ``min_proficiency`` and the caller's language; level 1
   (after ``widen_proficiency_after_s``) any proficiency; level 2 (after
   ``widen_language_after_s``) any language; level 3 (after ``overflow_after_s``) any agent.
5. **Hold for better, within the guard.** A caller with a qualified agent free may be held for a busy
   agent predicted free soon whose match is worth clearly more (``hold_min_gain``), but only until the hold
   limit: the knob ``hold_max_s``, never past ``hold_patience_share`` of their patience, and — unless the
   queue's service level stays at its target with this caller late — inside the service-level threshold.
   The decision says so ("held 6 s for F2001, predicted free in 4 s; service level 83 %").

When several calls change at once (the tick: widened calls, holds ending), they and the free agents they
shortlist are matched together (``ivr.routing.assignment``, scipy's linear_sum_assignment).

Every waiting call that a free agent qualifies for is held, with a deadline no later than its guard allows;
the tick releases it then. An agent holds at most one offer and a call is offered to at most one agent at a
time (the property tests check all three).

Indexes make a decision independent of how many agents and calls there are: free agents
are kept in sorted buckets per (skill, proficiency, language, dialect, VIP-eligible), busy agents with a
predicted end per skill, and waiting calls in sorted lists per the requirement they have at their level.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from sortedcontainers import SortedList

from ivr.routing.assignment import NOT_ALLOWED, best_assignment
from ivr.routing.outcome import Estimate, OutcomeModel, Pair
from ivr.routing.policy import Coefficients, Policy, PolicyError, ServiceLevel

__all__ = ["ANY", "AgentState", "Coefficients", "Level", "Offer", "Policy", "PolicyError", "Router",
           "ServiceLevel", "WaitingCall"]

ANY = "*"
"""A bucket key matching any skill or any language."""
PER_BUCKET = 3
"""Free agents taken from each bucket into a call's shortlist (the longest idle of each)."""
SOON_SCAN = 16
"""Busy agents (earliest predicted free first) a hold decision looks at, per skill."""
BATCH_MAX = 64
"""Calls solved together in one assignment; beyond that the rest go one by one (the order is the line's)."""


class Level(enum.IntEnum):
    """How far a waiting call's requirement has widened."""

    STRICT = 0
    ANY_PROFICIENCY = 1
    ANY_LANGUAGE = 2
    ANY_AGENT = 3


@dataclass(slots=True)
class AgentState:
    """An agent as the router sees them."""

    id: str
    """Directory id."""
    skills: dict[str, int]
    """Skill -> proficiency 0..10 (values outside are clamped; an agent with none takes overflow calls only)."""
    languages: frozenset[str] = frozenset({"ko"})
    """Languages the agent takes calls in."""
    dialects: frozenset[str] = frozenset()
    """Dialects the agent speaks."""
    vip: bool = False
    """May take VIP callers."""
    ready: bool = False
    """The agent is ready (their own choice) and their device can ring (Asterisk says so)."""
    idle_since: float = 0.0
    """When the agent last became free: the longest idle is next among equals (fairness)."""
    status: str = "offline"
    """Presence as shown to people ("not_ready: lunch", ...); used to explain skips."""
    free_at: float | None = None
    """While busy on a call or in after-call work: when they are predicted free (None: not predicted, e.g. on
    a break). Only agents with a prediction are held for."""


@dataclass(slots=True)
class WaitingCall:
    """A caller (or a callback keeping its place) waiting for a person."""

    id: str
    """Call id (the hotline channel's uniqueid), or the callback's id."""
    skill: str
    """The skill the call needs (the flow's route skill, or its queue name)."""
    enqueued_at: float
    """When the call joined the line; a callback keeps the original time (its place)."""
    language: str = "ko"
    """The caller's language."""
    dialect: str | None = None
    """The caller's dialect, when known."""
    vip: bool = False
    """VIP caller."""
    priority: int = 0
    """Flow priority of the route (higher first, after VIP)."""
    owner: str | None = None
    """Agent id owning the caller's open case for this subject."""
    queue: str = ""
    """Queue name, for position, the service-level target and statistics."""
    patience_s: float | None = None
    """Seconds the caller is expected to hold (stored or learned); widening comes sooner for the impatient."""
    tier: str | None = None
    """Customer tier (standard, gold, vip): the caller's value weight. None (unknown caller) is standard."""
    excluded: set[str] = field(default_factory=set)
    """Agents who did not answer this call (ring-no-answer): not offered it again."""
    level: Level = Level.STRICT
    """The call's current widening level (updated by :meth:`Router.tick`)."""
    held_for: str | None = None
    """The busy agent the call is held for (rule 5), if any."""
    held_until: float = 0.0
    """When the hold ends at the latest (the guard's deadline)."""
    hold_spent: bool = False
    """The call has been held once: it is not held again."""
    hold_note: str = ""
    """Why the call was held (or why not), for the decision's explanation."""

    def order(self) -> tuple[int, int, float, str]:
        """Place in line: VIP first, then flow priority, then who waited longest."""
        return (-int(self.vip), -self.priority, self.enqueued_at, self.id)


@dataclass(frozen=True, slots=True)
class Offer:
    """The router's decision: offer this call to this agent, and why."""

    call_id: str
    agent_id: str
    rule: str
    """The rule that chose the agent: "case owner", "vip", "best match" or "overflow"."""
    level: Level
    """The call's widening level at the time."""
    why: tuple[str, ...]
    """The explanation for the call's record: who was chosen, who was skipped and why."""
    fcr: float = float("nan")
    """The value model's P(first-contact resolution) for this pair."""
    value: float = float("nan")
    """That probability weighted by the caller's value."""
    waited_s: float = 0.0
    """How long the caller had waited when offered."""
    queue: str = ""
    """The call's queue (the service level is counted per queue when the offer is answered)."""


class Router:
    """Waiting calls, free agents, and the offers between them."""

    def __init__(self, policy: Policy | None = None, model: OutcomeModel | None = None) -> None:
        self.policy = policy or Policy()
        self.model = model or OutcomeModel(self.policy.outcome)
        """The value model; the ACD teaches it the dispositions it sees."""
        self.agents: dict[str, AgentState] = {}
        self.waiting: dict[str, WaitingCall] = {}
        """Calls in line (not currently offered)."""
        self.offers: dict[str, Offer] = {}
        """Outstanding offers by call id."""
        self.offered_agents: dict[str, str] = {}
        """Agent id -> the call offered to them."""
        self._agent_buckets: dict[tuple[str, int, str, str | None, bool], SortedList] = \
            collections.defaultdict(SortedList)
        self._agent_keys: dict[str, tuple[tuple[float, str], list[tuple[str, int, str, str | None, bool]]]] = {}
        """Agent id -> (its bucket entry, the buckets it is in), so it comes out exactly as it went in."""
        self._soon: dict[str, SortedList] = collections.defaultdict(SortedList)
        """Skill -> (predicted free time, agent id) of busy agents with a prediction."""
        self._soon_keys: dict[str, tuple[float, list[str]]] = {}
        self._call_lists: dict[tuple[str, str, int], SortedList] = collections.defaultdict(SortedList)
        self._call_keys: dict[str, tuple[str, str, int]] = {}
        self._by_owner: dict[str, set[str]] = collections.defaultdict(set)
        self._held: SortedList = SortedList()
        """(hold deadline, call id) of held calls: the tick releases them in order."""
        self._held_for: dict[str, set[str]] = collections.defaultdict(set)
        """Agent id -> calls held for them."""
        self._answers: dict[str, collections.deque[bool]] = {}
        """Queue -> the last calls' "answered within the threshold" (abandoned later than it count as False)."""

    # --- agents

    def free(self, agent_id: str) -> bool:
        agent = self.agents.get(agent_id)
        return agent is not None and agent.ready and agent_id not in self.offered_agents

    def upsert_agent(self, agent: AgentState, now: float) -> list[Offer]:
        """Add or replace an agent (directory edit or presence change); returns the offers it enables."""
        self._unindex_agent(agent.id)
        self._unindex_soon(agent.id)
        self.agents[agent.id] = agent
        if self.free(agent.id):
            self._index_agent(agent)
            offer = self._match_agent(agent, now)
            return [offer] if offer else []
        if agent.free_at is not None and agent.id not in self.offered_agents:
            self._index_soon(agent)
        return []

    def set_ready(self, agent_id: str, ready: bool, now: float, status: str = "",
                  free_at: float | None = None) -> list[Offer]:
        """Presence changed. Becoming ready starts the agent's idle time (fairness). Not ready with ``free_at``:
        busy (on a call, after-call work) and predicted free then; the router may hold a caller for them."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return []
        if ready and not agent.ready:
            agent.idle_since = now
        agent.ready = ready
        agent.free_at = None if ready else free_at
        agent.status = status or ("ready" if ready else "not_ready")
        return self.upsert_agent(agent, now)

    # --- calls

    def enqueue(self, call: WaitingCall, now: float) -> list[Offer]:
        """A call joins the line (or comes back to it); returns the offer, if an agent is free."""
        if call.id in self.waiting or call.id in self.offers:
            raise ValueError(f"call {call.id} is already with the router")
        call.level = self._level(call, now)
        offer = self._match_call(call, now)
        if offer:
            return [offer]
        self._index_call(call)
        return []

    def withdraw(self, call_id: str, now: float) -> list[Offer]:
        """The caller hung up (or the call left for any other reason): forget it and any offer.

        An agent whose offer this was is free again, so they get the next waiting call.
        """
        call = self.waiting.pop(call_id, None)
        if call:
            self._unindex_call(call)
            threshold = self.policy.target(call.queue).within_s
            if now - call.enqueued_at > threshold:  # gave up after the threshold: a call the line failed
                self._count_answer(call.queue, False)
        offer = self.offers.pop(call_id, None)
        if offer is None:
            return []
        self.offered_agents.pop(offer.agent_id, None)
        agent = self.agents.get(offer.agent_id)
        return self.upsert_agent(agent, now) if agent else []

    def answered(self, call_id: str, free_at: float | None = None) -> Offer | None:
        """The agent took the call: it leaves the router; the agent stays busy until presence says otherwise
        (``free_at``: when they are predicted free, if known)."""
        offer = self.offers.pop(call_id, None)
        if offer:
            self.offered_agents.pop(offer.agent_id, None)
            self._count_answer(offer.queue, offer.waited_s <= self.policy.target(offer.queue).within_s)
            agent = self.agents.get(offer.agent_id)
            if agent:
                agent.ready, agent.status, agent.free_at = False, "on_call", free_at
                self._unindex_agent(agent.id)
                self._unindex_soon(agent.id)
                if free_at is not None:
                    self._index_soon(agent)
        return offer

    def declined(self, call_id: str, call: WaitingCall, now: float) -> list[Offer]:
        """The offered agent did not answer (or declined): the call goes back to its place, not to them again.

        The caller of this method decides what happens to the agent (ring-no-answer puts them
        not ready); ``call`` is the waiting call as it was offered.
        """
        offer = self.offers.pop(call_id, None)
        if offer:
            self.offered_agents.pop(offer.agent_id, None)
            call.excluded.add(offer.agent_id)
        call.hold_spent = True  # it has been offered once: no more holding for a better match
        return self.enqueue(call, now)

    def tick(self, now: float) -> list[Offer]:
        """Widen the calls whose wait crossed a threshold, end the holds that are due, and offer what that makes
        possible: all of them matched together with the free agents (one assignment)."""
        due: list[WaitingCall] = []
        for call in list(self.waiting.values()):
            level = self._level(call, now)
            if level != call.level:
                call.level = level
                due.append(call)
        while self._held and self._held[0][0] <= now:
            _, call_id = self._held[0]
            call = self.waiting[call_id]
            self._release(call, "hold ended")
            if call not in due:
                due.append(call)
        for call in due:
            self._unindex_call(call)
            del self.waiting[call.id]
        return self._assign(due, now)

    def rebalance(self, now: float) -> list[Offer]:
        """Match the waiting calls (the first ``BATCH_MAX`` in line, holds kept) with the free agents together:
        after a restart or a bulk change, when many agents and callers changed at once."""
        calls = sorted((c for c in self.waiting.values() if c.held_for is None), key=WaitingCall.order)[:BATCH_MAX]
        for call in calls:
            self._unindex_call(call)
            del self.waiting[call.id]
        return self._assign(calls, now)

    def position(self, call_id: str) -> int | None:
        """1-based place in line among the calls of the same queue (None if not waiting)."""
        call = self.waiting.get(call_id)
        if call is None:
            return None
        mine = call.order()
        return 1 + sum(1 for c in self.waiting.values() if c.queue == call.queue and c.order() < mine)

    def service_level(self, queue: str) -> float | None:
        """Share of the queue's last calls answered within its threshold (None before any)."""
        answers = self._answers.get(queue)
        return sum(answers) / len(answers) if answers else None

    def estimate(self, call: WaitingCall, agent: AgentState) -> Estimate:
        """The value model's estimate for this pair (what a decision's explanation shows)."""
        return self.model.estimate(self._pair(call, agent), self.model.weight(call.vip, call.tier))

    def _level(self, call: WaitingCall, now: float) -> Level:
        """The call's widening level: the policy's, and any agent with the skill once its hold deadline has passed
        (waiting for a strong agent, or one speaking the caller's language, is a hold like any other, bounded by
        the same guard; among the agents then free the value model still prefers the stronger match)."""
        level = Level(self.policy.level(now - call.enqueued_at, call.patience_s))
        if call.vip and now - call.enqueued_at >= self.policy.vip_overflow_after_s:
            return Level.ANY_AGENT
        if level < Level.ANY_LANGUAGE and now >= self.hold_deadline(call, now)[0]:
            return Level.ANY_LANGUAGE
        return level

    # --- matching a call

    def _match_call(self, call: WaitingCall, now: float) -> Offer | None:
        why: list[str] = []
        if call.owner:
            owner = self.agents.get(call.owner)
            if owner is not None and self.free(owner.id) and owner.id not in call.excluded:
                return self._offer(call, owner, "case owner", [f"{owner.id} owns the caller's open case"], now)
            why.append(f"case owner {call.owner} skipped: {self._unavailable(call.owner, call)}")
        level_note = self._level_note(call, now)
        if level_note:
            why.append(level_note)
        agents, note = self._shortlist(call)
        if note:
            why.append(note)
        if not agents:
            return None
        values = self._values(call, agents)
        best = self._pick(agents, values)
        agent, value = agents[best], float(values[best])
        if not call.hold_spent and call.level < Level.ANY_AGENT and self._hold(call, value, now):
            return None
        if call.hold_note:
            why.append(call.hold_note)
        if call.level is Level.ANY_AGENT:
            rule = "overflow"
        elif call.vip and agent.vip:
            rule, why = "vip", [*why, "VIP caller: a VIP-eligible agent"]
        else:
            rule = "best match"
        return self._offer(call, agent, rule, why, now)

    def _shortlist(self, call: WaitingCall) -> tuple[list[AgentState], str]:
        """The free agents a call may go to now, best first in each bucket: VIP-eligible first for a VIP."""
        if call.level is Level.ANY_AGENT:
            flags: tuple[tuple[bool, ...], ...] = ((True,), (False,)) if call.vip else ((True, False),)
        else:
            flags = ((True,), (False,)) if call.vip else ((True, False),)
        for k, vip_flags in enumerate(flags):
            agents = self._candidates(call, vip_flags)
            if agents:
                note = "VIP caller: no VIP-eligible agent free who qualifies, so any qualified agent" \
                    if call.vip and k == 1 and call.level is not Level.ANY_AGENT else ""
                return agents, note
        return [], ""

    def _candidates(self, call: WaitingCall, vip_flags: tuple[bool, ...]) -> list[AgentState]:
        """Up to ``policy.shortlist`` free qualified agents: per bucket (proficiency high to low, the dialect's
        bucket first) the longest idle few."""
        limit = self.policy.shortlist
        if call.level is Level.ANY_AGENT:
            keys: list[tuple[str, int, str, str | None, bool]] = [(ANY, 0, ANY, None, v) for v in vip_flags]
            # Agents with the skill first, whatever their proficiency, then anyone.
            keys = [(call.skill, p, ANY, None, v) for p in range(10, 0, -1) for v in vip_flags] + keys
        else:
            floor = self.policy.min_proficiency if call.level is Level.STRICT else 1
            language = call.language if call.level < Level.ANY_LANGUAGE else ANY
            dialects: tuple[str | None, ...] = (call.dialect, None) if call.dialect and language != ANY else (None,)
            keys = [(call.skill, p, language, d, v) for p in range(10, max(floor, 1) - 1, -1) for d in dialects
                    for v in vip_flags]
            if floor == 0:
                keys += [(call.skill, 0, language, None, v) for v in vip_flags]
        seen: set[str] = set()
        found: list[AgentState] = []
        for key in keys:
            bucket = self._agent_buckets.get(key)
            if not bucket:
                continue
            taken = 0
            for _, agent_id in bucket:
                if agent_id in call.excluded or agent_id in seen:
                    continue
                seen.add(agent_id)
                found.append(self.agents[agent_id])
                taken += 1
                if taken >= PER_BUCKET or len(found) >= limit:
                    break
            if len(found) >= limit:
                break
        return found

    def _pair(self, call: WaitingCall, agent: AgentState) -> Pair:
        resolved, contacts = self.model.record(agent.id, call.skill)
        return Pair(proficiency=agent.skills.get(call.skill, 0), language_ok=call.language in agent.languages,
                    dialect_match=call.dialect is not None and call.dialect in agent.dialects,
                    owner=call.owner == agent.id, resolved=resolved, contacts=contacts)

    def _values(self, call: WaitingCall, agents: list[AgentState]) -> np.ndarray:
        fcr = self.model.fcr_many([self._pair(call, a) for a in agents])
        return fcr * self.model.weight(call.vip, call.tier)

    @staticmethod
    def _pick(agents: list[AgentState], values: np.ndarray) -> int:
        """The most valuable; among equal values (to 1e-9) the longest idle, then the id."""
        top = float(values.max())
        near = [k for k in range(len(agents)) if values[k] >= top - 1e-9]
        return min(near, key=lambda k: (agents[k].idle_since, agents[k].id))

    # --- holding for a better agent (rule 5)

    def hold_deadline(self, call: WaitingCall, now: float) -> tuple[float, str]:
        """The latest time the call may be held, and the guard that sets it.

        The hold limit (the knob, and the caller's patience share) always; the service-level threshold too,
        unless the queue's service level stays at its target even with this caller answered late."""
        limit = self.policy.hold_limit_s(call.patience_s, call.vip)
        deadline = call.enqueued_at + limit
        guard = f"hold limit {limit:.0f} s"
        target = self.policy.target(call.queue)
        threshold_at = call.enqueued_at + target.within_s
        if deadline > threshold_at:
            answers = self._answers.get(call.queue)
            late_ok = answers is not None and len(answers) > 0 and sum(answers) / (len(answers) + 1) >= target.share
            if not late_ok:
                deadline = min(deadline, threshold_at - 0.25 * target.within_s)
                guard = f"service-level guard ({target})"
        return deadline, guard

    def _hold(self, call: WaitingCall, free_value: float, now: float) -> bool:
        """Hold the call for a busy agent predicted free soon whose match is clearly worth more; True if held."""
        deadline, guard = self.hold_deadline(call, now)
        if deadline <= now:
            return False
        candidates: list[AgentState] = []
        owner = self.agents.get(call.owner) if call.owner else None
        if owner is not None and owner.free_at is not None and owner.id not in call.excluded \
                and not self.free(owner.id) and owner.id not in self.offered_agents:
            candidates.append(owner)
        soon = self._soon.get(call.skill)
        if soon:
            for free_at, agent_id in soon.islice(0, SOON_SCAN):
                if free_at > deadline:
                    break
                agent = self.agents[agent_id]
                if agent_id not in call.excluded and self._qualifies(agent, call) and (agent.vip or not call.vip):
                    candidates.append(agent)
        candidates = [a for a in candidates if a.free_at is not None and a.free_at <= deadline]
        if not candidates:
            return False
        values = self._values(call, candidates)
        best = int(np.argmax(values))
        target, gain = candidates[best], float(values[best]) - free_value
        if gain < self.policy.hold_min_gain:
            return False
        assert target.free_at is not None
        call.held_for, call.held_until, call.hold_spent = target.id, deadline, True
        level = self.service_level(call.queue)
        shown = f"{level:.0%}" if level is not None else "no calls yet"
        call.hold_note = (f"held {deadline - call.enqueued_at:.0f} s for {target.id}, predicted free in "
                          f"{max(0.0, target.free_at - now):.0f} s (value +{gain:.2f}); {guard}; "
                          f"service level {shown}")
        return True

    def _qualifies(self, agent: AgentState, call: WaitingCall) -> bool:
        """Whether ``agent`` meets the call's requirement at its current level (case owner always)."""
        if call.owner == agent.id or call.level is Level.ANY_AGENT:
            return True
        floor = self.policy.min_proficiency if call.level is Level.STRICT else 1
        language_ok = call.level >= Level.ANY_LANGUAGE or call.language in agent.languages
        return agent.skills.get(call.skill, -1) >= floor and language_ok

    def _release(self, call: WaitingCall, why: str) -> None:
        if call.held_for is None:
            return
        self._held.discard((call.held_until, call.id))
        held = self._held_for.get(call.held_for)
        if held is not None:
            held.discard(call.id)
            if not held:
                del self._held_for[call.held_for]
        call.held_for = None

    # --- matching an agent

    def _match_agent(self, agent: AgentState, now: float) -> Offer | None:
        """The waiting call an agent who just became free should take: VIP and priority first, then the highest
        score (inside the service-level threshold, the least time left first; then value plus urgency)."""
        owned = [self.waiting[c] for c in self._by_owner.get(agent.id, ()) if agent.id not in self.waiting[c].excluded]
        if owned:
            call = min(owned, key=WaitingCall.order)
            why = [w for w in (call.hold_note if call.held_for == agent.id else "",
                               f"{agent.id} owns the caller's open case") if w]
            self._unindex_call(call)
            return self._offer(call, agent, "case owner", why, now)
        held = [self.waiting[c] for c in self._held_for.get(agent.id, ()) if agent.id not in self.waiting[c].excluded]
        if held:
            call = min(held, key=WaitingCall.order)
            self._unindex_call(call)
            why = [call.hold_note, f"{agent.id} became free: the agent the caller was held for"]
            return self._offer(call, agent, "vip" if call.vip and agent.vip else "best match", why, now)
        calls = self._waiting_for(agent)
        if not calls:
            return None
        scores = self._scores(calls, agent, now)
        ranks = [(-int(c.vip), -c.priority, -float(scores[k]), c.order()) for k, c in enumerate(calls)]
        best = calls[min(range(len(calls)), key=ranks.__getitem__)]
        # A VIP call reaches a non-VIP agent only when no VIP-eligible agent qualifies: the matching
        # is maximal, so had one been free the call would not be waiting.
        self._unindex_call(best)
        threshold = self.policy.target(best.queue).within_s
        left = best.enqueued_at + threshold - now
        chosen = (f"the one most at risk of missing the service level ({left:.0f} s of {threshold:g} s left), "
                  "then most value" if self.model.c.service_level_priority > 0 and left > 0
                  else "the one it adds most value to")
        why = [self._level_note(best, now) or "",
               f"{agent.id} became free; of {len(calls)} waiting calls it qualifies for, {chosen}"]
        if best.owner and best.owner != agent.id:
            why.insert(0, f"case owner {best.owner} skipped: {self._unavailable(best.owner, best)}")
        rule = "overflow" if best.level is Level.ANY_AGENT else ("vip" if best.vip and agent.vip else "best match")
        return self._offer(best, agent, rule, [w for w in why if w], now)

    def _waiting_for(self, agent: AgentState) -> list[WaitingCall]:
        """The shortlist of waiting calls the agent qualifies for: the first few of each line it serves, not
        excluding it, not held for someone else. VIP and priority order the lines, so their heads are here."""
        per_list = max(4, self.policy.shortlist // 3)
        found: dict[str, WaitingCall] = {}
        for key in self._serves(agent):
            calls = self._call_lists.get(key)
            if not calls:
                continue
            taken = 0
            for _, call_id in calls:
                call = self.waiting[call_id]
                if agent.id in call.excluded or call.held_for is not None or call_id in found:
                    continue
                found[call_id] = call
                taken += 1
                if taken >= per_list:
                    break
        return list(found.values())

    def _scores(self, calls: list[WaitingCall], agent: AgentState, now: float) -> np.ndarray:
        """Value of the agent to each call, plus the call's urgency."""
        fcr = self.model.fcr_many([self._pair(c, agent) for c in calls])
        weights = np.array([self.model.weight(c.vip, c.tier) for c in calls])
        urgency = np.array([self.model.urgency(now - c.enqueued_at, self.policy.target(c.queue).within_s,
                                               c.patience_s) for c in calls])
        return fcr * weights + urgency

    # --- several at once

    def _assign(self, calls: list[WaitingCall], now: float) -> list[Offer]:
        """Match ``calls`` (out of the line) with free agents: owners first, then one assignment over the calls'
        shortlists; what stays unmatched goes back in line (held if a better agent is due)."""
        offers: list[Offer] = []
        rest: list[WaitingCall] = []
        for call in sorted(calls, key=WaitingCall.order):
            if call.owner and self.free(call.owner) and call.owner not in call.excluded:
                offers += self.enqueue(call, now)
            else:
                rest.append(call)
        if len(rest) <= 1:
            for call in rest:
                offers += self.enqueue(call, now)
            return offers
        batch, later = rest[:BATCH_MAX], rest[BATCH_MAX:]
        shortlists = [self._shortlist(call)[0] for call in batch]
        columns: dict[str, int] = {}
        for agents in shortlists:
            for agent in agents:
                columns.setdefault(agent.id, len(columns))
        scores = np.full((len(batch), len(columns)), NOT_ALLOWED)
        for row, (call, agents) in enumerate(zip(batch, shortlists, strict=True)):
            if agents:
                urgency = self.model.urgency(now - call.enqueued_at, self.policy.target(call.queue).within_s,
                                             call.patience_s)
                values = self._values(call, agents) + urgency + 10.0 * int(call.vip) + float(call.priority)
                for agent, value in zip(agents, values, strict=True):
                    scores[row, columns[agent.id]] = value
        ids = list(columns)
        matched: set[int] = set()
        for row, col in best_assignment(scores):
            call, agent = batch[row], self.agents[ids[col]]
            matched.add(row)
            self._unindex_agent(agent.id)  # taken in this round (the offer below records it)
            why = [w for w in (self._level_note(call, now), call.hold_note) if w]
            why.append(f"matched with {len(batch)} calls changing at once (assignment over "
                       f"{len(batch)}×{len(ids)} shortlisted pairs)")
            rule = "overflow" if call.level is Level.ANY_AGENT else ("vip" if call.vip and agent.vip else "best match")
            offers.append(self._offer(call, agent, rule, why, now))
        for row, call in enumerate(batch):
            if row not in matched:
                offers += self.enqueue(call, now)
        for call in later:
            offers += self.enqueue(call, now)
        return offers

    # --- offers and explanations

    def _offer(self, call: WaitingCall, agent: AgentState, rule: str, why: list[str], now: float) -> Offer:
        self.waiting.pop(call.id, None)
        self._release(call, "offered")
        self._unindex_agent(agent.id)
        self._unindex_soon(agent.id)
        estimate = self.estimate(call, agent)
        detail = [f"skill {call.skill} {agent.skills.get(call.skill, 0)}"]
        if call.dialect:
            detail.append(f"dialect {call.dialect} {'matched' if call.dialect in agent.dialects else 'not matched'}")
        detail.append(f"idle {max(0.0, now - agent.idle_since):.0f} s")
        offer = Offer(call.id, agent.id, rule, call.level,
                      (*why, f"chose {agent.id} ({', '.join(detail)}); {estimate.describe()}"),
                      fcr=estimate.fcr, value=estimate.value, waited_s=now - call.enqueued_at, queue=call.queue)
        self.offers[call.id] = offer
        self.offered_agents[agent.id] = call.id
        return offer

    def _level_note(self, call: WaitingCall, now: float) -> str:
        waited = now - call.enqueued_at
        return {
            Level.STRICT: "",
            Level.ANY_PROFICIENCY: f"waited {waited:.0f} s: any proficiency in {call.skill} accepted",
            Level.ANY_LANGUAGE: f"waited {waited:.0f} s: any agent with {call.skill} accepted, best value first"
                                + ("" if waited >= self.policy.widen_language_after_s else
                                   f" ({self.hold_deadline(call, now)[1]})"),
            Level.ANY_AGENT: f"waited {waited:.0f} s: any free agent accepted (overflow)",
        }[call.level]

    def _unavailable(self, agent_id: str, call: WaitingCall) -> str:
        agent = self.agents.get(agent_id)
        if agent is None:
            return "not in the directory"
        if agent_id in call.excluded:
            return "did not answer this call"
        if agent_id in self.offered_agents:
            return "being offered another call"
        return agent.status or "not ready"

    def _count_answer(self, queue: str, in_time: bool) -> None:
        answers = self._answers.get(queue)
        if answers is None:
            answers = self._answers[queue] = collections.deque(maxlen=self.policy.service_level_window)
        answers.append(in_time)

    # --- indexes

    def _agent_index_keys(self, agent: AgentState) -> list[tuple[str, int, str, str | None, bool]]:
        keys: list[tuple[str, int, str, str | None, bool]] = [(ANY, 0, ANY, None, agent.vip)]
        for skill, raw in agent.skills.items():
            proficiency = min(max(int(raw), 0), 10)
            keys.append((skill, proficiency, ANY, None, agent.vip))
            for language in agent.languages:
                keys.append((skill, proficiency, language, None, agent.vip))
                keys += [(skill, proficiency, language, d, agent.vip) for d in agent.dialects]
        return keys

    def _index_agent(self, agent: AgentState) -> None:
        keys = self._agent_index_keys(agent)
        entry = (agent.idle_since, agent.id)
        for key in keys:
            self._agent_buckets[key].add(entry)
        self._agent_keys[agent.id] = (entry, keys)

    def _unindex_agent(self, agent_id: str) -> None:
        indexed = self._agent_keys.pop(agent_id, None)
        if not indexed:
            return
        entry, keys = indexed
        for key in keys:
            bucket = self._agent_buckets[key]
            bucket.discard(entry)
            if not bucket:
                del self._agent_buckets[key]

    def _index_soon(self, agent: AgentState) -> None:
        if agent.free_at is None:
            return
        skills = [s for s in agent.skills if agent.skills[s] >= 1]
        for skill in skills:
            self._soon[skill].add((agent.free_at, agent.id))
        self._soon_keys[agent.id] = (agent.free_at, skills)

    def _unindex_soon(self, agent_id: str) -> None:
        indexed = self._soon_keys.pop(agent_id, None)
        if not indexed:
            return
        free_at, skills = indexed
        for skill in skills:
            soon = self._soon[skill]
            soon.discard((free_at, agent_id))
            if not soon:
                del self._soon[skill]

    def _call_key(self, call: WaitingCall) -> tuple[str, str, int]:
        if call.level is Level.ANY_AGENT:
            return (ANY, ANY, 0)
        if call.level is Level.ANY_LANGUAGE:
            return (call.skill, ANY, 1)
        floor = self.policy.min_proficiency if call.level is Level.STRICT else 1
        return (call.skill, call.language, floor)

    def _serves(self, agent: AgentState) -> list[tuple[str, str, int]]:
        """The call lists an agent qualifies for, whatever the calls in them."""
        keys: list[tuple[str, str, int]] = [(ANY, ANY, 0)]
        for skill, proficiency in agent.skills.items():
            if proficiency >= 1:
                keys.append((skill, ANY, 1))
                keys += [(skill, language, 1) for language in agent.languages]
            if proficiency >= self.policy.min_proficiency:
                keys += [(skill, language, self.policy.min_proficiency) for language in agent.languages]
        return keys

    def _index_call(self, call: WaitingCall) -> None:
        key = self._call_key(call)
        self.waiting[call.id] = call
        self._call_lists[key].add((call.order(), call.id))
        self._call_keys[call.id] = key
        if call.owner:
            self._by_owner[call.owner].add(call.id)
        if call.held_for is not None:
            self._held.add((call.held_until, call.id))
            self._held_for[call.held_for].add(call.id)

    def _unindex_call(self, call: WaitingCall) -> None:
        key = self._call_keys.pop(call.id, None)
        if key is not None:
            calls = self._call_lists[key]
            calls.discard((call.order(), call.id))
            if not calls:
                del self._call_lists[key]
        if call.owner:
            owned = self._by_owner.get(call.owner)
            if owned is not None:
                owned.discard(call.id)
                if not owned:
                    del self._by_owner[call.owner]
        self._release(call, "left the line")


def agents_by_id(agents: Iterable[AgentState]) -> dict[str, AgentState]:
    """Agents keyed by id (a helper for callers building a floor)."""
    return {a.id: a for a in agents}
