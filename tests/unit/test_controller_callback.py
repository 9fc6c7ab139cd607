"""A callback accepted in the flow (a ``callback_offer`` node) is placed: the controller hands it to the ACD,
which rings an agent first through [ivr-callback] with the caller's number to dial (a fake AMI at the boundary,
the private Redis server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.controller import Controller
from ivr.records.agent import Agent
from ivr.records.call import CallRecord, Outcome
from ivr.records.store import CALLBACKS_STREAM
from ivr.routing.agents import AgentDirectory
from ivr.voice.flow import load_flow
from ivr.voice.navigator import Decision, DecisionKind, Navigator, Speech
from tests.unit.routing.acd.helpers import FakeAmi, ready, settle

ROOT = Path(__file__).resolve().parents[2]


class Renderer:
    def prerender(self, items: list[tuple[str, str]], sample_rates: tuple[int, ...] = (8000,)) -> int:
        return 0

    async def render_async(self, text: str, language: str) -> Path:
        return Path("/nonexistent")


class FakeAgi:
    """The call's FastAGI session, as far as the hand-over uses it."""

    hung_up = False

    def __init__(self) -> None:
        self.variables: dict[str, str] = {}

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value


@pytest.fixture
async def controller(redis_url: str, redis_db: aioredis.Redis) -> Any:
    await AgentDirectory(redis_db).put(Agent(id="A1002", name="desk", device="PJSIP/1002",
                                             skills={"complaints": 6}))
    settings = Settings(redis_url=redis_url, dialplans_dir=ROOT / "dialplans")
    navigator = Navigator(load_flow(ROOT / "dialplans" / "hotline.yaml"), Speech(None, Renderer()),  # type: ignore[arg-type]
                          Path("/nonexistent"))
    built = Controller(settings, navigator)
    built.acd.ami = FakeAmi()  # type: ignore[assignment]
    await built.acd.reload()
    yield built
    await settle(built.acd)
    await built.store.close()


async def test_callback_accepted_in_the_flow_rings_an_agent_then_dials_the_caller(
        controller: Controller, redis_db: aioredis.Redis) -> None:
    call = CallRecord(call_id="1700.42", caller="01012345678")
    agi = FakeAgi()
    await controller._hand_over(call, agi, Decision(DecisionKind.CALLBACK, queue="complaints",  # type: ignore[arg-type]
                                                    reason="caller accepted a callback"))
    await settle(controller.acd)
    # What the caller was promised is on record: the audit stream, and the ACD's pending callbacks.
    assert agi.variables == {"IVR_ACTION": "hangup"}
    assert (call.outcome, call.queue) == (Outcome.CALLBACK, "complaints")
    entries = await redis_db.xrange(CALLBACKS_STREAM, "-", "+")
    assert [fields["call_id"] for _, fields in entries] == ["1700.42"]
    assert await redis_db.hexists("ivr:callbacks:pending", "1700.42")
    fake: FakeAmi = controller.acd.ami  # type: ignore[assignment]
    assert fake.originates() == []  # nobody free: the callback keeps its place
    await ready(controller.acd, "A1002")
    [(device, kwargs)] = fake.originates()
    assert device == "PJSIP/1002" and kwargs["context"] == "ivr-callback"
    assert kwargs["channel_id"] == "cb-1700.42-0"
    assert kwargs["variables"]["IVR_CALLBACK_DIAL"] == "PJSIP/01012345678@trunk"
    assert kwargs["variables"]["IVR_OFFER_AGENT"] == "A1002"
