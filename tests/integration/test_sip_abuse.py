"""Bad input from outside (issue #14, "Bad input"), each while another caller is in the middle of a call.

A SIP flood from an address nobody admitted, malformed SIP, RTP and socket garbage, an AGI request for a script the
controller does not serve, a caller who sends 500 keys: each is refused or absorbed with a log line that names it,
Asterisk and the controller stay up, and the other caller (SIPp on the simulator's trunk, saying "상담원 연결" in
A-law while the abuse runs) is heard and routed right, keeps receiving its audio without a lost packet, and keeps
its place in line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.loadtest import CallerKind, CallerPlan, prepare, read_call_log, read_stats, sipp_command
from ivr.config import Settings
from ivr.ops import stack
from ivr.ops.provision import sim_trunk_address
from ivr.records.store import EVENTS_CHANNEL, call_key
from ivr.sim.simulator import SimulatedCall, Simulator
from ivr.telephony.ami import AmiClient
from ivr.telephony.audiosocket import MAX_PENDING_DTMF

pytestmark = pytest.mark.integration

FLOOD_SCENARIO = Path(__file__).resolve().parents[2] / "bench" / "sipp" / "flood.xml"
UNKNOWN_ADDRESS = "127.0.0.2"
"""A loopback address the SIP ACL does not admit (acl.conf sip_sources)."""
VICTIM = CallerKind("victim", "PCMA", "agent", "general", 1.0, said="상담원 연결", words_per_minute=150)
KEY_FLOOD = CallerKind("key-flood", "PCMU", "agent", "general", 1.0, keys="8" * 500, key_ms=40, gap_ms=20)
"""500 presses of a key the menu has no use for, 60 ms apart: two misses, then a person; the rest while it holds."""


@pytest.fixture(scope="module")
def plans(live_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, CallerPlan], float]:
    """The callers' pcaps; the victim's phrase and its "네" recognition margins are measured here first."""
    identifies = stack.asterisk_rx(live_stack, "pjsip show identifies").stdout
    assert "sim-trunk" in identifies, f"the simulator's trunk is not loaded (ivr setup, core reload): {identifies}"
    built, endpoint_s = prepare(live_stack, tmp_path_factory.mktemp("sipp"), [VICTIM], tail_s=6.0)
    keys, _ = prepare(live_stack, tmp_path_factory.mktemp("sipp-keys"), [KEY_FLOOD], tail_s=1.0)
    return {**built, **keys}, endpoint_s


class LogTail:
    """What a log file gained since this object was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> str:
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            return fh.read().decode("utf-8", "replace")


def asterisk_log(settings: Settings) -> LogTail:
    return LogTail(settings.run_dir / "asterisk" / "log" / "messages.log")


def controller_log(settings: Settings) -> LogTail:
    return LogTail(settings.logs_dir / "controller.log")


@dataclass
class SippCaller:
    """One SIPp caller on the simulator's trunk, running in the background."""

    settings: Settings
    plan: CallerPlan
    index: int
    folder: Path
    hold_s: float = 2.0
    process: asyncio.subprocess.Process | None = None

    @property
    def caller(self) -> str:
        return f"0199{self.index}1"  # the prefix, then SIPp's call number 1

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = sipp_command(self.plan, 1, self.index, f"0199{self.index}", sim_trunk_address(), self.settings,
                               self.folder, hold_s=self.hold_s)
        self.process = await asyncio.create_subprocess_exec(
            *command, cwd=self.folder, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)

    async def finish(self, timeout: float = 90.0) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    def started_at(self) -> float:
        starts = read_call_log((self.folder / "calls.log").read_text())
        assert 1 in starts, f"SIPp's call never started its audio: {self.folder}"
        return starts[1]

    def errors(self) -> str:
        path = self.folder / "errors.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class Calls:
    """The controller's records, found by caller number among the calls its events announce."""

    def __init__(self, settings: Settings) -> None:
        self.redis = aioredis.from_url(settings.redis_url, decode_responses=True)
        self.ids: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Calls:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(EVENTS_CHANNEL)

        async def follow() -> None:
            try:
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message:
                        call_id = str(json.loads(message["data"]).get("call_id", ""))
                        if call_id and call_id not in self.ids:
                            self.ids.append(call_id)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

        self._task = asyncio.create_task(follow())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()

    async def record(self, caller: str, until: str = "queue", timeout: float = 30.0) -> dict[str, Any]:
        """The caller's record once it has `until` (a key with a value), else the last one seen (or {})."""
        deadline = time.monotonic() + timeout
        found: dict[str, Any] = {}
        while time.monotonic() < deadline:
            for call_id in list(self.ids):
                raw = await self.redis.get(call_key(call_id))
                data = json.loads(raw) if raw else {}
                if data.get("caller") == caller:
                    found = data
            if found.get(until):
                return found
            await asyncio.sleep(0.3)
        return found

    async def place_in_line(self, call_id: str) -> dict[str, Any] | None:
        """The call's entry in the ACD's waiting room (queue, position), from its snapshot (ivr:acd)."""
        raw = await self.redis.get("ivr:acd")
        waiting = json.loads(raw).get("waiting", {}) if raw else {}
        entry = waiting.get(call_id)
        return dict(entry) if entry else None


