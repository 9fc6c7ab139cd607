"""``ivr call --sip``: the simulated caller as a SIP phone registered to Asterisk.

Where :class:`ivr.sim.simulator.Simulator` puts the caller on a Local channel, this
registers a pyVoIP phone as the simulator's extension (``settings.sim_extension``)
and dials ``<hotline>*<caller digits>`` from it: Asterisk's ``[sim-phone]``
context presents the digits as the caller's number and sends the call to the
hotline. So PJSIP registration and authentication, the INVITE, ulaw RTP and
RFC 4733 DTMF are all exercised. Everything else (following the controller,
answering turns in order, deciding the outcome) is :class:`ivr.sim.simulator.CallDriver`.

pyVoIP 1.6.8 is used for SIP (with the fixes Asterisk needs: see _Sip and
_Phone), but the RTP sender is our own: pyVoIP can only send 8-bit linear audio and cannot send DTMF at all.
The sender paces 20 ms ulaw frames in real time, sends silence whenever no turn
is playing (AudioSocket drops a session after 2 s without frames) and sends
DTMF as RFC 4733 telephone-events, which ``dtmf_mode = rfc4733`` expects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import select
import socket
import struct
import tempfile
import threading
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pyVoIP
from panoramisk.message import Message
from pyVoIP import VoIP  # noqa: F401  (first: importing pyVoIP.SIP alone fails on a circular import)
from pyVoIP.RTP import PayloadType, RTPClient, TransmitType
from pyVoIP.SIP import SIPClient, SIPMessage, SIPMessageType, SIPParseError, SIPStatus
from pyVoIP.VoIP import CallState, PhoneStatus, VoIPCall, VoIPPhone

from ivr.config import Settings
from ivr.ops.provision import _read_env_file, sip_password_key
from ivr.sim.simulator import CallDriver, SimulatedCall, SimulationError
from ivr.telephony.ami import AmiClient, AmiError

#: Asterisk's PJSIP UDP transport (asterisk_conf/pjsip.conf, [transport-udp]).
SIP_SERVER = ("127.0.0.1", 5060)
#: Where the phone's RTP port is picked from (Asterisk's own are 10000-10999, rtp.conf).
RTP_PORTS = range(11000, 11101)

FRAME_S = 0.02
FRAME = 160  # samples (and ulaw bytes) per 20 ms frame at 8 kHz
SILENCE = b"\xff" * FRAME  # ulaw zero
DTMF_EVENTS = "0123456789*#ABCD"  # RFC 4733 event codes 0-15
DTMF_TICKS = 6  # each key is held 120 ms ...
DTMF_GAP_TICKS = 5  # ... then 100 ms of silence before the next
DTMF_VOLUME = 10  # -10 dBm0


def ulaw_encode(samples: np.ndarray) -> bytes:
    """G.711 mu-law of 16-bit linear samples, bit-exact with audioop.lin2ulaw (gone in Python 3.13)."""
    v = samples.astype(np.int32) >> 2  # the 14-bit reference encoder
    sign = np.where(v < 0, 0x80, 0)
    magnitude = np.minimum(np.minimum(np.abs(v), 8159) + 0x21, 0x1FFF)  # the top of segment 7
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


# --- pyVoIP, with the parts it lacks ------------------------------------------------------


class _Rtp(RTPClient):  # type: ignore[misc]
    """pyVoIP's RTP client with our sender: ulaw frames and RFC 4733 DTMF, paced, never silent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._queue: collections.deque[bytes | str] = collections.deque()  # 160-byte frames and DTMF keys
        self.event_pt = next((pt for pt, kind in self.assoc.items() if kind is PayloadType.EVENT), None)

    def queue_audio(self, ulaw: bytes) -> None:
        frames = [ulaw[i:i + FRAME].ljust(FRAME, SILENCE[:1]) for i in range(0, len(ulaw), FRAME)]
        with self._lock:
            self._queue.extend(frames)

    def queue_dtmf(self, digits: str) -> None:
        with self._lock:
            for digit in digits:
                self._queue.append(digit)
                self._queue.extend([SILENCE] * DTMF_GAP_TICKS)

    @property
    def sending(self) -> bool:
        """Audio or keys still queued."""
        return bool(self._queue)

    def parse_packet(self, packet: bytes) -> None:
        """The caller does not listen: what Asterisk sends is dropped."""

    def _packets(self):  # type: ignore[no-untyped-def]
        """One (payload type, marker, timestamp, payload) per 20 ms tick, forever."""
        ts = self.outTimestamp
        audio_pt = int(self.preference)
        while True:
            with self._lock:
                item = self._queue.popleft() if self._queue else SILENCE
            if isinstance(item, str):
                event, start = DTMF_EVENTS.index(item), ts
                for tick in range(1, DTMF_TICKS + 1):
                    yield self.event_pt, tick == 1, start, struct.pack("!BBH", event, DTMF_VOLUME, tick * FRAME)
                    ts += FRAME
                for _ in range(3):  # the end packet, three times (RFC 4733 2.5.1.4)
                    yield self.event_pt, False, start, struct.pack("!BBH", event, 0x80 | DTMF_VOLUME,
                                                                   DTMF_TICKS * FRAME)
                    ts += FRAME
            else:
                yield audio_pt, False, ts, item
                ts += FRAME

    def trans(self) -> None:
        packets = self._packets()
        seq = self.outSequence
        next_at = time.monotonic()
        while self.NSD:
            pt, marker, ts, payload = next(packets)
            header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                                 ts & 0xFFFFFFFF, self.outSSRC)
            try:
                self.sout.sendto(header + payload, (self.outIP, self.outPort))
            except OSError:
                if not self.NSD:
                    break  # stopped: the socket is closed
            seq += 1
            next_at += FRAME_S
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.2:  # fell far behind (a stalled machine): resume, do not burst
                next_at = time.monotonic()


