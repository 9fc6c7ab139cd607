"""Callbacks: offered while holding, accepted (key 1 while holding, or in the flow), kept in Redis through a
restart, and placed agent first through [ivr-callback] (ivr/routing/acd/callbacks.py and the callback paths)."""

from __future__ import annotations

from ivr.records.call import CallRecord, Outcome
from ivr.routing.acd import Acd
from tests.unit.routing.acd.helpers import FakeAmi, hold, ready, settle


async def callback_answered(acd: Acd, call_id: str, agent_id: str) -> None:
    """The dialplan's [ivr-callback] reports: the agent took the leg, then the customer answered."""
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrCallbackAgent", "Id": call_id,  # type: ignore[arg-type]
                      "Agent": agent_id})
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrCallbackEnd", "Id": call_id,  # type: ignore[arg-type]
                      "Status": "ANSWER"})
    await settle(acd)


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
    await callback_answered(acd, "c1", "F2001")
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


async def test_callback_accepted_in_the_flow_waits_then_calls_the_agent_first(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    # The caller pressed 1 at a callback_offer node and hung up: no channel holds, the ACD keeps the place.
    call = CallRecord(call_id="1700.7", caller="01012345678")
    assert await acd.request_callback(call, "loans")
    assert call.outcome is Outcome.CALLBACK and "1700.7" in acd.router.waiting
    assert await redis_db.hexists("ivr:callbacks:pending", "1700.7")
    assert acd.snapshot()["waiting"]["1700.7"]["callback"] is True
    assert acd.ami.originates() == []  # type: ignore[attr-defined]  # nobody free yet
    acd.on_ami_event({"Event": "Hangup", "Uniqueid": "1700.7"})  # type: ignore[arg-type]  # the caller's IVR leg ends
    await ready(acd, "A1004")
    [(device, kwargs)] = acd.ami.originates()  # type: ignore[attr-defined]
    assert device == "PJSIP/1004" and kwargs["context"] == "ivr-callback"
    assert kwargs["channel_id"] == "cb-1700.7-0"
    assert kwargs["variables"]["IVR_CALLBACK_DIAL"] == "PJSIP/01012345678@trunk"
    assert kwargs["variables"]["IVR_CALLBACK_ID"] == "1700.7"
    await callback_answered(acd, "1700.7", "A1004")
    assert (call.outcome, call.agent) == (Outcome.ANSWERED, "A1004")
    assert not await redis_db.hexists("ivr:callbacks:pending", "1700.7")


async def test_callback_accepted_in_the_flow_survives_a_controller_restart(acd: Acd) -> None:
    assert await acd.request_callback(CallRecord(call_id="1700.8", caller="01022223333"), "loans", priority=3)
    restarted = Acd(acd.settings, FakeAmi(), acd.directory, acd.hold, acd.save)  # type: ignore[arg-type]
    await restarted.reload()
    waiter = restarted.waiters["1700.8"]
    assert (waiter.callback_number, waiter.waiting.queue, waiter.waiting.priority) == ("01022223333", "loans", 3)
    assert "1700.8" in restarted.router.waiting


async def test_callback_accepted_in_the_flow_without_a_number_is_not_kept(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    call = CallRecord(call_id="1700.9", caller="")
    assert not await acd.request_callback(call, "loans")
    assert "1700.9" not in acd.waiters and not await redis_db.hexists("ivr:callbacks:pending", "1700.9")
    assert any("nobody to call back" in note for note in call.notes)
