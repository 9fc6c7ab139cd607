"""The call store through a Redis outage: what is written while Redis is down reaches it once it is back.

A private redis-server on a Unix socket of its own, stopped and started again on the same socket (nothing on
disk: what Redis holds after the restart is only what the store wrote after it).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ivr.records.call import CallRecord, Outcome, Turn
from ivr.records.store import CALLBACKS_STREAM, CallStore, call_key


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs redis-server (make setup installs Debian's redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.socket.exists(), "private redis-server did not start"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_writes_made_while_redis_is_down_are_written_when_it_is_back(private_redis: PrivateRedis) -> None:
    store = CallStore(private_redis.url, 600)
    store.retry_s = 0.05
    reader = aioredis.from_url(private_redis.url, decode_responses=True)
    call = CallRecord(call_id="1700.1", caller="01012345678")
    other = CallRecord(call_id="1700.2", caller="01055556666")
    try:
        assert await store.save(call, "call.started")
        private_redis.stop()
        call.queue, call.outcome = "loans", Outcome.QUEUED
        await store.append_turn(call, Turn(node="main_menu", dtmf="3", intent="loan"))
        assert not await store.save(call, "call.routed")
        other.queue = "complaints"
        await store.request_callback(other)
        call.outcome, call.ended_at = Outcome.ABANDONED, time.time()  # the call ends during the outage
        assert not await store.save(call, "call.ended")
        assert store.pending == 3  # the call's latest state, its turn, the callback request
        private_redis.start()
        for _ in range(100):
            if store.pending == 0:
                break
            await asyncio.sleep(0.05)
        assert store.pending == 0
        saved = json.loads(await reader.get(call_key("1700.1")) or "{}")
        assert (saved["outcome"], saved["queue"], saved["ended_at"]) == ("abandoned", "loans", call.ended_at)
        assert [json.loads(e[1]["dtmf"]) for e in await reader.xrange(f"{call_key('1700.1')}:turns")] == ["3"]
        assert await reader.ttl(f"{call_key('1700.1')}:turns") > 0
        [(_, callback)] = await reader.xrange(CALLBACKS_STREAM)
        assert (callback["call_id"], callback["queue"]) == ("1700.2", "complaints")
        assert store.dropped == 0
    finally:
        await reader.aclose()
        await store.close()


async def test_a_later_save_that_succeeds_is_not_overwritten_by_an_older_state(private_redis: PrivateRedis) -> None:
    store = CallStore(private_redis.url, 600)
    store.retry_s = 3600.0  # the background catch-up stays asleep: only the call's own next save writes
    reader = aioredis.from_url(private_redis.url, decode_responses=True)
    call = CallRecord(call_id="1700.3", caller="01012345678")
    try:
        private_redis.stop()
        assert not await store.save(call, "call.started")
        private_redis.start()
        call.queue = "cards"
        assert await store.save(call, "call.routed")
        assert store.pending == 0
        assert json.loads(await reader.get(call_key("1700.3")) or "{}")["queue"] == "cards"
    finally:
        await reader.aclose()
        await store.close()


async def test_the_writes_kept_are_bounded(private_redis: PrivateRedis) -> None:
    store = CallStore(private_redis.url, 600)
    store.max_kept, store.retry_s = 3, 3600.0
    try:
        private_redis.stop()
        for n in range(5):
            await store.save(CallRecord(call_id=f"1700.{n}", caller=""), "call.started")
        assert store.pending == 3 and store.dropped == 2
    finally:
        await store.close()
