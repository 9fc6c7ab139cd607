"""Voice navigation through the real Asterisk: every demo intent, self-service, callbacks, barge-in, hang-ups."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.records.store import CALLBACKS_STREAM, EVENTS_CHANNEL, call_key
from ivr.telephony.ami import AmiClient
from tests.integration import test_routing as routing
from tests.integration.conftest import YES, wait_for

# The agents' fixtures of the routing tests: who is in the directory, and their registered phones.
directory, phones = routing.directory, routing.phones

pytestmark = pytest.mark.integration

KNOWN_CALLER = "01012345678"  # 김민준 in dialplans/demo_customers.json, balance 1,234,500 won


@pytest.mark.parametrize(("keys", "queue", "intent"), [
    (["2"], "cards", "lost_card"), (["3"], "loans", "loan"), (["4"], "payments", "transfer"),
    (["5"], "general", "password"), (["6", "2"], "complaints", "complaint"), (["0"], "general", "agent"),
])
async def test_each_routed_intent_by_key(call, keys, queue, intent):
    record = await call(dtmf=keys)
    assert (record["intent"], record["queue"], record["outcome"]) == (intent, queue, "queued")


# Synthetic speech (espeak-ng, 8 kHz) the recognizer hears right however the call frames it (see
# `recognizable`); bench/phrase_sweep.py sweeps more. "계좌 이체" only in some voices: swept over 13 voices x
# 5 paces, ko+f1 and ko+m5 were heard right with full confidence at every lead-in and offset, most others not.
TRANSFER_VOICE = {"voice": "ko+f1", "rate": 140}


@pytest.mark.parametrize(("said", "voice", "queue", "intent"), [
    ("계좌 이체", TRANSFER_VOICE, "payments", "transfer"),
    ("상담원 연결", {}, "general", "agent"),
    ("상담사 연결", {}, "general", "agent"),
])
async def test_intents_by_voice(call, say, recognizable, said, voice, queue, intent):
    recognizable(say(said, **voice), said)
    # Should the recognizer be unsure in the call, the engine asks "…, right?"; the caller then presses 1 (yes).
    record = await call(audio=[say(said, **voice)], dtmf=[YES])
    assert record["turns"][0]["transcript"] == said, record["turns"]
    assert (record["intent"], record["queue"]) == (intent, queue), (record["turns"], record["notes"])
    kinds = [t.get("kind", "ask") for t in (await _full_by_id(record["call_id"]))["turns"]]
    assert kinds in (["ask"], ["ask", "confirm"])


@pytest.mark.parametrize(("said", "right_queue"), [
    ("대출 상담", "loans"), ("카드 분실 신고", "cards"), ("잔액 조회", "general"),
    ("비밀번호 바꾸고 싶어요", "general"),
])
async def test_misrecognized_speech_never_reaches_a_wrong_queue(call, say, said, right_queue):
    """The small model mishears these synthetic phrases (e.g. 대출 상담 as 항의); whatever it hears,
    the caller ends in the right queue or with a person, never in another intent's queue."""
    record = await call(audio=[say(said)], timeout=60)
    assert record["queue"] in (right_queue, "general")
    assert record["outcome"] == "queued"


async def test_balance_self_service_for_a_known_caller(call, live_stack: Settings):
    record = await call(caller=KNOWN_CALLER, dtmf=["1", "9"], until="end", timeout=60)
    assert record["outcome"] == "self_service"
    assert record["path"] == ["main_menu", "balance", "after_balance", "goodbye"]
    full = json.loads(await _redis(live_stack).get(call_key(record["call_id"])))
    assert full["customer"] == "C1001" and full["self_served"] is True


async def test_balance_for_an_unknown_caller_reaches_a_person(call):
    record = await call(caller="01099990000", dtmf=["1"])
    assert (record["queue"], record["customer"]) == ("general", None)
    assert record["path"] == ["main_menu", "balance", "to_general"]


async def test_callback_offer_accepted_keeps_a_place(call, live_stack: Settings, directory, phones, ami_events):
    # The caller is the simulator's own extension, so the callback can reach a phone that answers (a number
    # through the trunk would fail and stay pending, ringing agents in later tests).
    customer = phones(live_stack.sim_extension, answer="auto", talk_s=2)
    agent = phones("1002", answer="auto", talk_s=3)  # A1002: complaints 6
    await asyncio.sleep(1.5)  # registration -> DeviceStateChange NOT_INUSE
    record = await call(caller=live_stack.sim_extension, dtmf=["6", "1"], until="end", timeout=60)
    assert (record["outcome"], record["queue"]) == ("callback", "complaints")
    client = _redis(live_stack)
    try:
        entries = await client.xrange(CALLBACKS_STREAM, "-", "+")
        assert any(fields["call_id"] == record["call_id"] for _, fields in entries)
        # The ACD keeps the place (through a restart too) until an agent is free: nobody is ready yet.
        assert await client.hexists("ivr:callbacks:pending", record["call_id"])
        assert agent.rings == []
        await routing.ready(directory, live_stack, "A1002")
        # Asterisk places the call-back: the agent's phone first (cb-<call id>-<attempt> into [ivr-callback]) ...
        leg = f"cb-{record['call_id']}-0"
        assert await wait_for(lambda: any(e.get("Event") == "Newchannel" and e.get("Uniqueid") == leg
                                          for e in ami_events), timeout=15)
        assert any(e.get("Event") == "Newchannel" and e.get("Uniqueid") == leg
                   and str(e.get("Channel", "")).startswith("PJSIP/1002-") for e in ami_events)
        agent_ring = await asyncio.to_thread(agent.wait_for_ring, 15)
        # ... then, once the agent answered, the caller's number.
        customer_ring = await asyncio.to_thread(customer.wait_for_ring, 20)
        assert agent_ring is not None and customer_ring is not None
        assert agent_ring.answered_at is not None and agent_ring.answered_at <= customer_ring.at
        assert await wait_for(lambda: any(e.get("Event") == "OriginateResponse" and e.get("Uniqueid") == leg
                                          and e.get("Response") == "Success" for e in ami_events), timeout=10)
        assert await routing.wait_for_async(lambda: routing._outcome(client, record["call_id"]), "answered", timeout=10)
        final = json.loads(await client.get(call_key(record["call_id"])))
        assert (final["outcome"], final["agent"]) == ("answered", "A1002"), final["notes"]
        for _ in range(150):  # reached: the callback is done with
            if not await client.hexists("ivr:callbacks:pending", record["call_id"]):
                break
            await asyncio.sleep(0.1)
        assert not await client.hexists("ivr:callbacks:pending", record["call_id"])
    finally:
        await client.aclose()


