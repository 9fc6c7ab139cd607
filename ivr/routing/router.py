"""The routing core: which agent gets which waiting call. Pure: no I/O, no clock (``now`` is passed in).

Rules, in order (the issue's words, and what they mean here):

1. **Case owner.** A caller with an open case goes to the case's owner when the owner is
   free, whatever their skills (a field manager on a mobile extension counts).
2. **VIP first.** VIP callers are ahead of everyone in line, and go only to VIP-eligible
   agents while a qualifying one is free.
3. **Best match.** Highest proficiency in the call's skill, then an agent who speaks the
   caller's dialect, then the agent idle longest (fairness).
4. **Widening.** A call's requirement relaxes as it waits, so nobody waits forever for a
   perfect match: level 0 needs ``min_proficiency`` and the caller's language; level 1
   (after ``widen_proficiency_after_s``) any proficiency; level 2 (after
   ``widen_language_after_s``) any language; level 3 (after ``overflow_after_s``) any agent.

The router keeps the matching maximal: after every event it offers what can be offered, so
no free agent is ever qualified for a waiting call. An agent holds at most one offer and a
call is offered to at most one agent at a time (the property tests check both).

Indexes make a decision independent of how many agents and calls there are: free agents
are kept in sorted buckets per (skill, proficiency, language, dialect, VIP-eligible), and
waiting calls in sorted lists per the requirement they have at their current level.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sortedcontainers import SortedList

ANY = "*"
"""A bucket key matching any skill or any language."""


class Level(enum.IntEnum):
    """How far a waiting call's requirement has widened."""

    STRICT = 0
    ANY_PROFICIENCY = 1
    ANY_LANGUAGE = 2
    ANY_AGENT = 3


@dataclass(frozen=True, slots=True)
class Policy:
    """Routing parameters a site tunes."""

    min_proficiency: int = 5
    """Proficiency a call asks for before it widens."""
    widen_proficiency_after_s: float = 15.0
    """Wait after which any proficiency ≥ 1 in the skill is accepted."""
    widen_language_after_s: float = 45.0
    """Wait after which an agent who does not speak the caller's language is accepted."""
    overflow_after_s: float = 90.0
    """Wait after which any free agent is accepted, whatever their skills."""
    patience_share: tuple[float, float, float] = (0.25, 0.5, 0.75)
    """A caller whose patience is known widens by then at the latest: at these shares of it
    (a caller who hangs up at 40 s is better served by a good agent at 20 s than a perfect one never)."""

    def level(self, waited_s: float, patience_s: float | None = None) -> Level:
        thresholds = [self.widen_proficiency_after_s, self.widen_language_after_s, self.overflow_after_s]
        if patience_s:
            thresholds = [min(t, share * patience_s) for t, share in zip(thresholds, self.patience_share, strict=True)]
        if waited_s >= thresholds[2]:
            return Level.ANY_AGENT
        if waited_s >= thresholds[1]:
            return Level.ANY_LANGUAGE
        if waited_s >= thresholds[0]:
            return Level.ANY_PROFICIENCY
        return Level.STRICT


@dataclass(slots=True)
class AgentState:
    """An agent as the router sees them."""

    id: str
    """Directory id."""
    skills: dict[str, int]
    """Skill -> proficiency 0..10."""
    languages: frozenset[str] = frozenset({"ko"})
    """Languages the agent takes calls in."""
    dialects: frozenset[str] = frozenset()
    """Dialects the agent speaks."""
    vip: bool = False
    """May take VIP callers."""
    ready: bool = False
    """The agent is ready (their own choice) and their device can ring (Asterisk says so)."""
    idle_since: float = 0.0
    """When the agent last became free: the longest idle is next (fairness)."""
    status: str = "offline"
    """Presence as shown to people ("not_ready: lunch", ...); used to explain skips."""


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
    """Queue name, for position and statistics."""
    patience_s: float | None = None
    """Seconds the caller is expected to hold (stored or learned); widening comes sooner for the impatient."""
    excluded: set[str] = field(default_factory=set)
    """Agents who did not answer this call (ring-no-answer): not offered it again."""
    level: Level = Level.STRICT
    """The call's current widening level (updated by :meth:`Router.tick`)."""

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


