"""Streaming recognition of one caller turn with Vosk."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import vosk

from asr.grammar import Grammar
from asr.loaded import LoadedModel

BYTES_PER_SAMPLE = 2
"""Vosk takes 16-bit signed little-endian mono PCM."""

NARROWBAND_RATE = 8000
"""A G.711 caller (AudioSocket kind 0x10); the default rate of a recognizer."""
WIDEBAND_RATE = 16000
"""An HD voice caller (G.722, Opus; AudioSocket kind 0x12), and the Korean model's own rate."""


@dataclass(frozen=True)
class Word:
    """One recognised word with its timing."""

    word: str
    """The word as the model spells it."""
    start: float
    """Start, in seconds from the beginning of the turn's audio."""
    end: float
    """End, in seconds from the beginning of the turn's audio."""
    conf: float | None
    """Posterior of the word (0..1); None in n-best mode, where Vosk reports no word confidences."""


@dataclass(frozen=True)
class Alternative:
    """One entry of the n-best list."""

    text: str
    """The hypothesis; with a grammar, one of its phrases (or "" for nothing)."""
    confidence: float
    """Share of this hypothesis in the n-best list's probability mass (0..1)."""


@dataclass(frozen=True)
class Result:
    """What the caller said in a turn, as far as the recognizer can tell."""

    text: str
    """Best hypothesis; "" when nothing was recognised."""
    confidence: float
    """0..1: mean word confidence, or the best alternative's share of the n-best list."""
    alternatives: list[Alternative] = field(default_factory=list)
    """n-best list, best first (just the best one when n-best is off)."""
    words: list[Word] = field(default_factory=list)
    """Words of the best hypothesis."""
    phrase: str | None = None
    """The grammar phrase heard: the most likely alternative that is exactly one of the grammar's
    phrases. None without a grammar or when no alternative is one."""
    phrase_confidence: float = 0.0
    """Confidence (0..1) of `phrase`: its alternative's share of the n-best list, 0 without one."""


@dataclass(frozen=True)
class Partial:
    """Text recognised so far in a turn that has not ended yet."""

    text: str
    """Current best guess; it may still change."""


