"""Suggestions from what the recognizer actually hears: for a labeled cluster of failed turns, the change to the flow.

Pure: the flow's text, the cluster's turns (what was heard, as text) and the model's vocabulary come in; a
``Suggestion`` with the candidate flow text and its unified diff comes out. Nothing is written and the live flow
is untouched: the candidate becomes live only when someone publishes it (``ivr.voice.versions``), after a replay.

What is suggested, in order:

1. **A phrase** (or, when the label names a dialect, a **dialect variant**) for the labeled intent, taken from
   what the model outputs for those callers. The best evidence is the open-vocabulary transcript of each turn's
   audio (``HeardTurn.heard_freely``: the model without a grammar, see ``replay.hear_freely``); without it, the
   live n-best. Each candidate gets its turns' votes (n-best entries by their share); the most supported one
   that is not already another intent's phrase at the node wins. A trainer may also give the phrase.
2. **An example** when the winner is already one of the intent's phrases: the recognizer hears those callers
   right, but they do not say it the way the re-prompt teaches; the intent's example (read out on re-prompts)
   becomes the phrase they use.

Every word is checked against the model's vocabulary: a grammar recognizer ignores words it does not know, so
an unknown word is named with its closest known spelling and replaced by it (or dropped when none is close);
a phrase with no known word at all is refused with a message, never suggested.

The candidate text is the original YAML edited in place (ruamel.yaml's round trip keeps comments, order,
quoting and flow style), so the diff shows only the change.
"""

from __future__ import annotations

import difflib
import enum
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from asr.text import normalize_phrase
from ivr.voice.flow import AskNode, Flow, FlowError, parse_flow
from ivr.voice.training.vocabulary import Spelling, Vocabulary
from ivr.voice.understanding import compact

#: Tokens a model emits that are no word a caller says: "[1]", "<unk>", "[noise]".
_NON_WORD = re.compile(r"^[\[<].*[\]>]$")


class SuggestionKind(enum.StrEnum):
    PHRASE = "phrase"
    """A new phrase of the intent, in the cluster's language."""
    VARIANT = "variant"
    """A new dialect variant of the intent (the label named a dialect)."""
    EXAMPLE = "example"
    """The intent's example (what re-prompts teach) becomes the phrase the callers use."""


