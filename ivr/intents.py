"""Matching what the caller said to the intents a node offers. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPACES = re.compile(r"\s+")


def compact(text: str) -> str:
    """Lowercase without spaces: recognizers split and join Korean words inconsistently."""
    return _SPACES.sub("", text.lower())


@dataclass(frozen=True, slots=True)
class Match:
    """The best intent for an utterance."""

    intent: str
    """Intent id."""
    score: float
    """0..1: how much of the utterance the phrase explains, times the recognizer's confidence."""
    phrase: str
    """The phrase that matched."""


def match_intent(
    transcript: str, confidence: float, phrases_by_intent: dict[str, list[str]]
) -> Match | None:
    """The intent whose phrase explains most of the transcript, or None."""
    said = compact(transcript)
    if not said:
        return None
    best: Match | None = None
    for intent, phrases in phrases_by_intent.items():
        for phrase in phrases:
            wanted = compact(phrase)
            if wanted and wanted in said:
                coverage = len(wanted) / len(said)
                score = round(confidence * (0.5 + 0.5 * coverage), 3)
                if best is None or score > best.score:
                    best = Match(intent, score, phrase)
    return best


def match_dtmf(digit: str, dtmf_by_intent: dict[str, str | None]) -> str | None:
    for intent, key in dtmf_by_intent.items():
        if key == digit:
            return intent
    return None
