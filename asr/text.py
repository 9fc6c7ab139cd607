"""Normalisation of phrases before they meet a model's vocabulary."""

from __future__ import annotations

import unicodedata

# Sentence punctuation that authors put around phrases ("잔액 조회?") but that no word carries.
_EDGE_PUNCTUATION = ".,;:!?\"'“”‘’()[]{}«»…·、。，！？"


def normalize_phrase(phrase: str) -> str:
    """Lowercase, NFC-compose, strip edge punctuation from each word and collapse whitespace.

    NFC matters for Korean: text pasted from some editors arrives as decomposed jamo, which never
    matches the model's precomposed syllables.
    """
    composed = unicodedata.normalize("NFC", phrase).lower()
    words = (word.strip(_EDGE_PUNCTUATION) for word in composed.split())
    return " ".join(word for word in words if word)


def phrase_words(phrase: str) -> list[str]:
    """The words of `phrase` after normalisation."""
    return normalize_phrase(phrase).split()
