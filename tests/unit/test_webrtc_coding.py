"""aiortc's audio coding moved onto the event loop (ivr/webrtc/coding.py): audio still flows, decodes to the tone
that was sent, no per-frame thread is used, and the tracks still end when the connection closes."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ivr.webrtc.bridge import AppAudio
from ivr.webrtc.coding import inline_audio_coding
from ivr.webrtc.ice import restrict_host_addresses


class Tone(MediaStreamTrack):
    """A 16 kHz tone in paced 20 ms frames."""

    kind = "audio"

    def __init__(self, hz: int) -> None:
        super().__init__()
        self.hz, self.pts = hz, 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        await asyncio.sleep(max(0.0, self.start + self.pts / 16_000 - loop.time()))
        t = (np.arange(320) + self.pts) / 16_000
        frame = av.AudioFrame(format="s16", layout="mono", samples=320)
        frame.planes[0].update((6000 * np.sin(2 * np.pi * self.hz * t)).astype("<i2").tobytes())
        frame.sample_rate, frame.pts, frame.time_base = 16_000, self.pts, fractions.Fraction(1, 16_000)
        self.pts += 320
        return frame


def _peak_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / 16_000)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("codec", ["audio/opus", "audio/G722", "audio/PCMU"])
async def test_audio_is_coded_on_the_loop_and_arrives_as_sent(codec: str) -> None:
    from aiortc.rtcrtpsender import RTCRtpSender

    restrict_host_addresses(["127.0.0.1"])
    app, gateway = RTCPeerConnection(), RTCPeerConnection()
    transceiver = app.addTransceiver(Tone(1000), direction="sendrecv")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == codec])
    heard: list[bytes] = []
    ended = asyncio.Event()
    pulls: list[asyncio.Future[None]] = []

    @gateway.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def pull() -> None:
            audio = AppAudio()
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    ended.set()
                    return
                heard.extend(audio.frames(frame))

        pulls.append(asyncio.ensure_future(pull()))

    try:
        await app.setLocalDescription(await app.createOffer())
        await gateway.setRemoteDescription(app.localDescription)
        assert inline_audio_coding(gateway.getSenders(), gateway.getReceivers()) == 2
        gateway.addTrack(Tone(440))
        await gateway.setLocalDescription(await gateway.createAnswer())
        await app.setRemoteDescription(gateway.localDescription)
        assert inline_audio_coding(app.getSenders(), app.getReceivers()) == 2
        (receiver,) = gateway.getReceivers()
        assert type(receiver._RTCRtpReceiver__decoder_queue).__name__ == "_InlineDecoderQueue"
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(heard) >= 40:
                break
        assert len(heard) >= 40, f"only {len(heard)} frames of {codec} arrived"
        assert receiver._RTCRtpReceiver__decoder_queue._decoder is not None  # decoded here, not by aiortc's thread
        assert abs(_peak_hz(b"".join(heard[-10:])) - 1000) <= 50
        assert gateway.getTransceivers()[0]._codecs[0].mimeType == codec
    finally:
        await app.close()
        await gateway.close()
    await asyncio.wait_for(ended.wait(), 3)  # the end still goes through aiortc's (idle) decoder thread


def test_an_aiortc_without_those_internals_is_left_alone() -> None:
    class Other:
        kind = "audio"

    assert inline_audio_coding([Other()], [Other()]) == 0


async def test_a_frame_that_fails_to_decode_is_noted_not_raised_into_aiortc() -> None:
    import threading
    from types import SimpleNamespace

    from aiortc.codecs import CODECS
    from aiortc.jitterbuffer import JitterFrame

    from ivr.webrtc.coding import _InlineDecoderQueue

    (opus,) = [c for c in CODECS["audio"] if c.mimeType == "audio/opus"]
    error, frames = threading.Event(), asyncio.Queue[object]()
    decoder_queue = _InlineDecoderQueue(SimpleNamespace(_track=SimpleNamespace(_queue=frames)), error)
    decoder_queue.put((opus, JitterFrame(data=b"\x03", timestamp=0)))  # a code-3 packet cut short: invalid Opus
    assert error.is_set() and frames.empty()
