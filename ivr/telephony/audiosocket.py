"""AudioSocket: Asterisk's raw audio-over-TCP protocol, and the server the controller runs.

Wire format (Asterisk ``res_audiosocket``): every message is a 3-byte header,
kind (1 byte) and payload length (2 bytes, big-endian), then the payload.
Asterisk connects to us, sends the call's UUID first, then 20 ms frames of
signed-linear audio and DTMF digits; we send audio back the same way.

Audio kinds and rates (``include/asterisk/res_audiosocket.h``, Asterisk 22.10.1): 0x10 slin 8 kHz,
0x11 12 kHz, 0x12 16 kHz, 0x13 24 kHz, 0x14 32 kHz, 0x15 44.1 kHz, 0x16 48 kHz, 0x17 96 kHz,
0x18 192 kHz; all 16-bit signed little-endian mono. What Asterisk 22.10.1 really does (measured on
the wire with a scratch Asterisk, 2026-11-24): the ``AudioSocket()`` application always forces slin
and sends 0x10, even on a wideband channel; the channel driver,
``Dial(AudioSocket/host:port/uuid/c(slin16))``, sends 0x12 frames of 640 bytes; without ``c(...)``
it sends the caller's own codec (e.g. 160-byte mu-law frames) labelled 0x10, so the codec must
always be forced. Asterisk accepts every audio kind back and transcodes to the channel's format.

Quirks handled here, where the protocol is parsed:
- app_audiosocket ends the session after 2 s without frames in either direction,
  so every session sends a frame every 20 ms: prompt audio, or silence.
- AudioSocket has no authentication: only UUIDs the controller issued for a live
  call are accepted; any other connection is closed at once.
- A peer that sends garbage, an oversized frame or disconnects mid-frame ends
  only its own session, with a logged reason.
- Every audio event carries its sample rate: a channel may change format mid-call
  (a transfer from a wideband to a narrowband leg), and a misconfigured trunk may
  deliver 48 kHz; the consumer resamples or re-creates its recognizer.
- An audio frame whose length is not whole 16-bit samples is dropped with a logged
  error (it would shift every later sample by a byte); a stream of them ends the
  session. Unknown kinds are refused (dropped, logged as errors once per kind).
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
from typing import ClassVar, Generic, TypeVar

from ivr import metrics
from ivr.telephony.tcp import TcpListener

log = logging.getLogger(__name__)
T = TypeVar("T")

SAMPLE_RATE = 8000
"""The narrowband rate: what ``AudioSocket()`` always sends, and the default of everything here."""
SAMPLE_WIDTH = 2
"""Bytes per sample of every audio kind: 16-bit signed little-endian mono."""
#: 20 ms of 8 kHz 16-bit mono: the frame size Asterisk sends and expects.
FRAME_BYTES = 320
FRAME_SECONDS = 0.020
SILENCE_FRAME = bytes(FRAME_BYTES)
HEADER = struct.Struct("!BH")
#: Largest payload we accept: 20 ms at 192 kHz is 7680 bytes; a second of 8 kHz audio is 16000.
MAX_PAYLOAD = 16_000
#: Consecutive malformed audio frames after which the session ends (a second of 20 ms frames).
MAX_BAD_AUDIO_FRAMES = 50
#: Keys waiting unread (the call logic reads none while it only speaks) beyond which more keys are dropped: a card
#: number and its expiry typed ahead fit; a stuck key, a dialler or a fax machine sending hundreds does not grow
#: the call's memory and does not answer the next ten questions by itself.
MAX_PENDING_DTMF = 32


class Kind(enum.IntEnum):
    """Message kinds of the AudioSocket protocol (``enum ast_audiosocket_msg_kind``)."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    """Signed linear 8 kHz (``slin``); the only kind ``AudioSocket()`` sends."""
    AUDIO_SLIN12 = 0x11
    AUDIO_SLIN16 = 0x12
    AUDIO_SLIN24 = 0x13
    AUDIO_SLIN32 = 0x14
    AUDIO_SLIN44 = 0x15
    AUDIO_SLIN48 = 0x16
    AUDIO_SLIN96 = 0x17
    AUDIO_SLIN192 = 0x18
    ERROR = 0xFF

    @property
    def is_audio(self) -> bool:
        return self in AUDIO_RATES

    @property
    def rate(self) -> int:
        """Sample rate of an audio kind; ValueError for a kind that carries no audio."""
        try:
            return AUDIO_RATES[self]
        except KeyError:
            raise ValueError(f"AudioSocket kind {self.name} (0x{self.value:02x}) carries no audio") from None

    @classmethod
    def for_rate(cls, rate: int) -> Kind:
        """The audio kind of signed linear audio at `rate`; ValueError for a rate the protocol lacks."""
        try:
            return _KIND_FOR_RATE[rate]
        except KeyError:
            known = ", ".join(str(r) for r in _KIND_FOR_RATE)
            raise ValueError(f"AudioSocket has no audio kind for {rate} Hz (rates: {known})") from None


AUDIO_RATES: dict[int, int] = {
    Kind.AUDIO: 8000,
    Kind.AUDIO_SLIN12: 12000,
    Kind.AUDIO_SLIN16: 16000,
    Kind.AUDIO_SLIN24: 24000,
    Kind.AUDIO_SLIN32: 32000,
    Kind.AUDIO_SLIN44: 44100,
    Kind.AUDIO_SLIN48: 48000,
    Kind.AUDIO_SLIN96: 96000,
    Kind.AUDIO_SLIN192: 192000,
}
"""Sample rate of each audio kind, as res_audiosocket maps kinds to slin formats."""
_KIND_FOR_RATE: dict[int, Kind] = {rate: Kind(kind) for kind, rate in AUDIO_RATES.items()}


def _known(kind: int) -> bool:
    return kind in Kind._value2member_map_


#: Channel formats that carry more than the telephone band: a caller on one is heard at 16 kHz.
WIDEBAND_FORMATS = frozenset({"g722", "opus", "siren7", "siren14", "speex16", "speex32", "silk16", "silk24",
                              "slin16", "slin24", "slin32", "slin44", "slin48", "slin96", "slin192", "g719"})


def dial_format(native_formats: str, wideband: bool = True) -> str:
    """The signed-linear format to ask ``Dial(AudioSocket/.../c(<format>))`` for, given the caller's
    ``CHANNEL(audionativeformat)`` (Asterisk prints it as ``(g722)`` or ``(ulaw|alaw)``).

    "slin16" (kind 0x12, what the 16 kHz model wants) when any native format is wideband and
    ``wideband`` is on; "slin" (0x10, 8 kHz) otherwise. Never the caller's own codec: without
    ``c(...)`` the channel driver labels raw mu-law frames 0x10.
    """
    names = {name.strip().lower() for name in native_formats.strip().strip("()").split("|") if name.strip()}
    return "slin16" if wideband and names & WIDEBAND_FORMATS else "slin"


def frame_bytes(rate: int) -> int:
    """Bytes of 20 ms of 16-bit mono audio at `rate` (320 at 8 kHz, 640 at 16 kHz, 1764 at 44.1 kHz)."""
    Kind.for_rate(rate)  # only the protocol's rates
    return rate // 50 * SAMPLE_WIDTH


class ProtocolError(Exception):
    """The peer broke the AudioSocket protocol; the session ends."""


class FrameError(ValueError):
    """One frame is malformed (its kind and length disagree, or its kind is unknown); it is dropped."""


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

    @property
    def rate(self) -> int | None:
        """Sample rate of an audio frame; None for any other kind (known or not)."""
        return AUDIO_RATES.get(self.kind)

    def audio(self) -> tuple[bytes, int]:
        """The PCM and sample rate of an audio frame.

        FrameError when the kind carries no audio (naming an unknown kind as such), or when the
        length is not whole 16-bit samples (odd-length PCM: the kind and the length disagree).
        """
        rate = self.rate
        if rate is None:
            if _known(self.kind):
                raise FrameError(f"AudioSocket kind {Kind(self.kind).name} (0x{self.kind:02x}) carries no audio")
            raise FrameError(f"unknown AudioSocket kind 0x{self.kind:02x} ({len(self.payload)} bytes)")
        if len(self.payload) % SAMPLE_WIDTH:
            raise FrameError(
                f"AudioSocket kind 0x{self.kind:02x} ({rate} Hz 16-bit PCM) with {len(self.payload)} bytes:"
                f" not a whole number of {SAMPLE_WIDTH}-byte samples"
            )
        return self.payload, rate


def uuid_frame(session_id: uuid.UUID) -> Frame:
    return Frame(Kind.UUID, session_id.bytes)


def audio_frame(pcm: bytes, rate: int = SAMPLE_RATE) -> Frame:
    """A frame of signed linear audio at `rate` (0x10 at 8 kHz, 0x12 at 16 kHz, ...)."""
    return Frame(Kind.for_rate(rate), pcm)


HANGUP_FRAME = Frame(Kind.HANGUP)
_SILENCE = Frame(Kind.AUDIO, SILENCE_FRAME)


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
    """Signed-linear 16-bit little-endian mono samples at `rate`."""
    rate: int = SAMPLE_RATE
    """Sample rate of `pcm`: 8000 for narrowband (0x10), 16000 for wideband (0x12), or whatever
    other rate the channel delivers (48000 from a misconfigured trunk). It may change mid-call."""

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (SAMPLE_WIDTH * self.rate)


@dataclass(frozen=True, slots=True)
class CallerDtmf:
    """A key the caller pressed (a system frame: it jumps ahead of queued audio)."""

    digit: str
    """One of 0-9, *, #, A-D."""