async def test_barge_in_cuts_the_prompt_and_counts(call, say, recognizable, live_stack: Settings):
    recognizable(say("계좌 이체", **TRANSFER_VOICE), "계좌 이체")
    # A confirmation, should one come, is answered by key (over its prompt, as this caller barges in).
    record = await call(audio=[say("계좌 이체", **TRANSFER_VOICE)], dtmf=[YES], barge_in=True)
    turn = record["turns"][0]
    assert record["queue"] == "payments", (record["turns"], record["notes"])
    full = await _full(live_stack, record)
    assert full["turns"][0]["barged_in"] is True
    assert turn["intent"] == "transfer"


async def test_every_turn_is_logged_for_trainers(call, say, recognizable, live_stack: Settings):
    recognizable(say("상담원 연결"), "상담원 연결")
    record = await call(audio=[say("상담원 연결")], dtmf=[YES])
    entries = await _redis(live_stack).xrange(f"{call_key(record['call_id'])}:turns", "-", "+")
    turns = [{k: json.loads(v) for k, v in fields.items()} for _, fields in entries]
    # The question's turn, and the confirmation's if the engine asked one: each logged.
    assert [t.get("kind", "ask") for t in turns] in (["ask"], ["ask", "confirm"]), turns
    assert len(turns) == len(record["turns"])
    turn = turns[0]
    assert (turn["node"], turn["transcript"], turn["intent"]) == ("main_menu", "상담원 연결", "agent")
    assert turn["audio"].endswith("-1.wav") and turn["speech_ended_at"] and turn["decided_at"]
    assert turn["decided_at"] >= turn["speech_ended_at"]


@pytest.mark.parametrize("moment", ["mid-prompt", "mid-utterance"])
async def test_caller_hangs_up(live_stack: Settings, say, moment):
    """No error, and the turn is on the record."""
    s = live_stack
    r = _redis(s)
    pubsub = r.pubsub()
    await pubsub.subscribe(EVENTS_CHANNEL)
    ami = AmiClient(s.ami_host, s.ami_port, s.ami_username, s.ami_secret.get_secret_value())
    channels: dict[str, str] = {}
    ami.on("Newchannel", lambda e: channels.setdefault(e.get("Uniqueid"), e.get("Channel")))
    ami.start()
    assert await ami.wait_ready(10)
    call_id = f"sim-hangup-{moment}-{asyncio.get_running_loop().time():.0f}"
    try:
        from ivr.config import asterisk_path
        from ivr.sim.simulator import to_telephone_wav

        wav = s.run_dir / "sim" / f"{call_id}.wav"
        to_telephone_wav(say("계좌 이체 계좌 이체 계좌 이체"), wav)
        await ami.originate("Local/s@sim-inbound/n", context="sim-caller", variables={"SIM_CALLER": "0101"},
                            channel_id="caller-" + call_id, other_channel_id=call_id)
        async with asyncio.timeout(20):
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message and json.loads(message["data"]).get("call_id") == call_id \
                        and json.loads(message["data"])["type"] == "call.listening":
                    break
        if moment == "mid-utterance":
            await ami.setvar(channels["caller-" + call_id], "SIM_PLAY", asterisk_path(wav.with_suffix("")))
            await asyncio.sleep(1.5)
        else:
            await asyncio.sleep(0.5)
        await ami.hangup(channels["caller-" + call_id])
        async def ended() -> dict | None:
            raw = await r.get(call_key(call_id))
            data = json.loads(raw) if raw else None
            return data if data and data.get("ended_at") else None
        record = None
        for _ in range(50):
            record = await ended()
            if record:
                break
            await asyncio.sleep(0.2)
        assert record is not None
        assert record["outcome"] == "abandoned"
        assert len(record["turns"]) == 1
        if moment == "mid-utterance":
            # What the caller said before hanging up is kept: audio, and whatever was recognized.
            assert record["turns"][0]["audio"]
            wav = s.recordings_dir / record["turns"][0]["audio"]
            assert wav.stat().st_size > 8000
        log = (s.logs_dir / "controller.log").read_text()
        assert not any(call_id in line and ("Traceback" in line or "ERROR" in line) for line in log.splitlines())
    finally:
        ami.close()
        await pubsub.aclose()
        await r.aclose()


def _redis(settings: Settings) -> aioredis.Redis:
    return aioredis.from_url(settings.redis_url, decode_responses=True)


async def _full_by_id(call_id: str) -> dict:
    from ivr.config import load_settings

    return await _full(load_settings(), {"call_id": call_id})


async def _full(settings: Settings, record: dict) -> dict:
    r = _redis(settings)
    try:
        return json.loads(await r.get(call_key(record["call_id"])))
    finally:
        await r.aclose()
