"""An app call's audio between its aiortc peer connection and Asterisk, over AudioSocket's channel driver.

Why the AudioSocket channel (``AudioSocket/host:port/uuid/c(slin16)``, originated over AMI into the dialplan)
and not chan_websocket: the house already speaks AudioSocket (``ivr.telephony.audiosocket``: the codec, the kinds,
its quirks handled where they are parsed); Asterisk 22.10 connects to *us* (no listener on Asterisk's side, no TLS
or HTTP upgrade to run), carries 16 kHz (kind 0x12, 640-byte frames: checked on the wire) and a hangup frame; and
chan_websocket still has open issues in this release line (asterisk #1574, #1587). What the channel driver does
*not* take from the server is a DTMF frame (kind 0x03): Asterisk 22.10 hangs up on any kind but audio and hangup
("Received AudioSocket message other than hangup or audio"), so the app's keys go in through AMI ``PlayDTMF`` with
``Receive: true`` (see ``gateway``), as if the channel had received them.

The app's audio (Opus at 48 kHz, or G.722/G.711) is resampled to 16 kHz mono by PyAV and sent to Asterisk in 20 ms
frames as it arrives (no extra buffering); Asterisk's audio goes to the app through :class:`AsteriskTrack`, which
aiortc pulls at its own pace: the frame Asterisk sent, or silence when none came in time, so RTP never stalls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import uuid
from typing import Any

import av
import numpy as np
import soxr
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription
from aiortc.utils import uint16_add

from ivr.telephony.audiosocket import HANGUP_FRAME, Frame, IssuedSessionServer, Kind, ProtocolError, read_frame

log = logging.getLogger(__name__)

RATE = 16_000
"""The rate of the bridge: what ``c(slin16)`` makes Asterisk send, and what we send back (kind 0x12)."""
FRAME_SAMPLES = RATE // 50
FRAME_BYTES = FRAME_SAMPLES * 2
"""20 ms of 16 kHz 16-bit mono: Asterisk's frame on this channel."""
_KIND = Kind.AUDIO_SLIN16
_TIME_BASE = fractions.Fraction(1, RATE)
_SILENCE = bytes(FRAME_BYTES)
#: How late Asterisk's next frame may be before the app is sent silence in its place (Asterisk's own jitter).
LATE_S = 0.030
#: Frames waiting for aiortc beyond which the oldest is dropped: latency stays bounded if Asterisk bursts.
MAX_QUEUED_FRAMES = 5
#: Bytes waiting in the socket to Asterisk beyond which Asterisk is taken as stuck (5 s of audio).
MAX_UNSENT_BYTES = 5 * 50 * (FRAME_BYTES + 3)
#: Opus to the app: 32 kbit/s is full wideband speech (the IVR's 16 kHz) and half what libopus picks on its own.
OPUS_BITRATE = 32_000


def opus_encoder(rate: int) -> Any:
    """libopus (through PyAV) for 20 ms frames of 16-bit mono at ``rate``, speech-tuned, ``OPUS_BITRATE``."""
    codec = av.CodecContext.create("libopus", "w")
    codec.format, codec.layout, codec.sample_rate = "s16", "mono", rate
    codec.time_base = fractions.Fraction(1, rate)
    codec.bit_rate = OPUS_BITRATE
    codec.options = {"application": "voip"}
    return codec


def answered_codec(sdp: str) -> str | None:
    """The codec an SDP's audio is sent with (its first), lower-case (``opus``, ``g722``, ``pcmu``...)."""
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "audio" and media.rtp.codecs:
            return str(media.rtp.codecs[0].mimeType.split("/")[-1].lower())
    return None