class Router:
    """Waiting calls, free agents, and the offers between them."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.agents: dict[str, AgentState] = {}
        self.waiting: dict[str, WaitingCall] = {}
        """Calls in line (not currently offered)."""
        self.offers: dict[str, Offer] = {}
        """Outstanding offers by call id."""
        self.offered_agents: dict[str, str] = {}
        """Agent id -> the call offered to them."""
        self._agent_buckets: dict[tuple[str, int, str, str | None, bool], SortedList] = defaultdict(SortedList)
        self._agent_keys: dict[str, tuple[tuple[float, str], list[tuple[str, int, str, str | None, bool]]]] = {}
        """Agent id -> (its bucket entry, the buckets it is in), so it comes out exactly as it went in."""
        self._call_lists: dict[tuple[str, str, int], SortedList] = defaultdict(SortedList)
        self._call_keys: dict[str, tuple[str, str, int]] = {}
        self._by_owner: dict[str, set[str]] = defaultdict(set)

    # --- agents

    def free(self, agent_id: str) -> bool:
        agent = self.agents.get(agent_id)
        return agent is not None and agent.ready and agent_id not in self.offered_agents

    def upsert_agent(self, agent: AgentState, now: float) -> list[Offer]:
        """Add or replace an agent (directory edit or presence change); returns the offers it enables."""
        self._unindex_agent(agent.id)
        self.agents[agent.id] = agent
        if self.free(agent.id):
            self._index_agent(agent)
            offer = self._match_agent(agent, now)
            return [offer] if offer else []
        return []

    def set_ready(self, agent_id: str, ready: bool, now: float, status: str = "") -> list[Offer]:
        """Presence changed. Becoming ready starts the agent's idle time (fairness)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return []
        if ready and not agent.ready:
            agent.idle_since = now
        agent.ready = ready
        agent.status = status or ("ready" if ready else "not_ready")
        return self.upsert_agent(agent, now)

    # --- calls

    def enqueue(self, call: WaitingCall, now: float) -> list[Offer]:
        """A call joins the line (or comes back to it); returns the offer, if an agent is free."""
        if call.id in self.waiting or call.id in self.offers:
            raise ValueError(f"call {call.id} is already with the router")
        call.level = self.policy.level(now - call.enqueued_at, call.patience_s)
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
        offer = self.offers.pop(call_id, None)
        if offer is None:
            return []
        self.offered_agents.pop(offer.agent_id, None)
        agent = self.agents.get(offer.agent_id)
        return self.upsert_agent(agent, now) if agent else []

    def answered(self, call_id: str) -> Offer | None:
        """The agent took the call: it leaves the router; the agent stays busy until presence says otherwise."""
        offer = self.offers.pop(call_id, None)
        if offer:
            self.offered_agents.pop(offer.agent_id, None)
            agent = self.agents.get(offer.agent_id)
            if agent:
                agent.ready, agent.status = False, "on_call"
                self._unindex_agent(agent.id)
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
        return self.enqueue(call, now)

    def tick(self, now: float) -> list[Offer]:
        """Widen the calls whose wait crossed a threshold, and offer what that makes possible."""
        offers: list[Offer] = []
        for call in list(self.waiting.values()):
            level = self.policy.level(now - call.enqueued_at, call.patience_s)
            if level != call.level:
                self._unindex_call(call)
                del self.waiting[call.id]
                offers += self.enqueue(call, now)
        return offers

    def position(self, call_id: str) -> int | None:
        """1-based place in line among the calls of the same queue (None if not waiting)."""
        call = self.waiting.get(call_id)
        if call is None:
            return None
        mine = call.order()
        return 1 + sum(1 for c in self.waiting.values() if c.queue == call.queue and c.order() < mine)

    # --- matching

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
        if call.level is Level.ANY_AGENT:
            agent = self._best_agent(call, vip_flags=(True, False) if not call.vip else (True,))
            if agent is None and call.vip:
                agent = self._best_agent(call, vip_flags=(False,))
            return self._offer(call, agent, "overflow", why, now) if agent else None
        if call.vip:
            agent = self._best_agent(call, vip_flags=(True,))
            if agent:
                return self._offer(call, agent, "vip", [*why, "VIP caller: a VIP-eligible agent"], now)
            agent = self._best_agent(call, vip_flags=(False,))
            if agent:
                why.append("VIP caller: no VIP-eligible agent free who qualifies, so any qualified agent")
        else:
            agent = self._best_agent(call, vip_flags=(True, False))
        return self._offer(call, agent, "best match", why, now) if agent else None

    def _best_agent(self, call: WaitingCall, vip_flags: tuple[bool, ...]) -> AgentState | None:
        """Highest proficiency, then dialect match, then longest idle, at the call's level."""
        if call.level is Level.ANY_AGENT:
            return self._head([(ANY, 0, ANY, None, v) for v in vip_flags], call)
        floor = self.policy.min_proficiency if call.level is Level.STRICT else 1
        language = call.language if call.level < Level.ANY_LANGUAGE else ANY
        dialects: tuple[str | None, ...] = (call.dialect, None) if call.dialect and language != ANY else (None,)
        for proficiency in range(10, floor - 1, -1):
            for dialect in dialects:
                agent = self._head([(call.skill, proficiency, language, dialect, v) for v in vip_flags], call)
                if agent:
                    return agent
        return None

    def _head(self, keys: Iterable[tuple[str, int, str, str | None, bool]], call: WaitingCall) -> AgentState | None:
        """The longest-idle free agent across the buckets, skipping agents the call excludes."""
        best: tuple[float, str] | None = None
        for key in keys:
            for entry in self._agent_buckets.get(key, ()):
                if entry[1] not in call.excluded:
                    if best is None or entry < best:
                        best = entry
                    break
        return self.agents[best[1]] if best else None

    def _match_agent(self, agent: AgentState, now: float) -> Offer | None:
        """The best waiting call for an agent who just became free."""
        owned = [self.waiting[c] for c in self._by_owner.get(agent.id, ()) if agent.id not in self.waiting[c].excluded]
        if owned:
            call = min(owned, key=WaitingCall.order)
            self._unindex_call(call)
            return self._offer(call, agent, "case owner", [f"{agent.id} owns the caller's open case"], now)
        best: WaitingCall | None = None
        for key in self._serves(agent):
            calls = self._call_lists.get(key)
            if not calls:
                continue
            for _, call_id in calls:
                call = self.waiting[call_id]
                if agent.id in call.excluded:
                    continue
                if best is None or call.order() < best.order():
                    best = call
                break
        if best is None:
            return None
        # A VIP call reaches a non-VIP agent only when no VIP-eligible agent qualifies: the matching
        # is maximal, so had one been free the call would not be waiting.
        self._unindex_call(best)
        why = [self._level_note(best, now) or "", f"{agent.id} became free; longest-waiting call it qualifies for"]
        if best.owner and best.owner != agent.id:
            why.insert(0, f"case owner {best.owner} skipped: {self._unavailable(best.owner, best)}")
        rule = "overflow" if best.level is Level.ANY_AGENT else ("vip" if best.vip and agent.vip else "best match")
        return self._offer(best, agent, rule, [w for w in why if w], now)

    def _offer(self, call: WaitingCall, agent: AgentState, rule: str, why: list[str], now: float) -> Offer:
        self.waiting.pop(call.id, None)
        self._unindex_agent(agent.id)
        detail = [f"skill {call.skill} {agent.skills.get(call.skill, 0)}"]
        if call.dialect:
            detail.append(f"dialect {call.dialect} {'matched' if call.dialect in agent.dialects else 'not matched'}")
        detail.append(f"idle {max(0.0, now - agent.idle_since):.0f} s")
        offer = Offer(call.id, agent.id, rule, call.level, (*why, f"chose {agent.id} ({', '.join(detail)})"))
        self.offers[call.id] = offer
        self.offered_agents[agent.id] = call.id
        return offer

    def _level_note(self, call: WaitingCall, now: float) -> str:
        waited = now - call.enqueued_at
        return {
            Level.STRICT: "",
            Level.ANY_PROFICIENCY: f"waited {waited:.0f} s: any proficiency in {call.skill} accepted",
            Level.ANY_LANGUAGE: f"waited {waited:.0f} s: any language accepted",
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

    # --- indexes

    def _agent_index_keys(self, agent: AgentState) -> list[tuple[str, int, str, str | None, bool]]:
        keys: list[tuple[str, int, str, str | None, bool]] = [(ANY, 0, ANY, None, agent.vip)]
        for skill, proficiency in agent.skills.items():
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
