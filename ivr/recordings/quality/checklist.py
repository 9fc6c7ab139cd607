"""The quality checklist as data: what agents must say and must never say, per queue (pure).

A YAML document (``dialplans/qa-checklist.yaml``; ``ivr qa check-checklist FILE`` and the /qa editor check it the
way the flow validator checks a flow: every problem with its line, its path and a message)::

    pass_score: 80                 # a call scoring below this is flagged even when nothing else is
    every_queue:                   # items checked on every call an agent answered
      - id: greeting
        kind: greeting             # greeting | identity_check | disclosure (must be said) | forbidden (must not)
        text: 첫인사               # what a reviewer reads on the flag
        phrases: [안녕하십니까, 안녕하세요]
        within_s: 30               # must be said within the agent's first 30 s (required kinds only)
        weight: 10                 # points taken from 100 when the item fails
    queues:
      loans:
        - id: risk_warning
          kind: disclosure
          phrases: [원금 손실, {re: "손실이?\\s*(발생|날)\\s*수"}]

A phrase is said whatever its spacing (Vosk spells "원금보장" or "원금 보장"); ``{re: PATTERN}`` is a regular
expression over the agent's words joined by single spaces (case-insensitive). A pattern that does not compile, an
empty phrase, a queue Asterisk does not have, an unknown kind, a repeated id: errors naming the item; a phrase
word the speech model cannot hear (Vosk never writes a word outside its vocabulary): a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from ivr.voice.validation.problems import Checker, Problem
from ivr.voice.validation.structure import compose

__all__ = ["KINDS", "MAX_CHECKLIST_BYTES", "Checklist", "ChecklistReport", "InvalidChecklist", "Item", "Phrase",
           "compact", "parse_checklist", "validate_checklist"]

Kind = Literal["greeting", "identity_check", "disclosure", "forbidden"]
KINDS: tuple[Kind, ...] = ("greeting", "identity_check", "disclosure", "forbidden")
#: The flag each kind raises when it fails (the /qa timeline's flag kinds, ivr.recordings.timeline.FLAG_KINDS).
FLAG_KIND: dict[str, str] = {"greeting": "greeting", "identity_check": "identity_check",
                             "disclosure": "missing_disclosure", "forbidden": "forbidden_phrase"}
DEFAULT_WEIGHT: dict[str, int] = {"greeting": 10, "identity_check": 20, "disclosure": 30, "forbidden": 50}
MAX_CHECKLIST_BYTES = 200_000
MAX_PATTERN_CHARS = 300
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ITEM_KEYS = {"id", "kind", "text", "phrases", "within_s", "weight"}
_TOP_KEYS = {"pass_score", "every_queue", "queues"}


@dataclass(frozen=True, slots=True)
class Phrase:
    """One way of saying an item."""

    text: str
    """As written in the checklist (a phrase, or the pattern of a regex)."""
    pattern: re.Pattern[str] | None = None
    """The compiled regular expression (``{re: ...}``); None for a plain phrase."""
    compact: str = ""
    """A plain phrase without spaces, lower-case: what is looked for in the agent's words, whatever their spacing."""


@dataclass(frozen=True, slots=True)
class Item:
    """One check."""

    id: str
    """Unique in its queue (with every_queue's): names the item in flags and problems."""
    kind: Kind
    """greeting, identity_check, disclosure (must be said) or forbidden (must not be)."""
    text: str
    """What a reviewer reads (defaults to the id)."""
    phrases: tuple[Phrase, ...]
    """Any one of them counts as saying the item."""
    within_s: float | None
    """Required kinds: must be said within this many seconds of the agent's first words; None: any time."""
    weight: int
    """Points taken from the call's 100 when the item fails."""

    @property
    def required(self) -> bool:
        return self.kind != "forbidden"

    @property
    def flag_kind(self) -> str:
        return FLAG_KIND[self.kind]


@dataclass(frozen=True, slots=True)
class Checklist:
    """The whole checklist."""

    pass_score: int = 80
    """A call scoring below this is flagged for review."""
    every_queue: tuple[Item, ...] = ()
    """Items of every call an agent answered."""
    queues: Mapping[str, tuple[Item, ...]] = field(default_factory=dict)
    """Items added for a queue's calls (flow names: "loans", not "q_loans")."""

    def items_for(self, queue: str | None) -> tuple[Item, ...]:
        return self.every_queue + tuple(self.queues.get(queue or "", ()))


