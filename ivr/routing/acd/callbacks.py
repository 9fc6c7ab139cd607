"""Accepted callbacks kept in Redis (``CALLBACKS_KEY``), so a controller restart calls every one of them back.

A caller who accepted a callback (key 1 while holding, or a ``callback_offer`` node in the flow) has hung up:
nothing in Asterisk remembers them any more. The ACD writes each accepted callback here as it takes it, drops
it when the customer is reached or the attempts run out, and reads them all back when it (re)starts. Only the
storage lives here; what a callback does meanwhile is the bookkeeping's (``bookkeeping.py``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr.routing.acd.waiter import Waiter

CALLBACKS_KEY = "ivr:callbacks:pending"
"""Hash: callback id -> JSON, so accepted callbacks survive a controller restart."""


class PendingCallbacks:
    """The hash of accepted callbacks: call id -> the call record, where it waits and the number to call."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def put(self, waiter: Waiter) -> None:
        """Keep the callback (raises RedisError or OSError if Redis is down)."""
        data = {"call": waiter.call.to_dict(), "skill": waiter.waiting.skill, "queue": waiter.waiting.queue,
                "priority": waiter.waiting.priority, "owner": waiter.waiting.owner, "number": waiter.callback_number}
        await self.redis.hset(CALLBACKS_KEY, waiter.call.call_id, json.dumps(data, ensure_ascii=False))

    async def drop(self, call_id: str) -> None:
        """The callback is done with (reached or given up); a Redis outage leaves it for the next restart."""
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hdel(CALLBACKS_KEY, call_id)

    async def all(self) -> list[dict[str, Any]]:
        """Every callback kept (entries that are not JSON are skipped)."""
        entries = []
        for raw in (await self.redis.hgetall(CALLBACKS_KEY)).values():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(raw))
        return entries