async def rtp_received(ami: AmiClient, channel: str) -> tuple[int, int]:
    """(RTP packets received, lost) on `channel`: chan_pjsip's CHANNEL(rtcp,all), read over AMI."""
    reply = await ami.action({"Action": "Getvar", "Channel": channel, "Variable": "CHANNEL(rtcp,all)"})
    value = str(reply.get("Value") or "") if not isinstance(reply, list) else ""
    stats = dict(item.split("=", 1) for item in value.split(";") if "=" in item)
    assert "rxcount" in stats and "lp" in stats, f"no RTP statistics for {channel}: {reply}"
    return int(stats["rxcount"]), int(float(stats["lp"]))


@dataclass
class Victim:
    """The caller in the middle of a call while the abuse runs, and what it must keep."""

    sipp: SippCaller
    calls: Calls
    ami: AmiClient
    endpoint_s: float

    async def routed(self) -> dict[str, Any]:
        record = await self.calls.record(self.sipp.caller, "queue", timeout=30)
        assert record.get("queue"), f"the victim was never routed: {record}"
        return record

    async def check(self, settings: Settings, record: dict[str, Any], place: dict[str, Any] | None,
                    rtp_before: tuple[int, int], seconds: float) -> None:
        """Heard right, routed right, its audio kept flowing without loss, same place in line, ended cleanly."""
        first = record["turns"][0]
        assert first["transcript"] == VICTIM.said, f"the victim was misheard under abuse: {first}"
        assert (record["intent"], record["queue"], record["heard_at_hz"]) == ("agent", "general", 8000)
        voice_end = self.sipp.started_at() + self.sipp.plan.timeline.speech[0][2]
        late = first["decided_at"] - (voice_end + self.endpoint_s)
        assert late < 2.0, f"the victim's answer was decided {late:.2f} s past its endpoint"
        received, lost = await rtp_received(self.ami, record["channel"])
        assert lost == rtp_before[1] == 0, f"the victim lost RTP packets: {rtp_before} -> {(received, lost)}"
        assert received - rtp_before[0] >= 0.8 * 50 * seconds, (
            f"the victim's audio stalled: {received - rtp_before[0]} packets in {seconds:.1f} s")
        if place is not None:
            now = await self.calls.place_in_line(record["call_id"])
            assert now == place, f"the victim's place in line changed: {place} -> {now}"
        assert await self.sipp.finish() == 0, f"the victim's call did not end cleanly: {self.sipp.errors()}"


@contextlib.asynccontextmanager
async def victim_call(settings: Settings, plans: tuple[dict[str, CallerPlan], float],
                      folder: Path) -> AsyncIterator[Victim]:
    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret.get_secret_value())
    ami.start()
    assert await ami.wait_ready(10), ami.last_error
    async with Calls(settings) as calls:
        sipp = SippCaller(settings, plans[0]["victim"], 1, folder / "victim", hold_s=2.0)
        await sipp.start()
        try:
            yield Victim(sipp, calls, ami, plans[1])
        finally:
            await sipp.stop()
            ami.close()


