"""bench/sipp/media.py: the bytes SIPp replays as a caller (G.711, RTP, RFC 4733 events, pcap)."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

from bench.sipp import media
from bench.sipp.media import PCMA, PCMU, TELEPHONE_EVENT, Keys, RtpPacket, Silence, Speech

ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2")


def audioop():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


def test_g711_is_bit_exact_with_the_reference() -> None:
    ref = audioop()
    assert media.ulaw_encode(ALL_SAMPLES) == ref.lin2ulaw(ALL_SAMPLES.tobytes(), 2)
    assert media.alaw_encode(ALL_SAMPLES) == ref.lin2alaw(ALL_SAMPLES.tobytes(), 2)
    every_byte = bytes(range(256))
    assert media.ulaw_decode(every_byte).tobytes() == ref.ulaw2lin(every_byte, 2)
    assert media.alaw_decode(every_byte).tobytes() == ref.alaw2lin(every_byte, 2)


@pytest.mark.parametrize("payload_type", [PCMU, PCMA])
def test_g711_round_trip_keeps_the_signal(payload_type: int) -> None:
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)).astype("<i2")
    back = media.decode(media.encode(tone, payload_type), payload_type)
    error = np.abs(back.astype(np.int32) - tone.astype(np.int32))
    assert error.max() <= 256  # the quantizer's step at this level, no more
    assert media.decode(media.encode(back, payload_type), payload_type).tobytes() == back.tobytes()


def test_silence_encodes_to_the_codecs_silent_bytes() -> None:
    zeros = np.zeros(160, dtype=np.int16)
    assert media.encode(zeros, PCMU) == b"\xff" * 160
    assert media.encode(zeros, PCMA) == b"\xd5" * 160
    with pytest.raises(ValueError, match=r"payload type 9 is not G\.711"):
        media.encode(zeros, 9)


def test_rtp_header_bytes() -> None:
    packet = RtpPacket(at=0.0, payload_type=PCMU, sequence=0x1_0002, timestamp=0x1_0000_0003, ssrc=0xDEADBEEF,
                       payload=b"\x01\x02", marker=True)
    assert packet.encode() == bytes.fromhex("8080" "0002" "00000003" "deadbeef" "0102")
    assert RtpPacket(0.0, PCMA, 7, 8, 9, b"").encode() == bytes.fromhex("8008" "0007" "00000008" "00000009")


def test_telephone_event_payload_bytes() -> None:
    assert media.telephone_event(2, False, 10, 160) == bytes.fromhex("02" "0a" "00a0")
    assert media.telephone_event(11, True, 10, 960) == bytes.fromhex("0b" "8a" "03c0")
    with pytest.raises(ValueError, match="out of range"):
        media.telephone_event(2, False, 64, 160)


def speech(seconds: float, level: int = 8000) -> bytes:
    samples = (level * np.sin(2 * np.pi * 300 * np.arange(int(seconds * 8000)) / 8000)).astype("<i2")
    return samples.tobytes()


def test_render_keeps_one_stream_and_times_the_voice_and_keys() -> None:
    quiet = bytes(800)  # 50 ms of digital silence before the voice inside the Speech step
    script = [Silence(0.1), Speech(quiet + speech(0.2), "hello"), Keys("2#", key_ms=60, gap_ms=40), Silence(0.04)]
    out = media.render(script, PCMU, ssrc=7, first_sequence=65534, first_timestamp=1000)
    packets = out.packets
    # 5 silent + 13 speech frames (0.25 s rounded up) + per key 3 event slots (the last sent 3 times) + 2 gap,
    # then 2 silent frames.
    assert len(packets) == 5 + 13 + 2 * (2 + 3 + 2) + 2
    assert [p.sequence for p in packets] == list(range(65534, 65534 + len(packets)))
    assert {p.ssrc for p in packets} == {7}
    audio = [p for p in packets if p.payload_type == PCMU]
    assert all(len(p.payload) == 160 for p in audio)
    assert [p.timestamp for p in audio[:3]] == [1000, 1160, 1320]
    events = [p for p in packets if p.payload_type == TELEPHONE_EVENT]
    first_key = events[:5]
    key_start = 1000 + 18 * 160  # after 18 frames of audio
    assert {p.timestamp for p in first_key} == {key_start}
    assert [p.marker for p in first_key] == [True, False, False, False, False]
    assert [p.payload for p in first_key] == [
        media.telephone_event(2, False, 10, 160), media.telephone_event(2, False, 10, 320),
        *[media.telephone_event(2, True, 10, 480)] * 3]
    # The three end packets go in one slot; the audio after the key carries its own time.
    assert [p.at for p in first_key] == [0.36, 0.38, 0.4, 0.4, 0.4]
    after_key = packets[packets.index(first_key[-1]) + 1]
    assert (after_key.payload_type, after_key.timestamp, after_key.at) == (PCMU, key_start + 3 * 160, 0.42)
    second_key = events[5:]
    assert second_key[0].payload[0] == 11 and second_key[0].timestamp == key_start + 5 * 160
    timeline = out.timeline
    assert timeline.speech == [("hello", 0.14, 0.36)]
    assert timeline.keys == [("2", 0.36), ("#", 0.46)]
    assert timeline.seconds == pytest.approx(0.6)


def test_render_refuses_what_it_cannot_send() -> None:
    with pytest.raises(ValueError, match="no voiced frame"):
        media.render([Speech(bytes(3200), "nothing")])
    with pytest.raises(ValueError, match="not a DTMF key"):
        media.render([Keys("x")])
    with pytest.raises(ValueError, match="multiples of 20 ms"):
        media.render([Keys("1", key_ms=30)])
    with pytest.raises(ValueError, match=r"not G\.711"):
        media.render([Silence(0.1)], payload_type=TELEPHONE_EVENT)


def test_pcap_is_classic_ethernet_ipv4_udp_and_reads_back() -> None:
    packets = media.render([Silence(0.06), Keys("5", key_ms=40, gap_ms=0)], PCMA).packets
    data = media.pcap_bytes(packets, src=("127.0.0.10", 6000), dst=("127.0.0.1", 10000), epoch=1_000_000)
    assert data[:24] == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    seconds, micros, length, original = struct.unpack_from("<IIII", data, 24)
    assert (seconds, micros, length, original) == (1_000_000, 0, 14 + 20 + 8 + 12 + 160, 14 + 20 + 8 + 12 + 160)
    frame = data[40:40 + length]
    assert frame[12:14] == b"\x08\x00"  # IPv4, the only thing SIPp reads of the Ethernet header
    ip = frame[14:34]
    assert ip[9] == 17 and ip[12:16] == bytes([127, 0, 0, 10]) and ip[16:20] == bytes([127, 0, 0, 1])
    assert sum(struct.unpack("!10H", ip)) % 0xFFFF == 0  # a valid header checksum
    assert struct.unpack("!HHH", frame[34:40]) == (6000, 10000, 8 + 12 + 160)
    records = media.read_pcap(data)
    assert [payload for _at, payload in records] == [p.encode() for p in packets]
    assert [at for at, _payload in records] == [p.at for p in packets]
    with pytest.raises(ValueError, match="not a microsecond Ethernet pcap"):
        media.read_pcap(b"\x00" * 24)
