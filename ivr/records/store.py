"""Call records and events in Redis.

Redis is where other processes (the simulator, the web side, a second controller)
see calls. It is never on a call's critical path: if Redis is down, the call goes
on, the failure is logged once per call, and the record catches up on the next save.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from ivr.records.call import CallRecord, Turn
from ivr.records.redis_text import StreamFields

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "ivr:events"
CONTROLLER_KEY = "ivr:controller"
CALLBACKS_STREAM = "ivr:callbacks"
"""Stream: every callback accepted in the flow, an audit trail (the ACD keeps and places them)."""


def reconnecting() -> Retry:
    """Retry a command twice, quickly, on a dropped connection: after Redis restarts, every pooled
    connection is dead, and without this the first command on each fails (a lost save, a 500 page)."""
    return Retry(ExponentialBackoff(cap=0.2, base=0.01), 2)


MessageHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


async def follow_channels(redis: aioredis.Redis, channels: Sequence[str], handle: MessageHandler, what: str,
                          on_subscribed: Callable[[], Awaitable[None]] | None = None) -> None:
    """Follow Redis pub/sub ``channels`` for ever: ``handle(channel, message)`` for each JSON message.

    Redis going away is normal (a restart): the subscription comes back, and ``on_subscribed``
    runs after every (re)subscription so a follower can catch up on what it missed. One bad
    message is logged and skipped; it never ends the feed.
    """
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(*channels)
            if on_subscribed is not None:
                await on_subscribed()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    data = json.loads(message["data"])
                    if isinstance(data, dict):
                        await handle(str(message["channel"]), data)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s: message on %s not handled", what, message.get("channel"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: Redis subscription lost (%s); retrying", what, exc)
            await asyncio.sleep(1)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def call_key(call_id: str) -> str:
    return f"ivr:call:{call_id}"


class CallStore:
    def __init__(self, url: str, ttl_s: int) -> None:
        # Short timeouts: a hung Redis must not hold a caller.
        self.redis = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True,
                                       retry=reconnecting())
        self.ttl_s = ttl_s
        self._failing: set[str] = set()

    async def close(self) -> None:
        await self.redis.aclose()

    async def save(self, call: CallRecord, event: str, extra: dict[str, Any] | None = None) -> bool:
        """Persist the record and publish ``event``; False (logged) when Redis is unavailable.

        The record's text is redacted first (ivr.privacy.redaction): personal data never reaches Redis."""
        payload = json.dumps(call.redact().to_dict(), ensure_ascii=False)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(call_key(call.call_id), payload, ex=self.ttl_s)
                pipe.publish(EVENTS_CHANNEL, json.dumps(
                    {"type": event, "call_id": call.call_id, "at": time.time(), **(extra or {})}))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            if call.call_id not in self._failing:
                log.error("call %s: cannot save to Redis (%s); the call goes on without it", call.call_id, exc)
                self._failing.add(call.call_id)
            return False
        self._failing.discard(call.call_id)
        return True

    async def append_turn(self, call: CallRecord, turn: Turn) -> None:
        """The per-call turn log trainers read (a Redis stream), and a live update of the record."""
        fields: StreamFields = {k: json.dumps(v, ensure_ascii=False) for k, v in asdict(turn.redact()).items()}
        try:
            await self.redis.xadd(f"{call_key(call.call_id)}:turns", fields, maxlen=200, approximate=True)
            await self.redis.expire(f"{call_key(call.call_id)}:turns", self.ttl_s)
        except (RedisError, OSError) as exc:
            log.debug("call %s: turn not logged: %s", call.call_id, exc)
        await self.save(call, "call.turn", {"node": turn.node, "intent": turn.intent})

    async def request_callback(self, call: CallRecord) -> None:
        """Log a callback accepted in the flow on the ``ivr:callbacks`` stream: the audit trail of callback requests.

        Calling back is the ACD's (``ivr.routing.acd``, which keeps the callback in ``ivr:callbacks:pending``)."""
        try:
            await self.redis.xadd(CALLBACKS_STREAM, {"call_id": call.call_id, "caller": call.caller,
                                                     "queue": call.queue or "", "customer": call.customer or "",
                                                     "at": str(time.time())})
        except (RedisError, OSError) as exc:
            log.error("call %s: callback request not logged (%s)", call.call_id, exc)
            call.note(f"callback request not logged: {exc}")

    async def load(self, call_id: str) -> CallRecord | None:
        raw = await self.redis.get(call_key(call_id))
        return CallRecord.from_dict(json.loads(raw)) if raw else None

    async def heartbeat(self, fields: dict[str, Any]) -> None:
        try:
            await self.redis.hset(CONTROLLER_KEY, mapping={k: str(v) for k, v in fields.items()})
            await self.redis.expire(CONTROLLER_KEY, 10)
        except (RedisError, OSError) as exc:
            log.debug("heartbeat not written: %s", exc)
