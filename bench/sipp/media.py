"""A caller's side of a call as RTP in a pcap file, for SIPp's ``play_pcap_audio``.

SIPp replays a pcap's UDP payloads with the recorded timing and RTP headers untouched (it only rewrites the UDP
ports and checksum: ``send_packets.c``), so everything a phone would send is decided here: G.711 audio frames
(PCMU or PCMA, 20 ms, 160 bytes), RFC 4733 telephone events for keys, one SSRC, sequence numbers and timestamps
that run on without a gap for the whole call. A call plays one pcap from answer to the end of its IVR part: two
plays would restart the sequence numbers under the same SSRC.

A script is a list of steps (silence, speech, keys); ``render`` turns it into packets and a ``Timeline`` of when
the caller's voice ends and each key starts, in seconds from the first packet, which the load test compares with
the controller's turn records. Pure: bytes in, bytes out (no sockets, no SIPp).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

RATE = 8000
"""G.711 samples per second."""
FRAME_SAMPLES = 160
"""Samples in one 20 ms packet."""
FRAME_S = FRAME_SAMPLES / RATE
PCMU, PCMA = 0, 8
"""Static RTP payload types of G.711 mu-law and A-law (RFC 3551)."""
CODECS = {"PCMU": PCMU, "PCMA": PCMA}
TELEPHONE_EVENT = 101
"""The dynamic payload type the scenarios' SDP gives RFC 4733 telephone-event/8000."""
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
"""RFC 4733 event codes of the DTMF keys."""
VOICED_RMS = 400.0
"""RMS (16-bit) above which a 20 ms frame counts as voice: the controller's own threshold
(ivr/voice/navigator/listening.py VOICED_RMS), so a timeline's "voice ends" is where the controller's is."""


# --- G.711 ---------------------------------------------------------------------------------------


def ulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """G.711 mu-law of 16-bit linear samples (the 14-bit reference encoder, as audioop.lin2ulaw)."""
    v = samples.astype(np.int32) >> 2
    sign = np.where(v < 0, 0x80, 0)
    magnitude = np.minimum(np.minimum(np.abs(v), 8159) + 0x21, 0x1FFF)
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """16-bit linear samples of G.711 mu-law bytes (as audioop.ulaw2lin)."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """G.711 A-law of 16-bit linear samples (the 13-bit reference encoder, as audioop.lin2alaw)."""
    v = samples.astype(np.int32) >> 3
    sign = np.where(v >= 0, 0xD5, 0x55)  # the sign bit and the even-bit inversion (0x55) at once
    magnitude = np.where(v >= 0, v, -v - 1)
    magnitude = np.minimum(magnitude, 0xFFF)
    exponent = np.where(magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return ((((exponent << 4) | mantissa) ^ sign) & 0xFF).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """16-bit linear samples of G.711 A-law bytes (as audioop.alaw2lin)."""
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    exponent = (a & 0x70) >> 4
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


def encode(samples: npt.NDArray[np.int16], payload_type: int) -> bytes:
    if payload_type == PCMU:
        return ulaw_encode(samples)
    if payload_type == PCMA:
        return alaw_encode(samples)
    raise ValueError(f"payload type {payload_type} is not G.711 (PCMU {PCMU} or PCMA {PCMA})")


def decode(data: bytes, payload_type: int) -> npt.NDArray[np.int16]:
    if payload_type == PCMU:
        return ulaw_decode(data)
    if payload_type == PCMA:
        return alaw_decode(data)
    raise ValueError(f"payload type {payload_type} is not G.711 (PCMU {PCMU} or PCMA {PCMA})")


# --- RTP -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet and the moment it is sent."""

    at: float
    """Seconds from the first packet."""
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def encode(self) -> bytes:
        """RTP version 2, no padding, extension or CSRC (RFC 3550 section 5.1)."""
        return struct.pack("!BBHII", 0x80, (0x80 if self.marker else 0) | self.payload_type,
                           self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc) + self.payload


