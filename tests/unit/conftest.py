"""Fixtures for unit tests that need Redis: a real local server, database 15, emptied for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def redis_db() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(TEST_REDIS_URL, decode_responses=True, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"needs a Redis server at {TEST_REDIS_URL} (make setup, or redis-server --daemonize yes): {exc}")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()
