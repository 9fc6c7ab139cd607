"""Call records and events in Redis.

Redis is where other processes (the simulator, the web side, a second controller)
see calls. It is never on a call's critical path: if Redis is down, the call goes
on and the failure is logged once per call. Nothing written meanwhile is lost: the
record's latest state and the stream entries (turns, callback requests) are kept in
memory and written, in order, as soon as Redis answers again (a restart, an AOF
recovery after a kill); a call that ended during the outage still gets its end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """A stream entry Redis did not take (it was down), kept to be added when it is back."""

    key: str
    """The stream (``ivr:call:<id>:turns``, ``ivr:callbacks``)."""
    fields: StreamFields
    """The entry's fields, as they would have been added."""
    maxlen: int | None = None
    """The stream's approximate cap, as for the original XADD."""
    ttl_s: int | None = None
    """The stream key's expiry, renewed with the entry."""


class CallStore:
    #: How often writes kept during an outage are tried again; at most this many calls and stream entries are kept
    #: (beyond, the oldest go, each counted and logged: an outage of hours must not eat the controller's memory).
    retry_s, max_kept = 1.0, 10_000

    def __init__(self, url: str, ttl_s: int) -> None:
        # Short timeouts: a hung Redis must not hold a caller.
        self.redis = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True,
                                       retry=reconnecting())
        self.ttl_s = ttl_s
        self._failing: set[str] = set()
        self._unsaved: dict[str, CallRecord] = {}
        """Calls whose latest state Redis lacks (a save failed): written again, as they are then, once it is back."""
        self._unsent: collections.deque[StreamEntry] = collections.deque()
        """Stream entries Redis did not take, oldest first."""
        self._catching_up: asyncio.Task[None] | None = None
        self.kept_total = 0
        """Writes kept during outages and written later, since start."""
        self.dropped = 0
        """Writes given up because more than ``max_kept`` were waiting (logged each time)."""

    @property
    def pending(self) -> int:
        """Writes waiting for Redis to come back."""
        return len(self._unsaved) + len(self._unsent)

    async def close(self) -> None:
        if self._catching_up is not None:
            self._catching_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._catching_up
        if self.pending:
            log.error("controller stopping with %d writes Redis never took (it was down): they are lost",
                      self.pending)
        await self.redis.aclose()

    # --- writes kept while Redis is down

    def _keep_record(self, call: CallRecord) -> None:
        self._unsaved.pop(call.call_id, None)  # re-inserted last: the dict stays oldest first
        self._unsaved[call.call_id] = call
        while len(self._unsaved) > self.max_kept:
            lost = next(iter(self._unsaved))
            del self._unsaved[lost]
            self._given_up(f"call {lost}'s record")
        self._catch_up_later()

    def _keep_entry(self, entry: StreamEntry) -> None:
        self._unsent.append(entry)
        while len(self._unsent) > self.max_kept:
            dropped = self._unsent.popleft()
            self._given_up(f"an entry of {dropped.key}")
        self._catch_up_later()

    def _given_up(self, what: str) -> None:
        self.dropped += 1
        log.error("Redis down too long: %s is lost (more than %d writes were waiting)", what, self.max_kept)

    def _catch_up_later(self) -> None:
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.create_task(self._catch_up(), name="redis-catch-up")

    async def _catch_up(self) -> None:
        """Until nothing is waiting: when Redis answers, write what was kept (stream entries first, in order)."""
        since = time.monotonic()
        written = 0
        while self._unsaved or self._unsent:
            await asyncio.sleep(self.retry_s)
            try:
                written += await self._write_kept()
            except (RedisError, OSError):
                continue
        self.kept_total += written
        if written:
            log.warning("Redis answers again: %d writes kept meanwhile are written (%.1f s after the first failure)",
                        written, time.monotonic() - since)

    async def _write_kept(self) -> int:
        written = 0
        while self._unsent:
            entry = self._unsent[0]
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(entry.key, entry.fields, maxlen=entry.maxlen, approximate=entry.maxlen is not None)
                if entry.ttl_s:
                    pipe.expire(entry.key, entry.ttl_s)
                await pipe.execute()
            self._unsent.popleft()
            written += 1
        for call_id, call in list(self._unsaved.items()):
            # The record as it is now (it may have changed since the failed save); if it changes while this write is
            # on its way, the call stays kept and is written again next round: the last write is the latest state.
            payload = self._payload(call)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(call_key(call_id), payload, ex=self.ttl_s)
                pipe.publish(EVENTS_CHANNEL, json.dumps({"type": "call.updated", "call_id": call_id,
                                                         "at": time.time(), "catch_up": True}))
                await pipe.execute()
            if self._unsaved.get(call_id) is call and self._payload(call) == payload:
                del self._unsaved[call_id]
                self._failing.discard(call_id)
            written += 1
        return written

    @staticmethod
    def _payload(call: CallRecord) -> str:
        return json.dumps(call.redact().to_dict(), ensure_ascii=False)

    async def save(self, call: CallRecord, event: str, extra: dict[str, Any] | None = None) -> bool:
        """Persist the record and publish ``event``; False (logged) when Redis is unavailable.

        The record's text is redacted first (ivr.privacy.redaction): personal data never reaches Redis."""
        payload = self._payload(call)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(call_key(call.call_id), payload, ex=self.ttl_s)
                pipe.publish(EVENTS_CHANNEL, json.dumps(
                    {"type": event, "call_id": call.call_id, "at": time.time(), **(extra or {})}))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            if call.call_id not in self._failing:
                log.error("call %s: cannot save to Redis (%s); the call goes on without it, and the record is"
                          " written when Redis is back", call.call_id, exc)
                self._failing.add(call.call_id)
            self._keep_record(call)
            return False
        if self._unsaved.get(call.call_id) is call and self._payload(call) == payload:
            del self._unsaved[call.call_id]  # this save wrote the latest state
        if call.call_id not in self._unsaved:
            self._failing.discard(call.call_id)
        return True

    async def append_turn(self, call: CallRecord, turn: Turn) -> None:
        """The per-call turn log trainers read (a Redis stream), and a live update of the record."""
        fields: StreamFields = {k: json.dumps(v, ensure_ascii=False) for k, v in asdict(turn.redact()).items()}
        entry = StreamEntry(f"{call_key(call.call_id)}:turns", fields, maxlen=200, ttl_s=self.ttl_s)
        try:
            await self.redis.xadd(entry.key, fields, maxlen=200, approximate=True)
            await self.redis.expire(entry.key, self.ttl_s)
        except (RedisError, OSError) as exc:
            log.debug("call %s: turn not logged yet: %s", call.call_id, exc)
            self._keep_entry(entry)
        await self.save(call, "call.turn", {"node": turn.node, "intent": turn.intent})

    async def request_callback(self, call: CallRecord) -> None:
        """Log a callback accepted in the flow on the ``ivr:callbacks`` stream: the audit trail of callback requests.

        Calling back is the ACD's (``ivr.routing.acd``, which keeps the callback in ``ivr:callbacks:pending``)."""
        fields: StreamFields = {"call_id": call.call_id, "caller": call.caller, "queue": call.queue or "",
                                "customer": call.customer or "", "at": str(time.time())}
        try:
            await self.redis.xadd(CALLBACKS_STREAM, fields)
        except (RedisError, OSError) as exc:
            log.error("call %s: callback request not logged yet (%s); logged when Redis is back", call.call_id, exc)
            call.note(f"callback request logged late: {exc}")
            self._keep_entry(StreamEntry(CALLBACKS_STREAM, fields))

    async def load(self, call_id: str) -> CallRecord | None:
        raw = await self.redis.get(call_key(call_id))
        return CallRecord.from_dict(json.loads(raw)) if raw else None

    async def heartbeat(self, fields: dict[str, Any]) -> None:
        try:
            await self.redis.hset(CONTROLLER_KEY, mapping={k: str(v) for k, v in fields.items()})
            await self.redis.expire(CONTROLLER_KEY, 10)
        except (RedisError, OSError) as exc:
            log.debug("heartbeat not written: %s", exc)
