"""The ACD between the router, Asterisk (a fake AMI at the boundary) and Redis (the private test server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings
from ivr.records.call import CallRecord
from ivr.routing.acd import Acd
from ivr.routing.agents import AgentDirectory
from ivr.voice.flow import Hold
from tests.unit.routing.acd.helpers import AGENTS, FakeAmi, settle


@pytest.fixture
async def acd(redis_db):  # type: ignore[no-untyped-def]
    directory = AgentDirectory(redis_db)
    for agent in AGENTS:
        await directory.put(agent)
    saved: list[tuple[str, str]] = []

    async def save(call: CallRecord, event: str, extra: dict[str, Any] | None = None) -> None:
        saved.append((call.call_id, event))

    async def render(text: str, language: str) -> Path:
        return Settings().prompts_dir / f"{abs(hash(text))}.sln"

    settings = Settings(acd_wrap_up_s=5, acd_ring_timeout_s=15)
    acd = Acd(settings, FakeAmi(), directory, Hold(patience_s=60, offer_before_s=10), save, render=render)  # type: ignore[arg-type]
    await acd.reload()
    acd.saved = saved  # type: ignore[attr-defined]
    yield acd
    await settle(acd)
