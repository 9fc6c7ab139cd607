"""Calls Asterisk's own queues offer (the dialplan's fallback) and a restarted controller taking over live calls
(ivr/routing/acd/fallback.py, asterisk.py): the agent's pop shows what the IVR learned, the seats follow the
rings, and callers holding or being offered keep their place. AMI events here are shaped as Asterisk 22 sends
them (the CoreShowChannel fields were recorded from the live stack's Asterisk 22.10)."""

from __future__ import annotations

import json
from typing import Any

from ivr.records.call import CallRecord, Turn
from ivr.records.customer import Customer
from ivr.routing.acd import Acd
from ivr.routing.acd.fallback import Found, channel_variables, fallback_pop, fallback_record
from ivr.routing.customers import CustomerStore
from ivr.voice.navigator import Learned
from ivr.voice.navigator.learned import redis_key
from tests.unit.routing.acd.helpers import ready, settle

CALL = "1733.52"
CALLER_CHANNEL = "PJSIP/trunk-00000031"


def core_show_channel(uid: str, channel: str, context: str, exten: str, application: str, data: str,
                      bridge: str = "") -> dict[str, str]:
    """One CoreShowChannel event as Asterisk 22.10 lists it (fields as recorded from the live stack)."""
    event = {"Event": "CoreShowChannel", "ActionID": "action/1", "Channel": channel, "ChannelState": "6",
             "ChannelStateDesc": "Up", "CallerIDNum": "01022223333", "CallerIDName": "", "ConnectedLineNum": "",
             "ConnectedLineName": "", "Language": "en", "AccountCode": "", "Context": context, "Exten": exten,
             "Priority": "2", "Uniqueid": uid, "Linkedid": uid, "Application": application,
             "ApplicationData": data, "Duration": "00:00:41", "content": ""}
    if bridge:
        event["BridgeId"] = bridge
    return event


def agent_called(uid: str, interface: str, queue: str = "q_cards") -> dict[str, str]:
    return {"Event": "AgentCalled", "Privilege": "agent,all", "Channel": CALLER_CHANNEL, "ChannelState": "6",
            "CallerIDNum": "01022223333", "Context": "ivr-queue", "Exten": "cards", "Uniqueid": uid,
            "Linkedid": uid, "DestChannel": f"{interface}-0000003a", "DestUniqueid": "1733.58", "Queue": queue,
            "Interface": interface, "MemberName": "Agent", "AgentCalled": interface}


async def stored(redis_db: Any, call: CallRecord, learned: Learned | None) -> None:
    await redis_db.set(f"ivr:call:{call.call_id}", json.dumps(call.to_dict(), ensure_ascii=False))
    if learned is not None:
        await redis_db.hset(redis_key(call.call_id), mapping=learned.variables())


async def pop_of(redis_db: Any, call_id: str) -> dict[str, Any]:
    raw = await redis_db.get(f"ivr:pop:{call_id}")
    assert raw, f"no pop for {call_id}"
    return dict(json.loads(raw))


# --- the pop of a call Asterisk's queue rings an agent with ---------------------------------------------