class _Call(VoIPCall):  # type: ignore[misc]
    def create_rtp_clients(self, codecs: dict[int, PayloadType], ip: str, port: int, request: SIPMessage,
                           baseport: int) -> None:
        for index, connection in enumerate(request.body["c"]):
            self.RTPClients.append(_Rtp(codecs, ip, port, connection["address"], baseport + index,
                                        self.sendmode, dtmf=self.dtmf_callback))

    @property
    def rtp(self) -> _Rtp | None:
        rtp = self.RTPClients[0] if self.RTPClients else None
        return rtp if isinstance(rtp, _Rtp) else None


class _Sip(SIPClient):  # type: ignore[misc]
    """pyVoIP's SIP client, made dependable against Asterisk.

    pyVoIP 1.6.8 cannot parse OPTIONS (Asterisk qualifies contacts with them), takes
    whatever datagram comes next as the answer to its REGISTER (Asterisk's qualify
    OPTIONS often comes first: the registration then "fails" and is retried), ignores
    an INVITE refused with anything but 404 or 503, and acknowledges a 200 with a
    wrong To tag (gen_ack_2xx).
    """

    rejected: dict[str, str]
    """SIP Call-ID -> the final status that refused our INVITE."""
    last_status: str
    """How the last REGISTER went, for the error message."""

    def parse_message(self, message: SIPMessage) -> None:
        if message.type == SIPMessageType.MESSAGE:
            if message.method == "OPTIONS":
                self.out.sendto(self.gen_ok(message).encode("utf8"), (self.server, self.port))
                return
            super().parse_message(message)
            return
        status, method = int(message.status), message.headers["CSeq"]["method"]
        if method == "INVITE" and status >= 300 and status not in (401, 407):
            self.out.sendto(self.gen_ack(message).encode("utf8"), (self.server, self.port))
            self.rejected[message.headers["Call-ID"]] = str(message.status)
            call = self.phone.calls.pop(message.headers["Call-ID"], None)
            if call is not None:
                call.state = CallState.ENDED
            return
        if status == 200:
            super().parse_message(message)
        # Anything else (a late 401, a 183) needs nothing from us; pyVoIP would print "TODO".

    def gen_call_id(self) -> str:
        # pyVoIP's are a hash of a per-phone counter: two phones at once send the same INVITE
        # branch (it is cut from a Call-ID), and Asterisk takes the second INVITE for a retransmission.
        return f"{uuid.uuid4().hex}@{self.myIP}:{self.myPort}"

    def recv_loop(self) -> None:
        try:
            super().recv_loop()
        except OSError:
            if self.NSD:
                raise  # otherwise stop() closed the socket under the loop: the loop is done anyway

    def _exchange(self, request: str) -> SIPMessage:
        """Send a request and return the final response with its Call-ID, serving requests meanwhile."""
        call_id = request.split("\r\nCall-ID: ", 1)[1].split("\r\n", 1)[0]
        self.out.sendto(request.encode("utf8"), (self.server, self.port))
        deadline = time.monotonic() + self.register_timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.s], [], [], left)[0]:
                break
            try:
                message = SIPMessage(self.s.recv(8192))
            except (SIPParseError, ValueError, KeyError, IndexError):  # not SIP, or not SIP pyVoIP knows
                continue
            if message.type == SIPMessageType.MESSAGE:
                self.parse_message(message)
            elif message.headers.get("Call-ID") == call_id and int(message.status) >= 200:
                return message
        raise TimeoutError(f"no answer from SIP server {self.server}:{self.port} in {self.register_timeout} s")

    def _register(self, expires: bool) -> bool:
        response = self._exchange(self.gen_first_response(deregister=not expires))
        if response.status == SIPStatus.UNAUTHORIZED:
            response = self._exchange(self.gen_register(response, deregister=not expires))
        self.last_status = str(response.status)
        return bool(response.status == SIPStatus.OK)

    def register(self) -> bool:
        try:
            with self.recvLock:
                registered = self._register(expires=True)
        except (OSError, TimeoutError) as exc:
            self.last_status, registered = str(exc), False
        self.phone._status = PhoneStatus.REGISTERED if registered else PhoneStatus.FAILED
        if registered and self.NSD:  # refresh before it expires (stop() cancels this)
            self.registerThread = threading.Timer(self.default_expires - 5, self.register)
            self.registerThread.daemon = True
            self.registerThread.start()
        return registered

    def deregister(self) -> bool:
        try:
            with self.recvLock:
                return self._register(expires=False)
        except (OSError, TimeoutError):
            return False

    def gen_ack_2xx(self, ok: SIPMessage) -> str:
        """The ACK for a 200 to INVITE. pyVoIP's puts a random To tag in it, so Asterisk never sees
        the ACK, retransmits its 200 and drops the call after 32 s."""
        headers = ok.headers
        target = str(headers.get("Contact") or f"<sip:{self.server}:{self.port}>").split(">")[0].lstrip("<")
        return (
            f"ACK {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.myIP}:{self.myPort};branch={self.gen_branch()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {headers['From']['raw']};tag={headers['From']['tag']}\r\n"
            f"To: {headers['To']['raw']};tag={headers['To']['tag']}\r\n"
            f"Call-ID: {headers['Call-ID']}\r\n"
            f"CSeq: {headers['CSeq']['check']} ACK\r\n"
            f"User-Agent: pyVoIP {pyVoIP.__version__}\r\n"
            "Content-Length: 0\r\n\r\n"
        )