class AsteriskTrack(MediaStreamTrack):
    """What the app hears: Asterisk's audio for the call (the IVR's prompts, the agent), paced at 20 ms.

    aiortc calls ``recv`` for each frame it sends. The frame Asterisk sent is returned at once; when none has come
    by the time the next one is due (plus ``LATE_S``), silence goes in its place."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: collections.deque[bytes] = collections.deque()
        self._arrived = asyncio.Event()
        self._pts = 0
        self._start: float | None = None
        self.frames_in = 0
        """Frames Asterisk sent."""
        self.silence_out = 0
        """Frames of silence sent to the app in place of late or missing ones."""
        self.dropped = 0
        """Frames dropped because aiortc fell behind (the queue was full)."""
        self._opus: Any = None
        self._opus_pts = 0

    def encode_opus(self) -> None:
        """Hand aiortc Opus packets, not frames: encoded here at 16 kHz mono (the bridge's own audio), where aiortc
        would first resample every frame to 48 kHz stereo and encode that (0.45 ms a frame against 0.2 ms,
        measured), and on the event loop (aiortc encodes frames on a thread pool, one hand-off per frame). Opus
        carries its bandwidth in every packet: the app decodes it at 48 kHz as usual. Call once the answer chose
        Opus."""
        self._opus = opus_encoder(RATE)

    def push(self, pcm: bytes, rate: int = RATE) -> None:
        """Asterisk's next audio (16-bit mono at ``rate``; anything but 16 kHz is resampled)."""
        if rate != RATE:
            samples = np.frombuffer(pcm, dtype="<i2")
            pcm = soxr.resample(samples, rate, RATE).astype("<i2").tobytes()
        for offset in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
            if len(self._queue) >= MAX_QUEUED_FRAMES:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(pcm[offset:offset + FRAME_BYTES])
            self.frames_in += 1
        self._arrived.set()

    @property
    def encodes_opus(self) -> bool:
        """Whether Opus packets are made here (``encode_opus``) rather than frames handed to aiortc's encoder."""
        return self._opus is not None

    async def recv(self) -> av.AudioFrame | av.Packet:
        if self._opus is None:
            return await self._next_frame()
        while True:  # libopus gives a packet per 20 ms frame; should it hold one back, the next frame is taken
            packets = self._opus.encode(await self._next_frame())
            if packets:
                packet = packets[-1]  # never more than one for a 20 ms frame (the encoder's frame size)
                packet.pts, packet.time_base = self._opus_pts, _TIME_BASE
                self._opus_pts += FRAME_SAMPLES
                return packet

    async def _next_frame(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None or now - (self._start + self._pts / RATE) > 0.2:
            self._start = now - self._pts / RATE  # first frame, or far behind (a stalled loop): resync, no burst
        due = self._start + self._pts / RATE
        # Asterisk is the clock: its frame goes out the moment it comes; silence only once it is late, so the
        # track never runs ahead of real time on its own.
        if not self._queue:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due + LATE_S - loop.time())):
                    await self._arrived.wait()
        if self._queue:
            pcm = self._queue.popleft()
        else:
            pcm = _SILENCE
            self.silence_out += 1
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = _TIME_BASE
        self._pts += FRAME_SAMPLES
        return frame


def set_jitter_frames(receivers: list[Any], frames: int) -> int:
    """How many complete 20 ms frames aiortc's audio jitter buffer holds before decoding; returns receivers changed.

    aiortc holds 4 (80 ms of latency on every call) and has no setting for it; with 1, a frame is decoded once the
    next one has arrived (aiortc knows a frame is complete only when a packet of the next one comes: 20 ms). With
    0 the buffer is :class:`ArrivalOrderBuffer`: each packet is decoded as it arrives (an audio packet is a whole
    frame), one that comes after its successor is dropped as lost. A lossy mobile network may want 2 or more
    (``IVR_APP_CALL_JITTER_FRAMES``). If aiortc's internals change, nothing is changed and the default stays."""
    changed = 0
    for receiver in receivers:
        buffer: Any = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
        if getattr(receiver, "_RTCRtpReceiver__kind", "") == "audio" and hasattr(buffer, "_prefetch"):
            if frames == 0:
                receiver._RTCRtpReceiver__jitter_buffer = ArrivalOrderBuffer()
            else:
                buffer._prefetch = frames
            changed += 1
    return changed