async def test_the_pop_of_a_fallback_call_shows_what_the_ivr_learned(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    customer = Customer(id="C1001", name="김민준", phones=["01022223333"], tier="vip", dialect="gyeongsang",
                        accounts=["110-***-**6789"])
    await CustomerStore(redis_db).put(customer)
    call = CallRecord(call_id=CALL, caller="01022223333", customer="C1001", customer_name="김민준", tier="vip",
                      intent="lost_card", dialect="gyeongsang",
                      turns=[Turn(node="main_menu", transcript="카드 분실 신고", confidence=0.91, intent="lost_card")])
    await stored(redis_db, call, Learned(customer="C1001", tier="vip", intent="lost_card", queue="cards",
                                         priority=10, language="ko", summary="카드 분실 신고: lost_card"))
    acd.on_ami_event(agent_called(CALL, "PJSIP/1004"))  # type: ignore[arg-type]
    await settle(acd)
    assert (acd.seats["A1004"].activity, acd.seats["A1004"].call_id) == ("ringing", CALL)
    stored_pop = json.loads(await redis_db.get(f"ivr:pop:{CALL}"))
    assert stored_pop["agent"] == "A1004"
    pop = stored_pop["pop"]
    assert pop["via"] == "asterisk_queue" and pop["ivr"]["learned_from"] == "redis"
    assert (pop["ivr"]["intent"], pop["ivr"]["queue"], pop["ivr"]["priority"]) == ("lost_card", "cards", 10)
    assert pop["ivr"]["turns"][0]["transcript"] == "카드 분실 신고"
    assert pop["ivr"]["summary"] == "카드 분실 신고: lost_card"
    assert pop["customer"]["name"] == "김민준" and pop["customer"]["vip"] is True


async def test_without_redis_the_pop_comes_from_the_channels_variables(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    # As Asterisk 22 answers Status with Variables (recorded): several Variable headers, a list to panoramisk.
    acd.ami.replies = {"Status": [  # type: ignore[attr-defined]
        {"Response": "Success", "EventList": "start"},
        {"Event": "Status", "Channel": CALLER_CHANNEL, "Uniqueid": CALL,
         "Variable": ["IVR_CUSTOMER=", "IVR_TIER=", "IVR_INTENT=loan", "IVR_LEARNED_QUEUE=loans",
                      "IVR_LEARNED_PRIORITY=5", "IVR_LANGUAGE=ko", "IVR_DIALECT=gyeongsang",
                      "IVR_SUMMARY=대출 좀 알아볼라꼬요: loan"]},
        {"Event": "StatusComplete", "Items": "1"}]}
    acd.on_ami_event(agent_called(CALL, "PJSIP/1002", "q_loans"))  # type: ignore[arg-type]
    await settle(acd)
    pop = (await pop_of(redis_db, CALL))["pop"]
    assert pop["ivr"]["learned_from"] == "channel"
    assert (pop["ivr"]["intent"], pop["ivr"]["queue"], pop["ivr"]["priority"]) == ("loan", "loans", 5)
    assert (pop["dialect"], pop["ivr"]["summary"]) == ("gyeongsang", "대출 좀 알아볼라꼬요: loan")


async def test_a_caller_the_ivr_learned_nothing_of_still_gets_a_card(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    acd.on_ami_event(agent_called(CALL, "PJSIP/1004", "q_general"))  # type: ignore[arg-type]
    await settle(acd)
    pop = (await pop_of(redis_db, CALL))["pop"]
    assert (pop["caller"], pop["ivr"]["queue"], pop["ivr"]["intent"], pop["known"]) == (
        "01022223333", "general", None, False)


async def test_the_seat_follows_the_queues_ring(acd: Acd) -> None:
    await ready(acd, "A1004")
    acd.on_ami_event(agent_called(CALL, "PJSIP/1004"))  # type: ignore[arg-type]
    assert not acd.router.free("A1004")  # ringing from Asterisk's queue: the ACD does not offer them another call
    acd.on_ami_event({"Event": "AgentRingNoAnswer", "Uniqueid": CALL, "Interface": "PJSIP/1004"})  # type: ignore[arg-type]
    assert acd.seats["A1004"].activity == "" and acd.router.free("A1004")
    acd.on_ami_event(agent_called(CALL, "PJSIP/1004"))  # type: ignore[arg-type]
    acd.on_ami_event({"Event": "AgentConnect", "Uniqueid": CALL, "Interface": "PJSIP/1004"})  # type: ignore[arg-type]
    assert (acd.seats["A1004"].activity, acd.seats["A1004"].call_id) == ("on_call", CALL)
    acd.on_ami_event(agent_called("1733.60", "PJSIP/1002"))  # type: ignore[arg-type]
    acd.on_ami_event({"Event": "Hangup", "Uniqueid": "1733.60"})  # type: ignore[arg-type]
    assert acd.seats["A1002"].activity == ""  # the caller left while it rang
    await settle(acd)


def test_the_record_and_pop_made_of_facts_alone() -> None:
    found = Found(learned=Learned(customer="C1002", tier="gold", intent="transfer", queue="payments", priority=3,
                                  language="ko"), source="channel")
    call = fallback_record(CALL, "01099998888", "q_payments", found)
    assert (call.customer, call.tier, call.intent, call.queue, call.outcome) == (
        "C1002", "gold", "transfer", "payments", "queued")
    pop = fallback_pop(call, found, "A1004", now=1000.0)
    assert pop["customer"]["id"] == "C1002" and pop["customer"]["tier"] == "gold"  # no record: id and tier at least
    assert channel_variables({"Event": "Status", "Variable": "IVR_INTENT=loan"}) == {"IVR_INTENT": "loan"}


# --- a restarted controller takes over live calls ---------------------------------------------------------

async def test_callers_holding_or_offered_are_taken_over_in_their_place(acd: Acd, redis_db) -> None:  # type: ignore[no-untyped-def]
    holding = CallRecord(call_id="1733.40", caller="01022223333", queue="cards", queued_at=1000.0)
    ringing = CallRecord(call_id="1733.41", caller="01044445555", queue="loans", queued_at=1100.0)
    talking = CallRecord(call_id="1733.42", caller="01066667777", queue="loans", queued_at=1200.0)
    await stored(redis_db, holding, Learned(intent="lost_card", queue="cards", priority=10))
    await stored(redis_db, ringing, Learned(intent="loan", queue="loans", priority=0))
    await stored(redis_db, talking, None)
    acd.ami.replies = {  # type: ignore[attr-defined]
        "DeviceStateList": [{"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "RINGING"},
                            {"Event": "DeviceStateChange", "Device": "PJSIP/2001", "State": "INUSE"}],
        "CoreShowChannels": [
            {"Response": "Success", "EventList": "start", "Message": "Channels will follow"},
            core_show_channel("1733.40", "Local/s@sim-inbound-00000003;2", "ivr-hold", "cards", "BackGround",
                              "/srv/ivr/run/hold/music10s"),
            core_show_channel("1733.41", "PJSIP/trunk-00000032", "ivr-offer", "s", "Dial", "PJSIP/1002,6"),
            core_show_channel("1733.42", "PJSIP/trunk-00000033", "ivr-offer", "s", "Dial", "PJSIP/2001,6",
                              bridge="477d2056-91a4-458d-8942-496c1d32f1e3"),
            core_show_channel("1733.43", "PJSIP/trunk-00000034", "ivr-queue", "general", "Queue",
                              "q_general,t,,,1800"),
            core_show_channel("1733.44", "PJSIP/1002-0000003b", "agents", "1588", "AppDial", "(Outgoing Line)"),
            {"Event": "CoreShowChannelsComplete", "EventList": "Complete", "ListItems": "5"}]}
    channels = await acd.on_ami_connected()
    await settle(acd)
    assert [c["Uniqueid"] for c in channels] == ["1733.40", "1733.41", "1733.42", "1733.43", "1733.44"]
    # Holding: back in line with the time they joined it and the priority the IVR learned.
    held = acd.waiters["1733.40"]
    assert (held.waiting.queue, held.waiting.priority, held.waiting.enqueued_at) == ("cards", 10, 1000.0)
    assert held.in_router and "1733.40" in acd.router.waiting
    # Ringing an agent (an offer the previous controller made): followed, not offered again.
    assert not acd.waiters["1733.41"].in_router and "1733.41" not in acd.router.waiting
    assert (acd.seats["A1002"].activity, acd.seats["A1002"].call_id) == ("ringing", "1733.41")
    # Talking to an agent: the seat is on that call.
    assert (acd.seats["F2001"].activity, acd.seats["F2001"].call_id) == ("on_call", "1733.42")
    assert acd.waiters["1733.42"].call.agent == "F2001"
    # In Asterisk's own queue: Asterisk's to offer, not the ACD's.
    assert "1733.43" not in acd.waiters
    assert acd.snapshot()["waiting"]["1733.40"]["priority"] == 10


async def test_an_adopted_ring_that_goes_unanswered_frees_the_agent_and_the_caller_rejoins_in_place(  # type: ignore[no-untyped-def]
        acd: Acd, redis_db) -> None:
    await stored(redis_db, CallRecord(call_id="1733.41", caller="01044445555", queue="loans", queued_at=1100.0),
                 Learned(queue="loans"))
    acd.ami.replies = {"CoreShowChannels": [  # type: ignore[attr-defined]
        core_show_channel("1733.41", "PJSIP/trunk-00000032", "ivr-offer", "s", "Dial", "PJSIP/1002,6")]}
    await acd.on_ami_connected()
    await settle(acd)
    acd.on_ami_event({"Event": "DialEnd", "Uniqueid": "1733.41", "DestChannel": "PJSIP/1002-0000003a",  # type: ignore[arg-type]
                      "DialStatus": "NOANSWER"})
    assert acd.seats["A1002"].activity == ""
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrHold", "Uniqueid": "1733.41",  # type: ignore[arg-type]
                      "Channel": "PJSIP/trunk-00000032", "Queue": "loans"})
    await settle(acd)
    waiter = acd.waiters["1733.41"]
    assert waiter.in_router and waiter.waiting.enqueued_at == 1100.0


def test_a_stored_record_is_completed_with_the_facts_learned_after_it() -> None:
    saved = CallRecord(call_id=CALL, caller="01044445555", turns=[Turn(node="main_menu", dtmf="3", intent="loan")])
    found = Found(stored=saved.to_dict(), learned=Learned(intent="loan", queue="loans", priority=5), source="redis")
    call = fallback_record(CALL, "01044445555", "q_loans", found)
    assert (call.intent, call.queue) == ("loan", "loans")
    assert fallback_pop(call, found, "A1002", now=1.0)["ivr"]["summary"] == "key 3: loan"