@dataclass(frozen=True, slots=True)
class ChecklistReport:
    """What validating a checklist text found."""

    checklist: Checklist | None
    """The checklist when it has no errors."""
    problems: list[Problem]
    """Errors and warnings, in the order of the text (``Problem.format()``: ``file:line: severity: path: message``)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class InvalidChecklist(ValueError):
    """A checklist with errors was refused; ``report`` says why (nothing is saved)."""

    def __init__(self, report: ChecklistReport) -> None:
        self.report = report
        errors = report.errors
        shown = "; ".join(p.format() for p in errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3
                                                              else "")
        super().__init__(f"checklist has {len(errors)} error{'s' if len(errors) != 1 else ''}: {shown}")


def compact(text: str) -> str:
    """What a plain phrase is compared on: no spaces, lower-case ("원금 보장" and "원금보장" are the same)."""
    return "".join(text.lower().split())


def validate_checklist(text: str, file: str = "<editor>", queues: frozenset[str] | None = None,
                       knows: Callable[[str], bool] | None = None) -> ChecklistReport:
    """Every problem of a checklist text. ``queues``: the queues that exist (None: not checked); ``knows``: whether
    the speech model can write a word (None: not checked)."""
    checker = Checker(file)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CHECKLIST_BYTES:
        checker.error(None, (), f"the checklist is {size:,} bytes; at most {MAX_CHECKLIST_BYTES:,}")
        return ChecklistReport(None, checker.report(None).problems)
    root = compose(checker, text)  # YAML syntax, duplicate keys, aliases that expand without bound
    if checker.problems:
        return ChecklistReport(None, checker.report(None).problems)
    data = yaml.safe_load(text)
    checker.root = root
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        checker.error(1, (), f"a checklist is a mapping (pass_score:, every_queue:, queues:), not {got}")
        return ChecklistReport(None, checker.report(None).problems)
    for key in data:
        if key not in _TOP_KEYS:
            checker.at("error", (str(key),), f"unknown key {key!r}: a checklist has {', '.join(sorted(_TOP_KEYS))}")
    pass_score = data.get("pass_score", 80)
    if isinstance(pass_score, bool) or not isinstance(pass_score, int) or not 0 <= pass_score <= 100:
        checker.at("error", ("pass_score",), f"a whole number from 0 to 100, not {pass_score!r}")
        pass_score = 80
    every = _items(checker, data.get("every_queue") or [], ("every_queue",), knows, set())
    by_queue: dict[str, tuple[Item, ...]] = {}
    raw_queues = data.get("queues") or {}
    if not isinstance(raw_queues, dict):
        checker.at("error", ("queues",), "a mapping of queue name to its list of items")
        raw_queues = {}
    shared_ids = {item.id for item in every}
    for name, raw in raw_queues.items():
        queue = str(name)
        if queues is not None and queue not in queues:
            known = ", ".join(sorted(queues)) or "none"
            checker.at("error", ("queues", queue), f"unknown queue {queue!r}: Asterisk's queues are {known} "
                       "(asterisk_conf/queues.conf, without the q_ prefix)")
        by_queue[queue] = _items(checker, raw or [], ("queues", queue), knows, set(shared_ids))
    if not every and not any(by_queue.values()) and not checker.problems:
        checker.error(1, (), "the checklist has no item: add every_queue: or queues: items")
    problems = checker.report(None).problems
    ok = not any(p.severity == "error" for p in problems)
    return ChecklistReport(Checklist(pass_score, every, by_queue) if ok else None, problems)


def _items(checker: Checker, raw: Any, where: tuple[str | int, ...], knows: Callable[[str], bool] | None,
           seen: set[str]) -> tuple[Item, ...]:
    if not isinstance(raw, list):
        checker.at("error", where, "a list of items (each with id, kind, phrases)")
        return ()
    items = []
    for index, entry in enumerate(raw):
        item = _item(checker, entry, (*where, index), knows)
        if item is None:
            continue
        if item.id in seen:
            checker.at("error", (*where, index, "id"), f"id {item.id!r} is used twice for this queue's calls "
                       "(every_queue's ids count too)")
            continue
        seen.add(item.id)
        items.append(item)
    return tuple(items)


def _item(checker: Checker, entry: Any, where: tuple[str | int, ...],
          knows: Callable[[str], bool] | None) -> Item | None:
    if not isinstance(entry, dict):
        checker.at("error", where, "an item is a mapping: {id, kind, phrases, text?, within_s?, weight?}")
        return None
    errors = _count(checker)
    for key in entry:
        if key not in _ITEM_KEYS:
            checker.at("error", (*where, str(key)), f"unknown key {key!r}: an item has "
                       f"{', '.join(sorted(_ITEM_KEYS))}")
    item_id = entry.get("id")
    if not isinstance(item_id, str) or not _ID.match(item_id):
        checker.at("error", (*where, "id"), f"a name in lower case (letters, digits, _), not {item_id!r}")
        item_id = str(item_id)
    kind = entry.get("kind")
    if kind not in KINDS:
        checker.at("error", (*where, "kind"), f"one of {', '.join(KINDS)}, not {kind!r}")
    text = entry.get("text", item_id)
    if not isinstance(text, str) or not text.strip() or len(text) > 200:
        checker.at("error", (*where, "text"), "what a reviewer reads: 1 to 200 characters")
        text = item_id
    within = entry.get("within_s")
    if within is not None:
        if isinstance(within, bool) or not isinstance(within, int | float) or within <= 0:
            checker.at("error", (*where, "within_s"), f"seconds (more than 0), not {within!r}")
            within = None
        elif kind == "forbidden":
            checker.at("error", (*where, "within_s"), "a forbidden phrase is forbidden all call long: remove "
                       "within_s")
    weight = entry.get("weight", DEFAULT_WEIGHT.get(str(kind), 10))
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        checker.at("error", (*where, "weight"), f"points from 0 to 100, not {weight!r}")
        weight = 0
    phrases = _phrases(checker, entry.get("phrases"), (*where, "phrases"), knows)
    if _count(checker) > errors or kind not in KINDS:
        return None
    return Item(item_id, kind, text.strip(), phrases, float(within) if within is not None else None, weight)


def _count(checker: Checker) -> int:
    return sum(1 for p in checker.problems if p.severity == "error")


def _phrases(checker: Checker, raw: Any, where: tuple[str | int, ...],
             knows: Callable[[str], bool] | None) -> tuple[Phrase, ...]:
    if not isinstance(raw, list) or not raw:
        checker.at("error", where, "a list of at least one phrase (a string, or {re: PATTERN})")
        return ()
    out = []
    for index, value in enumerate(raw):
        here = (*where, index)
        if isinstance(value, dict):
            if set(value) != {"re"} or not isinstance(value["re"], str):
                checker.at("error", here, "a regular expression is written {re: PATTERN}")
                continue
            pattern = value["re"]
            if not pattern.strip():
                checker.at("error", here, "an empty pattern would match every call")
                continue
            if len(pattern) > MAX_PATTERN_CHARS:
                checker.at("error", here, f"a pattern of at most {MAX_PATTERN_CHARS} characters")
                continue
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                checker.at("error", here, f"{pattern!r} is not a valid regular expression: {exc}")
                continue
            if compiled.search("") is not None:
                checker.at("error", here, f"{pattern!r} matches empty text: it would match every call")
                continue
            out.append(Phrase(pattern, compiled))
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            checker.at("error", here, f"a phrase (text) or {{re: PATTERN}}, not {type(value).__name__}")
            continue
        text = str(value)
        if not compact(text):
            checker.at("error", here, "an empty phrase would match every call")
            continue
        if knows is not None:
            for word in text.lower().split():
                if not _hearable(word, knows):
                    checker.at("warning", here, f"the speech model does not know {word!r}: it can never hear "
                               "this phrase as written (write it as the model spells it, or use {re: ...})")
        out.append(Phrase(text, None, compact(text)))
    return tuple(out)


def _hearable(word: str, knows: Callable[[str], bool]) -> bool:
    """Known, or a run of known words (spacing does not matter to the match: "원금보장" is "원금" + "보장")."""
    if knows(word):
        return True
    if len(word) > 12:
        return False
    ends = [True] + [False] * len(word)  # ends[i]: word[:i] is a run of known words
    for i in range(1, len(word) + 1):
        ends[i] = any(ends[j] and knows(word[j:i]) for j in range(i))
    return ends[-1]


def parse_checklist(text: str, file: str = "<editor>", queues: frozenset[str] | None = None) -> Checklist:
    """The checklist, or InvalidChecklist naming every error."""
    report = validate_checklist(text, file, queues)
    if report.checklist is None:
        raise InvalidChecklist(report)
    return report.checklist


def problems_text(problems: Sequence[Problem]) -> list[str]:
    return [p.format() for p in problems]
