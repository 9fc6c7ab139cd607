"""The app-call audio bridge (ivr.webrtc.bridge): exact AudioSocket bytes, 16 kHz conversion, pacing, UUID checks."""

from __future__ import annotations

import asyncio
import uuid

import av
import numpy as np
import pytest

from ivr.webrtc.bridge import FRAME_BYTES, LATE_S, MAX_QUEUED_FRAMES, AppAudio, AsteriskTrack, BridgeServer


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2")


def peak_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def test_the_apps_48k_stereo_audio_becomes_20ms_frames_of_16k_mono_keeping_its_pitch() -> None:
    audio, out = AppAudio(), []
    mono = tone(1000, 0.5, 48_000)
    stereo = np.repeat(mono, 2)
    for start in range(0, len(mono), 960):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(stereo[2 * start:2 * (start + 960)].tobytes())
        frame.sample_rate = 48_000
        out += audio.frames(frame)
    assert out and all(len(chunk) == FRAME_BYTES == 640 for chunk in out)
    assert len(out) >= 23  # 25 frames in, the resampler's delay holds back at most a couple
    assert abs(peak_hz(b"".join(out[5:]), 16_000) - 1000) < 20


async def test_asterisks_frames_go_to_the_app_in_order_with_running_timestamps() -> None:
    track = AsteriskTrack()
    pcm = tone(440, 0.06, 16_000).tobytes()
    track.push(pcm)  # three frames at once, as Asterisk may burst
    frames = [await track.recv() for _ in range(3)]
    assert [f.pts for f in frames] == [0, 320, 640] and all(f.sample_rate == 16_000 for f in frames)
    assert b"".join(bytes(f.planes[0])[:640] for f in frames) == pcm
    assert track.silence_out == 0


async def test_silence_goes_out_only_once_asterisks_frame_is_late() -> None:
    track = AsteriskTrack()
    loop = asyncio.get_running_loop()
    started = loop.time()
    frame = await track.recv()
    assert bytes(frame.planes[0])[:640] == bytes(640) and track.silence_out == 1
    assert loop.time() - started >= LATE_S * 0.9  # waited for Asterisk first


async def test_a_backlog_is_cut_to_bound_the_latency() -> None:
    track = AsteriskTrack()
    track.push(bytes(640) * (MAX_QUEUED_FRAMES + 3))
    assert track.dropped == 3 and track.frames_in == MAX_QUEUED_FRAMES + 3


async def test_an_8k_frame_from_asterisk_is_resampled_to_16k() -> None:
    track = AsteriskTrack()
    track.push(tone(500, 0.04, 8000).tobytes(), 8000)
    frames = [await track.recv() for _ in range(2)]
    assert abs(peak_hz(b"".join(bytes(f.planes[0])[:640] for f in frames), 16_000) - 500) < 30


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    bridges = BridgeServer("127.0.0.1", 0, uuid_timeout=0.5)
    await bridges.start()
    yield bridges
    await bridges.stop()


async def test_only_a_uuid_the_gateway_issued_connects(server: BridgeServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"\x01\x00\x10" + uuid.uuid4().bytes)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed at once
    writer.close()
    assert server.rejected == 1


async def test_the_bridge_speaks_exact_audiosocket_bytes(server: BridgeServer) -> None:
    session_id = uuid.uuid4()
    connected = server.expect(session_id, "app-1")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"\x01\x00\x10" + session_id.bytes)  # what chan_audiosocket sends first
    bridge = await asyncio.wait_for(connected, 2)
    bridge.send(b"\x01\x02" * 320)
    assert await reader.readexactly(643) == b"\x12\x02\x80" + b"\x01\x02" * 320  # kind 0x12, 640 bytes
    track = AsteriskTrack()
    relay = asyncio.create_task(bridge.relay_to(track))
    writer.write(b"\x12\x02\x80" + b"\x05\x00" * 320 + b"\x00\x00\x00")  # a frame, then Asterisk's hangup
    assert await asyncio.wait_for(relay, 2) == "Asterisk hung up the call"
    assert track.frames_in == 1
    await bridge.close()
    assert await reader.read() == b"\x00\x00\x00"  # our hangup frame, then the socket closes
    with pytest.raises(ConnectionError):
        bridge.send(bytes(640))
    writer.close()


async def test_the_audio_jitter_buffer_is_shortened_to_the_configured_frames() -> None:
    from aiortc import RTCPeerConnection

    from ivr.webrtc.bridge import set_jitter_frames

    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    try:
        (receiver,) = pc.getReceivers()
        assert receiver._RTCRtpReceiver__jitter_buffer._prefetch == 4  # aiortc's own: 80 ms
        assert set_jitter_frames(pc.getReceivers(), 1) == 1
        assert receiver._RTCRtpReceiver__jitter_buffer._prefetch == 1
    finally:
        await pc.close()


async def test_zero_jitter_frames_decodes_each_packet_as_it_arrives_and_drops_late_ones() -> None:
    from aiortc import RTCPeerConnection
    from aiortc.rtp import RtpPacket

    from ivr.webrtc.bridge import ArrivalOrderBuffer, set_jitter_frames

    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    try:
        assert set_jitter_frames(pc.getReceivers(), 0) == 1
        (receiver,) = pc.getReceivers()
        buffer = receiver._RTCRtpReceiver__jitter_buffer
        assert isinstance(buffer, ArrivalOrderBuffer)
    finally:
        await pc.close()

    def packet(seq: int, payload: bytes) -> RtpPacket:
        p = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960, payload=payload)
        p._data = payload  # type: ignore[attr-defined]  # what aiortc's receiver sets (the depayloaded frame)
        return p

    buffer = ArrivalOrderBuffer()
    _, frame = buffer.add(packet(65_535, b"a"))
    assert frame is not None and (frame.data, frame.timestamp) == (b"a", 65_535 * 960)
    _, frame = buffer.add(packet(1, b"c"))  # 0 lost: 1 is handed on at once, not held for 0
    assert frame is not None and (frame.data, frame.timestamp) == (b"c", 960)
    assert buffer.add(packet(0, b"b")) == (False, None)  # after its successor: too late, dropped
    assert buffer.late == 1
    _, frame = buffer.add(packet(2, b"d"))
    assert frame is not None and frame.data == b"d"
