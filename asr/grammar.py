"""Restricting recognition to a closed set of phrases (a Vosk grammar)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from asr.loaded import LoadedModel
from asr.text import normalize_phrase


@dataclass(frozen=True)
class Grammar:
    """The phrases a recognizer may return, in the form KaldiRecognizer takes them."""

    phrases: tuple[str, ...]
    """Normalised, deduplicated phrases in first-seen order, reduced to in-vocabulary words."""
    json: str
    """`phrases` as the JSON list KaldiRecognizer expects (no "[unk]": not every model has it)."""
    oov: dict[str, list[str]] = field(default_factory=dict)
    """Normalised phrase -> its out-of-vocabulary words, for each phrase that had any."""


def build_grammar(phrases: Iterable[str], model: LoadedModel) -> Grammar:
    """A grammar of `phrases` for `model`; words the model does not know are dropped and reported.

    A phrase left with no known word is dropped too (it still shows in `oov`).
    """
    kept: list[str] = []
    oov: dict[str, list[str]] = {}
    for phrase in phrases:
        normalized = normalize_phrase(phrase)
        if not normalized:
            continue
        unknown = model.oov(normalized)
        if unknown:
            oov[normalized] = unknown
        reduced = " ".join(word for word in normalized.split() if word not in unknown)
        # Two phrases may reduce to the same words; the recognizer cannot tell them apart anyway.
        if reduced and reduced not in kept:
            kept.append(reduced)
    return Grammar(phrases=tuple(kept), json=json.dumps(kept, ensure_ascii=False), oov=oov)