if "OPTIONS" not in pyVoIP.SIPCompatibleMethods:
    pyVoIP.SIPCompatibleMethods.append("OPTIONS")  # so SIPMessage parses them (for _Sip)


class _Phone(VoIPPhone):  # type: ignore[misc]
    sip: _Sip
    sip_class: type[_Sip] = _Sip
    """The SIP client to build (ivr.sim.agent_phone answers calls with a subclass)."""

    def __init__(self, server: str, port: int, username: str, password: str, my_ip: str, sip_port: int,
                 rtp_port: int) -> None:
        super().__init__(server, port, username, password, myIP=my_ip, sipPort=sip_port,
                         rtpPortLow=rtp_port, rtpPortHigh=rtp_port)
        self.sip = self.sip_class(server, port, username, password, phone=self, myIP=my_ip, myPort=sip_port,
                                  callCallback=self.callback, fatalCallback=self.fatal)
        self.sip.register_timeout = 5  # seconds to wait for each answer (pyVoIP's 30 is long for a test tool)
        self.sip.last_status = ""
        self.sip.rejected = {}

    def call(self, number: str) -> _Call:
        port = self.request_port()
        medias = {port: {0: PayloadType.PCMU, 101: PayloadType.EVENT}}
        # (pyVoIP's own annotations of medias are wrong.)
        request, call_id, sess_id = self.sip.invite(number, medias, TransmitType.SENDRECV)  # type: ignore[arg-type]
        call = _Call(self, CallState.DIALING, request, sess_id, self.myIP, ms=medias,  # type: ignore[arg-type]
                     sendmode=self.sendmode)
        self.calls[call_id] = call
        return call

    def _callback_RESP_OK(self, request: SIPMessage) -> None:
        call = self.calls.get(request.headers["Call-ID"])
        if call is None or request.headers["CSeq"]["method"] != "INVITE":
            return  # e.g. the 200 to our BYE
        call.answered(request)  # once; a retransmitted 200 only gets its ACK again
        self.sip.out.sendto(self.sip.gen_ack_2xx(request).encode("utf8"), (self.server, self.port))


