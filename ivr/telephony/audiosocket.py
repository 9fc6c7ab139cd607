"""AudioSocket: Asterisk's raw audio-over-TCP protocol, and the server the controller runs.

Wire format (Asterisk ``res_audiosocket``): every message is a 3-byte header,
kind (1 byte) and payload length (2 bytes, big-endian), then the payload.
Asterisk connects to us, sends the call's UUID first, then 20 ms frames of
8 kHz signed-linear audio and DTMF digits; we send audio back the same way.

Quirks handled here, where the protocol is parsed:
- app_audiosocket ends the session after 2 s without frames in either direction,
  so every session sends a frame every 20 ms: prompt audio, or silence.
- AudioSocket has no authentication: only UUIDs the controller issued for a live
  call are accepted; any other connection is closed at once.
- A peer that sends garbage, an oversized frame or disconnects mid-frame ends
  only its own session, with a logged reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import struct
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from ivr.telephony.tcp import TcpListener

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
#: 20 ms of 8 kHz 16-bit mono: the frame size Asterisk sends and expects.
FRAME_BYTES = 320
FRAME_SECONDS = 0.020
SILENCE_FRAME = bytes(FRAME_BYTES)
HEADER = struct.Struct("!BH")
#: Largest payload we accept: a second of 48 kHz audio is far above anything Asterisk sends.
MAX_PAYLOAD = 16_000


class Kind(enum.IntEnum):
    """Message kinds of the AudioSocket protocol."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


class ProtocolError(Exception):
    """The peer broke the AudioSocket protocol; the session ends."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One AudioSocket message."""

    kind: int
    """Message kind (a :class:`Kind` value, or an unknown one passed through as int)."""
    payload: bytes = b""
    """Payload bytes; its length goes in the header."""

    def encode(self) -> bytes:
        if len(self.payload) > 0xFFFF:
            raise ValueError(f"AudioSocket payload too long: {len(self.payload)} bytes (max 65535)")
        return HEADER.pack(self.kind, len(self.payload)) + self.payload


def uuid_frame(session_id: uuid.UUID) -> Frame:
    return Frame(Kind.UUID, session_id.bytes)


def audio_frame(pcm: bytes) -> Frame:
    return Frame(Kind.AUDIO, pcm)


HANGUP_FRAME = Frame(Kind.HANGUP)


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """Read one message; None on a clean end of stream between messages.

    Raises ProtocolError on a truncated message or a payload over MAX_PAYLOAD.
    """
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(f"connection closed inside a frame header ({len(exc.partial)} of 3 bytes)") from None
    kind, length = HEADER.unpack(header)
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"frame of kind 0x{kind:02x} declares {length} bytes, over the {MAX_PAYLOAD} limit")
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"connection closed inside a frame of kind 0x{kind:02x} ({len(exc.partial)} of {length} bytes)"
        ) from None
    return Frame(kind, payload)


# --- what a session delivers to the call logic (pipecat-style frames) ----------


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """A chunk of the caller's audio."""

    pcm: bytes
    """8 kHz signed-linear 16-bit little-endian mono samples."""


@dataclass(frozen=True, slots=True)
class CallerDtmf:
    """A key the caller pressed (a system frame: it jumps ahead of queued audio)."""

    digit: str
    """One of 0-9, *, #, A-D."""


@dataclass(frozen=True, slots=True)
class CallerGone:
    """The session ended: hangup, error or socket closed (ordered after the audio before it)."""

    reason: str
    """Why, for the call record and the log."""


CallerEvent = CallerAudio | CallerDtmf | CallerGone

_SYSTEM, _MEDIA = 0, 1
_DTMF_DIGITS = frozenset("0123456789*#ABCD")


