"""The supervisor wall: queues, agents and what the IVR is doing, from what every controller publishes.

Sources: the ACD's snapshot (``ivr:acd``, rewritten every second: agents, waiting calls, offers), the
call records of waiting calls (when each joined the line), and the ``ivr:events`` stream of call
events, which tells which IVR node each call is at and how calls in each queue ended (service level).
Everything learned from events is kept per process in memory and bounded; a restarted process
learns it again from the next events.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr.records.store import call_key
from ivr.routing.acd import SNAPSHOT_KEY, Acd
from ivr.routing.agents import AgentDirectory

log = logging.getLogger(__name__)

#: Answered within this many seconds counts toward the service level (the usual 80/20 rule's 20).
SERVICE_LEVEL_S = 20.0
#: Service level is over the calls of the last hour.
SERVICE_WINDOW_S = 3600.0
#: A call in the IVR with no event for this long is considered gone (its hang-up event was missed).
IVR_STALE_S = 120.0
#: Events that mean a call is (still) talking to the IVR; any other event means it left it.
IVR_EVENTS = frozenset({"call.started", "call.listening", "call.turn"})
#: At most this many calls remembered per map (a lost hang-up event must not grow memory forever).
MAX_TRACKED = 10_000
#: Agent names are read from the directory at most this often.
NAMES_REFRESH_S = 10.0


class Wall:
    """Builds the wall (``GET /api/wall``, the ``wall`` WebSocket message) and follows call events for it."""

    def __init__(self, redis: aioredis.Redis, acd: Acd | None = None, queues: list[str] | None = None) -> None:
        self.redis = redis
        self.acd = acd
        """The ACD of this process, if any: its snapshot is fresher than the copy in Redis."""
        self.queues = list(queues or [])
        """Queues always shown (the flow's), waiting or not."""
        self.directory = AgentDirectory(redis)
        self.in_ivr: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        """call id -> (node, time of its last event), for calls still in the IVR."""
        self.queued_at: dict[str, float] = {}
        """call id -> when it joined the line (from its record, read once per waiting call)."""
        self.outcomes: dict[str, collections.deque[tuple[float, bool]]] = {}
        """queue -> (time, answered within SERVICE_LEVEL_S) of the calls that left it, for the service level."""
        self.answered: dict[str, collections.OrderedDict[str, float]] = {}
        """queue -> answered call ids (and when) of the last hour, whose dispositions give the resolution rate."""
        self.resolved: dict[str, bool | None] = {}
        """call id -> first contact resolved (None: the disposition says nothing); read from ``ivr:disposition:*``."""
        self._names: dict[str, str] = {}
        self._names_at = 0.0

    # --- events

    def on_event(self, event: dict[str, Any], now: float | None = None) -> bool:
        """Follow one ``ivr:events`` message; True when its call's record should be read (``record_outcome``)."""
        now = time.time() if now is None else now
        call_id, kind = str(event.get("call_id", "")), str(event.get("type", ""))
        if not call_id:
            return False
        if kind in IVR_EVENTS:
            node = str(event.get("node") or (self.in_ivr.get(call_id, ("start", 0.0))[0]))
            self.in_ivr[call_id] = (node, now)
            self.in_ivr.move_to_end(call_id)
            while len(self.in_ivr) > MAX_TRACKED:
                self.in_ivr.popitem(last=False)
            return False
        self.in_ivr.pop(call_id, None)
        return kind in ("call.answered", "call.ended")

    async def record_outcome(self, call_id: str, kind: str, now: float | None = None) -> None:
        """A call was answered (or ended): count it toward its queue's service level.

        Answered within SERVICE_LEVEL_S counts for, answered later or abandoned after SERVICE_LEVEL_S
        counts against; abandoned sooner than that is left out (the caller gave no time to answer).
        """
        now = time.time() if now is None else now
        try:
            raw = await self.redis.get(call_key(call_id))
        except (RedisError, OSError) as exc:
            log.debug("wall: record of %s not read (%s)", call_id, exc)
            return
        if kind == "call.ended":
            self.queued_at.pop(call_id, None)
        record = json.loads(raw) if raw else {}
        queue, queued_at = record.get("queue"), record.get("queued_at")
        if not queue or not queued_at:
            return  # never waited for a person (self-service, or hung up in the IVR)
        if kind == "call.answered" and record.get("answered_at"):
            sample = (now, record["answered_at"] - queued_at <= SERVICE_LEVEL_S)
            answered = self.answered.setdefault(queue, collections.OrderedDict())
            answered[call_id] = now
            while len(answered) > MAX_TRACKED:
                answered.popitem(last=False)
        elif kind == "call.ended" and record.get("outcome") == "abandoned" and not record.get("answered_at"):
            waited = (record.get("ended_at") or now) - queued_at
            if waited <= SERVICE_LEVEL_S:
                return
            sample = (now, False)
        else:
            return
        self.outcomes.setdefault(queue, collections.deque(maxlen=MAX_TRACKED)).append(sample)

    # --- the wall

    async def build(self, now: float | None = None) -> dict[str, Any]:
        """{"queues": {name: {waiting, longest_wait_s, service_level}}, "agents": {id: {name, shown,
        device_state}}, "ivr": {node: count}, "at"}."""
        now = time.time() if now is None else now
        snapshot = await self._snapshot()
        waiting: dict[str, dict[str, Any]] = snapshot.get("waiting", {})
        await self._learn_queued_at(list(waiting))
        queues: dict[str, dict[str, Any]] = {}
        await self._learn_dispositions(now)
        for name in [*self.queues, *(w.get("queue") or "general" for w in waiting.values()), *self.outcomes]:
            if name not in queues:
                queues[name] = {"waiting": 0, "longest_wait_s": 0, "service_level": self._service_level(name, now),
                                "fcr": self._fcr(name, now)}
        for call_id, entry in waiting.items():
            queue = queues[entry.get("queue") or "general"]
            queue["waiting"] += 1
            since = self.queued_at.get(call_id)
            if since:
                # Whole seconds: the wall changes (and is pushed) at most once a second while someone waits.
                queue["longest_wait_s"] = max(queue["longest_wait_s"], int(now - since))
        names = await self._agent_names(now)
        agents = {agent_id: {"name": names.get(agent_id, agent_id), "shown": seat.get("shown", ""),
                             "device_state": seat.get("device_state", "")}
                  for agent_id, seat in sorted(snapshot.get("agents", {}).items())}
        for call_id, (_, seen) in list(self.in_ivr.items()):
            if now - seen > IVR_STALE_S:
                del self.in_ivr[call_id]
        ivr = dict(collections.Counter(node for node, _ in self.in_ivr.values()))
        for gone in set(self.queued_at) - set(waiting):
            del self.queued_at[gone]
        decisions = [{k: d.get(k) for k in ("call_id", "queue", "state", "agent", "rule", "fcr", "value", "waited_s",
                                            "why")} for d in snapshot.get("decisions", [])][:50]
        return {"queues": queues, "agents": agents, "ivr": ivr, "decisions": decisions, "at": round(now, 3)}

    def _fcr(self, queue: str, now: float) -> float | None:
        """First-contact resolution of the queue's last hour, from the dispositions agents gave (None: none yet)."""
        answered = self.answered.get(queue)
        if not answered:
            return None
        while answered and now - next(iter(answered.values())) > SERVICE_WINDOW_S:
            gone, _ = answered.popitem(last=False)
            self.resolved.pop(gone, None)
        said = [self.resolved[c] for c in answered if self.resolved.get(c) is not None]
        return round(sum(1 for r in said if r) / len(said), 3) if said else None

    async def _learn_dispositions(self, now: float) -> None:
        """Read the dispositions of answered calls not known yet (a bounded batch per build)."""
        unknown = [c for answered in self.answered.values() for c in answered if c not in self.resolved][:200]
        if not unknown:
            return
        try:
            raws = await self.redis.mget([f"ivr:disposition:{c}" for c in unknown])
        except (RedisError, OSError) as exc:
            log.debug("wall: dispositions not read (%s)", exc)
            return
        for call_id, raw in zip(unknown, raws, strict=True):
            if not raw:
                continue  # not given yet: asked again next time
            try:
                disposition = json.loads(raw).get("disposition")
            except ValueError:
                disposition = None
            self.resolved[call_id] = {"resolved": True, "follow_up": False, "escalated": False}.get(disposition or "")

    def _service_level(self, queue: str, now: float) -> float | None:
        """Share of the last hour's calls answered within SERVICE_LEVEL_S (0..1); None with no calls yet."""
        samples = self.outcomes.get(queue)
        if not samples:
            return None
        while samples and now - samples[0][0] > SERVICE_WINDOW_S:
            samples.popleft()
        return round(sum(ok for _, ok in samples) / len(samples), 3) if samples else None

    async def _snapshot(self) -> dict[str, Any]:
        if self.acd is not None:
            return dict(self.acd.snapshot())
        try:
            raw = await self.redis.get(SNAPSHOT_KEY)
        except (RedisError, OSError) as exc:
            log.debug("wall: ACD snapshot not read (%s)", exc)
            return {}
        return json.loads(raw) if raw else {}

    async def _learn_queued_at(self, call_ids: list[str]) -> None:
        new = [c for c in call_ids if c not in self.queued_at]
        if not new:
            return
        try:
            raws = await self.redis.mget([call_key(c) for c in new])
        except (RedisError, OSError):
            return
        for call_id, raw in zip(new, raws, strict=True):
            with_time = json.loads(raw).get("queued_at") if raw else None
            if with_time:
                self.queued_at[call_id] = float(with_time)

    async def _agent_names(self, now: float) -> dict[str, str]:
        if now - self._names_at >= NAMES_REFRESH_S:
            try:
                self._names = {agent.id: agent.name for agent in await self.directory.all()}
                self._names_at = now
            except (RedisError, OSError, ValueError) as exc:
                log.debug("wall: directory not read (%s)", exc)
        return self._names


def changed(previous: dict[str, Any] | None, wall: dict[str, Any]) -> bool:
    """Whether the wall shows something new (its time stamp aside)."""
    if previous is None:
        return True
    return {k: v for k, v in previous.items() if k != "at"} != {k: v for k, v in wall.items() if k != "at"}
