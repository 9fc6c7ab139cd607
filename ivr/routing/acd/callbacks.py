"""Accepted callbacks kept in Redis (``CALLBACKS_KEY``), so a controller restart calls every one of them back.

A caller who accepted a callback (key 1 while holding, or a ``callback_offer`` node in the flow) has hung up:
nothing in Asterisk remembers them any more. The ACD writes each accepted callback here as it takes it, drops
it when the customer is reached or the attempts run out, and reads them all back when it (re)starts. Only the
storage lives here; what a callback does meanwhile is the bookkeeping's (``bookkeeping.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr.routing.acd.waiter import Waiter

log = logging.getLogger(__name__)

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

    async def drop(self, call_id: str, retry_s: float = 5.0, attempts: int = 60) -> None:
        """The callback is done with (reached or given up). Redis down: tried again every ``retry_s`` for a while, so
        a restart after the outage does not call the customer back a second time."""
        for attempt in range(attempts):
            try:
                await self.redis.hdel(CALLBACKS_KEY, call_id)
                return
            except (RedisError, OSError):
                if attempt + 1 < attempts:
                    await asyncio.sleep(retry_s)
        log.error("callback %s: done, but still kept in Redis (unreachable): a restart would call back again",
                  call_id)

    async def all(self) -> list[dict[str, Any]]:
        """Every callback kept (entries that are not JSON are skipped)."""
        entries = []
        for raw in (await self.redis.hgetall(CALLBACKS_KEY)).values():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(raw))
        return entries
