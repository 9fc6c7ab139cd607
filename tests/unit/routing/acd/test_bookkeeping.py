"""The ACD's bookkeeping: the line and its positions, callers leaving it, presence and device state reaching
the router (ivr/routing/acd/bookkeeping.py, ivr/routing/acd/seat.py)."""

from __future__ import annotations

from ivr.records.call import Outcome
from ivr.routing.acd import Acd
from ivr.routing.agents import AgentDirectory, Presence
from tests.unit.routing.acd.helpers import hold, ready


async def test_nobody_ready_the_call_waits_with_its_position(acd: Acd) -> None:
    await hold(acd, "c1")
    await hold(acd, "c2")
    assert acd.ami.offers() == []  # type: ignore[attr-defined]
    assert (acd.router.position("c1"), acd.router.position("c2")) == (1, 2)
    await acd.tick(acd.router.waiting["c2"].enqueued_at + 1)
    announced = [a for a in acd.ami.actions if a[0] == "setvar" and a[2] == "IVR_ANNOUNCE"]  # type: ignore[attr-defined]
    assert {a[1] for a in announced} == {"Local/c1", "Local/c2"}
    assert all(a[3].startswith("/srv/ivr/run/prompts/") for a in announced)


async def test_caller_hanging_up_while_waiting_leaves_the_line(acd: Acd) -> None:
    call = await hold(acd, "c1")
    acd.on_ami_event({"Event": "Hangup", "Uniqueid": "c1"})  # type: ignore[arg-type]
    assert call.outcome is Outcome.ABANDONED and "c1" not in acd.router.waiting
    await ready(acd, "A1004")
    assert acd.ami.offers() == []  # type: ignore[attr-defined]


async def test_unregistered_phone_gets_no_calls_even_when_ready(acd: Acd) -> None:
    await acd.apply_presence({"agent": "A1004", "status": "ready"})
    acd.on_ami_event({"Event": "DeviceStateChange", "Device": "PJSIP/1004", "State": "UNAVAILABLE"})  # type: ignore[arg-type]
    await hold(acd, "c1")
    assert acd.ami.offers() == []  # type: ignore[attr-defined]
    assert acd.seats["A1004"].shown == "ready (phone not registered)"


async def test_presence_published_elsewhere_reaches_the_router(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    acd.on_ami_event({"Event": "DeviceStateChange", "Device": "PJSIP/1004", "State": "NOT_INUSE"})  # type: ignore[arg-type]
    await AgentDirectory(redis_db).set_presence("A1004", Presence.READY)
    await acd.apply_presence({"agent": "A1004", "status": "ready", "by": "agent"})
    assert acd.router.free("A1004")
    await acd.apply_presence({"agent": "A1004", "status": "not_ready", "reason": "lunch"})
    assert not acd.router.free("A1004") and acd.seats["A1004"].shown == "not_ready: lunch"
