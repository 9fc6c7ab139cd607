"""The real stack, once per test session: Redis, Asterisk 22 in its Debian root, the controller.

The controller is restarted at the start so it runs this checkout's code; the stack is
stopped at the end only if the session started it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings, load_settings
from ivr.ops import stack
from ivr.ops.provision import provision
from ivr.sim.simulator import Simulator
from ivr.telephony.ami import AmiClient


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def live_stack(settings: Settings) -> Iterator[Settings]:
    was_running = stack.asterisk_answers(settings)
    # The controller under test rings an agent 6 s before the next one, and wraps up in 2 s.
    os.environ.setdefault("IVR_ACD_RING_TIMEOUT_S", "6")
    os.environ.setdefault("IVR_ACD_WRAP_UP_S", "2")
    provision(settings)
    stack.controller_down(settings)
    stack.up(settings, controller=False)
    if was_running:  # pick up configuration edits without a restart
        stack.asterisk_rx(settings, "core reload")
    asyncio.run(_import_demo_data(settings))
    stack.up(settings)  # the controller, now reading this session's agents
    yield settings
    if not was_running:
        stack.down(settings)


async def _import_demo_data(settings: Settings) -> None:
    """The demo customers and agents; every agent starts offline (a test says who is ready)."""
    import redis.asyncio as aioredis

    from ivr.config import PROJECT_DIR
    from ivr.routing.agents import AGENTS, AgentDirectory, Presence
    from ivr.routing.customers import CustomerStore, load_rows

    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        rows = load_rows((PROJECT_DIR / "dialplans" / "demo_customers.json").read_text(encoding="utf-8"))
        imported, errors = await CustomerStore(client, timeout_s=5).import_rows(rows)
        assert imported == len(rows) and not errors, errors
        directory = AgentDirectory(client)
        result = await AGENTS.run(PROJECT_DIR / "dialplans" / "demo_agents.json", directory.put)
        assert not result.errors, result.errors
        for agent in await directory.all():
            await directory.set_presence(agent.id, Presence.OFFLINE)
        await client.delete("ivr:callbacks:pending")
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def say(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Synthesize a caller's utterance with espeak-ng (8 kHz WAV, as a phone line carries it)."""
    folder = tmp_path_factory.mktemp("speech")

    def _say(text: str, voice: str = "ko", rate: int = 140) -> Path:
        path = folder / f"{abs(hash((text, voice, rate)))}.wav"
        if not path.exists():
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True)
        return path

    return _say


@pytest.fixture
async def call(live_stack: Settings):  # type: ignore[no-untyped-def]
    """Place a simulated call through the real Asterisk; returns the call record."""

    async def _call(caller: str = "01012345678", audio: list[Path] | None = None, dtmf: list[str] | None = None,
                    **kwargs: Any) -> dict[str, Any]:
        return await Simulator(live_stack).run(caller, audio or [], dtmf or [], **kwargs)

    return _call


@pytest.fixture
async def ami_events(live_stack: Settings) -> AsyncIterator[list[Any]]:
    """Every AMI event Asterisk sends during the test, through our own AMI login."""
    events: list[Any] = []
    client = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                       live_stack.ami_secret.get_secret_value())
    client.on("*", events.append)
    client.start()
    assert await client.wait_ready(10), client.last_error
    yield events
    client.close()


async def wait_for(predicate, timeout: float = 10.0, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def waiting_for_person(events: list[Any], call_id: str) -> str | None:
    """Where Asterisk holds the call for a person: the ACD's waiting room (UserEvent IvrHold) or an
    Asterisk queue (QueueCallerJoin, q_ prefix dropped); None if neither happened."""
    for event in events:
        if event.get("Uniqueid") != call_id:
            continue
        if event.get("Event") == "UserEvent" and event.get("UserEvent") == "IvrHold":
            return str(event.get("Queue"))
        if event.get("Event") == "QueueCallerJoin":
            return str(event.get("Queue", "")).removeprefix("q_")
    return None
