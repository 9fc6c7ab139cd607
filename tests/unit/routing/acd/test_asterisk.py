"""The ACD's Asterisk side: offers placed by redirect, ring-no-answer and declines from AMI events, the
heartbeat, and callers adopted after a restart (ivr/routing/acd/asterisk.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ivr.records.call import CallRecord, Outcome
from ivr.routing.acd import Acd
from ivr.routing.acd.asterisk import OFFER_RETRY_S
from ivr.routing.agents import AgentDirectory, Presence
from ivr.telephony.ami import AmiNotConnected
from tests.unit.routing.acd.helpers import FakeAmi, hold, ready, settle


async def test_vip_caller_reaches_the_case_owners_mobile(acd: Acd) -> None:
    await ready(acd, "A1002", "F2001")
    call = await hold(acd, tier="vip", owner="F2001")
    assert acd.ami.offers() == [("Local/1700.1", "PJSIP/2001")]  # type: ignore[attr-defined]
    assert call.routing[0]["rule"] == "case owner" and call.routing[0]["agent"] == "F2001"


async def test_owner_not_ready_goes_to_the_desk_agent_with_the_dialect(acd: Acd) -> None:
    await ready(acd, "A1002", "A1004")
    call = await hold(acd, dialect="gyeongsang", owner="F2001")
    assert acd.ami.offers() == [("Local/1700.1", "PJSIP/1002")]  # type: ignore[attr-defined]
    assert any("case owner F2001 skipped: offline" in why for why in call.routing[0]["why"]), call.routing


async def test_ring_no_answer_sets_the_agent_not_ready_and_offers_the_next(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    await ready(acd, "A1002", "A1004")
    call = await hold(acd, dialect="gyeongsang")
    acd.on_ami_event({"Event": "DialBegin", "Uniqueid": call.call_id,  # type: ignore[arg-type]
                      "DestChannel": "PJSIP/1002-00000001"})
    acd.on_ami_event({"Event": "DialEnd", "Uniqueid": call.call_id, "DestChannel": "PJSIP/1002-00000001",  # type: ignore[arg-type]
                      "DialStatus": "NOANSWER"})
    await settle(acd)
    assert [device for _, device in acd.ami.offers()] == ["PJSIP/1002", "PJSIP/1004"]  # type: ignore[attr-defined]
    assert (acd.seats["A1002"].status, acd.seats["A1002"].reason) == (Presence.NOT_READY, "rona")
    assert (await AgentDirectory(redis_db).presence("A1002"))["reason"] == "rona"
    assert [r["result"] for r in call.routing] == ["not answered: NOANSWER", "offered"]


async def test_decline_from_the_web_moves_the_call_on_and_the_agent_stays_ready(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    await ready(acd, "A1002", "A1004")
    call = await hold(acd, dialect="gyeongsang")
    acd.on_ami_event({"Event": "DialBegin", "Uniqueid": call.call_id,  # type: ignore[arg-type]
                      "DestChannel": "PJSIP/1002-00000001"})
    # Pub/sub channels are server-wide (not per database): a running controller may listen too.
    [(_, others)] = await redis_db.pubsub_numsub("ivr:acd:commands")
    feed = asyncio.create_task(acd._presence_feed())
    try:
        for _ in range(100):  # until the feed has subscribed
            if (await redis_db.pubsub_numsub("ivr:acd:commands"))[0][1] > others:
                break
            await asyncio.sleep(0.02)
        # As the web backend publishes them: someone else's decline is ignored, the offered agent's is not.
        for agent in ("A1004", "A1002"):
            await redis_db.publish("ivr:acd:commands", json.dumps(
                {"type": "decline", "call_id": call.call_id, "agent": agent}))
        for _ in range(100):
            await settle(acd)
            if any(a[0] == "hangup" for a in acd.ami.actions):  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.02)
    finally:
        feed.cancel()
    assert [a for a in acd.ami.actions if a[0] == "hangup"] == [("hangup", "PJSIP/1002-00000001", 21)]  # type: ignore[attr-defined]
    # The agent's leg ends (Dial reports it, then the dialplan): not a ring-no-answer.
    acd.on_ami_event({"Event": "DialEnd", "Uniqueid": call.call_id, "DestChannel": "PJSIP/1002-00000001",  # type: ignore[arg-type]
                      "DialStatus": "BUSY"})
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrOfferEnd", "Uniqueid": call.call_id,  # type: ignore[arg-type]
                      "Agent": "A1002", "Status": "BUSY"})
    await settle(acd)
    assert [device for _, device in acd.ami.offers()] == ["PJSIP/1002", "PJSIP/1004"]  # type: ignore[attr-defined]
    assert (acd.seats["A1002"].status, acd.seats["A1002"].activity) == (Presence.READY, "")
    assert acd.stats.ronas == 0 and acd.router.free("A1002")
    assert [r["result"] for r in call.routing] == ["declined", "offered"]
    assert (await AgentDirectory(redis_db).presence("A1002"))["reason"] != "rona"


async def test_answer_then_hangup_wraps_up_then_the_agent_is_free(acd: Acd) -> None:
    await ready(acd, "A1004")
    call = await hold(acd, "c1")
    acd.on_ami_event({"Event": "DialEnd", "Uniqueid": "c1", "DestChannel": "PJSIP/1004-00000002",  # type: ignore[arg-type]
                      "DialStatus": "ANSWER"})
    assert (call.outcome, call.agent) == (Outcome.ANSWERED, "A1004")
    await hold(acd, "c2")
    assert len(acd.ami.offers()) == 1  # type: ignore[attr-defined]  # busy: c2 waits
    acd.on_ami_event({"Event": "Hangup", "Uniqueid": "c1"})  # type: ignore[arg-type]
    assert acd.seats["A1004"].activity == "wrap_up"
    await acd.tick(acd.seats["A1004"].wrap_until + 0.1)
    await settle(acd)
    assert [channel for channel, _ in acd.ami.offers()] == ["Local/c1", "Local/c2"]  # type: ignore[attr-defined]


async def test_heartbeat_tells_the_dialplan_the_acd_is_alive(acd: Acd) -> None:
    await acd.tick(1_800_000_000.0)
    assert ("setvar", None, "IVR_ACD_BEAT", "1800000000") in acd.ami.actions  # type: ignore[attr-defined]


async def test_restarted_controller_adopts_holding_callers_and_reads_device_states(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    held = CallRecord(call_id="1700.9", caller="01022223333", queue="cards", queued_at=1000.0)
    await redis_db.set("ivr:call:1700.9", __import__("json").dumps(held.to_dict()))
    await acd.apply_presence({"agent": "A1004", "status": "ready"})
    acd.ami.replies = {  # type: ignore[attr-defined]
        "DeviceStateList": [{"Event": "DeviceStateChange", "Device": "PJSIP/1004", "State": "NOT_INUSE"}],
        "CoreShowChannels": [
            {"Event": "CoreShowChannel", "Context": "ivr-hold", "Uniqueid": "1700.9", "Channel": "Local/held"},
            {"Event": "CoreShowChannel", "Context": "agents", "Uniqueid": "1700.10", "Channel": "PJSIP/1001-1"},
        ]}
    await acd.on_ami_connected()
    await settle(acd)
    assert acd.seats["A1004"].device_state == "NOT_INUSE"
    assert set(acd.waiters) == {"1700.9"}
    waiting = acd.waiters["1700.9"]
    assert (waiting.waiting.queue, waiting.waiting.enqueued_at, waiting.channel) == ("cards", 1000.0, "Local/held")
    # Held since 1000 (long ago): past the overflow wait, so A1004 takes it without the cards skill.
    assert acd.router.offers["1700.9"].rule == "overflow"
    assert acd.ami.offers() == [("Local/held", "PJSIP/1004")]  # type: ignore[attr-defined]


async def test_an_offer_asterisk_refuses_is_retried_after_a_pause_not_at_once(acd: Acd) -> None:
    """AMI down while an agent is free: the callback goes back in line after a pause (no tight retry loop)."""
    class Refusing(FakeAmi):
        async def originate(self, channel: str, **kwargs: Any) -> None:
            self.actions.append(("originate", channel, kwargs))
            raise AmiNotConnected("AMI not logged in (connecting)")

    acd.ami = Refusing()
    await ready(acd, "A1004")
    assert await acd.request_callback(CallRecord(call_id="1700.3", caller="01012345678"), "loans")
    await asyncio.sleep(0.3)
    await settle(acd)
    assert len(acd.ami.originates()) == 1  # type: ignore[attr-defined]
    assert "1700.3" not in acd.router.offers and acd.router.free("A1004")
    acd.ami = FakeAmi()  # Asterisk is back
    await asyncio.sleep(OFFER_RETRY_S)
    await settle(acd)
    assert [device for device, _ in acd.ami.originates()] == ["PJSIP/1004"]  # type: ignore[attr-defined]
