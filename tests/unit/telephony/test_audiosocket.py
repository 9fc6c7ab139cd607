"""AudioSocket wire format, framing errors, the accepting server and a live session (loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.telephony.audiosocket import (
    AUDIO_RATES,
    FRAME_BYTES,
    HANGUP_FRAME,
    HEADER,
    MAX_BAD_AUDIO_FRAMES,
    MAX_PAYLOAD,
    SILENCE_FRAME,
    AudioSession,
    AudioSocketServer,
    CallerAudio,
    CallerDtmf,
    CallerGone,
    Frame,
    FrameError,
    Kind,
    Playback,
    ProtocolError,
    SessionEnd,
    audio_frame,
    dial_format,
    frame_bytes,
    read_frame,
    uuid_frame,
)

FIXED_UUID = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
SILENCE_WIRE = b"\x10\x01\x40" + bytes(320)
TIMEOUT = 2.0


def reader_with(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


# --- Frame.encode: exact bytes ---------------------------------------------------


def test_uuid_frame_encodes_kind_length_and_16_uuid_bytes() -> None:
    assert uuid_frame(FIXED_UUID).encode() == (
        b"\x01\x00\x10" + b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0"
    )


def test_hangup_frame_is_three_zero_bytes() -> None:
    assert HANGUP_FRAME.encode() == b"\x00\x00\x00"
    assert Frame(Kind.HANGUP).encode() == b"\x00\x00\x00"


def test_audio_frame_header_for_320_bytes() -> None:
    pcm = bytes(range(256)) + bytes(range(64))
    wire = audio_frame(pcm).encode()
    assert wire[:3] == b"\x10\x01\x40"
    assert wire[3:] == pcm
    assert len(wire) == 323


def test_dtmf_and_error_frames() -> None:
    assert Frame(Kind.DTMF, b"5").encode() == b"\x03\x00\x015"
    assert Frame(Kind.ERROR, b"\x01").encode() == b"\xff\x00\x01\x01"


def test_silence_frame_wire_bytes() -> None:
    assert audio_frame(SILENCE_FRAME).encode() == SILENCE_WIRE


def test_largest_payload_encodes_and_one_more_byte_raises() -> None:
    assert Frame(Kind.AUDIO, bytes(0xFFFF)).encode()[:3] == b"\x10\xff\xff"
    with pytest.raises(ValueError, match=r"65536 bytes \(max 65535\)"):
        Frame(Kind.AUDIO, bytes(0x10000)).encode()


# --- read_frame: framing and truncation ---------------------------------------------


async def test_read_frame_clean_eof_returns_none() -> None:
    assert await read_frame(reader_with(b"")) is None


async def test_read_frame_reads_consecutive_frames_then_none() -> None:
    reader = reader_with(b"\x03\x00\x01" + b"7" + b"\x00\x00\x00" + SILENCE_WIRE)
    assert await read_frame(reader) == Frame(Kind.DTMF, b"7")
    assert await read_frame(reader) == Frame(Kind.HANGUP, b"")
    assert await read_frame(reader) == Frame(Kind.AUDIO, SILENCE_FRAME)
    assert await read_frame(reader) is None


@pytest.mark.parametrize("partial", [b"\x10", b"\x10\x01"])
async def test_read_frame_eof_inside_header(partial: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        await read_frame(reader_with(partial))
    assert str(info.value) == f"connection closed inside a frame header ({len(partial)} of 3 bytes)"


async def test_read_frame_eof_inside_payload_names_kind_and_counts() -> None:
    with pytest.raises(ProtocolError) as info:
        await read_frame(reader_with(b"\x10\x01\x40" + bytes(100)))
    assert str(info.value) == "connection closed inside a frame of kind 0x10 (100 of 320 bytes)"


async def test_read_frame_eof_right_after_header() -> None:
    with pytest.raises(ProtocolError, match=r"kind 0x03 \(0 of 1 bytes\)"):
        await read_frame(reader_with(b"\x03\x00\x01"))


async def test_read_frame_oversized_length_rejected_before_reading_payload() -> None:
    # Only the header is available: the error must come from the length check, not from EOF.
    reader = reader_with(b"\x10\x3e\x81", eof=False)  # 0x3e81 = 16001
    with pytest.raises(ProtocolError) as info:
        await asyncio.wait_for(read_frame(reader), TIMEOUT)
    assert str(info.value) == "frame of kind 0x10 declares 16001 bytes, over the 16000 limit"


async def test_read_frame_accepts_exactly_max_payload() -> None:
    payload = bytes([7]) * MAX_PAYLOAD
    frame = await read_frame(reader_with(Frame(Kind.AUDIO, payload).encode()))
    assert frame == Frame(Kind.AUDIO, payload)


async def test_read_frame_passes_unknown_kinds_through() -> None:
    assert await read_frame(reader_with(b"\x12\x00\x02ab")) == Frame(0x12, b"ab")


@settings(max_examples=60, deadline=None)
@given(kind=st.integers(0, 255), payload=st.binary(max_size=2000))
def test_encode_then_read_round_trips(kind: int, payload: bytes) -> None:
    async def go() -> tuple[Frame | None, Frame | None]:
        reader = reader_with(Frame(kind, payload).encode())
        return await read_frame(reader), await read_frame(reader)

    first, second = asyncio.run(go())
    assert first == Frame(kind, payload)
    assert second is None


# --- Playback ---------------------------------------------------------------------


async def test_playback_pads_last_frame_and_resolves_true() -> None:
    pcm = bytes([1]) * 330
    playback = Playback(pcm)
    assert playback.seconds == 640 / 16000
    assert playback.next_frame() == bytes([1]) * 320
    assert playback.next_frame() == bytes([1]) * 10 + bytes(310)
    assert playback.seconds_played == 640 / 16000
    assert not playback.done.done()
    assert playback.next_frame() is None
    assert playback.done.result() is True
    playback.stop()  # too late to change the result
    assert playback.done.result() is True


async def test_playback_stop_resolves_false_and_ends_frames() -> None:
    playback = Playback(bytes([2]) * 960)
    assert playback.next_frame() == bytes([2]) * 320
    playback.stop()
    assert playback.done.result() is False
    assert playback.next_frame() is None
    assert playback.seconds_played == 320 / 16000


# --- server and live sessions over loopback ------------------------------------------


@contextlib.asynccontextmanager
async def running_server(uuid_timeout: float = 1.0) -> AsyncIterator[tuple[AudioSocketServer, int]]:
    server = AudioSocketServer("127.0.0.1", 0, uuid_timeout=uuid_timeout)
    await server.start()
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def connected_session(
    call_id: str = "call-1",
) -> AsyncIterator[tuple[AudioSession, asyncio.StreamReader, asyncio.StreamWriter]]:
    async with running_server() as (server, port):
        session_id, future = server.expect(call_id)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(uuid_frame(session_id).encode())
        await writer.drain()
        session = await asyncio.wait_for(future, TIMEOUT)
        try:
            yield session, reader, writer
        finally:
            await session.close()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def wait_until(predicate: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def expect_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionResetError:
        return b""


async def test_expected_uuid_resolves_future_with_session() -> None:
    async with connected_session("call-42") as (session, reader, _writer):
        assert isinstance(session, AudioSession)
        assert session.call_id == "call-42"
        first = await asyncio.wait_for(reader.readexactly(323), TIMEOUT)
        assert first == SILENCE_WIRE


async def test_session_id_matches_issued_uuid() -> None:
    async with running_server() as (server, port):
        session_id, future = server.expect("c")
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(uuid_frame(session_id).encode())
        session = await asyncio.wait_for(future, TIMEOUT)
        assert session.session_id == session_id
        assert server.rejected == 0
        await session.close()
        writer.close()


async def test_unknown_uuid_is_rejected_and_closed() -> None:
    async with running_server() as (server, port):
        _issued, future = server.expect("call-1")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(uuid_frame(FIXED_UUID).encode())
        await writer.drain()
        assert await expect_closed(reader) == b""
        assert server.rejected == 1
        assert not future.done()
        writer.close()


async def test_uuid_is_single_use() -> None:
    async with running_server() as (server, port):
        session_id, future = server.expect("call-1")
        _r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(uuid_frame(session_id).encode())
        session = await asyncio.wait_for(future, TIMEOUT)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(uuid_frame(session_id).encode())
        assert await expect_closed(r2) == b""
        assert server.rejected == 1
        await session.close()
        w1.close()
        w2.close()


async def test_forgotten_uuid_is_cancelled_and_rejected() -> None:
    async with running_server() as (server, port):
        session_id, future = server.expect("call-1")
        server.forget(session_id)
        assert future.cancelled()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(uuid_frame(session_id).encode())
        assert await expect_closed(reader) == b""
        assert server.rejected == 1
        writer.close()


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(SILENCE_WIRE, id="audio-first"),
        pytest.param(b"\x01\x00\x04abcd", id="short-uuid"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http"),
        pytest.param(b"\x01\x00", id="truncated-header"),
    ],
)
async def test_garbage_first_frame_is_rejected(garbage: bytes) -> None:
    async with running_server() as (server, port):
        _issued, future = server.expect("call-1")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(garbage)
        await writer.drain()
        if garbage == b"\x01\x00":
            writer.write_eof()
        assert await expect_closed(reader) == b""
        assert server.rejected == 1
        assert not future.done()
        writer.close()


async def test_silent_connection_rejected_after_uuid_timeout() -> None:
    async with running_server(uuid_timeout=0.1) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await expect_closed(reader) == b""
        assert server.rejected == 1
        writer.close()


async def test_caller_audio_frames_become_events() -> None:
    async with connected_session() as (session, _reader, writer):
        chunks = [bytes([n]) * 320 for n in (1, 2, 3)]
        for chunk in chunks:
            writer.write(audio_frame(chunk).encode())
        await writer.drain()
        events = [await session.next_event(TIMEOUT) for _ in chunks]
        assert events == [CallerAudio(c) for c in chunks]
        assert session.frames_in == 3


async def test_dtmf_jumps_ahead_of_queued_audio() -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(audio_frame(bytes([1]) * 320).encode() + audio_frame(bytes([2]) * 320).encode())
        writer.write(Frame(Kind.DTMF, b"7").encode() + Frame(Kind.DTMF, b"#").encode())
        await writer.drain()
        await wait_until(lambda: session._events.qsize() == 4)
        events = [await session.next_event(TIMEOUT) for _ in range(4)]
        assert events == [
            CallerDtmf("7"),
            CallerDtmf("#"),
            CallerAudio(bytes([1]) * 320),
            CallerAudio(bytes([2]) * 320),
        ]


async def test_invalid_dtmf_ignored_lowercase_letter_uppercased_unknown_kind_skipped() -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(Frame(Kind.DTMF, b"x").encode())
        writer.write(Frame(Kind.DTMF, b"").encode())
        writer.write(Frame(0x20, bytes(640)).encode())  # no such kind in the protocol
        writer.write(Frame(Kind.DTMF, b"a").encode())
        writer.write(audio_frame(bytes([9]) * 320).encode())
        await writer.drain()
        assert await session.next_event(TIMEOUT) == CallerDtmf("A")
        assert await session.next_event(TIMEOUT) == CallerAudio(bytes([9]) * 320)
        assert await session.next_event(0.05) is None
        assert session.frames_in == 1
        assert session.bad_frames == 1


async def test_next_event_times_out_with_none() -> None:
    async with connected_session() as (session, _reader, _writer):
        assert await session.next_event(0.02) is None


@pytest.mark.parametrize(
    ("wire", "reason", "end"),
    [
        (b"\x00\x00\x00", "hangup frame from Asterisk", SessionEnd.HANGUP),
        (b"\xff\x00\x01\x02", "error frame from Asterisk (code 02)", SessionEnd.ASTERISK_ERROR),
        (b"\xff\x00\x00", "error frame from Asterisk (code none)", SessionEnd.ASTERISK_ERROR),
    ],
)
async def test_hangup_and_error_frames_end_the_session(wire: bytes, reason: str, end: SessionEnd) -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(wire)
        await writer.drain()
        assert await session.next_event(TIMEOUT) == CallerGone(reason, end)
        assert session.close_reason == reason and session.end is end
        assert session.end.caller_left is (end is SessionEnd.HANGUP)
        assert session.closed.is_set()


async def test_peer_disconnect_mid_frame_is_protocol_error() -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(b"\x10\x01\x40" + bytes(10))
        await writer.drain()
        writer.write_eof()  # FIN, as a peer that reads what it is sent closes (no RST)
        event = await session.next_event(TIMEOUT)
        assert isinstance(event, CallerGone)
        assert event.reason == (
            "protocol error: connection closed inside a frame of kind 0x10 (10 of 320 bytes)"
        )
        assert "protocol error" in session.close_reason
        assert event.end is SessionEnd.PROTOCOL_ERROR and not event.end.caller_left


async def test_peer_clean_close_between_frames() -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(audio_frame(bytes([5]) * 320).encode())
        await writer.drain()
        writer.write_eof()
        # The departure comes after the audio received before it: a caller who hangs up
        # mid-sentence still has that sentence recognized.
        await wait_until(lambda: session._events.qsize() == 2)
        assert await session.next_event(TIMEOUT) == CallerAudio(bytes([5]) * 320)
        assert await session.next_event(TIMEOUT) == CallerGone("socket closed by Asterisk", SessionEnd.PEER_CLOSED)
        assert session.closed.is_set()


async def test_oversized_frame_from_peer_ends_session() -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(b"\x10\xff\xff")
        await writer.drain()
        event = await session.next_event(TIMEOUT)
        assert event == CallerGone(
            "protocol error: frame of kind 0x10 declares 65535 bytes, over the 16000 limit", SessionEnd.PROTOCOL_ERROR
        )


async def test_events_iterator_stops_after_caller_gone() -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(Frame(Kind.DTMF, b"1").encode() + b"\x00\x00\x00")
        await writer.drain()
        seen = [event async for event in session.events()]
        assert seen == [CallerDtmf("1"), CallerGone("hangup frame from Asterisk", SessionEnd.HANGUP)]


async def test_idle_session_sends_silence_every_20_ms() -> None:
    async with connected_session() as (session, reader, _writer):
        await asyncio.wait_for(reader.readexactly(323), TIMEOUT)
        loop = asyncio.get_running_loop()
        start = loop.time()
        frames = [await asyncio.wait_for(reader.readexactly(323), TIMEOUT) for _ in range(10)]
        elapsed = loop.time() - start
        assert frames == [SILENCE_WIRE] * 10
        # Ten frames are 200 ms of audio; allow for timer granularity on a busy machine.
        assert 0.15 <= elapsed <= 0.6, elapsed
        assert session.frames_out >= 11


async def read_until_not_silence(reader: asyncio.StreamReader) -> bytes:
    for _ in range(100):
        frame = await asyncio.wait_for(reader.readexactly(323), TIMEOUT)
        assert frame[:3] == b"\x10\x01\x40"
        if frame != SILENCE_WIRE:
            return frame
    raise AssertionError("no audio sent")


async def test_play_sends_padded_pcm_then_silence_and_resolves_true() -> None:
    pcm = bytes((i % 255) + 1 for i in range(500))
    async with connected_session() as (session, reader, _writer):
        playback = session.play(pcm)
        assert session.playing
        assert playback.seconds == 640 / 16000
        first = await read_until_not_silence(reader)
        second = await asyncio.wait_for(reader.readexactly(323), TIMEOUT)
        third = await asyncio.wait_for(reader.readexactly(323), TIMEOUT)
        assert first == b"\x10\x01\x40" + pcm[:320]
        assert second == b"\x10\x01\x40" + pcm[320:] + bytes(140)
        assert third == SILENCE_WIRE
        assert await asyncio.wait_for(playback.done, TIMEOUT) is True
        assert not session.playing


async def test_stop_playback_resolves_false_and_returns_to_silence() -> None:
    pcm = bytes([3]) * (FRAME_BYTES * 100)  # two seconds
    async with connected_session() as (session, reader, _writer):
        playback = session.play(pcm)
        assert await read_until_not_silence(reader) == b"\x10\x01\x40" + bytes([3]) * 320
        session.stop_playback()
        assert await asyncio.wait_for(playback.done, TIMEOUT) is False
        assert playback.seconds_played < playback.seconds
        # At most one frame may already be in flight; after that only silence.
        frames = [await asyncio.wait_for(reader.readexactly(323), TIMEOUT) for _ in range(4)]
        assert frames[1:] == [SILENCE_WIRE] * 3


async def test_play_replaces_current_playback() -> None:
    async with connected_session() as (session, _reader, _writer):
        first = session.play(bytes([1]) * 3200)
        second = session.play(bytes([2]) * 320)
        assert first.done.result() is False
        assert await asyncio.wait_for(second.done, TIMEOUT) is True


async def test_close_sends_hangup_frame_and_reports_caller_gone() -> None:
    async with connected_session() as (session, reader, _writer):
        await session.close("transfer to agent")
        frames = []
        while (frame := await asyncio.wait_for(read_frame(reader), TIMEOUT)) is not None:
            frames.append(frame)
        assert frames[-1] == Frame(Kind.HANGUP, b"")
        assert frames[:-1] == [Frame(Kind.AUDIO, SILENCE_FRAME)] * (len(frames) - 1)
        assert await session.next_event(TIMEOUT) == CallerGone("transfer to agent", SessionEnd.BY_CONTROLLER)
        assert session.close_reason == "transfer to agent" and session.end is SessionEnd.BY_CONTROLLER
        late = session.play(bytes([1]) * 320)
        assert late.done.result() is False


async def test_peer_reset_is_connection_error() -> None:
    async with connected_session() as (session, _reader, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # linger 0: the kernel sends RST
        event = await session.next_event(TIMEOUT)
        assert isinstance(event, CallerGone)
        assert event.reason.startswith("connection error: "), event.reason


# --- every audio kind of the protocol (res_audiosocket.h, Asterisk 22.10.1) ----------------------

# kind, rate, header of a 20 ms frame: kind byte, then the big-endian payload length.
AUDIO_KINDS = [
    (Kind.AUDIO, 8000, b"\x10\x01\x40"),  # 320 bytes
    (Kind.AUDIO_SLIN12, 12000, b"\x11\x01\xe0"),  # 480
    (Kind.AUDIO_SLIN16, 16000, b"\x12\x02\x80"),  # 640: what Dial(AudioSocket/.../c(slin16)) sends
    (Kind.AUDIO_SLIN24, 24000, b"\x13\x03\xc0"),  # 960
    (Kind.AUDIO_SLIN32, 32000, b"\x14\x05\x00"),  # 1280
    (Kind.AUDIO_SLIN44, 44100, b"\x15\x06\xe4"),  # 1764
    (Kind.AUDIO_SLIN48, 48000, b"\x16\x07\x80"),  # 1920
    (Kind.AUDIO_SLIN96, 96000, b"\x17\x0f\x00"),  # 3840
    (Kind.AUDIO_SLIN192, 192000, b"\x18\x1e\x00"),  # 7680
]


def test_kind_values_match_asterisk() -> None:
    assert [int(kind) for kind, _, _ in AUDIO_KINDS] == list(range(0x10, 0x19))
    assert AUDIO_RATES == {int(kind): rate for kind, rate, _ in AUDIO_KINDS}
    assert (Kind.HANGUP, Kind.UUID, Kind.DTMF, Kind.ERROR) == (0x00, 0x01, 0x03, 0xFF)


@pytest.mark.parametrize(("kind", "rate", "header"), AUDIO_KINDS, ids=[str(r) for _, r, _ in AUDIO_KINDS])
def test_audio_frame_of_each_rate_encodes_exact_bytes(kind: Kind, rate: int, header: bytes) -> None:
    pcm = bytes(range(256)) * (frame_bytes(rate) // 256) + bytes(range(frame_bytes(rate) % 256))
    assert len(pcm) == frame_bytes(rate) == rate // 50 * 2
    wire = audio_frame(pcm, rate).encode()
    assert wire == header + pcm
    assert Kind.for_rate(rate) is kind
    assert kind.rate == rate
    assert kind.is_audio


@pytest.mark.parametrize(("kind", "rate", "header"), AUDIO_KINDS, ids=[str(r) for _, r, _ in AUDIO_KINDS])
async def test_audio_frame_of_each_rate_decodes_to_pcm_and_rate(kind: Kind, rate: int, header: bytes) -> None:
    pcm = bytes([7, 1]) * (rate // 50)  # 20 ms
    frame = await read_frame(reader_with(header + pcm))
    assert frame == Frame(kind, pcm)
    assert frame.rate == rate
    assert frame.audio() == (pcm, rate)


def test_default_audio_frame_is_still_8khz() -> None:
    assert audio_frame(bytes(320)).encode() == SILENCE_WIRE
    assert audio_frame(bytes(640), 16000).encode() == b"\x12\x02\x80" + bytes(640)  # kind by the rate given


@pytest.mark.parametrize("rate", [11025, 22050, 0, -8000])
def test_rate_without_a_kind_is_refused(rate: int) -> None:
    with pytest.raises(ValueError, match=rf"no audio kind for {rate} Hz"):
        Kind.for_rate(rate)
    with pytest.raises(ValueError, match="no audio kind"):
        audio_frame(bytes(320), rate)


@pytest.mark.parametrize("kind", [Kind.HANGUP, Kind.UUID, Kind.DTMF, Kind.ERROR])
def test_control_kinds_carry_no_rate(kind: Kind) -> None:
    assert not kind.is_audio
    assert Frame(kind, b"1").rate is None
    with pytest.raises(ValueError, match=rf"{kind.name} \(0x{int(kind):02x}\) carries no audio"):
        _ = kind.rate
    with pytest.raises(FrameError, match="carries no audio"):
        Frame(kind, b"1").audio()


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x10\x00\x01\x00", "kind 0x10 (8000 Hz 16-bit PCM) with 1 bytes: not a whole number of 2-byte samples"),
        (b"\x12\x02\x7f" + bytes(639), "kind 0x12 (16000 Hz 16-bit PCM) with 639 bytes"),
        (b"\x16\x07\x7f" + bytes(1919), "kind 0x16 (48000 Hz 16-bit PCM) with 1919 bytes"),
        (b"\x02\x00\x06" + bytes(6), "unknown AudioSocket kind 0x02 (6 bytes)"),
        (b"\x19\x02\x80" + bytes(640), "unknown AudioSocket kind 0x19 (640 bytes)"),
    ],
)
async def test_kind_and_length_that_disagree_are_a_frame_error(wire: bytes, message: str) -> None:
    frame = await read_frame(reader_with(wire))
    assert frame is not None
    with pytest.raises(FrameError, match=re.escape(message)):
        frame.audio()


def test_frame_error_is_a_value_error_not_a_protocol_error() -> None:
    # One bad frame is dropped; only a broken stream (ProtocolError) ends a session.
    assert issubclass(FrameError, ValueError)
    assert not issubclass(FrameError, ProtocolError)


async def test_playback_at_16khz_uses_640_byte_frames() -> None:
    playback = Playback(bytes([1]) * 700, 16000)
    assert (playback.rate, playback.kind, playback.frame_bytes) == (16000, Kind.AUDIO_SLIN16, 640)
    assert playback.seconds == 1280 / 32000
    assert playback.next_frame() == bytes([1]) * 640
    assert playback.next_frame() == bytes([1]) * 60 + bytes(580)
    assert playback.next_frame() is None
    assert playback.done.result() is True


async def test_playback_refuses_a_rate_without_a_kind() -> None:
    with pytest.raises(ValueError, match="22050 Hz"):
        Playback(bytes(100), 22050)


# --- wideband sessions ----------------------------------------------------------------------


WB_SILENCE_WIRE = b"\x12\x02\x80" + bytes(640)


async def test_wideband_audio_becomes_16khz_events_and_silence_follows_the_rate() -> None:
    async with connected_session() as (session, reader, writer):
        assert await asyncio.wait_for(reader.readexactly(323), TIMEOUT) == SILENCE_WIRE
        assert session.rate == 8000
        chunks = [bytes([n, 0]) * 320 for n in (1, 2)]
        for chunk in chunks:
            writer.write(audio_frame(chunk, 16000).encode())
        await writer.drain()
        events = [await session.next_event(TIMEOUT) for _ in chunks]
        assert events == [CallerAudio(c, 16000) for c in chunks]
        assert events[0].seconds == 0.02  # type: ignore[union-attr]
        assert session.rate == 16000
        assert session.frames_by_rate == {16000: 2}
        # From now on the idle frames Asterisk needs every 20 ms are wideband silence.
        for _ in range(10):
            header = await asyncio.wait_for(reader.readexactly(3), TIMEOUT)
            payload = await asyncio.wait_for(reader.readexactly(HEADER.unpack(header)[1]), TIMEOUT)
            if header == b"\x12\x02\x80":
                assert header + payload == WB_SILENCE_WIRE
                break
        else:
            raise AssertionError("silence did not follow the caller's rate")


async def test_mid_call_rate_change_is_on_the_events() -> None:
    # A transfer from a wideband to a narrowband leg, then a misconfigured 48 kHz trunk.
    async with connected_session() as (session, _reader, writer):
        writer.write(audio_frame(bytes([1, 0]) * 320, 16000).encode())
        writer.write(audio_frame(bytes([2, 0]) * 160, 8000).encode())
        writer.write(Frame(Kind.AUDIO_SLIN48, bytes([3, 0]) * 960).encode())
        await writer.drain()
        events = [await session.next_event(TIMEOUT) for _ in range(3)]
        assert [(e.rate, len(e.pcm)) for e in events] == [(16000, 640), (8000, 320), (48000, 1920)]  # type: ignore[union-attr]
        assert session.rate == 48000
        assert session.frames_by_rate == {16000: 1, 8000: 1, 48000: 1}
        assert session.frames_in == 3


async def test_odd_length_audio_is_dropped_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(b"\x12\x02\x7f" + bytes(639))  # a 0x12 frame one byte short
        writer.write(audio_frame(bytes([4, 0]) * 320, 16000).encode())
        await writer.drain()
        assert await session.next_event(TIMEOUT) == CallerAudio(bytes([4, 0]) * 320, 16000)
        assert session.bad_frames == 1
        assert session.frames_in == 1
        assert not session.closed.is_set()
        assert "dropping AudioSocket frame: AudioSocket kind 0x12 (16000 Hz 16-bit PCM) with 639 bytes" in caplog.text


async def test_a_stream_of_malformed_audio_ends_the_session() -> None:
    async with connected_session() as (session, _reader, writer):
        writer.write(b"\x10\x00\x01\x00" * MAX_BAD_AUDIO_FRAMES)
        await writer.drain()
        event = await session.next_event(TIMEOUT)
        assert event == CallerGone(
            f"protocol error: {MAX_BAD_AUDIO_FRAMES} malformed audio frames in a row, last: AudioSocket kind 0x10"
            " (8000 Hz 16-bit PCM) with 1 bytes: not a whole number of 2-byte samples",
            SessionEnd.PROTOCOL_ERROR,
        )
        assert session.bad_frames == MAX_BAD_AUDIO_FRAMES


async def test_unknown_kinds_are_refused_and_logged_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    async with connected_session() as (session, _reader, writer):
        for _ in range(3):
            writer.write(Frame(0x02, bytes(6)).encode())  # a fork's DTMF start/stop kind
        writer.write(Frame(Kind.UUID, FIXED_UUID.bytes).encode())  # a second UUID mid-call
        writer.write(audio_frame(bytes([5, 0]) * 160).encode())
        await writer.drain()
        assert await session.next_event(TIMEOUT) == CallerAudio(bytes([5, 0]) * 160)
        assert session.bad_frames == 4
        refused = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
        assert refused == [
            "call call-1: refusing AudioSocket frame of unknown kind 0x02 (6 bytes)",
            "call call-1: refusing AudioSocket frame of UUID kind 0x01 (16 bytes)",
        ]


async def test_play_at_16khz_sends_0x12_frames_then_silence() -> None:
    pcm = bytes((i % 255) + 1 for i in range(1000))
    async with connected_session() as (session, reader, _writer):
        playback = session.play(pcm, rate=16000)
        assert playback.seconds == 1280 / 32000
        frames = []
        while len(frames) < 3:
            frame = await asyncio.wait_for(read_frame(reader), TIMEOUT)
            assert frame is not None
            if frame.kind == Kind.AUDIO_SLIN16 or frames:
                frames.append(frame.encode())
        assert frames[0] == b"\x12\x02\x80" + pcm[:640]
        assert frames[1] == b"\x12\x02\x80" + pcm[640:] + bytes(280)
        assert frames[2] == SILENCE_WIRE  # the caller has said nothing yet: the session rate is 8 kHz
        assert await asyncio.wait_for(playback.done, TIMEOUT) is True


async def test_play_with_a_rate_without_a_kind_keeps_the_current_prompt() -> None:
    async with connected_session() as (session, _reader, _writer):
        current = session.play(bytes([1]) * 32000)
        with pytest.raises(ValueError, match="22050"):
            session.play(bytes(100), rate=22050)
        assert session.playing and not current.done.done()


@pytest.mark.parametrize(("native", "wideband", "expected"), [
    ("(g722)", True, "slin16"),
    ("(opus)", True, "slin16"),
    ("(slin16)", True, "slin16"),
    ("(ulaw|g722)", True, "slin16"),
    ("(ulaw)", True, "slin"),
    ("(alaw|ulaw)", True, "slin"),
    ("slin", True, "slin"),
    ("", True, "slin"),  # unknown: the telephone band is always right
    ("(g722)", False, "slin"),  # wideband switched off
])
def test_dial_format_hears_wideband_legs_at_16k(native: str, wideband: bool, expected: str) -> None:
    assert dial_format(native, wideband) == expected