class SessionEnd(enum.StrEnum):
    """How an AudioSocket session ended: what the call logic decides on (the reason text is for people)."""

    HANGUP = "hangup"
    """Asterisk sent a hangup frame: the channel hung up."""
    PEER_CLOSED = "peer_closed"
    """Asterisk closed the socket between frames (the channel went away without a hangup frame)."""
    ASTERISK_ERROR = "asterisk_error"
    """Asterisk sent an error frame."""
    PROTOCOL_ERROR = "protocol_error"
    """The peer broke the protocol (a truncated or oversized frame, a run of malformed audio)."""
    CONNECTION_ERROR = "connection_error"
    """The socket failed while reading or writing."""
    BY_CONTROLLER = "by_controller"
    """We closed it (the navigation is over, a transfer, shutdown)."""

    @property
    def caller_left(self) -> bool:
        """The caller's side ended the session, not us and not a fault."""
        return self in (SessionEnd.HANGUP, SessionEnd.PEER_CLOSED)


@dataclass(frozen=True, slots=True)
class CallerGone:
    """The session ended: hangup, error or socket closed (ordered after the audio before it)."""

    reason: str
    """Why, for the call record and the log."""
    end: SessionEnd
    """How it ended, for decisions."""


CallerEvent = CallerAudio | CallerDtmf | CallerGone

