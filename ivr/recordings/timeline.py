"""A call's timeline for the player: what happened when, in seconds from the start of its recording (pure).

Built from the call record when the call ends (kept on the index entry, so a call whose Redis record expired
after 7 days still shows it): the IVR part and each of its turns, the wait for a person, each agent's segment,
the router's offers (a ring-out is one), transfers, the span a card was captured with the recording muted
(``secure_spans``, shown as such, nothing of the digits), and flags (``{at_s, kind, text}``, e.g. a forbidden
phrase found by the quality checks) linked to their moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Flag", "Mark", "Segment", "Timeline", "build_timeline", "parse_flags"]

FLAG_KINDS = frozenset({"forbidden_phrase", "missing_disclosure", "greeting", "identity_check", "note", "other"})


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the call."""

    kind: str
    """"ivr", "turn", "queue", "agent", "secure" (card capture, recording muted)."""
    start_s: float
    """From the start of the recording."""
    end_s: float
    label: str
    """What a person reads on the timeline."""


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment of the call."""

    kind: str
    """"offer" (the router rang an agent), "transfer", "note"."""
    at_s: float
    label: str


@dataclass(frozen=True, slots=True)
class Flag:
    """A moment QA should hear (from the quality checks, or set by a reviewer)."""

    at_s: float
    """From the start of the recording."""
    kind: str
    """What kind of finding ("forbidden_phrase", "missing_disclosure", ...)."""
    text: str
    """What was found, for a person."""


@dataclass(frozen=True, slots=True)
class Timeline:
    duration_s: float
    segments: tuple[Segment, ...]
    marks: tuple[Mark, ...]
    flags: tuple[Flag, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"duration_s": self.duration_s, "segments": [asdict(s) for s in self.segments],
                "marks": [asdict(m) for m in self.marks], "flags": [asdict(f) for f in self.flags]}


def parse_flags(items: Sequence[Mapping[str, Any]]) -> list[Flag]:
    """Flags from JSON; a bad one is a ValueError naming its field."""
    out = []
    for i, item in enumerate(items):
        try:
            at_s = float(item["at_s"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"flags[{i}].at_s: seconds from the start of the recording") from None
        if at_s < 0:
            raise ValueError(f"flags[{i}].at_s: not negative")
        kind = str(item.get("kind", ""))
        if kind not in FLAG_KINDS:
            raise ValueError(f"flags[{i}].kind: one of {', '.join(sorted(FLAG_KINDS))}")
        text = str(item.get("text", "")).strip()
        if not text or len(text) > 500:
            raise ValueError(f"flags[{i}].text: 1 to 500 characters")
        out.append(Flag(round(at_s, 2), kind, text))
    return sorted(out, key=lambda f: f.at_s)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def build_timeline(call: Mapping[str, Any], duration_s: float, flags: Sequence[Flag] = ()) -> Timeline:
    """The timeline of ``call`` (a ``CallRecord.to_dict()``) over a recording of ``duration_s`` seconds."""
    zero = float(call.get("started_at") or 0.0)
    end_of_call = _num(call.get("ended_at"))
    length = duration_s if duration_s > 0 else max(0.0, (end_of_call or zero) - zero)

    def rel(at: float | None) -> float:
        return round(min(max((at or zero) - zero, 0.0), length), 2) if length else round(max((at or zero) - zero, 0), 2)

    segments: list[Segment] = []
    marks: list[Mark] = []
    turns = [t for t in call.get("turns") or [] if isinstance(t, Mapping)]
    queued_at, answered_at = _num(call.get("queued_at")), _num(call.get("answered_at"))
    ivr_end = queued_at or end_of_call
    if ivr_end is None and turns:
        ivr_end = _num(turns[-1].get("decided_at")) or _num(turns[-1].get("started_at"))
    segments.append(Segment("ivr", 0.0, rel(ivr_end) if ivr_end else length, "IVR"))
    for i, turn in enumerate(turns):
        start = _num(turn.get("started_at"))
        following = _num(turns[i + 1].get("started_at")) if i + 1 < len(turns) else ivr_end
        end = _num(turn.get("decided_at")) or _num(turn.get("speech_ended_at")) or following or start
        heard = str(turn.get("transcript") or "")
        keys = str(turn.get("dtmf") or "")
        said = f'"{heard}"' if heard else (f"keys {keys}" if keys else "nothing heard")
        intent = turn.get("intent")
        label = f"{turn.get('node', '?')}: {said}" + (f" → {intent}" if intent else "")
        segments.append(Segment("turn", rel(start), rel(end), label))
    if queued_at is not None:
        wait_end = answered_at or end_of_call
        where = call.get("queue") or "the queue"
        segments.append(Segment("queue", rel(queued_at), rel(wait_end) if wait_end else length,
                                f"waiting for a person in {where}"))
    if answered_at is not None:
        segments.append(Segment("agent", rel(answered_at), rel(end_of_call) if end_of_call else length,
                                f"agent {call.get('agent') or '?'}"))
    for span in call.get("secure_spans") or []:
        if not isinstance(span, Mapping):
            continue
        what = str(span.get("what") or "card data")
        verified = span.get("verified")
        outcome = "" if verified is None else (", verified" if verified else ", not verified")
        segments.append(Segment("secure", rel(_num(span.get("started_at"))),
                                rel(_num(span.get("ended_at")) or end_of_call),
                                f"{what} captured: recording muted{outcome}"))
    for decision in call.get("routing") or []:
        if not isinstance(decision, Mapping) or not decision.get("agent"):
            continue
        result = decision.get("result") or ""
        marks.append(Mark("offer", rel(_num(decision.get("at"))),
                          f"offered to {decision.get('agent')}" + (f": {result}" if result else "")))
    if call.get("transfer_to"):
        marks.append(Mark("transfer", rel(ivr_end) if ivr_end else 0.0, f"transferred to {call['transfer_to']}"))
    segments.sort(key=lambda s: (s.start_s, s.kind != "ivr"))
    marks.sort(key=lambda m: m.at_s)
    return Timeline(round(length, 2), tuple(segments), tuple(marks),
                    tuple(sorted(flags, key=lambda f: f.at_s)))
