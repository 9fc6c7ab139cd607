"""The controller's hot reload on a private redis-server: the live version for new calls, calls keep theirs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.controller import FLOW_ID, Controller
from ivr.voice.flow import load_flow
from ivr.voice.navigator import Navigator, Speech
from ivr.voice.validation import Context
from ivr.voice.versions import FLOWS_CHANNEL, FlowStore, versions_key

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "dialplans" / "hotline.yaml").read_text(encoding="utf-8")
EDITED = (TEXT.replace("      lost_card: to_cards\n", "      lost_card: to_payments\n")
          .replace("  to_cards: {type: route, queue: cards, skills: [cards], priority: 10}\n", ""))


class Renderer:
    def __init__(self) -> None:
        self.rendered: list[list[tuple[str, str]]] = []
        self.rates: list[tuple[int, ...]] = []

    def prerender(self, items: list[tuple[str, str]], sample_rates: tuple[int, ...] = (8000,)) -> int:
        self.rendered.append(list(items))
        self.rates.append(tuple(sample_rates))
        return 0

    async def render_async(self, text: str, language: str) -> Path:
        return Path("/nonexistent")


@pytest.fixture
async def controller(redis_url: str, redis_db: aioredis.Redis) -> Any:
    settings = Settings(redis_url=redis_url, dialplans_dir=ROOT / "dialplans")
    renderer = Renderer()
    navigator = Navigator(load_flow(ROOT / "dialplans" / "hotline.yaml"), Speech(None, renderer),  # type: ignore[arg-type]
                          Path("/nonexistent"))
    built = Controller(settings, navigator)
    yield built
    await built.store.close()


def main_menu_route(navigator: Navigator, intent: str) -> str:
    return navigator.flow.nodes["main_menu"].routes[intent]  # type: ignore[union-attr]


async def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


async def test_seeds_then_follows_publishes_for_new_calls_only(controller: Controller,
                                                               redis_db: aioredis.Redis) -> None:
    from_file = controller.navigator
    assert controller.flow_version is None
    await controller.follow_live_flow()
    assert controller.flow_version == 1 and controller.navigator is not from_file
    store = FlowStore(redis_db, prerender=_nothing, context=Context(queues=frozenset(
        {"general", "cards", "payments", "complaints", "loans"})))
    feed = asyncio.create_task(controller._flow_feed())
    try:
        # A call in progress holds the navigator it started with; new calls get the new one.
        in_progress = controller.navigator
        await asyncio.sleep(0.2)  # subscribed
        await store.publish(FLOW_ID, EDITED, "kim", "key 2 to payments", base=1)
        assert await wait_for(lambda: controller.flow_version == 2)
        assert main_menu_route(controller.navigator, "lost_card") == "to_payments"
        assert main_menu_route(in_progress, "lost_card") == "to_cards"
        renderer = controller.navigator.speech.renderer
        assert renderer.rendered[-1] == controller.navigator.prompts()  # type: ignore[attr-defined]
        assert renderer.rates[-1] == (8000, 16000)  # wideband callers get their prompts in HD, ready
        assert controller.navigator.on_listen == controller.on_listen  # new navigators report like the first
        assert controller.navigator.on_prompt_done == controller.on_prompt_done
        assert controller.health()["flow_version"] == 2
        await store.rollback(FLOW_ID, 1, "lee", "back")
        assert await wait_for(lambda: controller.flow_version == 3)
        assert main_menu_route(controller.navigator, "lost_card") == "to_cards"
    finally:
        feed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await feed


async def test_an_invalid_version_is_not_taken(controller: Controller, redis_db: aioredis.Redis,
                                               caplog: pytest.LogCaptureFixture) -> None:
    await controller.follow_live_flow()
    running = controller.navigator
    # Written behind the store's back (no validation): the controller checks again and keeps version 1.
    await redis_db.hset(versions_key(FLOW_ID), "2", json.dumps(
        {"author": "mallory", "at": 0, "comment": "", "sha256": "", "text": TEXT.replace("type: hangup", "type: bye")}))
    await redis_db.set(f"ivr:flow:{FLOW_ID}:live", "2")
    await redis_db.publish(FLOWS_CHANNEL, json.dumps({"flow": FLOW_ID, "version": 2}))
    await controller.follow_live_flow()
    assert controller.flow_version == 1 and controller.navigator is running
    assert "flow hotline version 2 refused, new calls stay on version 1" in caplog.text


async def test_redis_down_at_start_keeps_the_file(tmp_path: Path) -> None:
    settings = Settings(redis_url=f"unix://{tmp_path}/nothing.sock", dialplans_dir=ROOT / "dialplans")
    navigator = Navigator(load_flow(ROOT / "dialplans" / "hotline.yaml"), Speech(None, Renderer()),  # type: ignore[arg-type]
                          Path("/nonexistent"))
    controller = Controller(settings, navigator)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever redis-py raises for a missing socket
            await controller.follow_live_flow()
        assert controller.navigator is navigator and controller.flow_version is None
    finally:
        await controller.store.close()


async def _nothing(flow: Any) -> None:
    return None


async def test_each_turn_publishes_listening_then_prompt_done(controller: Controller,
                                                              redis_db: aioredis.Redis) -> None:
    # The simulator (ivr.sim) waits for the prompt's true end: under load the paced playback outlasts its seconds.
    from ivr.records.call import CallRecord
    from ivr.records.store import EVENTS_CHANNEL

    pubsub = redis_db.pubsub()
    await pubsub.subscribe(EVENTS_CHANNEL)
    try:
        call = CallRecord(call_id="c-hooks", caller="0101")
        await controller.on_listen(call, "main_menu", 1.23456)
        await controller.on_prompt_done(call, "main_menu")
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while len(events) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message:
                    events.append(json.loads(message["data"]))
    finally:
        await pubsub.aclose()
    assert all(isinstance(event.pop("at"), float) for event in events)
    assert events == [{"type": "call.listening", "call_id": "c-hooks", "node": "main_menu", "prompt_s": 1.235},
                      {"type": "call.prompt_done", "call_id": "c-hooks", "node": "main_menu"}]