_SYSTEM, _MEDIA = 0, 1
_DTMF_DIGITS = frozenset("0123456789*#ABCD")


class Playback:
    """Audio being played to the caller; stop() cuts it (barge-in)."""

    def __init__(self, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
        self.rate = rate
        """Sample rate of the audio; its frames go out with the kind of that rate."""
        self.kind = Kind.for_rate(rate)
        self.frame_bytes = frame_bytes(rate)
        # Pad to whole frames so the last one is not dropped.
        pad = (-len(pcm)) % self.frame_bytes
        self._pcm = pcm + bytes(pad)
        self._offset = 0
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        """Resolves True when played to the end, False when stopped early."""

    @property
    def seconds(self) -> float:
        return len(self._pcm) / (self.rate * SAMPLE_WIDTH)

    @property
    def seconds_played(self) -> float:
        return self._offset / (self.rate * SAMPLE_WIDTH)

    def next_frame(self) -> bytes | None:
        if self.done.done():
            return None
        if self._offset >= len(self._pcm):
            self.done.set_result(True)
            return None
        chunk = self._pcm[self._offset : self._offset + self.frame_bytes]
        self._offset += self.frame_bytes
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
    rate_known: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the first audio frame: from then on ``rate`` is the caller's, not the 8 kHz default."""
    frames_out: int = 0
    """Frames sent to the caller (prompt audio and silence)."""
    rate: int = SAMPLE_RATE
    """Sample rate of the caller's audio: 8000 until an audio frame says otherwise, then the rate of
    the latest audio frame (it changes when the channel's format does). Silence goes out at it."""
    frames_by_rate: dict[int, int] = field(default_factory=dict)
    """Audio frames received per sample rate: the call record's "heard at" (several after a change)."""
    bad_frames: int = 0
    """Frames refused: audio whose length is not whole samples, or kinds this protocol lacks."""
    dtmf_dropped: int = 0
    """Keys dropped because MAX_PENDING_DTMF were already waiting unread."""
    _pending_dtmf: int = 0
    _bad_run: int = 0
    _unknown_kinds: set[int] = field(default_factory=set)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _events: asyncio.PriorityQueue[tuple[int, int, CallerEvent]] = field(default_factory=asyncio.PriorityQueue)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _playback: Playback | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    close_reason: str = ""
    """Why the session ended, for people."""
    end: SessionEnd | None = None
    """How the session ended (None while it is open)."""

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._receive(), name=f"audiosocket-rx-{self.call_id}")]
        MediaClock.current().add(self)

    # --- caller -> us

    def _put(self, priority: int, event: CallerEvent) -> None:
        self._events.put_nowait((priority, next(self._seq), event))

    async def _receive(self) -> None:
        reason, end = "socket closed by Asterisk", SessionEnd.PEER_CLOSED
        try:
            while True:
                frame = await read_frame(self.reader)
                if frame is None:
                    break
                if frame.kind in AUDIO_RATES:
                    self._receive_audio(frame)
                elif frame.kind == Kind.DTMF:
                    digit = frame.payload[:1].decode("ascii", "replace").upper()
                    if digit in _DTMF_DIGITS:
                        self._receive_dtmf(digit)
                    else:
                        log.warning("call %s: ignoring invalid DTMF payload %r", self.call_id, frame.payload)
                elif frame.kind == Kind.HANGUP:
                    reason, end = "hangup frame from Asterisk", SessionEnd.HANGUP
                    break
                elif frame.kind == Kind.ERROR:
                    code = frame.payload.hex() or "none"
                    reason, end = f"error frame from Asterisk (code {code})", SessionEnd.ASTERISK_ERROR
                    break
                else:
                    # A kind the protocol lacks (or one Asterisk never sends, like UUID mid-call):
                    # refused, named in the log once per kind, and the call goes on.
                    self.bad_frames += 1
                    if frame.kind not in self._unknown_kinds:
                        self._unknown_kinds.add(frame.kind)
                        name = Kind(frame.kind).name if _known(frame.kind) else "unknown"
                        log.error("call %s: refusing AudioSocket frame of %s kind 0x%02x (%d bytes)",
                                  self.call_id, name, frame.kind, len(frame.payload))
        except ProtocolError as exc:
            reason, end = f"protocol error: {exc}", SessionEnd.PROTOCOL_ERROR
            metrics.error(metrics.ErrorKind.AUDIOSOCKET_PROTOCOL)
            log.error("call %s: AudioSocket %s", self.call_id, exc)
        except (ConnectionError, OSError) as exc:
            reason, end = f"connection error: {exc}", SessionEnd.CONNECTION_ERROR
        self._finish(reason, end)

    def _receive_dtmf(self, digit: str) -> None:
        if self._pending_dtmf >= MAX_PENDING_DTMF:
            if not self.dtmf_dropped:  # once per call; the count when the session ends
                log.warning("call %s: %d keys waiting unread (a stuck key, a dialler?): dropping further keys until"
                            " the call logic reads them; the call goes on", self.call_id, self._pending_dtmf)
            self.dtmf_dropped += 1
            return
        self._pending_dtmf += 1
        self._put(_SYSTEM, CallerDtmf(digit))

    def _receive_audio(self, frame: Frame) -> None:
        try:
            pcm, rate = frame.audio()
        except FrameError as exc:
            self.bad_frames += 1
            self._bad_run += 1
            log.error("call %s: dropping AudioSocket frame: %s", self.call_id, exc)
            if self._bad_run >= MAX_BAD_AUDIO_FRAMES:
                raise ProtocolError(f"{self._bad_run} malformed audio frames in a row, last: {exc}") from None
            return
        self._bad_run = 0
        if rate != self.rate:
            # The first wideband frame, a transfer to another leg, or a misconfigured trunk: the
            # consumer sees the new rate on the event and resamples or re-creates its recognizer.
            log.info("call %s: caller audio now at %d Hz (was %d Hz)", self.call_id, rate, self.rate)
            self.rate = rate
        self.frames_in += 1
        self.rate_known.set()
        self.frames_by_rate[rate] = self.frames_by_rate.get(rate, 0) + 1
        self._put(_MEDIA, CallerAudio(pcm, rate))

    # --- us -> caller

    def _send_frame(self) -> None:
        """Send the next 20 ms: prompt audio if one plays, else silence (MediaClock calls this)."""
        if self.closed.is_set():
            return
        pcm = self._playback.next_frame() if self._playback else None
        if pcm is not None:
            assert self._playback is not None
            frame = Frame(self._playback.kind, pcm)
        else:
            self._playback = None
            frame = self._silence()
        try:
            self.writer.write(frame.encode())
        except (ConnectionError, OSError, RuntimeError) as exc:
            self._finish(f"connection error while sending: {exc}", SessionEnd.CONNECTION_ERROR)
            return
        self.frames_out += 1

    def _silence(self) -> Frame:
        if self.rate == SAMPLE_RATE:
            return _SILENCE
        try:
            return Frame(Kind.for_rate(self.rate), bytes(frame_bytes(self.rate)))
        except ValueError:
            return _SILENCE

    def play(self, pcm: bytes, rate: int = SAMPLE_RATE) -> Playback:
        """Start playing `pcm` (16-bit mono at `rate`), replacing whatever was playing.

        The frames go out with the kind of `rate` (0x10 for 8000, 0x12 for 16000): Asterisk accepts
        every audio kind and transcodes to the channel's format. Play wideband callers 16 kHz prompts
        (``rate=session.rate``); an 8 kHz prompt still plays right on a wideband channel.
        ValueError for a rate AudioSocket has no kind for.
        """
        playback = Playback(pcm, rate)
        if self._playback:
            self._playback.stop()
        self._playback = playback
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
            return self._taken(self._events.get_nowait()[2])
        try:
            async with asyncio.timeout(timeout):
                _, _, event = await self._events.get()
        except TimeoutError:
            return None
        return self._taken(event)

    def _taken(self, event: CallerEvent) -> CallerEvent:
        if isinstance(event, CallerDtmf):
            self._pending_dtmf -= 1
        return event

    async def events(self) -> AsyncIterator[CallerEvent]:
        while True:
            event = await self.next_event()
            if event is None:
                continue
            yield event
            if isinstance(event, CallerGone):
                return

    def _finish(self, reason: str, end: SessionEnd) -> None:
        if self.closed.is_set():
            return
        self.close_reason, self.end = reason, end
        self.closed.set()
        if self.dtmf_dropped:
            log.warning("call %s: %d keys were dropped in all (over %d waiting unread)", self.call_id,
                        self.dtmf_dropped, MAX_PENDING_DTMF)
        MediaClock.current().discard(self)
        if self._playback:
            self._playback.stop()
        # In order, after the audio already received: a caller who hangs up mid-sentence
        # still has that sentence recognized and recorded.
        self._put(_MEDIA, CallerGone(reason, end))

    async def close(self, reason: str = "closed by controller") -> None:
        """End the session: a hangup frame lets AudioSocket() return and the dialplan go on."""
        if not self.closed.is_set():
            with contextlib.suppress(ConnectionError, OSError):
                self.writer.write(HANGUP_FRAME.encode())
                await self.writer.drain()
        self._finish(reason, SessionEnd.BY_CONTROLLER)
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
        if session not in self.sessions:
            metrics.AUDIOSOCKET_SESSIONS.inc()
        self.sessions[session] = None
        session._send_frame()  # the first frame at once: Asterisk counts its 2 s from the connect
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audiosocket-clock")

    def discard(self, session: AudioSession) -> None:
        if session in self.sessions:
            metrics.AUDIOSOCKET_SESSIONS.dec()
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