class SuggestionError(ValueError):
    """No suggestion can be made; the message says why, ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class HeardTurn:
    """One failed turn of a cluster, as the recognizer heard it."""

    transcript: str = ""
    """The live best hypothesis (with the node's grammar)."""
    alternatives: tuple[tuple[str, float], ...] = ()
    """The live n-best: (text, share of the n-best mass), best first."""
    heard_freely: str | None = None
    """What the model hears in the turn's audio without a grammar (None: not re-recognized, or no audio)."""


@dataclass(frozen=True)
class Suggestion:
    """A proposed change to a flow, as a candidate text and its diff; nothing is published."""

    flow_id: str
    kind: SuggestionKind
    intent: str
    """The labeled intent the change serves."""
    node: str
    """The question the turns failed at."""
    language: str
    dialect: str | None
    """The dialect of a variant (None for a phrase or an example)."""
    phrase: str
    """The phrase added (or made the example), every word in the model's vocabulary."""
    heard: str
    """The phrase as the evidence had it, before out-of-vocabulary words were respelled."""
    support: float
    """Share of the cluster's turns whose evidence names the phrase (0..1)."""
    turns: int
    """Turns in the cluster."""
    source: str
    """Where the phrase came from: "heard_freely", "nbest" or "trainer"."""
    oov: tuple[Spelling, ...] = ()
    """Words of ``heard`` the model does not know, each with the spelling used instead (or dropped)."""
    text: str = ""
    """The candidate flow's YAML."""
    diff: str = ""
    """Unified diff from the flow's text to ``text``."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """What a trainer should know (candidates skipped because another intent has them, ...)."""

    def to_dict(self) -> dict[str, Any]:
        return {"flow_id": self.flow_id, "kind": self.kind.value, "intent": self.intent, "node": self.node,
                "language": self.language, "dialect": self.dialect, "phrase": self.phrase, "heard": self.heard,
                "support": self.support, "turns": self.turns, "source": self.source,
                "oov": [{"word": s.word, "closest": s.closest, "similarity": s.similarity} for s in self.oov],
                "text": self.text, "diff": self.diff, "notes": list(self.notes)}


def suggest(flow_text: str, *, intent: str, node: str, language: str, turns: Sequence[HeardTurn],
            vocabulary: Vocabulary | None, dialect: str | None = None, phrase: str | None = None,
            source_name: str = "flow") -> Suggestion:
    """The change to ``flow_text`` that would have served the cluster's callers; raises SuggestionError."""
    flow = _parse(flow_text, source_name)
    ask = _check_label(flow, intent, node, language)
    dialect = (dialect or "").strip() or None
    others = _claimed_by_others(flow, ask, intent, language)
    notes: list[str] = []
    if phrase is not None:
        heard, support, source = normalize_phrase(phrase), 1.0, "trainer"
        if not heard:
            raise SuggestionError("phrase", "the phrase is empty")
        if compact(heard) in others:
            raise SuggestionError("phrase", f"{heard!r} is already a phrase of intent {others[compact(heard)]!r} "
                                            f"at {node!r}: one phrase cannot lead to two intents")
    else:
        heard, support, source = _most_heard(turns, others, notes, vocabulary)
    spoken, oov = _in_vocabulary(heard, vocabulary)
    if compact(spoken) in others:
        raise SuggestionError("phrase", f"{heard!r} in known words is {spoken!r}, already a phrase of intent "
                                        f"{others[compact(spoken)]!r} at {node!r}")
    known = _phrases_of(flow, intent, language)
    if compact(spoken) in known:
        kind = SuggestionKind.EXAMPLE
        if compact(flow.intents[intent].examples.get(language, "")) == compact(spoken):
            raise SuggestionError("turns", f"nothing to change: {spoken!r} is already a phrase and the example of "
                                           f"intent {intent!r}; the recognizer hears these callers as the flow "
                                           "expects (look at the thresholds or the node's listening settings)")
    else:
        kind = SuggestionKind.VARIANT if dialect else SuggestionKind.PHRASE
    text = _edit(flow_text, kind, intent, language, dialect, spoken)
    candidate = _parse(text, f"{source_name} (suggested)")  # the edit must leave a flow the format accepts
    assert candidate.id == flow.id
    diff = "".join(difflib.unified_diff(flow_text.splitlines(keepends=True), text.splitlines(keepends=True),
                                        fromfile=f"{flow.id} (live)", tofile=f"{flow.id} (suggested)"))
    return Suggestion(flow.id, kind, intent, node, language, dialect if kind is SuggestionKind.VARIANT else None,
                      spoken, heard, round(support, 3), len(turns), source, tuple(oov), text, diff, tuple(notes))


# --- checks


def _parse(text: str, source: str) -> Flow:
    try:
        return parse_flow(text, source)
    except FlowError as exc:
        raise SuggestionError("flow", str(exc)) from None


def _check_label(flow: Flow, intent: str, node: str, language: str) -> AskNode:
    if intent not in flow.intents:
        raise SuggestionError("label", f"label {intent!r} is not an intent of flow {flow.id!r} "
                                       f"(its intents: {', '.join(flow.intents)})")
    ask = flow.nodes.get(node)
    if not isinstance(ask, AskNode):
        raise SuggestionError("node", f"{node!r} is not a question (ask node) of flow {flow.id!r}")
    if intent not in flow.intent_ids(ask):
        raise SuggestionError("label", f"question {node!r} does not listen for intent {intent!r} (it routes: "
                                       f"{', '.join(flow.intent_ids(ask))}): a phrase would never be heard there")
    if language not in flow.languages:
        raise SuggestionError("language", f"language {language!r} is not one of flow {flow.id!r}'s "
                                          f"({', '.join(flow.languages)})")
    return ask


def _phrases_of(flow: Flow, intent: str, language: str) -> set[str]:
    entry = flow.intents[intent]
    return {compact(p) for p in entry.phrases.get(language, [])} | \
        {compact(v.phrase) for v in entry.variants if v.language == language}


def _claimed_by_others(flow: Flow, node: AskNode, intent: str, language: str) -> dict[str, str]:
    """compact(phrase) -> intent, for every phrase another intent listened for at ``node`` has."""
    return {form: other for other in flow.intent_ids(node) if other != intent
            for form in _phrases_of(flow, other, language)}


# --- the evidence


def _words(text: str) -> str:
    return " ".join(w for w in text.split() if not _NON_WORD.match(w))


def _most_heard(turns: Sequence[HeardTurn], others: dict[str, str], notes: list[str],
                vocabulary: Vocabulary | None) -> tuple[str, float, str]:
    """The phrase most of the cluster's turns were heard as, its support, and its source."""
    if not turns:
        raise SuggestionError("turns", "the cluster has no turns: nothing was heard to suggest from")
    freely = [t for t in turns if t.heard_freely is not None and _words(t.heard_freely)]
    votes: dict[str, float] = {}
    if freely:
        source = "heard_freely"
        for turn in freely:
            text = normalize_phrase(_words(turn.heard_freely or ""))
            votes[text] = votes.get(text, 0.0) + 1.0
    else:
        source = "nbest"
        for turn in turns:
            alternatives = turn.alternatives or ((turn.transcript, 1.0),)
            for text, share in alternatives:
                text = normalize_phrase(_words(text))
                if text:
                    votes[text] = votes.get(text, 0.0) + float(share)
    ranked = sorted(votes.items(), key=lambda item: (-item[1], -len(item[0]), item[0]))
    for text, weight in ranked:
        if compact(text) in others:
            notes.append(f"{text!r} heard in {weight:.1f} turns is already intent {others[compact(text)]!r}'s: "
                         "skipped")
            continue
        if vocabulary is not None and not [w for w in text.split() if w in vocabulary or
                                           vocabulary.spelling(w).closest is not None]:
            notes.append(f"{text!r}: no word of it is in the model's vocabulary: skipped")
            continue
        return text, weight / len(turns), source
    if not ranked:
        raise SuggestionError("turns", f"nothing was heard in the cluster's {len(turns)} turns (empty transcripts): "
                                       "there is no phrase to suggest; label them and give a phrase instead")
    raise SuggestionError("turns", "every phrase heard in the cluster is another intent's or out of the model's "
                                   "vocabulary: " + "; ".join(notes))


def _in_vocabulary(heard: str, vocabulary: Vocabulary | None) -> tuple[str, list[Spelling]]:
    """``heard`` in words the model knows, and the words that were not (each with the spelling used)."""
    if vocabulary is None:
        return heard, []
    words, oov = [], []
    for word in heard.split():
        if word in vocabulary:
            words.append(word)
            continue
        spelling = vocabulary.spelling(word)
        oov.append(spelling)
        if spelling.closest is not None:
            words.append(spelling.closest)
    if len(oov) == len(heard.split()):
        hints = ", ".join(s.describe() for s in oov)
        raise SuggestionError("phrase", f"no suggestion: every word of {heard!r} is out of the "
                                        f"{vocabulary.language or 'speech'} model's vocabulary ({hints}); a grammar "
                                        "recognizer would never hear it: rephrase with known words")
    return " ".join(words), oov


# --- the edit


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments, key order, quotes and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _flow_map(values: dict[str, str]) -> CommentedMap:
    out = CommentedMap(values)
    out.fa.set_flow_style()
    return out


def _insert_after(mapping: CommentedMap, after: str, key: str, value: Any) -> None:
    keys = list(mapping)
    mapping.insert(keys.index(after) + 1 if after in keys else len(keys), key, value)


def _edit(text: str, kind: SuggestionKind, intent: str, language: str, dialect: str | None, phrase: str) -> str:
    yaml = _yaml()
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise SuggestionError("flow", f"the flow's YAML cannot be edited: {exc}") from None
    entry = data["intents"][intent]
    if kind is SuggestionKind.PHRASE:
        phrases = entry.get("phrases")
        if phrases is None:
            phrases = CommentedMap()
            phrases.fa.set_flow_style()
            _insert_after(entry, "dtmf", "phrases", phrases)
        listed = phrases.get(language)
        if listed is None:
            listed = CommentedSeq()
            listed.fa.set_flow_style()
            phrases[language] = listed
        listed.append(phrase)
    elif kind is SuggestionKind.VARIANT:
        variants = entry.get("variants")
        if variants is None:
            variants = CommentedSeq()
            _insert_after(entry, "phrases", "variants", variants)
        variants.append(_flow_map({"language": language, "dialect": dialect or "", "phrase": phrase}))
    else:
        examples = entry.get("examples")
        if examples is None:
            examples = _flow_map({})
            entry["examples"] = examples
        examples[language] = phrase
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
