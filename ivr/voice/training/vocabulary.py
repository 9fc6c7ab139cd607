"""A speech model's vocabulary as a trainer needs it: is a word known, and if not, its closest known spelling.

A small grammar model ignores words it does not know (Vosk drops them from the grammar), so a suggested phrase
must be made of known words. Closeness is measured on jamo, not syllables: "잃어버렸어요" and "잃어버렸어" differ
by one jamo, while a syllable-level distance would call 했 and 햇 as far apart as 했 and 가. Hangul syllables
decompose into jamo with Unicode's own canonical decomposition (NFD); rapidfuzz does the search over the
model's ~500k words in a few tens of milliseconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

#: Below this jamo-level similarity (0..1) a known word is not offered as the spelling meant.
MIN_SIMILARITY = 0.5
#: A model's tokens that are no word a caller says ("[41]", "<unk>", "[noise]"): never offered as a spelling.
NON_WORD = re.compile(r"^[\[<].*[\]>]$")


def jamo(word: str) -> str:
    """``word`` with its Hangul syllables split into jamo (other characters unchanged)."""
    return unicodedata.normalize("NFD", word)


@dataclass(frozen=True)
class Spelling:
    """A word the model does not know, and the known word closest to it."""

    word: str
    """The word as written (normalised)."""
    closest: str | None
    """The known word closest to it by jamo edit distance; None when none is close enough."""
    similarity: float
    """Jamo-level similarity of the two, 0..1 (1 - edit distance / length of the longer)."""

    def describe(self) -> str:
        if self.closest is None:
            return f"{self.word!r} (no known word is close)"
        return f"{self.word!r} (closest known spelling: {self.closest!r})"


class Vocabulary:
    """The words one model can recognise (a pure value: built from any collection of words)."""

    def __init__(self, words: Iterable[str], language: str = "") -> None:
        self.words = frozenset(words)
        self.language = language
        self._decomposed: list[str] | None = None
        self._spelled: list[str] = []

    def __contains__(self, word: object) -> bool:
        return word in self.words

    def __len__(self) -> int:
        return len(self.words)

    def unknown(self, words: Iterable[str]) -> list[str]:
        """The words not in the vocabulary, in order."""
        return [word for word in words if word not in self.words]

    def spelling(self, word: str) -> Spelling:
        """The closest known spelling of ``word`` (itself, with similarity 1, when it is known)."""
        if word in self.words:
            return Spelling(word, word, 1.0)
        if self._decomposed is None:  # built on first use: ~0.5 s for 500k words
            self._spelled = sorted(w for w in self.words if not NON_WORD.match(w))
            self._decomposed = [jamo(w) for w in self._spelled]
        found = process.extractOne(jamo(word), self._decomposed, scorer=Levenshtein.normalized_similarity,
                                   score_cutoff=MIN_SIMILARITY)
        if found is None:
            return Spelling(word, None, 0.0)
        _, score, index = found
        return Spelling(word, self._spelled[index], round(float(score), 3))
