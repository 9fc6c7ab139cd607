"""A call's agent talk checked against its queue's checklist: findings, a score and the flags /qa shows (pure).

Words in, findings out: ``check_call`` takes what the agent said (Vosk's words with their times, in seconds from
the start of the call's recording) and the items of the call's queue. A plain phrase is found whatever the spacing
(the words are compared without spaces: Vosk writes "원금 보장" or "원금보장"), starting at a word's start; a phrase
ending in a Latin letter or digit must also end at a word's end ("no risk" is not in "no risky"), a Korean one
may run on into a particle or an ending ("보장" in "보장됩니다"). A ``{re: ...}`` phrase is searched in the words
joined by single spaces.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from ivr.recordings.quality.checklist import Item, Phrase

__all__ = ["Finding", "Hit", "QualityResult", "TimedWord", "check_call", "find"]

MAX_HITS_PER_ITEM = 10
"""A forbidden phrase said over and over is flagged at its first ten moments."""


@dataclass(frozen=True, slots=True)
class TimedWord:
    """One word the agent said."""

    word: str
    """As the speech model spells it."""
    start_s: float
    """From the start of the call's recording."""
    end_s: float


@dataclass(frozen=True, slots=True)
class Hit:
    """Where a phrase was said."""

    at_s: float
    """The start of its first word, from the start of the recording."""
    heard: str
    """The words that matched, as heard."""
    phrase: str
    """The checklist's phrase (or pattern) that matched."""


@dataclass(frozen=True, slots=True)
class Finding:
    """An item that failed."""

    item: str
    """The item's id."""
    kind: str
    """The flag kind: forbidden_phrase, missing_disclosure, greeting, identity_check."""
    at_s: float
    """The moment to hear: where a forbidden phrase was said, where a late one was, else the agent's first words."""
    text: str
    """For the reviewer."""
    weight: int
    """Points it took from the score (counted once per item)."""


@dataclass(frozen=True, slots=True)
class QualityResult:
    """A call's quality check."""

    score: int
    """100 less the weight of every failed item, at least 0."""
    flagged: bool
    """Something failed, or the score is under the checklist's pass score: the call goes to the review list."""
    findings: tuple[Finding, ...]
    passed: tuple[str, ...]
    """Ids of the items that passed."""

    def flags(self) -> list[dict[str, object]]:
        """The findings as the recordings index keeps them ({at_s, kind, text}; ivr.recordings.timeline)."""
        return [{"at_s": round(f.at_s, 2), "kind": f.kind, "text": f.text[:500]} for f in self.findings]


def find(phrase: Phrase, words: Sequence[TimedWord], limit: int = MAX_HITS_PER_ITEM) -> list[Hit]:
    """Where ``phrase`` was said in ``words``, in order."""
    if not words:
        return []
    hits: list[Hit] = []
    if phrase.pattern is not None:
        spoken = [w.word.lower() for w in words]
        starts, offset = [], 0
        for word in spoken:
            starts.append(offset)
            offset += len(word) + 1
        joined = " ".join(spoken)
        for match in phrase.pattern.finditer(joined):
            if match.end() == match.start():
                continue
            first = bisect.bisect_right(starts, match.start()) - 1
            last = bisect.bisect_right(starts, max(match.start(), match.end() - 1)) - 1
            hits.append(Hit(words[first].start_s, " ".join(w.word for w in words[first:last + 1]), phrase.text))
            if len(hits) >= limit:
                break
        return hits
    # Plain: the words run together without spaces, each character knowing its word.
    owner: list[int] = []
    starts_at: set[int] = set()
    ends_at: set[int] = set()
    text = ""
    for index, w in enumerate(words):
        piece = "".join(w.word.lower().split())
        if not piece:
            continue
        starts_at.add(len(text))
        text += piece
        owner.extend([index] * len(piece))
        ends_at.add(len(text))
    needle = phrase.compact
    latin_end = needle[-1].isascii() and needle[-1].isalnum()
    position = text.find(needle)
    while position != -1 and len(hits) < limit:
        end = position + len(needle)
        if position in starts_at and (not latin_end or end in ends_at):
            first, last = owner[position], owner[end - 1]
            hits.append(Hit(words[first].start_s, " ".join(w.word for w in words[first:last + 1]), phrase.text))
        position = text.find(needle, position + 1)
    return hits


def _clock(seconds: float) -> str:
    total = max(0, int(seconds))
    return f"{total // 60}:{total % 60:02d}"


def check_call(items: Sequence[Item], words: Sequence[TimedWord], agent_from_s: float = 0.0,
               pass_score: int = 80) -> QualityResult:
    """Check one call. ``agent_from_s``: when the agent's part began (the moment a missing item is flagged at,
    and where ``within_s`` counts from when the agent said nothing at all)."""
    ordered = sorted(words, key=lambda w: w.start_s)
    first_word = ordered[0].start_s if ordered else agent_from_s
    findings: list[Finding] = []
    passed: list[str] = []
    for item in items:
        found = sorted((hit for phrase in item.phrases for hit in find(phrase, ordered)), key=lambda h: h.at_s)
        hits = [hit for i, hit in enumerate(found) if i == 0 or hit.at_s != found[i - 1].at_s]  # one per moment
        if item.kind == "forbidden":
            if not hits:
                passed.append(item.id)
                continue
            for hit in hits[:MAX_HITS_PER_ITEM]:
                findings.append(Finding(item.id, item.flag_kind, hit.at_s,
                                        f"{item.text}: said {hit.heard!r} (forbidden: {hit.phrase!r})",
                                        item.weight))
            continue
        deadline = first_word + item.within_s if item.within_s is not None else None
        in_time = [h for h in hits if deadline is None or h.at_s <= deadline]
        if in_time:
            passed.append(item.id)
        elif hits:
            findings.append(Finding(item.id, item.flag_kind, hits[0].at_s,
                                    f"{item.text}: said at {_clock(hits[0].at_s)}, later than the first "
                                    f"{item.within_s:g} s of the agent's talk", item.weight))
        else:
            said = " or ".join(repr(p.text) for p in item.phrases[:3]) + (" ..." if len(item.phrases) > 3 else "")
            findings.append(Finding(item.id, item.flag_kind, agent_from_s,
                                    f"{item.text}: not said (listened for {said})", item.weight))
    lost = sum({f.item: f.weight for f in findings}.values())
    score = max(0, 100 - lost)
    findings.sort(key=lambda f: f.at_s)
    return QualityResult(score, bool(findings) or score < pass_score, tuple(findings), tuple(passed))
