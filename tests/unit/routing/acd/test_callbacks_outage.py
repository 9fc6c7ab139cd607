"""A callback accepted while Redis is down is kept in memory and stored as soon as Redis answers again: a controller
restart after the outage still calls the customer back."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from ivr.routing.acd import Acd
from tests.unit.routing.acd.helpers import hold


async def test_a_callback_accepted_while_redis_is_down_is_stored_when_it_is_back(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    call = await hold(acd, "c1")
    working = acd.callbacks.redis
    down = aioredis.from_url("unix:///nonexistent/redis.sock", socket_connect_timeout=0.2)
    acd.callbacks.redis = down
    try:
        acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrCallback", "Uniqueid": "c1"})  # type: ignore[arg-type]
        for _ in range(50):
            if any("kept in memory" in note for note in call.notes):
                break
            await asyncio.sleep(0.02)
        assert any("callback not stored in Redis yet" in note for note in call.notes), call.notes
        assert not await redis_db.hexists("ivr:callbacks:pending", "c1")
        assert acd.waiters["c1"].callback_number == "01012345678"  # the ACD still keeps the place meanwhile
        acd.callbacks.redis = working  # Redis is back
        for _ in range(100):
            if await redis_db.hexists("ivr:callbacks:pending", "c1"):
                break
            await asyncio.sleep(0.05)
        assert await redis_db.hexists("ivr:callbacks:pending", "c1")
    finally:
        acd.callbacks.redis = working
        await down.aclose()
