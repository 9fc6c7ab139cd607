"""Process-wide access to pyttsx3's espeak-ng driver.

pyttsx3 is not thread safe, and its espeak driver keeps global state inside libespeak-ng
(one synth callback per process, initialised once). Everything here therefore runs behind one
module-level lock and one engine that lives for the whole process.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import tempfile
import threading
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

# A render of a prompt takes ~10 ms; anything near this means the driver lost its callback and
# would spin in its run loop forever.
RUN_TIMEOUT_SECONDS = 30.0


class SynthesisError(RuntimeError):
    """espeak-ng (through pyttsx3) did not produce audio for a text."""


@dataclass(frozen=True)
class Waveform:
    """Mono 16-bit audio as produced by the synthesizer."""

    samples: npt.NDArray[np.int16]
    """The samples, one channel."""
    sample_rate: int
    """Samples per second of `samples`."""


_lock = threading.Lock()
# Held strongly on purpose: pyttsx3 keeps engines in a WeakValueDictionary, and when a dropped
# engine is garbage-collected its driver clears the process-wide espeak callback, after which the
# next runAndWait() of a newer engine never sees the end of synthesis and hangs.
_engine: Any = None
_errors: list[BaseException] = []


def _get_engine() -> Any:
    global _engine
    if _engine is None:
        import pyttsx3  # imported lazily: loading libespeak-ng is only needed when rendering

        _engine = pyttsx3.init("espeak")
        # Driver commands run from a queue that swallows exceptions (e.g. an unknown voice) and
        # only reports them on the "error" topic; collect them so a render can fail loudly.
        _engine.connect("error", _on_error)
        atexit.register(_release_engine)
    return _engine


def _release_engine() -> None:
    # Drop the engine while the interpreter is intact: pyttsx3's DriverProxy.__del__ needs
    # modules that are already torn down when it only runs at interpreter shutdown.
    global _engine
    with _lock:
        _engine = None


def _on_error(name: str | None = None, exception: BaseException | None = None) -> None:
    _errors.append(exception or SynthesisError(f"pyttsx3 reported an error for {name!r}"))


def synthesize(text: str, voice: str, rate: int) -> Waveform:
    """Speak `text` with the espeak-ng `voice` at `rate` words per minute.

    Blocks the calling thread for the duration of the synthesis; calls from several threads are
    serialised.
    """
    if not text.strip():
        # The driver silently skips empty text and writes no file.
        raise ValueError("cannot synthesize empty text")
    with _lock:
        # Seen rarely under load: the driver reports success but the file holds no audio yet. One more
        # try almost always gets it; an empty prompt is never returned (it would be cached as silence).
        for attempt in (1, 2, 3):
            wave = _synthesize_once(text, voice, rate)
            if len(wave.samples):
                return wave
            logger.warning("espeak-ng gave an empty rendering of %r (voice %s), try %d of 3", text, voice, attempt)
        raise SynthesisError(f"espeak-ng produced no audio for {text!r} (voice {voice!r}) three times")


def _synthesize_once(text: str, voice: str, rate: int) -> Waveform:
    engine = _get_engine()
    fd, wav_path = tempfile.mkstemp(prefix="tts-", suffix=".wav")
    os.close(fd)
    try:
        os.unlink(wav_path)  # the driver creates the file; its absence then means failure
        _errors.clear()
        engine.setProperty("voice", voice)
        engine.setProperty("rate", rate)
        engine.save_to_file(text, wav_path)
        _run(engine)
        if _errors:
            raise SynthesisError(f"espeak-ng failed for voice {voice!r}: {_errors[0]}") from _errors[0]
        if not os.path.exists(wav_path):
            # The same race, one step earlier: the driver's loop ended before it wrote the file (its "Audio saved"
            # came after). Counts as an empty try (seen in the suite: a caller's reprompt failed the call).
            return Waveform(samples=np.zeros(0, dtype=np.int16), sample_rate=22050)
        try:
            return _read_wav(wav_path)
        except (wave.Error, EOFError):  # a header not yet complete: counts as an empty try
            return Waveform(samples=np.zeros(0, dtype=np.int16), sample_rate=22050)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(wav_path)


def _run(engine: Any) -> None:
    # The espeak driver print()s "Audio saved to ..." for every file; keep that out of a server's
    # stdout. This swaps sys.stdout process-wide for the ~10 ms of a render, an accepted cost.
    watchdog = threading.Timer(RUN_TIMEOUT_SECONDS, _break_loop, args=(engine,))
    watchdog.daemon = True
    captured = io.StringIO()
    watchdog.start()
    try:
        with contextlib.redirect_stdout(captured):
            engine.runAndWait()
    finally:
        watchdog.cancel()
    if captured.getvalue():
        logger.debug("pyttsx3: %s", captured.getvalue().strip())


def _break_loop(engine: Any) -> None:
    logger.error("pyttsx3 run loop did not finish in %.0f s; breaking it", RUN_TIMEOUT_SECONDS)
    with contextlib.suppress(RuntimeError):
        engine.endLoop()


def _read_wav(path: str) -> Waveform:
    with wave.open(path, "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise SynthesisError(
                f"unexpected WAV format from espeak-ng: {wav.getnchannels()} channel(s), "
                f"{8 * wav.getsampwidth()} bit"
            )
        frames = wav.readframes(wav.getnframes())
        rate = wav.getframerate()
    return Waveform(samples=np.frombuffer(frames, dtype="<i2").astype(np.int16), sample_rate=rate)