# --- the caller -----------------------------------------------------------------------------


def _local_ip_towards(host: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def _free_udp_port(ip: str, candidates: range | None = None) -> int:
    """A UDP port nobody holds now (0 in candidates' place: any)."""
    ports = list(candidates) if candidates else [0]
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((ip, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise SimulationError(f"no free UDP port on {ip} in {candidates}")


def sip_password(settings: Settings, extension: str) -> str:
    """The SIP password of an extension: the environment first, then run/secrets.env (written by `ivr setup`)."""
    key = sip_password_key(extension)
    password = os.environ.get(key) or _read_env_file(settings.run_dir / "secrets.env").get(key)
    if not password:
        raise SimulationError(f"no {key} in the environment or {settings.run_dir / 'secrets.env'}: run `ivr setup`")
    return password


class SipCaller(CallDriver):
    """A simulated call from a pyVoIP phone registered as ``settings.sim_extension``."""

    def __init__(self, settings: Settings, server: tuple[str, int] = SIP_SERVER,
                 rtp_ports: range = RTP_PORTS) -> None:
        super().__init__(settings)
        self.server, self.rtp_ports = server, rtp_ports
        self.extension = settings.sim_extension
        self.phone: _Phone | None = None
        self.call: _Call | None = None
        self._candidates: list[tuple[str, str]] = []  # (uniqueid, channel) of this extension's new channels
        self._pcm: dict[str, np.ndarray] = {}

    def password(self) -> str:
        return sip_password(self.settings, self.extension)

    def run(
        self,
        caller: str,
        audio: list[Path],
        dtmf: list[str] | None = None,
        until: str = "queued",
        timeout: float = 60.0,
        barge_in: bool = False,
    ) -> dict[str, Any]:
        """Like Simulator.run, but synchronous (pyVoIP is thread-based)."""
        sim = self.new_call(caller, until)
        sim.call_id = ""  # Asterisk's uniqueid of the PJSIP channel, learned in place()
        self.call, self._candidates, self._pcm = None, [], {}
        password = self.password()
        with tempfile.TemporaryDirectory(prefix="ivr-sip-") as work:
            sim.turns = self.prepare(audio, dtmf or [], Path(work))
            for kind, value in sim.turns:
                if kind == "audio":
                    with wave.open(value, "rb") as wav:
                        self._pcm[value] = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        try:
            return asyncio.run(self._drive(sim, password, until, timeout, barge_in))
        finally:
            self._stop_phone()  # also when interrupted: pyVoIP's threads would re-register forever

    async def _drive(self, sim: SimulatedCall, password: str, until: str, timeout: float,
                     barge_in: bool) -> dict[str, Any]:
        await asyncio.to_thread(self._start_phone, password)
        return await self.drive(sim, until, timeout, barge_in)

    # --- the phone (pyVoIP's threads)

    def _start_phone(self, password: str) -> None:
        host, port = self.server
        try:
            my_ip = _local_ip_towards(host, port)
        except OSError as exc:
            raise SimulationError(f"no route to Asterisk's SIP at {host}:{port}: {exc}") from None
        self.phone = _Phone(host, port, self.extension, password, my_ip, _free_udp_port(my_ip),
                            _free_udp_port(my_ip, self.rtp_ports))
        try:
            self.phone.start()  # binds, registers (synchronously, in _Sip.register)
        except OSError as exc:
            raise SimulationError(f"SIP phone cannot start on {my_ip}: {exc}") from None
        if self.phone.get_status() != PhoneStatus.REGISTERED:
            raise SimulationError(
                f"SIP registration of extension {self.extension} at {host}:{port} failed "
                f"({self.phone.sip.last_status or 'no answer'}): is Asterisk up (`ivr status`), and does "
                f"{sip_password_key(self.extension)} in run/secrets.env match "
                "run/asterisk/generated/pjsip_users.conf (`ivr setup`, then `pjsip reload`)?")

    def _stop_phone(self) -> None:
        phone, self.phone = self.phone, None
        if phone is None:
            return
        if self.call is not None and self.call.state == CallState.ANSWERED:
            with contextlib.suppress(Exception):
                self.call.hangup()
        with contextlib.suppress(Exception):
            phone.stop()  # hangs up, deregisters, closes the SIP socket; RTP threads end with their call

    # --- CallDriver

    def on_ami(self, sim: SimulatedCall, event: Message) -> None:
        channel = event.get("Channel", "")
        if event.get("Event") == "Newchannel" and channel.startswith(f"PJSIP/{self.extension}-"):
            self._candidates.append((event.get("Uniqueid", ""), channel))

    async def place(self, sim: SimulatedCall, ami: AmiClient) -> None:
        assert self.phone is not None
        number = f"{self.settings.hotline_number}*{sim.caller}"
        try:
            self.call = call = await asyncio.wait_for(asyncio.to_thread(self.phone.call, number), 10)
        except TimeoutError:
            # pyVoIP waits for the answer in a blocking recv, holding its lock: wake it up.
            with contextlib.suppress(OSError):
                self.phone.sip.s.shutdown(socket.SHUT_RDWR)
            raise SimulationError(f"Asterisk did not answer the INVITE to {number} within 10 s") from None
        # Another simulated SIP call may be running: our channel is the one carrying our SIP Call-ID.
        checked: set[str] = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for uid, channel in list(self._candidates):
                if uid in checked:
                    continue
                checked.add(uid)
                with contextlib.suppress(AmiError):
                    reply = await ami.action({"Action": "Getvar", "Channel": channel,
                                              "Variable": "CHANNEL(pjsip,call-id)"})
                    if isinstance(reply, Message) and reply.get("Value") == call.call_id:
                        sim.call_id, sim.caller_channel = uid, channel
                        return
            if call.state == CallState.ENDED:
                reason = self.phone.sip.rejected.get(call.call_id, "hung up before answering")
                raise SimulationError(f"Asterisk refused the SIP call to {number} from extension "
                                      f"{self.extension}: {reason}")
            await asyncio.sleep(0.05)
        raise SimulationError(f"the SIP call to {number} from extension {self.extension} got no channel in "
                              "Asterisk within 10 s (see run/asterisk/log/messages.log)")

    async def answer(self, sim: SimulatedCall, ami: AmiClient, turn: tuple[str, str]) -> None:
        call = self.call
        for _ in range(100):  # RTP starts with the 200 OK
            if call is not None and call.state == CallState.ANSWERED and call.rtp is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise SimulationError("the SIP call was never answered")
        rtp = call.rtp
        kind, value = turn
        if kind == "audio":
            rtp.queue_audio(ulaw_encode(self._pcm[value]))
        elif rtp.event_pt is None:
            raise SimulationError("Asterisk did not accept telephone-event in its SDP answer: no DTMF over SIP")
        else:
            rtp.queue_dtmf(value)

    async def release(self, sim: SimulatedCall, ami: AmiClient) -> None:
        await asyncio.to_thread(self._stop_phone)
        if sim.caller_channel and not sim.hung_up:
            with contextlib.suppress(AmiError):
                await ami.hangup(sim.caller_channel)  # if our BYE got lost