def telephone_event(code: int, end: bool, volume: int, duration: int) -> bytes:
    """An RFC 4733 event payload: event, E bit and volume (dBm0 below zero), duration in timestamp units."""
    if not 0 <= code <= 255 or not 0 <= volume <= 63 or not 0 <= duration <= 0xFFFF:
        raise ValueError(f"telephone event out of range: code {code}, volume {volume}, duration {duration}")
    return struct.pack("!BBH", code, (0x80 if end else 0) | volume, duration)


# --- a caller's script ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Silence:
    """The caller says nothing (a phone still sends its silent frames)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Speech:
    """The caller says something: 8 kHz 16-bit mono PCM."""

    pcm: bytes
    label: str = ""
    """What is said, for the timeline."""


@dataclass(frozen=True, slots=True)
class Keys:
    """The caller presses keys, sent as RFC 4733 events (no audio while a key is down, as phones do)."""

    digits: str
    key_ms: int = 100
    """How long each key is held (a multiple of 20 ms)."""
    gap_ms: int = 100
    """Silence between keys and after the last one."""


Step = Silence | Speech | Keys


@dataclass(slots=True)
class Timeline:
    """When things happen in a rendered script, in seconds from its first packet."""

    seconds: float = 0.0
    """The script's length."""
    speech: list[tuple[str, float, float]] = field(default_factory=list)
    """Each Speech step: (label, its first voiced frame's start, its last voiced frame's end)."""
    keys: list[tuple[str, float]] = field(default_factory=list)
    """Each key: (digit, when its first event packet goes)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    packets: list[RtpPacket]
    timeline: Timeline


def _frames(pcm: bytes) -> list[npt.NDArray[np.int16]]:
    samples = np.frombuffer(pcm, dtype="<i2")
    pad = (-len(samples)) % FRAME_SAMPLES
    samples = np.concatenate([samples, np.zeros(pad, dtype=np.int16)])
    return [samples[i:i + FRAME_SAMPLES] for i in range(0, len(samples), FRAME_SAMPLES)]


def _voiced(frame: npt.NDArray[np.int16]) -> bool:
    values = frame.astype(np.float32)
    return float(np.sqrt(np.mean(values * values))) >= VOICED_RMS


def render(script: Sequence[Step], payload_type: int = PCMU, ssrc: int = 0x1F2E3D4C, first_sequence: int = 1000,
           first_timestamp: int = 160_000, volume: int = 10) -> Rendered:
    """The packets of `script`, one every 20 ms, and its timeline.

    Audio frames carry `payload_type` (PCMU or PCMA). A key is a run of event packets, each 20 ms, all with the
    timestamp of the key's start (RFC 4733 section 2.5.1.2), the first marked, the duration growing by 160;
    the last one is sent three times with the E bit (section 2.5.1.4: the end must not be lost). The RTP clock
    runs on through keys, so audio after a key carries the timestamp of its time.
    """
    if payload_type not in (PCMU, PCMA):
        raise ValueError(f"payload type {payload_type} is not G.711 (PCMU {PCMU} or PCMA {PCMA})")
    packets: list[RtpPacket] = []
    timeline = Timeline()
    slot = 0  # 20 ms slots since the start
    sequence = first_sequence
    silent = encode(np.zeros(FRAME_SAMPLES, dtype=np.int16), payload_type)

    def send(payload_type_: int, payload: bytes, timestamp: int, marker: bool = False) -> None:
        nonlocal sequence
        packets.append(RtpPacket(round(slot * FRAME_S, 6), payload_type_, sequence, timestamp, ssrc, payload,
                                 marker))
        sequence += 1

    def audio(frame_payload: bytes) -> None:
        nonlocal slot
        send(payload_type, frame_payload, first_timestamp + slot * FRAME_SAMPLES)
        slot += 1

    for step in script:
        if isinstance(step, Silence):
            for _ in range(round(step.seconds / FRAME_S)):
                audio(silent)
        elif isinstance(step, Speech):
            first_voice: float | None = None
            last_voice: float | None = None
            for frame in _frames(step.pcm):
                if _voiced(frame):
                    first_voice = slot * FRAME_S if first_voice is None else first_voice
                    last_voice = (slot + 1) * FRAME_S
                audio(encode(frame, payload_type))
            if first_voice is None or last_voice is None:
                raise ValueError(f"speech {step.label!r} has no voiced frame (RMS >= {VOICED_RMS:g})")
            timeline.speech.append((step.label, round(first_voice, 3), round(last_voice, 3)))
        else:
            if step.key_ms % 20 or step.key_ms < 40 or step.gap_ms % 20 or step.gap_ms < 0:
                raise ValueError(f"keys {step.digits!r}: hold {step.key_ms} ms and gap {step.gap_ms} ms must be"
                                 " multiples of 20 ms (a key at least 40 ms)")
            for digit in step.digits:
                code = EVENT_CODES.get(digit.upper())
                if code is None:
                    raise ValueError(f"{digit!r} is not a DTMF key (0-9, *, #, A-D)")
                start = first_timestamp + slot * FRAME_SAMPLES
                timeline.keys.append((digit, round(slot * FRAME_S, 3)))
                held = step.key_ms // 20
                for i in range(held):
                    duration = (i + 1) * FRAME_SAMPLES
                    last = i == held - 1
                    for _ in range(3 if last else 1):
                        send(TELEPHONE_EVENT, telephone_event(code, last, volume, duration), start, marker=i == 0)
                    slot += 1
                for _ in range(step.gap_ms // 20):
                    audio(silent)
    timeline.seconds = round(slot * FRAME_S, 3)
    return Rendered(packets, timeline)


# --- pcap ------------------------------------------------------------------------------------------

PCAP_MAGIC = 0xA1B2C3D4
"""Classic pcap, microsecond timestamps (what libpcap and SIPp read)."""
LINKTYPE_ETHERNET = 1
_ETHERNET = bytes.fromhex("020000000002" "020000000001") + struct.pack("!H", 0x0800)
"""Locally administered MAC addresses and the IPv4 EtherType: SIPp reads only the EtherType."""


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(payload: bytes, src: tuple[str, int], dst: tuple[str, int], ident: int = 0) -> bytes:
    """An Ethernet frame of an IPv4 UDP datagram (checksum 0: none, which IPv4 allows; SIPp writes its own)."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    addresses = bytes(map(int, src[0].split("."))) + bytes(map(int, dst[0].split(".")))
    header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17, 0) + addresses
    header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
    return _ETHERNET + header + udp


