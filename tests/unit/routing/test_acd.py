"""The ACD between the router, Asterisk (a fake AMI at the boundary) and Redis (the real one, db 15)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings
from ivr.records.call import CallRecord, Outcome
from ivr.routing.acd import Acd
from ivr.routing.agents import Agent, AgentDirectory, Presence
from ivr.voice.flow import Hold


class FakeAmi:
    """Records what the ACD asks of Asterisk."""

    ready = True

    def __init__(self) -> None:
        self.actions: list[tuple[Any, ...]] = []

    async def setvar(self, channel: str | None, name: str, value: str) -> None:
        self.actions.append(("setvar", channel, name, value))

    async def redirect(self, channel: str, context: str, exten: str = "s", priority: int = 1) -> None:
        self.actions.append(("redirect", channel, context))

    async def originate(self, channel: str, **kwargs: Any) -> None:
        self.actions.append(("originate", channel, kwargs))

    async def hangup(self, channel: str, cause: int = 16) -> None:
        self.actions.append(("hangup", channel, cause))

    async def action(self, action: dict[str, Any], timeout: float = 10.0) -> list[Any]:
        return self.replies.get(action["Action"], [])

    replies: dict[str, list[dict[str, str]]] = {}  # noqa: RUF012  (per-test: set on the instance)

    def offers(self) -> list[tuple[str, str]]:
        """(caller channel, agent device) for every redirect to the offer context."""
        device, offers = {}, []
        for action in self.actions:
            if action[0] == "setvar" and action[2] == "IVR_OFFER_DEVICE":
                device[action[1]] = action[3]
            elif action[0] == "redirect" and action[2] == "ivr-offer":
                offers.append((action[1], device.get(action[1], "")))
        return offers


AGENTS = [
    Agent(id="A1002", name="desk, dialect", device="PJSIP/1002", skills={"loans": 6}, dialects=["gyeongsang"]),
    Agent(id="A1004", name="desk", device="PJSIP/1004", skills={"loans": 6}),
    Agent(id="F2001", name="field", role="field", device="PJSIP/2001", skills={"loans": 9}, vip=True),
]


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


async def settle(acd: Acd) -> None:
    for _ in range(20):
        if not acd._tasks:
            return
        await asyncio.gather(*list(acd._tasks), return_exceptions=True)


async def ready(acd: Acd, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        acd.on_ami_event({"Event": "DeviceStateChange", "Device": acd.seats[agent_id].agent.device,  # type: ignore[arg-type]
                          "State": "NOT_INUSE"})
        await acd.apply_presence({"agent": agent_id, "status": "ready"})
    await settle(acd)


async def hold(acd: Acd, call_id: str = "1700.1", *, tier: str = "standard", dialect: str | None = None,
               owner: str | None = None, patience: int = 60) -> CallRecord:
    call = CallRecord(call_id=call_id, caller="01012345678", tier=tier, dialect=dialect)
    acd.expect(call, "loans", "loans", 0, owner, (patience, "customer"))
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrHold", "Uniqueid": call_id,  # type: ignore[arg-type]
                      "Channel": f"Local/{call_id}", "Queue": "loans"})
    await settle(acd)
    return call


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


async def test_nobody_ready_the_call_waits_with_its_position(acd: Acd) -> None:
    await hold(acd, "c1")
    await hold(acd, "c2")
    assert acd.ami.offers() == []  # type: ignore[attr-defined]
    assert (acd.router.position("c1"), acd.router.position("c2")) == (1, 2)
    await acd.tick(acd.router.waiting["c2"].enqueued_at + 1)
    announced = [a for a in acd.ami.actions if a[0] == "setvar" and a[2] == "IVR_ANNOUNCE"]  # type: ignore[attr-defined]
    assert {a[1] for a in announced} == {"Local/c1", "Local/c2"}
    assert all(a[3].startswith("/srv/ivr/run/prompts/") for a in announced)


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


async def test_caller_hanging_up_while_waiting_leaves_the_line(acd: Acd) -> None:
    call = await hold(acd, "c1")
    acd.on_ami_event({"Event": "Hangup", "Uniqueid": "c1"})  # type: ignore[arg-type]
    assert call.outcome is Outcome.ABANDONED and "c1" not in acd.router.waiting
    await ready(acd, "A1004")
    assert acd.ami.offers() == []  # type: ignore[attr-defined]


async def test_callback_is_offered_before_patience_runs_out(acd: Acd) -> None:
    call = await hold(acd, "c1", patience=30)
    await acd.tick(call.queued_at + 19)  # type: ignore[operator]
    first = [a for a in acd.ami.actions if a[0] == "setvar" and a[2] == "IVR_ANNOUNCE"]  # type: ignore[attr-defined]
    await acd.tick(call.queued_at + 21)  # type: ignore[operator]
    after = [a for a in acd.ami.actions if a[0] == "setvar" and a[2] == "IVR_ANNOUNCE"]  # type: ignore[attr-defined]
    assert len(after) == len(first) + 1
    assert any("callback offered after 21 s (patience 30 s)" in note for note in call.notes)


async def test_callback_keeps_the_place_then_calls_the_agent_first(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    call = await hold(acd, "c1")
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrCallback", "Uniqueid": "c1"})  # type: ignore[arg-type]
    acd.on_ami_event({"Event": "Hangup", "Uniqueid": "c1"})  # type: ignore[arg-type]
    await settle(acd)
    assert call.outcome is Outcome.CALLBACK and "c1" in acd.router.waiting
    assert await redis_db.hexists("ivr:callbacks:pending", "c1")
    await ready(acd, "F2001")
    originate = [a for a in acd.ami.actions if a[0] == "originate"]  # type: ignore[attr-defined]
    assert len(originate) == 1
    channel, kwargs = originate[0][1], originate[0][2]
    assert channel == "PJSIP/2001" and kwargs["context"] == "ivr-callback"
    assert kwargs["variables"]["IVR_CALLBACK_DIAL"] == "PJSIP/01012345678@trunk"
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrCallbackAgent", "Id": "c1", "Agent": "F2001"})  # type: ignore[arg-type]
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrCallbackEnd", "Id": "c1", "Status": "ANSWER"})  # type: ignore[arg-type]
    await settle(acd)
    assert (call.outcome, call.agent) == (Outcome.ANSWERED, "F2001")
    assert not await redis_db.hexists("ivr:callbacks:pending", "c1")


async def test_callback_survives_a_controller_restart(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    await hold(acd, "c1")
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrCallback", "Uniqueid": "c1"})  # type: ignore[arg-type]
    await settle(acd)
    restarted = Acd(acd.settings, FakeAmi(), acd.directory, acd.hold, acd.save)  # type: ignore[arg-type]
    await restarted.reload()
    assert restarted.waiters["c1"].callback_number == "01012345678"
    assert "c1" in restarted.router.waiting


async def test_unregistered_phone_gets_no_calls_even_when_ready(acd: Acd) -> None:
    await acd.apply_presence({"agent": "A1004", "status": "ready"})
    acd.on_ami_event({"Event": "DeviceStateChange", "Device": "PJSIP/1004", "State": "UNAVAILABLE"})  # type: ignore[arg-type]
    await hold(acd, "c1")
    assert acd.ami.offers() == []  # type: ignore[attr-defined]
    assert acd.seats["A1004"].shown == "ready (phone not registered)"


async def test_heartbeat_tells_the_dialplan_the_acd_is_alive(acd: Acd) -> None:
    await acd.tick(1_800_000_000.0)
    assert ("setvar", None, "IVR_ACD_BEAT", "1800000000") in acd.ami.actions  # type: ignore[attr-defined]


async def test_presence_published_elsewhere_reaches_the_router(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    acd.on_ami_event({"Event": "DeviceStateChange", "Device": "PJSIP/1004", "State": "NOT_INUSE"})  # type: ignore[arg-type]
    await AgentDirectory(redis_db).set_presence("A1004", Presence.READY)
    await acd.apply_presence({"agent": "A1004", "status": "ready", "by": "agent"})
    assert acd.router.free("A1004")
    await acd.apply_presence({"agent": "A1004", "status": "not_ready", "reason": "lunch"})
    assert not acd.router.free("A1004") and acd.seats["A1004"].shown == "not_ready: lunch"


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
