"""aiortc's audio encoding and decoding run on the event loop, not handed to a thread per frame.

aiortc (1.16) encodes every outgoing frame through ``loop.run_in_executor`` and decodes every incoming one on a
thread of its own per receiver (a ``queue.Queue`` in, ``run_coroutine_threadsafe`` out). For video that keeps a
10 ms encode off the loop; for audio the codec's own work is small (Opus: ~0.4 ms to encode, ~0.1 ms to decode a
20 ms frame; G.722 and G.711 less), and the hand-offs cost more than the work: profiling a gateway carrying 8
calls (py-spy) put ~45 % of its samples in ``ThreadPoolExecutor.submit``, ``Condition.wait/notify`` and the
worker threads, and with two threads per call fighting for the GIL the frames came late (the "bad frames" of the
benchmark). Done inline, each frame costs its codec's time and nothing more, on the one thread.

Both are aiortc internals (name-mangled attributes), patched per peer connection like the jitter buffer's depth
(``bridge.set_jitter_frames``): if aiortc changes them, nothing is changed and aiortc's threads carry on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from aiortc.codecs import get_decoder

log = logging.getLogger(__name__)


class _InlineExecutorLoop:
    """The sender's event loop, except that ``run_in_executor`` (only used for the encoder) runs the call here."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        try:
            future.set_result(func(*args))
        except Exception as exc:  # the encoder's error goes where aiortc expects it: out of the await
            future.set_exception(exc)
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


class _InlineDecoderQueue:
    """Stands in for the receiver's decoder queue: each encoded frame put is decoded at once and its audio handed
    to the track; only the end (``None``) goes through to aiortc's decoder thread, which then ends the track."""

    def __init__(self, receiver: Any, error: threading.Event) -> None:
        self._receiver = receiver
        self._error = error
        self._end: queue.Queue[None] = queue.Queue()
        self._decoder: Any = None
        self._codec_name: str | None = None

    def put(self, task: tuple[Any, Any] | None) -> None:
        if task is None:
            self._end.put(None)
            return
        codec, encoded_frame = task
        if codec.name != self._codec_name:
            self._decoder, self._codec_name = get_decoder(codec), codec.name
        try:
            frames = self._decoder.decode(encoded_frame)
        except Exception as exc:  # as aiortc does: keep the decoder's state, note the error, go on (and never let
            # a bad frame escape into aiortc's RTP loop, which would end the connection)
            log.warning("app call audio: a %s frame failed to decode (%s)", codec.name, exc)
            self._error.set()
            return
        track = self._receiver._track
        for frame in frames:
            track._queue.put_nowait(frame)

    def get(self) -> None:
        return self._end.get()


def inline_audio_coding(senders: list[Any], receivers: list[Any]) -> int:
    """Make the audio senders encode and the audio receivers decode on the event loop; returns how many were
    changed. Call after ``setRemoteDescription`` (the transceivers exist) and before the connection starts."""
    changed = 0
    for sender in senders:
        if getattr(sender, "kind", "") == "audio" and isinstance(getattr(sender, "_RTCRtpSender__loop", None),
                                                                   asyncio.AbstractEventLoop):
            sender._RTCRtpSender__loop = _InlineExecutorLoop(sender._RTCRtpSender__loop)
            changed += 1
    for receiver in receivers:
        error = getattr(receiver, "_RTCRtpReceiver__decoder_error", None)
        if (getattr(receiver, "_RTCRtpReceiver__kind", "") == "audio"
                and isinstance(getattr(receiver, "_RTCRtpReceiver__decoder_queue", None), queue.Queue)
                and isinstance(error, threading.Event)
                and getattr(receiver, "_RTCRtpReceiver__decoder_thread", "absent") is None):
            receiver._RTCRtpReceiver__decoder_queue = _InlineDecoderQueue(receiver, error)
            changed += 1
    return changed