class TurnRecognizer:
    """Recognises one caller turn from PCM fed in small chunks, as a phone line delivers it.

    Created at the rate the caller is heard at (`sample_rate`: 8000 for a narrowband call, 16000 for
    a wideband one, or any other rate, e.g. 48000 from a misconfigured trunk): Kaldi resamples to the
    model's own rate (``model.pack.sample_rate``). All audio fed must be at that rate; when the call's
    rate changes, finish this recognizer and create another (or resample with tts.pcm.resample_pcm).

    Not thread safe: feed one instance from one thread at a time (any thread will do).
    """

    def __init__(
        self,
        model: LoadedModel,
        grammar: Grammar | None,
        sample_rate: int = NARROWBAND_RATE,
        max_alternatives: int = 3,
    ):
        if grammar is not None and not grammar.phrases:
            # Vosk would decode with an empty grammar and only ever return "".
            raise ValueError(f"grammar has no in-vocabulary phrase (out of vocabulary: {grammar.oov})")
        if sample_rate < 1000:
            raise ValueError(f"a recognizer needs a real sample rate, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.max_alternatives = max_alternatives
        self.audio_seconds = 0.0
        """Seconds of audio fed so far."""
        self.cpu_seconds = 0.0
        """CPU time spent inside Vosk for this turn."""
        self._final: Result | None = None
        self._last_partial = ""
        self._phrases = frozenset(grammar.phrases) if grammar is not None else frozenset()
        started = time.thread_time()
        if grammar is None:
            self._recognizer = vosk.KaldiRecognizer(model.model, sample_rate)
        else:
            self._recognizer = vosk.KaldiRecognizer(model.model, sample_rate, grammar.json)
        self._recognizer.SetWords(True)
        self._recognizer.SetMaxAlternatives(max_alternatives)
        self._account(started)

    @property
    def grammar_phrases(self) -> frozenset[str]:
        """The grammar's phrases as Vosk returns them (empty without a grammar)."""
        return self._phrases

    @property
    def ended(self) -> bool:
        """Whether Vosk has detected the end of the utterance (further audio is ignored)."""
        return self._final is not None

    def feed(self, pcm: bytes) -> Result | Partial | None:
        """Feed 16-bit mono PCM at `sample_rate`.

        Returns the final Result once Vosk detects the end of the utterance (and from then on,
        without decoding more audio), a Partial when the partial text changed, else None.
        """
        if self._final is not None:
            return self._final
        self.audio_seconds += len(pcm) / (BYTES_PER_SAMPLE * self.sample_rate)
        started = time.thread_time()
        try:
            if self._recognizer.AcceptWaveform(pcm):
                self._final = self._match(parse_result(self._recognizer.Result()))
                return self._final
            partial = json.loads(self._recognizer.PartialResult()).get("partial", "")
        finally:
            self._account(started)
        if partial and partial != self._last_partial:
            self._last_partial = partial
            return Partial(partial)
        return None

    def finish(self) -> Result:
        """The final result of the turn, flushing audio Vosk still holds."""
        if self._final is None:
            started = time.thread_time()
            try:
                self._final = self._match(parse_result(self._recognizer.FinalResult()))
            finally:
                self._account(started)
        return self._final

    @property
    def real_time_factor(self) -> float:
        """CPU seconds per audio second so far (0 before any audio)."""
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def _match(self, result: Result) -> Result:
        # Vosk turns a grammar into a bigram model with backoff, so it can return word sequences
        # that are no phrase at all ("이체 계좌 이체"); look down the n-best list for a real one.
        for alternative in result.alternatives:
            if alternative.text in self._phrases:
                return dataclasses.replace(
                    result, phrase=alternative.text, phrase_confidence=alternative.confidence
                )
        return result

    def _account(self, started: float) -> None:
        # Thread CPU time, not process time: other recognizers run in parallel threads.
        self.cpu_seconds += time.thread_time() - started


def parse_result(raw: str) -> Result:
    """A Result from Vosk's JSON, in either of its shapes.

    Without n-best: {"text", "result": [{"word", "start", "end", "conf"}]}.
    With SetMaxAlternatives(n > 0): {"alternatives": [{"text", "confidence", "result": [...]}]},
    where "confidence" is a log-likelihood (unbounded) and words carry no "conf".
    """
    data: dict[str, Any] = json.loads(raw)
    if "alternatives" in data:
        return _from_alternatives(data["alternatives"])
    words = _words(data.get("result", []))
    text = str(data.get("text", "")).strip()
    scored = [w.conf for w in words if w.conf is not None]
    confidence = sum(scored) / len(scored) if text and scored else 0.0
    alternatives = [Alternative(text, confidence)] if text else []
    return Result(text=text, confidence=confidence, alternatives=alternatives, words=words)


def _from_alternatives(entries: list[dict[str, Any]]) -> Result:
    if not entries:
        return Result(text="", confidence=0.0)
    likelihoods = [float(e.get("confidence", 0.0)) for e in entries]
    # Softmax over the log-likelihoods: each hypothesis' share of the n-best probability mass.
    top = max(likelihoods)
    weights = [math.exp(value - top) for value in likelihoods]
    total = sum(weights)
    alternatives = [
        Alternative(str(e.get("text", "")).strip(), weight / total)
        for e, weight in zip(entries, weights, strict=True)
    ]
    best = alternatives[0]
    confidence = best.confidence if best.text else 0.0
    return Result(
        text=best.text,
        confidence=confidence,
        alternatives=alternatives,
        words=_words(entries[0].get("result", [])),
    )


def _words(entries: list[dict[str, Any]]) -> list[Word]:
    return [
        Word(
            word=str(e["word"]),
            start=float(e.get("start", 0.0)),
            end=float(e.get("end", 0.0)),
            conf=float(e["conf"]) if "conf" in e else None,
        )
        for e in entries
    ]