class Playback:
    """Audio being played to the caller; stop() cuts it (barge-in)."""

    def __init__(self, pcm: bytes) -> None:
        # Pad to whole frames so the last one is not dropped.
        pad = (-len(pcm)) % FRAME_BYTES
        self._pcm = pcm + bytes(pad)
        self._offset = 0
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        """Resolves True when played to the end, False when stopped early."""

    @property
    def seconds(self) -> float:
        return len(self._pcm) / (SAMPLE_RATE * 2)

    @property
    def seconds_played(self) -> float:
        return self._offset / (SAMPLE_RATE * 2)

    def next_frame(self) -> bytes | None:
        if self.done.done():
            return None
        if self._offset >= len(self._pcm):
            self.done.set_result(True)
            return None
        chunk = self._pcm[self._offset : self._offset + FRAME_BYTES]
        self._offset += FRAME_BYTES
        return chunk

    def stop(self) -> None:
        if not self.done.done():
            self.done.set_result(False)


@dataclass(eq=False)
class AudioSession:
    """One call's AudioSocket connection: caller audio in, prompts (or silence) out."""

    session_id: uuid.UUID
    """The UUID the controller issued and Asterisk sent back first."""
    call_id: str
    """The call this session belongs to."""
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    frames_in: int = 0
    """Audio frames received from the caller."""
    frames_out: int = 0
    """Frames sent to the caller (prompt audio and silence)."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _events: asyncio.PriorityQueue[tuple[int, int, CallerEvent]] = field(default_factory=asyncio.PriorityQueue)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _playback: Playback | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    close_reason: str = ""
    """Why the session ended."""

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._receive(), name=f"audiosocket-rx-{self.call_id}")]
        MediaClock.current().add(self)

    # --- caller -> us

    def _put(self, priority: int, event: CallerEvent) -> None:
        self._events.put_nowait((priority, next(self._seq), event))

    async def _receive(self) -> None:
        reason = "socket closed by Asterisk"
        try:
            while True:
                frame = await read_frame(self.reader)
                if frame is None:
                    break
                if frame.kind == Kind.AUDIO:
                    self.frames_in += 1
                    self._put(_MEDIA, CallerAudio(frame.payload))
                elif frame.kind == Kind.DTMF:
                    digit = frame.payload[:1].decode("ascii", "replace").upper()
                    if digit in _DTMF_DIGITS:
                        self._put(_SYSTEM, CallerDtmf(digit))
                    else:
                        log.warning("call %s: ignoring invalid DTMF payload %r", self.call_id, frame.payload)
                elif frame.kind == Kind.HANGUP:
                    reason = "hangup frame from Asterisk"
                    break
                elif frame.kind == Kind.ERROR:
                    code = frame.payload.hex() or "none"
                    reason = f"error frame from Asterisk (code {code})"
                    break
                else:
                    # Newer Asterisk versions add kinds (other sample rates); skip, don't die.
                    log.debug("call %s: skipping AudioSocket kind 0x%02x", self.call_id, frame.kind)
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            log.error("call %s: AudioSocket %s", self.call_id, exc)
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        self._finish(reason)

    # --- us -> caller

    def _send_frame(self) -> None:
        """Send the next 20 ms: prompt audio if one plays, else silence (MediaClock calls this)."""
        if self.closed.is_set():
            return
        pcm = self._playback.next_frame() if self._playback else None
        if pcm is None:
            self._playback = None
            pcm = SILENCE_FRAME
        try:
            self.writer.write(audio_frame(pcm).encode())
        except (ConnectionError, OSError, RuntimeError) as exc:
            self._finish(f"connection error while sending: {exc}")
            return
        self.frames_out += 1

    def play(self, pcm: bytes) -> Playback:
        """Start playing audio, replacing whatever was playing."""
        if self._playback:
            self._playback.stop()
        self._playback = Playback(pcm)
        if self.closed.is_set():
            self._playback.stop()
        return self._playback

    def stop_playback(self) -> None:
        if self._playback:
            self._playback.stop()
            self._playback = None

    @property
    def playing(self) -> bool:
        return self._playback is not None and not self._playback.done.done()

    # --- events for the call logic

    async def next_event(self, timeout: float | None = None) -> CallerEvent | None:
        """The next caller event, system frames first; None on timeout."""
        if not self._events.empty():  # the common case under load: no timer, no task
            return self._events.get_nowait()[2]
        try:
            async with asyncio.timeout(timeout):
                _, _, event = await self._events.get()
        except TimeoutError:
            return None
        return event

    async def events(self) -> AsyncIterator[CallerEvent]:
        while True:
            event = await self.next_event()
            if event is None:
                continue
            yield event
            if isinstance(event, CallerGone):
                return

    def _finish(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        MediaClock.current().discard(self)
        if self._playback:
            self._playback.stop()
        # In order, after the audio already received: a caller who hangs up mid-sentence
        # still has that sentence recognized and recorded.
        self._put(_MEDIA, CallerGone(reason))

    async def close(self, reason: str = "closed by controller") -> None:
        """End the session: a hangup frame lets AudioSocket() return and the dialplan go on."""
        if not self.closed.is_set():
            with contextlib.suppress(ConnectionError, OSError):
                self.writer.write(HANGUP_FRAME.encode())
                await self.writer.drain()
        self._finish(reason)
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(ConnectionError, OSError):
            self.writer.close()
            await self.writer.wait_closed()


class MediaClock:
    """One 20 ms clock for all sessions of an event loop.

    A timer per call would wake the loop 50 times a second per call; one clock wakes it
    50 times a second in all and writes every session's next frame in one pass.
    """

    _clocks: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock]] = (
        weakref.WeakKeyDictionary())

    def __init__(self) -> None:
        self.sessions: dict[AudioSession, None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def current(cls) -> MediaClock:
        loop = asyncio.get_running_loop()
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls()
        return clock

    def add(self, session: AudioSession) -> None:
        self.sessions[session] = None
        session._send_frame()  # the first frame at once: Asterisk counts its 2 s from the connect
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audiosocket-clock")

    def discard(self, session: AudioSession) -> None:
        self.sessions.pop(session, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while self.sessions:
            # Pace by absolute deadlines so timer jitter does not accumulate.
            deadline += FRAME_SECONDS
            delay = deadline - loop.time()
            if delay < -0.2:  # far behind (overload): resync instead of bursting
                deadline, delay = loop.time(), 0.0
            await asyncio.sleep(max(delay, 0.0))
            for session in list(self.sessions):
                session._send_frame()


class AudioSocketServer(TcpListener):
    """Accepts Asterisk's AudioSocket connections for sessions the controller announced."""

    protocol = "AudioSocket"

    def __init__(self, host: str, port: int, uuid_timeout: float = 2.0) -> None:
        super().__init__(host, port)
        self.uuid_timeout = uuid_timeout
        self._expected: dict[uuid.UUID, tuple[str, asyncio.Future[AudioSession]]] = {}
        self.rejected = 0
        """Connections closed because they did not present a UUID we issued."""

    def expect(self, call_id: str) -> tuple[uuid.UUID, asyncio.Future[AudioSession]]:
        """Issue a session UUID for a live call; the future resolves when Asterisk connects."""
        session_id = uuid.uuid4()
        future: asyncio.Future[AudioSession] = asyncio.get_running_loop().create_future()
        self._expected[session_id] = (call_id, future)
        return session_id, future

    def forget(self, session_id: uuid.UUID) -> None:
        entry = self._expected.pop(session_id, None)
        if entry and not entry[1].done():
            entry[1].cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            frame = await asyncio.wait_for(read_frame(reader), self.uuid_timeout)
            if frame is None or frame.kind != Kind.UUID or len(frame.payload) != 16:
                raise ProtocolError(f"first frame must be a 16-byte UUID, got {frame!r:.80}")
            session_id = uuid.UUID(bytes=frame.payload)
            entry = self._expected.pop(session_id, None)
            if entry is None or entry[1].done():
                raise ProtocolError(f"unknown or expired session UUID {session_id}")
        except (ProtocolError, TimeoutError, ConnectionError, OSError) as exc:
            self.rejected += 1
            log.warning("AudioSocket connection from %s rejected: %s", peer, exc or "timed out waiting for UUID")
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
            return
        call_id, future = entry
        session = AudioSession(session_id=session_id, call_id=call_id, reader=reader, writer=writer)
        session.start()
        future.set_result(session)
