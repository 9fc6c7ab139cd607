"""A caller who sends hundreds of keys: the session keeps a bounded number waiting, says so once, and goes on."""

from __future__ import annotations

import logging

import pytest

from ivr.telephony.audiosocket import MAX_PENDING_DTMF, CallerAudio, CallerDtmf, Frame, Kind, audio_frame
from tests.unit.telephony.test_audiosocket import TIMEOUT, connected_session, wait_until


async def test_500_keys_unread_keep_a_bounded_queue_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ivr.telephony.audiosocket")
    async with connected_session("call-keys") as (session, _reader, writer):
        keys = "1234567890*#" * 42  # 504 keys
        writer.write(b"".join(Frame(Kind.DTMF, k.encode()).encode() for k in keys[:500]))
        writer.write(audio_frame(bytes([3]) * 320).encode())
        await writer.drain()
        await wait_until(lambda: session.frames_in == 1)  # the audio after the keys arrived: all were read

        assert session.dtmf_dropped == 500 - MAX_PENDING_DTMF
        assert session._events.qsize() == MAX_PENDING_DTMF + 1
        flood = [r for r in caplog.records if "keys waiting unread" in r.getMessage()]
        assert len(flood) == 1 and "call-keys" in flood[0].getMessage()
        assert f"{MAX_PENDING_DTMF} keys waiting unread" in flood[0].getMessage()
        # The first keys, in order, then the audio: nothing else of the call was lost.
        events = [await session.next_event(TIMEOUT) for _ in range(MAX_PENDING_DTMF + 1)]
        assert events == [*(CallerDtmf(k) for k in keys[:MAX_PENDING_DTMF]), CallerAudio(bytes([3]) * 320)]
        assert not session.closed.is_set()

        # Keys read: new keys are taken again.
        writer.write(Frame(Kind.DTMF, b"5").encode())
        await writer.drain()
        assert await session.next_event(TIMEOUT) == CallerDtmf("5")
        assert session.dtmf_dropped == 500 - MAX_PENDING_DTMF
    ended = [r.getMessage() for r in caplog.records if "keys were dropped in all" in r.getMessage()]
    assert ended == [f"call call-keys: {500 - MAX_PENDING_DTMF} keys were dropped in all"
                     f" (over {MAX_PENDING_DTMF} waiting unread)"]


async def test_keys_read_as_they_come_are_never_dropped() -> None:
    async with connected_session() as (session, _reader, writer):
        for key in "0123456789" * 10:
            writer.write(Frame(Kind.DTMF, key.encode()).encode())
            await writer.drain()
            assert await session.next_event(TIMEOUT) == CallerDtmf(key)
        assert session.dtmf_dropped == 0
