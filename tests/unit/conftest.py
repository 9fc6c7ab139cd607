"""Fixtures for unit tests that need Redis: a private redis-server of their own, emptied for each test.

Private, not a database of the stack's server: pub/sub channels are shared by every database of
a server, so a test publishing "agent A1004 is ready" on db 15 would reach a live controller.
The server listens on a Unix socket only, keeps nothing on disk and dies with the session.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server (make setup installs Debian's redis-server)")
    folder: Path = tmp_path_factory.mktemp("redis")
    socket = folder / "redis.sock"
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline and server.poll() is None:
        time.sleep(0.02)
    if not socket.exists():
        server.kill()
        pytest.fail(f"private redis-server did not start (see {folder / 'redis.log'})")
    yield f"unix://{socket}?db=0"
    server.terminate()
    server.wait(10)


@pytest.fixture
async def redis_db(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"private redis-server not answering at {redis_url}: {exc}")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """An HTTP client of the web app built by the test module's own ``app`` fixture (no server, no socket)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


@pytest.fixture(scope="session", autouse=True)
def _private_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Unit tests never write the stack's archive of finished calls (run/archive.sqlite3): one of their own."""
    import os

    before = os.environ.get("IVR_ARCHIVE_PATH")
    os.environ["IVR_ARCHIVE_PATH"] = str(tmp_path_factory.mktemp("archive") / "archive.sqlite3")
    yield
    if before is None:
        os.environ.pop("IVR_ARCHIVE_PATH", None)
    else:
        os.environ["IVR_ARCHIVE_PATH"] = before
