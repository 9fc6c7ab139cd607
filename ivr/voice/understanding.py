"""What did the caller mean? Pure functions over recognizer output: no I/O, microseconds per call.

Three ideas, each answering a failure contact centers report about speech IVRs:

- **Use all the recognizer gives.** Every n-best hypothesis votes for intents, weighted by its
  share of the probability mass; phrases match by content words, so particles, spacing and a
  partial phrase ("카드 분실" for "카드 분실 신고") do not break matching.
- **Context across turns.** An answer that is not enough on its own is read together with the
  caller's earlier unresolved words at the same question ("카드요" ... "잃어버렸어요").
- **Corrections.** "아니요, 대출이요" drops what was understood and takes the new intent.

The decision has three bands: act, confirm (ask yes/no), or ask again with examples.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")
# Korean particles and polite endings that carry no intent: stripped from a word's end.
# Longest first, so "이요" goes before "요".
_PARTICLES = ("에서", "으로", "이요", "이에요", "예요", "해요", "을", "를", "은", "는", "이", "가", "에", "로",
              "도", "요", "좀")
_NEGATIONS = ("아니요", "아니오", "아뇨", "아니", "아니에요", "no", "nope", "not")
_FILLERS = frozenset({"음", "어", "그", "저", "좀", "요", "um", "uh", "please", "the", "a", "my", "i", "to"})


def compact(text: str) -> str:
    """Lowercase, no punctuation, no spaces: recognizers split and join Korean words inconsistently."""
    return _SPACES.sub("", _PUNCT.sub("", text.lower()))


def stem(word: str) -> str:
    """A word without its trailing particle (카드를 -> 카드, 대출이요 -> 대출); short words stay whole."""
    for particle in _PARTICLES:
        if word.endswith(particle) and len(word) - len(particle) >= 2:
            return word[: -len(particle)]
    return word


def content_words(text: str) -> list[str]:
    words = _PUNCT.sub(" ", text.lower()).split()
    return [stem(w) for w in words if w not in _FILLERS]


def split_negation(text: str) -> tuple[bool, str]:
    """("아니요, 대출이요") -> (True, "대출이요"): a leading no, and what follows it."""
    words = _PUNCT.sub(" ", text.lower()).split()
    if words and words[0] in _NEGATIONS:
        return True, " ".join(words[1:])
    return False, text


def phrase_similarity(phrase: str, said: str) -> float:
    """0..1: how well ``said`` expresses ``phrase``.

    The whole phrase inside the utterance (spacing ignored) scores 1. Otherwise: recall (how
    much of the phrase's content words the utterance has) times a precision factor (how much
    of the utterance the phrase explains), capped at 0.9, so a partial phrase lands in the
    confirm band rather than acting or being thrown away.
    """
    wanted, heard = compact(phrase), compact(said)
    if not wanted or not heard:
        return 0.0
    if wanted in heard:
        return 1.0
    phrase_words = content_words(phrase)
    heard_words = content_words(said)
    if not phrase_words or not heard_words:
        return 0.0
    heard_blob, phrase_blob = "".join(heard_words), "".join(phrase_words)

    def overlap(word: str, others: list[str], blob: str) -> int:
        if word in blob:
            return len(word)
        return max((len(o) for o in others if len(o) >= 2 and o in word), default=0)

    recall = sum(overlap(w, heard_words, heard_blob) for w in phrase_words) / sum(map(len, phrase_words))
    precision = sum(overlap(h, phrase_words, phrase_blob) for h in heard_words) / sum(map(len, heard_words))
    return round(0.9 * recall * (0.5 + 0.5 * precision), 4)


_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")
#: Typical speaking rates, in spoken units (Hangul syllables; Latin vowel groups) per second.
SPEAKING_RATE = {"ko": 5.5, "en": 4.0}


def spoken_units(text: str) -> int:
    """Hangul syllables, else vowel groups: a language-neutral measure of how much was said."""
    hangul = len(_HANGUL.findall(text))
    return hangul if hangul else len(_VOWEL_GROUPS.findall(text.lower()))


def acoustic_support(text: str, voiced_s: float | None, language: str) -> float:
    """0..1: does the recognized text account for the voice the caller produced?

    A grammar recognizer forces every utterance onto some phrase: 1.2 s of "대출 상담" can
    come back as the two-syllable "항의". Text far too short for the voiced time is weak
    evidence, so its intent is confirmed or asked again rather than routed on.
    """
    if not voiced_s or voiced_s < 0.4:
        return 1.0
    expected = SPEAKING_RATE.get(language, 4.5) * voiced_s
    ratio = spoken_units(text) / expected
    return min(1.0, ratio / 0.55) ** 2


def explained_share(said: str, vocabulary: set[str]) -> float:
    """Share (by length) of the utterance's content words that occur in the intent's phrases."""
    words = content_words(said)
    if not words:
        return 0.0
    blob = "".join(vocabulary)
    explained = sum(len(w) for w in words if w in vocabulary or (len(w) >= 2 and w in blob))
    return explained / sum(len(w) for w in words)


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One recognizer hypothesis for the utterance."""

    text: str
    """What may have been said."""
    weight: float
    """Its share of the n-best probability mass (0..1)."""


@dataclass(frozen=True, slots=True)
class IntentPhrases:
    """The ways callers express one intent, for the language of the call."""

    intent: str
    phrases: tuple[str, ...]
    """Canonical phrases and synonyms."""
    variants: tuple[tuple[str, str], ...] = ()
    """Dialect variants as (dialect, phrase)."""