class IssuedSessionServer(TcpListener, Generic[T]):
    """An AudioSocket listener that accepts only connections naming a UUID this side issued for a live call
    (AudioSocket has no authentication), and makes each accepted connection a ``T`` (``accepted``).

    The controller's server (an ``AudioSession`` per call) and the app-call gateway's (a ``Bridge``) differ only
    in what a connection becomes."""

    rejected_kind: ClassVar[metrics.ErrorKind | None] = None
    """The error counted when a connection is refused (None: not counted)."""

    def __init__(self, host: str, port: int, uuid_timeout: float = 2.0) -> None:
        super().__init__(host, port)
        self.uuid_timeout = uuid_timeout
        self._expected: dict[uuid.UUID, tuple[str, asyncio.Future[T]]] = {}
        self.rejected = 0
        """Connections closed because they did not present a UUID this side issued."""

    def _expect(self, session_id: uuid.UUID, call_id: str) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._expected[session_id] = (call_id, future)
        return future

    def forget(self, session_id: uuid.UUID) -> None:
        entry = self._expected.pop(session_id, None)
        if entry and not entry[1].done():
            entry[1].cancel()

    def accepted(self, session_id: uuid.UUID, call_id: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> T:
        raise NotImplementedError

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
            if self.rejected_kind is not None:
                metrics.error(self.rejected_kind)
            log.warning("%s connection from %s rejected: %s", self.protocol, peer, exc or "timed out waiting for UUID")
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
            return
        call_id, future = entry
        future.set_result(self.accepted(session_id, call_id, reader, writer))


class AudioSocketServer(IssuedSessionServer[AudioSession]):
    """Accepts Asterisk's AudioSocket connections for sessions the controller announced."""

    protocol = "AudioSocket"
    while_busy = "calls cannot be heard: each goes to a person (AudioSocket did not connect)"
    rejected_kind = metrics.ErrorKind.AUDIOSOCKET_REJECTED

    def expect(self, call_id: str) -> tuple[uuid.UUID, asyncio.Future[AudioSession]]:
        """Issue a session UUID for a live call; the future resolves when Asterisk connects."""
        session_id = uuid.uuid4()
        return session_id, self._expect(session_id, call_id)

    def accepted(self, session_id: uuid.UUID, call_id: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> AudioSession:
        session = AudioSession(session_id=session_id, call_id=call_id, reader=reader, writer=writer)
        session.start()
        return session