class ArrivalOrderBuffer:
    """aiortc's jitter buffer's part for audio, holding nothing: each RTP packet (one 20 ms frame) is handed to the
    decoder as it arrives; a packet older than one already handed on comes too late to play and is dropped."""

    def __init__(self) -> None:
        self._next: int | None = None
        self.late = 0
        """Packets dropped for arriving after a later one."""

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """aiortc's ``JitterBuffer.add``: (whether to ask for a picture, never for audio; the frame to decode)."""
        if self._next is not None and uint16_add(packet.sequence_number, -self._next) >= 0x8000:
            self.late += 1
            return False, None
        self._next = uint16_add(packet.sequence_number, 1)
        return False, JitterFrame(data=getattr(packet, "_data", packet.payload), timestamp=packet.timestamp)


class AppAudio:
    """The app's decoded audio (any rate and layout aiortc decodes to) as 20 ms frames of 16 kHz mono."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._pending = b""

    def frames(self, frame: av.AudioFrame) -> list[bytes]:
        for out in self._resampler.resample(frame):
            self._pending += bytes(out.planes[0])[:out.samples * 2]
        cut = len(self._pending) - len(self._pending) % FRAME_BYTES
        chunks = [self._pending[i:i + FRAME_BYTES] for i in range(0, cut, FRAME_BYTES)]
        self._pending = self._pending[cut:]
        return chunks


class Bridge:
    """One app call's AudioSocket connection from Asterisk's channel driver."""

    def __init__(self, call_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.call_id = call_id
        self.reader, self.writer = reader, writer
        self.frames_out = 0
        """Frames of the app's audio sent to Asterisk."""
        self.closed = False

    def send(self, pcm: bytes) -> None:
        """One 20 ms frame of the app's audio to Asterisk. ConnectionError when the socket is gone or stuck."""
        if self.closed:
            raise ConnectionError("the bridge to Asterisk is closed")
        transport = self.writer.transport
        if transport.is_closing():
            raise ConnectionError("Asterisk closed the call's audio socket")
        if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            raise ConnectionError("Asterisk stopped reading the call's audio (5 s unsent)")
        self.writer.write(Frame(_KIND, pcm).encode())
        self.frames_out += 1

    async def relay_to(self, track: AsteriskTrack) -> str:
        """Asterisk's audio into ``track`` until the channel's side ends; returns why it ended."""
        try:
            while True:
                frame = await read_frame(self.reader)
                if frame is None:
                    return "Asterisk closed the call's audio (the call ended in Asterisk)"
                rate = frame.rate
                if rate is not None:
                    if len(frame.payload) % 2 == 0:
                        track.push(frame.payload, rate)
                elif frame.kind == Kind.HANGUP:
                    return "Asterisk hung up the call"
                elif frame.kind == Kind.ERROR:
                    return f"Asterisk reported an AudioSocket error (code {frame.payload.hex() or 'none'})"
                # DTMF (kind 0x03) coming back is the app's own key echoed by a bridge: nothing for the app.
        except ProtocolError as exc:
            return f"the call's audio from Asterisk broke the protocol ({exc})"
        except (ConnectionError, OSError) as exc:
            return f"the call's audio socket failed ({exc})"

    async def close(self) -> None:
        """A hangup frame (Asterisk hangs up the channel) and the socket closed; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self.writer.write(HANGUP_FRAME.encode())
            await asyncio.wait_for(self.writer.drain(), 1.0)
        with contextlib.suppress(ConnectionError, OSError, RuntimeError, TimeoutError):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


class BridgeServer(IssuedSessionServer[Bridge]):
    """Where Asterisk's AudioSocket channel connects for an app call: only UUIDs the gateway issued are accepted."""

    protocol = "AudioSocket (app calls)"

    def expect(self, session_id: uuid.UUID, call_id: str) -> asyncio.Future[Bridge]:
        """The bridge of ``call_id``, once Asterisk connects with ``session_id``."""
        return self._expect(session_id, call_id)

    def accepted(self, session_id: uuid.UUID, call_id: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> Bridge:
        return Bridge(call_id, reader, writer)
