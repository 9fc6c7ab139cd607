"""What the controller does with what the IVR learns (ivr/controller.py, ``ChannelFacts``): each changed fact is one
AMI Setvar on the caller's channel, in order, and a copy in Redis; a controller error sends the caller to the
queue their intent named; a restarted controller follows again the calls a previous one took (a fake AMI at the
boundary, the private Redis server)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.controller import ChannelFacts, Controller
from ivr.records.call import CallRecord, Outcome
from ivr.telephony.ami import AmiError
from ivr.voice.flow import load_flow
from ivr.voice.navigator import Learned, Navigator, Speech
from ivr.voice.navigator.learned import redis_key
from tests.unit.routing.acd.helpers import FakeAmi, settle
from tests.unit.test_controller_callback import ROOT, FakeAgi, Renderer


class RecordingAmi:
    """Every Setvar asked of Asterisk, in order; slow on purpose, so that sends overlap if they are not chained."""

    def __init__(self, ready: bool = True, fail_on: str = "") -> None:
        self.ready = ready
        self.fail_on = fail_on
        self.setvars: list[tuple[str, str, str]] = []

    async def action(self, action: dict[str, Any], timeout: float = 10.0) -> Any:
        assert action["Action"] == "Setvar"
        await asyncio.sleep(0.01)
        if action["Variable"] == self.fail_on:
            raise AmiError("AMI Setvar failed: No such channel", "Error")
        self.setvars.append((action["Channel"], action["Variable"], action["Value"]))
        return {"Response": "Success"}


async def drained(facts: ChannelFacts) -> None:
    for _ in range(100):
        if not facts._last:
            return
        await asyncio.sleep(0.01)


async def test_each_changed_fact_is_one_setvar_in_order_and_kept_in_redis(redis_db: aioredis.Redis) -> None:
    ami = RecordingAmi()
    facts = ChannelFacts(ami, redis_db, ttl_s=600)  # type: ignore[arg-type]
    call = CallRecord(call_id="1700.7", caller="01012345678", channel="PJSIP/trunk-00000007")
    facts.tell(call, Learned(language="ko"))
    facts.tell(call, Learned(language="ko", intent="lost_card", queue="cards", priority=10))
    facts.tell(call, Learned(language="ko", intent="lost_card", queue="cards", priority=10))  # nothing new
    await drained(facts)
    assert ami.setvars == [
        ("PJSIP/trunk-00000007", "IVR_LANGUAGE", "ko"),
        ("PJSIP/trunk-00000007", "IVR_INTENT", "lost_card"),
        ("PJSIP/trunk-00000007", "IVR_LEARNED_QUEUE", "cards"),
        ("PJSIP/trunk-00000007", "IVR_LEARNED_PRIORITY", "10"),
    ]
    kept = await redis_db.hgetall(redis_key("1700.7"))
    assert Learned.from_variables(kept) == Learned(language="ko", intent="lost_card", queue="cards", priority=10)
    assert 0 < await redis_db.ttl(redis_key("1700.7")) <= 600
    assert facts.known["1700.7"].queue == "cards"
    facts.forget("1700.7")
    assert "1700.7" not in facts.known


async def test_without_ami_the_facts_still_reach_redis(redis_db: aioredis.Redis) -> None:
    ami = RecordingAmi(ready=False)
    facts = ChannelFacts(ami, redis_db, ttl_s=600)  # type: ignore[arg-type]
    facts.tell(CallRecord(call_id="1700.8", caller="", channel="PJSIP/x-1"), Learned(intent="loan", queue="loans"))
    await drained(facts)
    assert ami.setvars == []
    assert (await redis_db.hgetall(redis_key("1700.8")))["IVR_LEARNED_QUEUE"] == "loans"


async def test_a_gone_channel_stops_that_send_and_never_raises(redis_db: aioredis.Redis) -> None:
    ami = RecordingAmi(fail_on="IVR_INTENT")
    facts = ChannelFacts(ami, redis_db, ttl_s=600)  # type: ignore[arg-type]
    facts.tell(CallRecord(call_id="1700.9", caller="", channel="PJSIP/x-2"),
               Learned(intent="loan", queue="loans", language="ko"))
    await drained(facts)
    assert [name for _, name, _ in ami.setvars] == []  # IVR_INTENT comes first and failed: the rest is not tried


@pytest.fixture
async def controller(redis_url: str, redis_db: aioredis.Redis, tmp_path: Path) -> Any:
    # Its archive and recordings in the test's folder: a call ending here must not land in the machine's.
    settings = Settings(redis_url=redis_url, dialplans_dir=ROOT / "dialplans", run_dir=tmp_path,
                        recordings_dir=tmp_path / "recordings")
    navigator = Navigator(load_flow(ROOT / "dialplans" / "hotline.yaml"), Speech(None, Renderer()),  # type: ignore[arg-type]
                          Path("/nonexistent"))
    built = Controller(settings, navigator)
    built.acd.ami = FakeAmi()  # type: ignore[assignment]
    built.facts.ami = RecordingAmi()  # type: ignore[assignment]
    await built.acd.reload()
    yield built
    await settle(built.acd)
    await built.store.close()


async def test_a_controller_error_sends_the_caller_to_the_queue_their_intent_named(controller: Controller) -> None:
    async def broken(*_: Any) -> Any:
        # The caller named their subject, then the navigation broke.
        controller.facts.known["1700.10"] = Learned(intent="lost_card", queue="cards", priority=10)
        raise RuntimeError("navigator bug")

    controller._navigate = broken  # type: ignore[method-assign]

    class Env:
        uniqueid, caller, channel = "1700.10", "01099990001", "PJSIP/trunk-0000000a"

    agi = FakeAgi()
    agi.env = Env()  # type: ignore[attr-defined]
    await controller.handle_hotline(agi)  # type: ignore[arg-type]
    assert (agi.variables["IVR_QUEUE"], agi.variables["IVR_PRIORITY"]) == ("cards", "10")
    assert agi.variables["IVR_LANGUAGE"] == "ko"  # what was known at the start went on the channel over AGI at once


async def test_a_restarted_controller_follows_the_calls_a_previous_one_took(
        controller: Controller, redis_db: aioredis.Redis) -> None:
    in_ivr = CallRecord(call_id="1700.20", caller="01022223333", intent="lost_card")  # the controller died here
    answered = CallRecord(call_id="1700.21", caller="01044445555", queue="general", outcome=Outcome.QUEUED)
    ended = CallRecord(call_id="1700.22", caller="01066667777", ended_at=1000.0)
    for call in (in_ivr, answered, ended):
        await redis_db.set(f"ivr:call:{call.call_id}", json.dumps(call.to_dict()))
    channels = [
        {"Event": "CoreShowChannel", "Context": "ivr-queue", "Exten": "cards", "Uniqueid": "1700.20",
         "Channel": "PJSIP/trunk-00000014", "Application": "Queue", "ApplicationData": "q_cards,t,,,1800"},
        {"Event": "CoreShowChannel", "Context": "ivr-queue", "Exten": "general", "Uniqueid": "1700.21",
         "Channel": "PJSIP/trunk-00000015", "Application": "Queue"},
        {"Event": "CoreShowChannel", "Context": "ivr-queue", "Exten": "general", "Uniqueid": "1700.22"},
        {"Event": "CoreShowChannel", "Context": "sim-caller", "Exten": "s", "Uniqueid": "caller-1700.20"},
        {"Event": "CoreShowChannel", "Context": "ivr-queue", "Exten": "loans", "Uniqueid": "1700.23"},  # no record
    ]
    await controller._readopt(channels)  # type: ignore[arg-type]
    await asyncio.gather(*controller._background)
    assert set(controller.calls) == {"1700.20", "1700.21"}
    record = json.loads(await redis_db.get("ivr:call:1700.20"))
    assert (record["queue"], record["outcome"]) == ("cards", "queued")
    assert "the controller stopped mid-call: the dialplan queued the caller in cards (the queue the IVR learned)" \
        in record["notes"]
    # Its hang-up is recorded now, as for any call of this controller.
    controller.on_ami_event({"Event": "Hangup", "Uniqueid": "1700.20"})  # type: ignore[arg-type]
    await asyncio.gather(*controller._background)
    assert json.loads(await redis_db.get("ivr:call:1700.20"))["ended_at"] is not None
