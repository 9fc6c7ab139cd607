"""What the agent said in a call's recording, with word times: Vosk free dictation (no grammar, the model's whole
vocabulary) over the agent's stretches of the recording's agent channel.

Part 2's recordings are stereo WAV (``ivr.recordings.library``: the caller left, what the caller hears right:
the IVR's prompts, then the agent). Only the agent's segments of the call's timeline are transcribed, so the IVR's
own prompts are never checked and the CPU goes to the agent's talk. A mono recording (an older mixed one) is
transcribed whole within the same segments, caller included; the result says so (``source``).

Free dictation costs about 0.5 CPU-s per audio second (docs: /work/shared/NOTES.md; measured by ``make bench``,
bench/qa.py): this runs in the quality worker's process, never in the controller.
"""

from __future__ import annotations

import io
import json
import threading
import time
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ivr.recordings.quality.checks import TimedWord

__all__ = ["AgentAudio", "Transcriber", "VoskTranscriber", "agent_audio", "agent_spans", "transcribe_agent"]

CHUNK_S = 0.2
"""Audio fed to Vosk at a time."""


class Transcriber(Protocol):
    """Free dictation of 16-bit mono PCM; word times from the start of ``pcm``."""

    def transcribe(self, pcm: bytes, rate: int) -> list[TimedWord]: ...


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """The agent's side of a recording."""

    pcm: bytes
    """16-bit mono PCM of the whole call on the agent's channel (or the mix)."""
    rate: int
    spans: tuple[tuple[float, float], ...]
    """The agent's stretches (seconds from the start of the recording) to transcribe."""
    source: str
    """"agent channel" (stereo, right) or "mono mix" (the caller's voice is in it too)."""

    @property
    def audio_s(self) -> float:
        return sum(end - start for start, end in self.spans)


def agent_spans(timeline: Mapping[str, Any], duration_s: float, answered: bool) -> tuple[tuple[float, float], ...]:
    """The agent segments of a timeline (``ivr.recordings.timeline``), clipped to the recording; an answered call
    whose timeline has none (an older entry) is the whole recording; an unanswered one has nothing to check."""
    spans = []
    for segment in timeline.get("segments") or []:
        if segment.get("kind") != "agent":
            continue
        start, end = max(0.0, float(segment["start_s"])), min(duration_s, float(segment["end_s"]))
        if end > start:
            spans.append((start, end))
    if not spans and answered and duration_s > 0:
        spans.append((0.0, duration_s))
    return tuple(sorted(spans))


def agent_audio(wav: bytes, spans: Sequence[tuple[float, float]]) -> AgentAudio:
    """The agent's channel of a WAV recording (ValueError: not a 16-bit WAV)."""
    try:
        with wave.open(io.BytesIO(wav), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV recording: {exc}") from None
    if width != 2 or channels not in (1, 2) or rate < 1000:
        raise ValueError(f"a 16-bit mono or stereo WAV, not {channels} channels of {8 * width} bits at {rate} Hz")
    if channels == 2:
        samples = np.frombuffer(frames[: len(frames) - len(frames) % 4], dtype="<i2").reshape(-1, 2)
        return AgentAudio(np.ascontiguousarray(samples[:, 1]).tobytes(), rate, tuple(spans), "agent channel")
    return AgentAudio(frames[: len(frames) - len(frames) % 2], rate, tuple(spans), "mono mix")


def transcribe_agent(audio: AgentAudio, transcriber: Transcriber) -> list[TimedWord]:
    """Every span transcribed, word times moved to the call's clock."""
    words: list[TimedWord] = []
    for start, end in audio.spans:
        first, last = int(start * audio.rate) * 2, int(end * audio.rate) * 2
        piece = audio.pcm[first:last]
        if len(piece) < audio.rate // 10 * 2:  # under 0.1 s: nothing to hear
            continue
        words.extend(TimedWord(w.word, round(w.start_s + start, 2), round(w.end_s + start, 2))
                     for w in transcriber.transcribe(piece, audio.rate))
    return words


class VoskTranscriber:
    """Vosk free dictation with one model shared by every thread (recognizers are per call: not thread safe).

    ``cpu_s`` adds up the CPU time spent in Vosk (thread time, so parallel workers are counted each)."""

    def __init__(self, language: str = "ko") -> None:
        import vosk

        from asr import default_registry

        vosk.SetLogLevel(-1)
        self.language = language
        self.model = default_registry().get(language)  # seconds; ModelMissing names the fix
        self.cpu_s = 0.0
        self._lock = threading.Lock()

    def transcribe(self, pcm: bytes, rate: int) -> list[TimedWord]:
        import vosk

        started = time.thread_time()
        recognizer = vosk.KaldiRecognizer(self.model.model, rate)
        recognizer.SetWords(True)
        results: list[dict[str, Any]] = []
        step = int(rate * CHUNK_S) * 2
        for offset in range(0, len(pcm), step):
            if recognizer.AcceptWaveform(pcm[offset:offset + step]):
                results.append(json.loads(recognizer.Result()))
        results.append(json.loads(recognizer.FinalResult()))
        with self._lock:
            self.cpu_s += time.thread_time() - started
        # Vosk's word times run from the start of the recognizer's audio across utterances.
        return [TimedWord(str(w["word"]), float(w.get("start", 0.0)), float(w.get("end", 0.0)))
                for result in results for w in result.get("result", [])]
