"""``ivr call --sip``: the simulated caller as a SIP phone registered to Asterisk.

Where :class:`ivr.sim.simulator.Simulator` puts the caller on a Local channel, this
registers a pyVoIP phone as the simulator's extension (``settings.sim_extension``)
and dials ``<hotline>*<caller digits>`` from it: Asterisk's ``[sim-phone]``
context presents the digits as the caller's number and sends the call to the
hotline. So PJSIP registration and authentication, the INVITE, ulaw RTP and
RFC 4733 DTMF are all exercised. Everything else (following the controller,
answering turns in order, deciding the outcome) is :class:`ivr.sim.simulator.CallDriver`.

pyVoIP is used for SIP, with the fixes Asterisk needs, and with our own RTP sender (pyVoIP can only
send 8-bit linear audio and cannot send DTMF at all): :mod:`ivr.sim.pyvoip_patches` has them all.
The sender paces 20 ms ulaw frames in real time, sends silence whenever no turn
is playing (AudioSocket drops a session after 2 s without frames) and sends
DTMF as RFC 4733 telephone-events, which ``dtmf_mode = rfc4733`` expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

from ivr.config import Settings
from ivr.ops.provision import sip_password_key
from ivr.sim.pyvoip_patches import AsteriskPhone, CallState, PacedCall, PhoneStatus
from ivr.sim.simulator import SimulatedCall, SimulationError
from ivr.sim.sip_phone import SipPhoneDriver, local_ip_towards
from ivr.telephony.ami import AmiClient, AmiError

#: Asterisk's PJSIP UDP transport (asterisk_conf/pjsip.conf, [transport-udp]).
SIP_SERVER = ("127.0.0.1", 5060)
#: Where the phone's RTP port is picked from (Asterisk's own are 10000-10999, rtp.conf).
RTP_PORTS = range(11000, 11101)


def ulaw_encode(samples: np.ndarray) -> bytes:
    """G.711 mu-law of 16-bit linear samples, bit-exact with audioop.lin2ulaw (gone in Python 3.13)."""
    v = samples.astype(np.int32) >> 2  # the 14-bit reference encoder
    sign = np.where(v < 0, 0x80, 0)
    magnitude = np.minimum(np.minimum(np.abs(v), 8159) + 0x21, 0x1FFF)  # the top of segment 7
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


# --- the caller -----------------------------------------------------------------------------


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


class SipCaller(SipPhoneDriver):
    """A simulated call from a pyVoIP phone registered as ``settings.sim_extension``."""

    def __init__(self, settings: Settings, server: tuple[str, int] = SIP_SERVER,
                 rtp_ports: range = RTP_PORTS) -> None:
        super().__init__(settings)
        self.server, self.rtp_ports = server, rtp_ports
        self.phone: AsteriskPhone | None = None
        self.call: PacedCall | None = None
        self._pcm: dict[str, np.ndarray] = {}

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
            my_ip = local_ip_towards(host, port)
        except OSError as exc:
            raise SimulationError(f"no route to Asterisk's SIP at {host}:{port}: {exc}") from None
        self.phone = AsteriskPhone(host, port, self.extension, password, my_ip, _free_udp_port(my_ip),
                                   _free_udp_port(my_ip, self.rtp_ports))
        try:
            self.phone.start()  # binds, registers (synchronously, in AsteriskSipClient.register)
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
        phone = self.phone

        def refused() -> str | None:
            if call.state != CallState.ENDED:
                return None
            return str(phone.sip.rejected.get(call.call_id, "hung up before answering"))

        await self.find_channel(sim, ami, call.call_id, number, refused)

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