@dataclass(frozen=True, slots=True)
class Scored:
    """An intent with its score and the evidence for it."""

    intent: str
    score: float
    """0..1, the weighted vote of the hypotheses times the recognizer's confidence."""
    phrase: str
    """The phrase that matched best."""
    dialect: str | None = None
    """The dialect of the variant that matched, when one did."""
    used_context: bool = False
    """True when earlier utterances were needed to reach this score."""


def score_intents(
    hypotheses: Sequence[Hypothesis], intents: Iterable[IntentPhrases], confidence: float = 1.0
) -> list[Scored]:
    """Every intent with a non-zero score, best first."""
    results: list[Scored] = []
    for entry in intents:
        total = 0.0
        best_phrase, best_dialect, best_sim = "", None, 0.0
        candidates = [(p, None) for p in entry.phrases] + [(p, d) for d, p in entry.variants]
        vocabulary = {w for p, _ in candidates for w in content_words(p)}
        for hypothesis in hypotheses:
            sim_here, phrase_here, dialect_here = 0.0, "", None
            for phrase, dialect in candidates:
                sim = phrase_similarity(phrase, hypothesis.text)
                if sim > sim_here or (sim == sim_here and sim > 0 and len(phrase) > len(phrase_here)):
                    sim_here, phrase_here, dialect_here = sim, phrase, dialect
            # Words of the utterance this intent cannot explain weaken the vote: "민원 바꾸고
            # 싶어요" is mostly another intent's words around "민원" (a grammar artefact), while
            # "이체 계좌 이체" is all transfer words.
            total += hypothesis.weight * sim_here * explained_share(hypothesis.text, vocabulary) ** 0.5
            # On a tie the longer (more specific) phrase is the evidence: a dialect variant
            # containing a canonical word names its dialect.
            if sim_here > best_sim or (sim_here == best_sim and len(phrase_here) > len(best_phrase)):
                best_sim, best_phrase, best_dialect = sim_here, phrase_here, dialect_here
        if total > 0:
            results.append(Scored(entry.intent, round(min(1.0, total) * confidence, 3), best_phrase, best_dialect))
    results.sort(key=lambda s: s.score, reverse=True)
    return results


class Action(enum.StrEnum):
    ACT = "act"
    CONFIRM = "confirm"
    REPROMPT = "reprompt"


@dataclass(frozen=True, slots=True)
class Thresholds:
    act: float = 0.6
    """At or above: act on the intent."""
    confirm: float = 0.3
    """At or above (and below act): ask the caller to confirm."""
    margin: float = 0.15
    """The best must lead the runner-up by this much to act without confirming."""


@dataclass(frozen=True, slots=True)
class Understanding:
    """The decision for one turn."""

    action: Action
    best: Scored | None
    """The leading intent, if any."""
    ranked: tuple[Scored, ...] = ()
    """All scored intents, best first (for the call record and trainers)."""
    correction: bool = False
    """The caller began with a no: earlier understanding was dropped."""


@dataclass(slots=True)
class TurnContext:
    """What the caller said at the current question that has not led anywhere yet."""

    pending: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.pending.clear()


def understand(
    hypotheses: Sequence[Hypothesis],
    intents: Sequence[IntentPhrases],
    context: TurnContext,
    confidence: float = 1.0,
    thresholds: Thresholds = Thresholds(),
    is_phrase: Callable[[str], bool] | None = None,
) -> Understanding:
    """Score this utterance alone and together with the pending context; decide act/confirm/reprompt.

    ``is_phrase`` tells whether a string is exactly one of the recognizer's grammar phrases.
    When given, the engine acts only if the best hypothesis is one: a grammar recognizer also
    returns word strings that are no phrase at all ("민원 접수 변경"), and those are confirmed,
    never routed on.
    """
    top = hypotheses[0].text if hypotheses else ""
    correction, rest = split_negation(top)
    if correction:
        context.clear()
        hypotheses = [Hypothesis(rest, 1.0)] if rest else []
    ranked = score_intents(hypotheses, intents, confidence)
    if context.pending and hypotheses:
        joined = [Hypothesis(" ".join([*context.pending, h.text]), h.weight) for h in hypotheses]
        with_context = score_intents(joined, intents, confidence)
        if with_context and (not ranked or with_context[0].score > ranked[0].score):
            ranked = [Scored(s.intent, s.score, s.phrase, s.dialect, used_context=True) for s in with_context]
    best = ranked[0] if ranked else None
    runner_up = ranked[1].score if len(ranked) > 1 else 0.0
    said_a_phrase = is_phrase is None or (bool(top) and is_phrase(rest if correction else top))
    if best and best.score >= thresholds.act and best.score - runner_up >= thresholds.margin and said_a_phrase:
        action = Action.ACT
    elif best and best.score >= thresholds.confirm:
        action = Action.CONFIRM
    else:
        action = Action.REPROMPT
    if action is not Action.ACT and top and not correction:
        context.pending.append(top)
    elif action is Action.ACT:
        context.clear()
    return Understanding(action, best, tuple(ranked), correction)


def yes_or_no(text: str, dtmf: str, yes: Mapping[str, Sequence[str]], no: Mapping[str, Sequence[str]],
              language: str) -> bool | None:
    """A confirmation answer: 1/yes -> True, 2/no -> False, anything else -> None."""
    if dtmf:
        return {"1": True, "2": False}.get(dtmf)
    said = compact(text)
    if not said:
        return None
    if any(compact(p) and said.startswith(compact(p)) for p in no.get(language, ())):
        return False  # checked first: "아니요" must not read as a yes that contains "네"
    if any(compact(p) and said.startswith(compact(p)) for p in yes.get(language, ())):
        return True
    return None
