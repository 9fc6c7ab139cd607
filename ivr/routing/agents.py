"""Presence and the agent directory's writes: who can take calls now, and every change published.

Redis keys: the directory entries (``ivr:agent:<id>``, ``ivr:agents``; the model and its keys are plain data in
``ivr.records.agent``, re-exported here), ``ivr:presence:<id>`` (a hash: status, reason, since; written by
whoever changes it) and the ``ivr:presence`` channel, on which every change is published so the ACD in the
controller (and the web side) follow without polling.

The directory says who an agent is; presence says what they are doing. Presence has two
sources: the agent (ready, not ready with a reason, offline, wrap-up done) and Asterisk
(their device ringing, on a call, unregistered), which the ACD follows over AMI.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr.records.agent import AGENTS, AGENTS_SET, Agent, Role, agent_key, read_agents

__all__ = ["AGENTS", "AGENTS_SET", "AGENT_SETTABLE", "PRESENCE_CHANNEL", "Agent", "AgentDirectory", "Presence",
           "Role"]

log = logging.getLogger(__name__)

PRESENCE_CHANNEL = "ivr:presence"


class Presence(enum.StrEnum):
    """What an agent is doing. The first four are the agent's own choice; the rest come from Asterisk."""

    OFFLINE = "offline"
    READY = "ready"
    NOT_READY = "not_ready"
    WRAP_UP = "wrap_up"
    RINGING = "ringing"
    ON_CALL = "on_call"


#: Presence an agent (or the API on their behalf) may set; the others are the ACD's to set.
AGENT_SETTABLE = frozenset({Presence.OFFLINE, Presence.READY, Presence.NOT_READY, Presence.WRAP_UP})


class AgentDirectory:
    """The directory and presence in Redis; every change of presence is published."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def put(self, agent: Agent) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(agent_key(agent.id), agent.model_dump_json())
            pipe.sadd(AGENTS_SET, agent.id)
            pipe.hsetnx(f"ivr:presence:{agent.id}", "status", Presence.OFFLINE.value)
            await pipe.execute()
        await self.redis.publish(PRESENCE_CHANNEL, json.dumps({"agent": agent.id, "directory": True}))

    async def all(self) -> list[Agent]:
        return await read_agents(self.redis)

    async def get(self, agent_id: str) -> Agent | None:
        raw = await self.redis.get(agent_key(agent_id))
        return Agent.model_validate_json(raw) if raw else None

    async def presence(self, agent_id: str) -> dict[str, Any]:
        data = await self.redis.hgetall(f"ivr:presence:{agent_id}")
        return {"status": data.get("status", Presence.OFFLINE.value), "reason": data.get("reason", ""),
                "since": float(data.get("since", 0) or 0), "activity": data.get("activity", ""),
                "call_id": data.get("call_id", "")}

    async def set_presence(self, agent_id: str, status: Presence, reason: str = "", by: str = "agent") -> None:
        """Record and publish a presence change (raises RedisError if Redis is down)."""
        at = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"ivr:presence:{agent_id}", mapping={"status": status.value, "reason": reason,
                                                           "since": str(at), "by": by})
            pipe.publish(PRESENCE_CHANNEL, json.dumps({"agent": agent_id, "status": status.value,
                                                       "reason": reason, "by": by, "at": at}))
            await pipe.execute()

    async def set_activity(self, agent_id: str, activity: str, call_id: str = "") -> None:
        """What Asterisk says the agent is doing (ringing, on_call, wrap_up, or "" when free); the ACD writes it.

        Kept apart from ``status`` (the agent's own choice), so a call never overwrites "ready".
        A Redis outage is logged, never raised into call handling.
        """
        at = time.time()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(f"ivr:presence:{agent_id}", mapping={"activity": activity, "call_id": call_id,
                                                               "activity_since": str(at)})
                pipe.publish(PRESENCE_CHANNEL, json.dumps({"agent": agent_id, "activity": activity,
                                                           "call_id": call_id, "by": "acd", "at": at}))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("activity of %s not written (%s)", agent_id, exc)

    async def set_presence_quietly(self, agent_id: str, status: Presence, reason: str = "", by: str = "acd") -> None:
        """Like set_presence, for the ACD: a Redis outage is logged, never raised into call handling."""
        try:
            await self.set_presence(agent_id, status, reason, by)
        except (RedisError, OSError) as exc:
            log.warning("presence of %s not written (%s)", agent_id, exc)

