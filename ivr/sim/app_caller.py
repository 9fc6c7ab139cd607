"""A simulated bank app calling the hotline over WebRTC: a second aiortc peer, as the tests and the bench use it.

It does what the app does: a peer connection with a microphone track and a ``control`` data channel, an offer
POSTed to ``/api/app-calls`` with the customer's token (WHIP-style), the answer applied. Its microphone plays
what it is told to say (silence otherwise, as a real microphone sends), and everything it hears is kept at 16 kHz
with its arrival time, so a test can measure energy, find a click, or recognize a prompt.

``vanish()`` is a phone losing its network: the ICE sockets close without a word (no DTLS close, no DELETE).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import json
import time
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
import soxr
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ivr.webrtc.bridge import answered_codec, opus_encoder, set_jitter_frames
from ivr.webrtc.coding import inline_audio_coding

RATE = 48_000
"""The microphone's rate (Opus' own)."""
HEAR_RATE = 16_000
"""What is kept of what the app hears."""
_FRAME = RATE // 50


class Microphone(MediaStreamTrack):
    """The app's microphone: queued speech, else silence, in 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: collections.deque[tuple[np.ndarray, asyncio.Future[float], bool]] = collections.deque()
        self._current: tuple[np.ndarray, asyncio.Future[float], bool] | None = None
        self._offset = 0
        self._pts = 0
        self._start: float | None = None
        self.marks: list[float] = []
        """Wall times (time.time) at which each ``mark=True`` sound's first frame left the microphone."""
        self._opus: Any = None
        self._opus_pts = 0

    def encode_opus(self) -> None:
        """Hand aiortc Opus packets encoded here, mono (as the gateway does, ``AsteriskTrack.encode_opus``): a real
        app encodes in C, and the simulated one must not take the cores the gateway is measured on."""
        self._opus = opus_encoder(RATE)

    async def recv(self) -> av.AudioFrame | av.Packet:
        if self._opus is None:
            return await self._next_frame()
        while True:
            packets = self._opus.encode(await self._next_frame())
            if packets:
                packet = packets[-1]
                packet.pts, packet.time_base = self._opus_pts, fractions.Fraction(1, RATE)
                self._opus_pts += _FRAME
                return packet

    def say(self, pcm: bytes, rate: int, mark: bool = False) -> asyncio.Future[float]:
        """Queue 16-bit mono ``pcm`` at ``rate``; the future resolves (wall time) when it has been sent."""
        samples = np.frombuffer(pcm, dtype="<i2")
        if rate != RATE:
            samples = soxr.resample(samples, rate, RATE).astype("<i2")
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.append((samples, future, mark))
        return future

    async def _next_frame(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._pts / RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = np.zeros(_FRAME, dtype="<i2")
        filled = 0
        while filled < _FRAME:
            if self._current is None:
                if not self._queue:
                    break
                self._current, self._offset = self._queue.popleft(), 0
                if self._current[2]:
                    self.marks.append(time.time())
            samples, future, _ = self._current
            take = min(_FRAME - filled, len(samples) - self._offset)
            chunk[filled:filled + take] = samples[self._offset:self._offset + take]
            filled += take
            self._offset += take
            if self._offset >= len(samples):
                if not future.done():
                    future.set_result(time.time())
                self._current = None
        frame = av.AudioFrame(format="s16", layout="mono", samples=_FRAME)
        frame.planes[0].update(chunk.tobytes())
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += _FRAME
        return frame


@dataclass
class Heard:
    """What the app heard: 16 kHz mono chunks with the wall time each arrived."""

    chunks: list[tuple[float, bytes]] = field(default_factory=list)

    def energy_after(self, since: float, threshold: float = 300.0) -> float | None:
        """The wall time of the first 20 ms after ``since`` whose RMS is over ``threshold``; None if none."""
        for at, pcm in self.chunks:
            if at >= since and rms(pcm) > threshold:
                return at
        return None

    def pcm(self, since: float = 0.0) -> bytes:
        return b"".join(pcm for at, pcm in self.chunks if at >= since)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0


class AppCaller:
    """One simulated app call."""

    def __init__(self, base_url: str, token: str, screen: str | None = None, jitter_frames: int | None = None,
                 codec: str | None = None) -> None:
        """``codec`` (``opus``, ``G722``, ``PCMU``, ``PCMA``): the only one offered; None offers aiortc's own list
        (Opus first, as a browser does)."""
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.screen = screen
        self.jitter_frames = jitter_frames
        self.pc = RTCPeerConnection()
        self.microphone = Microphone()
        transceiver = self.pc.addTransceiver(self.microphone, direction="sendrecv")
        if codec is not None:
            chosen = [c for c in RTCRtpSender.getCapabilities("audio").codecs
                      if c.mimeType.lower() == f"audio/{codec}".lower()]
            if not chosen:
                raise ValueError(f"aiortc has no audio codec {codec!r}")
            transceiver.setCodecPreferences(chosen)
        self.control = self.pc.createDataChannel("control")
        self.messages: list[dict[str, Any]] = []
        """What the gateway said on the data channel (``state``, ``ended``, ``error``)."""
        self.heard = Heard()
        self.call_id: str | None = None
        self.offered_at = 0.0
        """Wall time the offer was POSTed."""
        self.answered_at = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self.connected = asyncio.Event()

        @self.control.on("message")
        def on_message(message: str | bytes) -> None:
            with contextlib.suppress(ValueError):
                self.messages.append(json.loads(message))

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._hear(track)))

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def offer_sdp(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def post(self, sdp: str, client: httpx.AsyncClient | None = None) -> httpx.Response:
        params = {"screen": self.screen} if self.screen else None
        self.offered_at = time.time()
        async with _client(client) as http:
            return await http.post(f"{self.base_url}/api/app-calls", content=sdp, params=params,
                                   headers={**self.headers, "Content-Type": "application/sdp"})

    async def call(self, client: httpx.AsyncClient | None = None, connect_timeout: float = 10.0) -> httpx.Response:
        """Offer, apply the answer, wait for ICE/DTLS; returns the 201 (anything else is returned as it came)."""
        response = await self.post(await self.offer_sdp(), client)
        if response.status_code != 201:
            return response
        self.answered_at = time.time()
        self.call_id = response.headers["location"].rsplit("/", 1)[-1]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        if self.jitter_frames is not None:  # an app with a low-latency receiver (aiortc's own default is 4 frames)
            set_jitter_frames(self.pc.getReceivers(), self.jitter_frames)
        # A real app codes in C; the simulated one must not eat the cores the gateway is measured on.
        inline_audio_coding(self.pc.getSenders(), self.pc.getReceivers())
        if answered_codec(response.text) == "opus":
            self.microphone.encode_opus()
        await asyncio.wait_for(self.connected.wait(), connect_timeout)
        return response

    def say(self, pcm: bytes, rate: int, mark: bool = False) -> asyncio.Future[float]:
        return self.microphone.say(pcm, rate, mark)

    def press(self, digits: str) -> None:
        """Keys over the data channel."""
        self.control.send(json.dumps({"type": "dtmf", "digits": digits}))

    async def hang_up(self, client: httpx.AsyncClient | None = None) -> httpx.Response:
        async with _client(client) as http:
            return await http.delete(f"{self.base_url}/api/app-calls/{self.call_id}", headers=self.headers)

    async def status(self, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
        async with _client(client) as http:
            response = await http.get(f"{self.base_url}/api/app-calls/{self.call_id}", headers=self.headers)
            response.raise_for_status()
            return dict(response.json())

    async def vanish(self) -> None:
        """The phone loses its network: every ICE socket closes at once, nothing is said to the gateway."""
        transports = {t.sender.transport.transport for t in self.pc.getTransceivers() if t.sender.transport}
        sctp = self.pc.sctp
        if sctp is not None:
            transports.add(sctp.transport.transport)
        for transport in transports:
            with contextlib.suppress(Exception):
                await transport._connection.close()  # aioice: sockets closed, no STUN, no DTLS close_notify

    def ended_message(self) -> dict[str, Any] | None:
        return next((m for m in self.messages if m.get("type") == "ended"), None)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.microphone.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)

    async def _hear(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=HEAR_RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            at = time.time()
            for out in resampler.resample(frame):
                self.heard.chunks.append((at, bytes(out.planes[0])[:out.samples * 2]))


@contextlib.asynccontextmanager
async def _client(client: httpx.AsyncClient | None):  # type: ignore[no-untyped-def]
    if client is not None:
        yield client
    else:
        async with httpx.AsyncClient(timeout=10.0) as own:
            yield own
