"""Publishing a flow while a call is in the IVR, through the real Asterisk and the running controller.

The first call reaches the main menu before the publish and presses 2 only after it: it must still go
where the version it started with sends key 2 (cards). A call placed after the publish follows the new
version (payments). Then a rollback in one step brings key 2 back to cards. Whatever happens, the
original flow is live again at the end, so the tests after this one see the hotline they expect.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.records.store import CONTROLLER_KEY, call_key
from ivr.sim.simulator import SimulatedCall, Simulator
from ivr.telephony.ami import AmiClient
from ivr.voice.versions import FlowStore

pytestmark = pytest.mark.integration

CALLER = "01099990001"  # nobody in the demo customers: no patience or case owner changes the route
AUTHOR = "test_hot_reload"


class AnswerAfterGate(Simulator):
    """A simulated caller who is at the menu (the controller listens) but presses their key only when let."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.listening = asyncio.Event()
        self.gate = asyncio.Event()

    async def answer_when_asked(self, ami: AmiClient, sim: SimulatedCall, turn: tuple[str, str],
                                *timing: object) -> None:
        self.listening.set()
        await self.gate.wait()
        await self.answer(sim, ami, turn)  # a key counts even while the prompt plays


async def controller_runs(redis: aioredis.Redis, version: int, timeout: float = 20.0) -> bool:
    """Whether the controller's heartbeat reports ``version`` of the flow within ``timeout``."""
    for _ in range(int(timeout / 0.2)):
        if await redis.hget(CONTROLLER_KEY, "flow_version") == str(version):
            return True
        await asyncio.sleep(0.2)
    return False


def key_2_to_payments(text: str) -> str:
    edited = (text.replace("      lost_card: to_cards\n", "      lost_card: to_payments\n")
              .replace("  to_cards: {type: route, queue: cards, skills: [cards], priority: 10}\n", ""))
    assert edited.count("to_cards") == 0, "the hotline changed shape: update this test's edit"
    return edited


async def test_a_publish_takes_new_calls_and_leaves_calls_in_progress_alone(live_stack: Settings, call: Any) -> None:
    redis = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    store = FlowStore(redis, settings=live_stack)
    original = await store.live("hotline")
    assert original is not None, "the controller seeds the hotline's first version when it starts"
    assert await controller_runs(redis, original.number), "the controller does not run the live version"
    first = AnswerAfterGate(live_stack)
    in_progress = asyncio.create_task(first.run(CALLER, [], ["2"], timeout=90))
    try:
        await asyncio.wait_for(first.listening.wait(), 30)  # the first call is at the main menu
        published = await store.publish("hotline", key_2_to_payments(original.text), AUTHOR,
                                        "key 2 to payments", base=original.number)
        assert await controller_runs(redis, published.number)
        first.gate.set()
        old = await in_progress
        new = await call(caller=CALLER, dtmf=["2"])
        assert (old["intent"], old["queue"], old["outcome"]) == ("lost_card", "cards", "queued"), old
        assert old["flow_version"] == original.number
        assert (new["intent"], new["queue"], new["outcome"]) == ("lost_card", "payments", "queued"), new
        assert new["flow_version"] == published.number
        assert old["path"] == ["main_menu", "to_cards"] and new["path"] == ["main_menu", "to_payments"]

        back = await store.rollback("hotline", original.number, AUTHOR, "test over")
        assert back.text == original.text
        assert await controller_runs(redis, back.number)
        again = await call(caller=CALLER, dtmf=["2"])
        assert (again["queue"], again["flow_version"]) == ("cards", back.number)
        audit = [(e["who"], e["action"]) for e in await store.audit.entries(5)]
        assert audit[:2] == [(AUTHOR, "rollback"), (AUTHOR, "publish")]
        stored = await redis.get(call_key(old["call_id"]))
        assert stored is not None and f'"flow_version": {original.number}' in stored
    finally:
        first.gate.set()
        if not in_progress.done():
            in_progress.cancel()
        with contextlib.suppress(BaseException):
            await in_progress
        live = await store.live("hotline")
        if live is not None and live.text != original.text:
            live = await store.rollback("hotline", original.number, AUTHOR, "restore after test_hot_reload")
        if live is not None:
            await controller_runs(redis, live.number)
        await redis.aclose()