def pcap_bytes(packets: Sequence[RtpPacket], src: tuple[str, int] = ("127.0.0.10", 6000),
               dst: tuple[str, int] = ("127.0.0.1", 10000), epoch: int = 1_700_000_000) -> bytes:
    """A pcap file of `packets`: one UDP datagram each, from `src` to `dst` (SIPp keeps the relative ports and
    replaces the addresses with the call's), stamped `epoch` + each packet's time."""
    out = [struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)]
    for index, packet in enumerate(packets):
        frame = udp_frame(packet.encode(), src, dst, index)
        micros = round(packet.at * 1_000_000)
        out.append(struct.pack("<IIII", epoch + micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def read_pcap(data: bytes) -> list[tuple[float, bytes]]:
    """(seconds from the first record, UDP payload) of each record of a pcap this module wrote."""
    magic, _major, _minor, _zone, _sigfigs, _snap, link = struct.unpack_from("<IHHiIII", data)
    if magic != PCAP_MAGIC or link != LINKTYPE_ETHERNET:
        raise ValueError(f"not a microsecond Ethernet pcap (magic 0x{magic:08x}, link type {link})")
    records: list[tuple[float, bytes]] = []
    offset, first = 24, None
    while offset < len(data):
        seconds, micros, length, _original = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16: offset + 16 + length]
        offset += 16 + length
        at = seconds + micros / 1_000_000
        first = at if first is None else first
        records.append((round(at - first, 6), frame[14 + 20 + 8:]))
    return records
