"""The spine against the real Asterisk 22 and Redis: calls in, audio to Vosk, events, failures."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis

from ivr.config import Settings
from ivr.ops import stack
from ivr.records.store import CONTROLLER_KEY
from tests.integration.conftest import YES, wait_for, waiting_for_person

pytestmark = pytest.mark.integration


async def test_call_reaches_controller_with_callers_number(call):
    record = await call(caller="+82-10-5555-0101", dtmf=["2"])
    assert record["caller"] == "+821055550101"
    assert record["path"] == ["main_menu", "to_cards"]
    assert record["turns"][0]["dtmf"] == "2"
    assert (record["intent"], record["queue"], record["outcome"]) == ("lost_card", "cards", "queued")


async def test_controller_hears_spoken_korean_through_audiosocket(call, say, recognizable):
    recognizable(say("상담원 연결"), "상담원 연결")
    record = await call(audio=[say("상담원 연결")], dtmf=[YES])
    turn = record["turns"][0]
    assert turn["transcript"] == "상담원 연결", record["turns"]
    assert turn["intent"] == "agent"
    assert record["queue"] == "general"
    # The caller's side of the turn is kept for trainers, the whole call for compliance.
    assert turn["audio"] and turn["audio"].endswith("-1.wav")


async def test_whole_call_is_recorded(call, live_stack: Settings):
    record = await call(dtmf=["2"])
    recordings = live_stack.recordings_dir / "calls"
    assert await wait_for(lambda: any(recordings.glob(f"*/{record['call_id']}.wav")), timeout=10)
    wav = next(recordings.glob(f"*/{record['call_id']}.wav"))
    assert wav.stat().st_size > 8000  # seconds of 8 kHz audio, not an empty header


async def test_ami_events_for_the_call_arrive(call, ami_events):
    record = await call(dtmf=["4"])
    call_id = record["call_id"]
    assert await wait_for(lambda: any(e.get("Event") == "Hangup" and e.get("Uniqueid") == call_id
                                      for e in ami_events), timeout=10)
    names = [e.get("Event") for e in ami_events if e.get("Uniqueid") == call_id]
    assert "Newchannel" in names
    assert "AGIExecStart" in names
    assert waiting_for_person(ami_events, call_id) == "payments"


async def test_silent_caller_is_never_trapped(call, ami_events):
    """Two turns without input: the engine hands the caller to a person."""
    record = await call(timeout=60)
    assert waiting_for_person(ami_events, record["call_id"]) == "general"
    assert record["path"] == ["main_menu", "main_menu"]
    assert record["queue"] == "general"
    assert any("to a person" in note for note in record["notes"])


async def test_controller_down_call_still_reaches_fallback_queue(call, live_stack: Settings):
    with stack.controller_stopped(live_stack):
        record = await call(dtmf=["2"], timeout=30)
    assert record["outcome"] == "queued"
    assert record["queue"] == "general"
    assert "fallback" in record["notes"][0]
    # and the restarted controller serves the next call
    record = await call(dtmf=["2"])
    assert record["queue"] == "cards"


async def test_asterisk_restart_ami_reconnects_and_next_call_works(call, live_stack: Settings):
    r = redis.Redis.from_url(live_stack.redis_url, decode_responses=True)
    assert await wait_for(lambda: r.hget(CONTROLLER_KEY, "ami_ready") == "1", timeout=10)
    logins = int(r.hget(CONTROLLER_KEY, "ami_logins") or 0)
    await asyncio.to_thread(stack.asterisk_down, live_stack)
    assert await wait_for(lambda: r.hget(CONTROLLER_KEY, "ami_ready") == "0", timeout=10)
    await asyncio.to_thread(stack.asterisk_up, live_stack)
    assert await wait_for(lambda: int(r.hget(CONTROLLER_KEY, "ami_logins") or 0) > logins, timeout=20)
    record = await call(dtmf=["3"])
    assert record["queue"] == "loans"


async def test_garbage_on_the_controller_ports_disturbs_no_call(call, live_stack: Settings):
    s = live_stack
    # AudioSocket: an unknown UUID, then raw garbage, then a frame cut in the middle.
    for payload in (b"\x01\x00\x10" + bytes(16), b"GET / HTTP/1.0\r\n\r\n", b"\x10\x01\x40" + bytes(10)):
        with socket.create_connection((s.audiosocket_host, s.audiosocket_port), timeout=2) as sock:
            sock.sendall(payload)
            sock.settimeout(3)
            assert sock.recv(10) == b""  # the controller closes such connections
    # FastAGI: an environment without the required keys, and half an environment.
    for payload in (b"agi_request: x\n\n", b"agi_network_script: hotline\nagi_chan"):
        with socket.create_connection((s.agi_host, s.agi_port), timeout=2) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(8)
            assert sock.recv(10) == b""
    record = await call(dtmf=["6"])
    assert record["queue"] == "complaints"
    assert stack.running_pid(s, "controller") is not None


async def test_redis_down_calls_still_routed(live_stack: Settings, ami_events):
    """Without Redis the controller still answers and routes (the record catches up later)."""
    s = live_stack
    from ivr.telephony.ami import AmiClient

    await asyncio.to_thread(stack._stop, s, "redis")
    try:
        client = AmiClient(s.ami_host, s.ami_port, s.ami_username, s.ami_secret.get_secret_value())
        client.start()
        assert await client.wait_ready(10)
        call_id = f"sim-noredis-{int(time.time())}"
        await client.originate("Local/s@sim-inbound/n", context="sim-caller", variables={"SIM_CALLER": "0101"},
                               channel_id="caller-" + call_id, other_channel_id=call_id)
        # No simulator turns without Redis: the caller stays silent, so the engine re-prompts
        # and hands the call to a person after two empty turns.
        assert await wait_for(lambda: waiting_for_person(ami_events, call_id) is not None, timeout=40)
        assert waiting_for_person(ami_events, call_id) == "general"
        assert any(e.get("Event") == "AGIExecStart" and e.get("Uniqueid") == call_id for e in ami_events)
        channel = next(e.get("Channel") for e in ami_events if e.get("Uniqueid") == call_id and e.get("Channel"))
        await client.hangup(channel)
        client.close()
        log = (s.logs_dir / "controller.log").read_text()
        assert f"call {call_id}: cannot save to Redis" in log
    finally:
        await asyncio.to_thread(stack.redis_up, s)


async def test_ami_login_failure_is_reported_not_silent(live_stack: Settings):
    from ivr.telephony.ami import AmiClient, AmiNotConnected

    s = live_stack
    client = AmiClient(s.ami_host, s.ami_port, s.ami_username, "wrong-secret")
    client.start()
    try:
        assert await client.wait_ready(3) is False
        assert await wait_for(lambda: "refused" in client.last_error, timeout=5)
        assert s.ami_username in client.last_error
        with pytest.raises(AmiNotConnected, match="refused"):
            await client.setvar("Local/x", "A", "b")
    finally:
        client.close()