async def rtp_mark(settings: Settings, victim: Victim) -> tuple[dict[str, Any], tuple[int, int], float]:
    """Once the victim is routed: its record, its RTP counters and when they were read."""
    record = await victim.routed()
    return record, await rtp_received(victim.ami, record["channel"]), time.monotonic()


async def test_sip_flood_from_an_unknown_address_never_reaches_an_endpoint(
        live_stack: Settings, plans: tuple[dict[str, CallerPlan], float], tmp_path: Path) -> None:
    asterisk_pid = stack.running_pid(live_stack, "asterisk")
    log = asterisk_log(live_stack)
    async with victim_call(live_stack, plans, tmp_path) as victim:
        await asyncio.sleep(1.0)
        # 1,800 OPTIONS, REGISTER and INVITE triples (5,400 requests) at 300 a second from 127.0.0.2, over the
        # victim's greeting, its answer, its routing and its first seconds in line.
        flood = await asyncio.create_subprocess_exec(
            "sipp", "127.0.0.1:5060", "-sf", str(FLOOD_SCENARIO), "-s", "1588", "-i", UNKNOWN_ADDRESS, "-p", "5090",
            "-m", "1800", "-r", "300", "-nostdin", "-timeout", "60", "-trace_stat", "-stf", str(tmp_path / "flood.csv"),
            "-fd", "1", "-trace_err", "-error_file", str(tmp_path / "flood_errors.log"), cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            record, rtp, marked = await rtp_mark(live_stack, victim)
            place = await victim.calls.place_in_line(record["call_id"])
            assert await asyncio.wait_for(flood.wait(), 60) == 0, (tmp_path / "flood_errors.log").read_text()
        finally:
            if flood.returncode is None:
                flood.kill()
                await flood.wait()
        await asyncio.sleep(2.0)
        await victim.check(live_stack, record, place, rtp, time.monotonic() - marked)
    stats = read_stats((tmp_path / "flood.csv").read_text())
    assert (stats["created"], stats["successful"], stats["failed"]) == (1800, 1800, 0)  # every request: 403
    text = log.new()
    refused = text.count(f"Incoming SIP message from {UNKNOWN_ADDRESS}:5090 did not pass ACL test")
    assert refused >= 5400, f"only {refused} ACL refusals logged for 5,400 requests"
    assert f"SIP ACL: Rejecting '{UNKNOWN_ADDRESS}' due to a failure to pass ACL 'sip_sources'" in text
    assert "No matching endpoint found" not in text  # refused before any endpoint was looked for
    assert stack.running_pid(live_stack, "asterisk") == asterisk_pid and stack.asterisk_answers(live_stack)


MALFORMED_SIP: list[tuple[str, bytes, str | None]] = [
    # (what, datagram from the simulator's trunk address, the answer expected: a status line start or None)
    ("random bytes", os.urandom(300), None),
    ("a request line and nothing else", b"INVITE sip:1588@127.0.0.1 SIP/2.0\r\n\r\n", None),
    ("no Via", b"OPTIONS sip:1588@127.0.0.1 SIP/2.0\r\nFrom: <sip:a@127.0.0.10>;tag=1\r\nTo: <sip:1588@127.0.0.1>\r\n"
               b"Call-ID: abuse-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", None),
    ("a CSeq that is no number", b"OPTIONS sip:1588@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5099;"
     b"branch=z9hG4bKabuse2\r\nFrom: <sip:a@127.0.0.10>;tag=1\r\nTo: <sip:1588@127.0.0.1>\r\nCall-ID: abuse-2\r\n"
     b"CSeq: banana\r\nContent-Length: 0\r\n\r\n", None),
    ("NUL bytes in headers", b"OPTIONS sip:1588@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5099;"
     b"branch=z9hG4bKabuse3\r\nFrom: <sip:a\x00b@127.0.0.10>;tag=1\r\nTo: <sip:1588@127.0.0.1>\r\n"
     b"Call-ID: abuse-3\x00\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", None),
    ("an INVITE with broken SDP", b"INVITE sip:1588@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5099;"
     b"branch=z9hG4bKabuse4\r\nFrom: <sip:0101@127.0.0.10>;tag=1\r\nTo: <sip:1588@127.0.0.1>\r\nCall-ID: abuse-4\r\n"
     b"CSeq: 1 INVITE\r\nContact: <sip:0101@127.0.0.10:5099>\r\nContent-Type: application/sdp\r\n"
     b"Content-Length: 40\r\n\r\nv=0\r\nm=audio abc RTP/AVP 0\r\nc=IN IP4 \r\n", "SIP/2.0 400"),
    ("a BYE for no dialog", b"BYE sip:1588@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5099;branch=z9hG4bKabuse5"
     b"\r\nFrom: <sip:a@127.0.0.10>;tag=1\r\nTo: <sip:1588@127.0.0.1>;tag=2\r\nCall-ID: abuse-5\r\nCSeq: 2 BYE\r\n"
     b"Content-Length: 0\r\n\r\n", "SIP/2.0 481"),
    ("a response to nothing", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabuse6\r\n"
     b"Call-ID: abuse-6\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", None),
]


def send_malformed_sip() -> dict[str, str | None]:
    """Each malformed datagram from the trunk's address (admitted: it reaches the parser); what came back."""
    answers: dict[str, str | None] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((sim_trunk_address(), 5099))  # the port their Via headers name: answers go there
        sock.settimeout(0.5)
        for what, datagram, _expected in MALFORMED_SIP:
            sock.sendto(datagram, ("127.0.0.1", 5060))
            try:
                answers[what] = sock.recvfrom(65535)[0].split(b"\r\n", 1)[0].decode(errors="replace")
            except TimeoutError:
                answers[what] = None
    return answers


def send_rtp_garbage() -> int:
    """Junk to every port of Asterisk's RTP range (rtp.conf 10000-10999) from an address no call uses."""
    sent = 0
    rng = random.Random(14)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.3", 0))
        for port in range(10000, 11000):
            for size in (1, 11, 12, 172, 1400):
                head = bytes([0x80, rng.randrange(128)]) if size >= 2 else b""
                sock.sendto(head + rng.randbytes(size - len(head)), ("127.0.0.1", port))
                sent += 1
    return sent


async def send_socket_garbage(settings: Settings) -> None:
    """What is not Asterisk at the controller's doors: an AudioSocket with a UUID nobody issued, an HTTP request
    on the AudioSocket port, and a FastAGI greeting without its required keys."""
    for port, data in ((settings.audiosocket_port, b"\x01\x00\x10" + os.urandom(16)),
                       (settings.audiosocket_port, b"GET / HTTP/1.0\r\n\r\n"),
                       (settings.agi_port, b"agi_network_script: hotline\nagi_request: junk\n\n")):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(reader.read(), 5)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def test_malformed_sip_rtp_and_socket_garbage_are_refused_with_a_log_line(
        live_stack: Settings, plans: tuple[dict[str, CallerPlan], float], tmp_path: Path) -> None:
    pids = (stack.running_pid(live_stack, "asterisk"), stack.running_pid(live_stack, "controller"))
    alog, clog = asterisk_log(live_stack), controller_log(live_stack)
    async with victim_call(live_stack, plans, tmp_path) as victim:
        await asyncio.sleep(1.5)
        answers = await asyncio.to_thread(send_malformed_sip)
        garbage = await asyncio.to_thread(send_rtp_garbage)  # while the victim's greeting and answer flow
        await send_socket_garbage(live_stack)
        record, rtp, marked = await rtp_mark(live_stack, victim)
        place = await victim.calls.place_in_line(record["call_id"])
        assert garbage == 5000 and await asyncio.to_thread(send_rtp_garbage) == 5000  # and while it holds
        await asyncio.sleep(2.0)
        await victim.check(live_stack, record, place, rtp, time.monotonic() - marked)
    for what, _datagram, expected in MALFORMED_SIP:
        got = answers[what]
        assert (got or "").startswith(expected) if expected else got is None, f"{what}: answered {got!r}"
    atext, ctext = alog.new(), clog.new()
    # What Asterisk (pjproject at log_level 1) names; bytes it cannot parse at all it drops without a line.
    assert "Missing required header(s)" in atext and "-- end of packet." in atext
    assert "Error parsing/validating SDP body" in atext
    assert "RTP Read too short" in atext  # the short junk that reached the victim's own RTP port
    assert ctext.count("AudioSocket connection from ('127.0.0.1'") >= 2  # the unknown UUID and the HTTP request
    assert "unknown or expired session UUID" in ctext
    assert "FastAGI from ('127.0.0.1'" in ctext and "AGI environment lacks agi_channel, agi_uniqueid" in ctext
    assert (stack.running_pid(live_stack, "asterisk"), stack.running_pid(live_stack, "controller")) == pids
    assert stack.asterisk_answers(live_stack)


class UnknownScriptCaller(Simulator):
    """A simulated call whose dialplan asks the controller for a script it does not serve: the channel's own
    IVR_AGI (it wins over the global) makes the hotline run AGI(agi://127.0.0.1:4573/nonexistent/hotline)."""

    async def place(self, sim: SimulatedCall, ami: AmiClient) -> None:
        await ami.originate(
            "Local/s@sim-inbound/n", context="sim-caller", exten="s", caller_id=f'"simulated" <{sim.caller}>',
            variables={"SIM_CALLER": sim.caller, "IVR_AGI": "agi://127.0.0.1:4573/nonexistent"},
            channel_id=sim.caller_uid, other_channel_id=sim.call_id, timeout_ms=15_000)


async def test_agi_request_for_a_script_the_controller_does_not_serve_reaches_a_person(
        live_stack: Settings, plans: tuple[dict[str, CallerPlan], float], tmp_path: Path) -> None:
    clog = controller_log(live_stack)
    async with victim_call(live_stack, plans, tmp_path) as victim:
        await asyncio.sleep(2.0)  # the victim is listening to its greeting
        lost = await UnknownScriptCaller(live_stack).run("01077770001", [], [], timeout=30)
        record, rtp, marked = await rtp_mark(live_stack, victim)
        place = await victim.calls.place_in_line(record["call_id"])
        await asyncio.sleep(2.0)
        await victim.check(live_stack, record, place, rtp, time.monotonic() - marked)
    # The controller said no, and why; the dialplan's fallback took the caller to a person.
    assert "asked for unknown route 'nonexistent/hotline' (known: hotline)" in clog.new()
    assert (lost["queue"], lost["outcome"]) == ("general", "queued"), lost
    assert any("dialplan fallback took it" in note for note in lost["notes"]), lost["notes"]


async def test_a_caller_sending_500_keys_goes_on_and_other_calls_keep_theirs(
        live_stack: Settings, plans: tuple[dict[str, CallerPlan], float], tmp_path: Path) -> None:
    clog = controller_log(live_stack)
    async with victim_call(live_stack, plans, tmp_path) as victim:
        flooder = SippCaller(live_stack, plans[0]["key-flood"], 2, tmp_path / "key-flood", hold_s=1.0)
        assert flooder.plan.timeline.keys and len(flooder.plan.timeline.keys) == 500
        await flooder.start()
        try:
            record, rtp, marked = await rtp_mark(live_stack, victim)
            place = await victim.calls.place_in_line(record["call_id"])
            await asyncio.sleep(3.0)
            await victim.check(live_stack, record, place, rtp, time.monotonic() - marked)
            flooded = await victim.calls.record(flooder.caller, "queue", timeout=30)
            # Still holding for a person while the rest of its keys arrive: the call goes on.
            assert await victim.calls.place_in_line(flooded["call_id"]) is not None
            assert await flooder.finish(timeout=90) == 0, f"the flooding caller's call broke: {flooder.errors()}"
        finally:
            await flooder.stop()
    # Two keys the menu has no use for, then a person: the keys never routed the call anywhere else.
    assert [t["dtmf"] for t in flooded["turns"]] == ["8", "8"], flooded["turns"]
    assert (flooded["queue"], flooded["intent"]) == ("general", None)
    text = clog.new()
    assert f"call {flooded['call_id']}: {MAX_PENDING_DTMF} keys waiting unread" in text
    assert re.search(rf"call {re.escape(flooded['call_id'])}: \d+ keys were dropped in all", text), text[-2000:]
    assert stack.asterisk_answers(live_stack)

