"""Navigation analytics (pure): how the flow did with callers, per flow version, node, language or dialect.

Read from archive rows (``ivr.records.archive``): turns as :class:`TurnFact` (the few columns these numbers need,
loaded by one SQL query so 100,000 turns take well under a second) and calls as ``ArchivedCall``.

What the numbers mean (rates are 0..1, None when nothing was counted):

- ``containment``: calls finished in self-service, of the calls in the group.
- ``first_try``: of first spoken answers at a question (per call and node), those the engine acted on or
  that the caller confirmed.
- ``confirm``: spoken answers the engine asked to confirm; ``confirm_rejected``: of those, the ones the caller
  said no to (or corrected).
- ``reprompt``: questions asked again (a second try at the same node), of all spoken answers' questions.
- ``no_match``: spoken answers nothing came of (``no_match`` and ``no_input``), of spoken answers.
- ``asks_person``: calls where the caller asked for a person; ``hangup_in_ivr``: calls the caller left in the IVR.
- ``ivr_s``: mean seconds in the IVR (start to hand-over); ``keys_after_failure``: of failed spoken answers, the
  ones the caller followed with a key at the same question.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ivr.records.archive import ArchivedCall, ArchivedTurn

DIMENSIONS = ("version", "node", "language", "dialect")
"""What navigation can be broken down by."""
ACTED = frozenset({"act", "confirmed"})
CONFIRMED_OR_NOT = frozenset({"confirmed", "confirm_rejected", "corrected"})
NOTHING = frozenset({"no_match", "no_input"})


@dataclass(frozen=True, slots=True)
class TurnFact:
    """The columns of an archived turn navigation analytics read."""

    call_id: str
    index: int
    flow_version: int | None
    node: str
    kind: str
    language: str
    dialect: str | None
    live_outcome: str
    failed: bool
    dtmf: str

    @classmethod
    def of(cls, turn: ArchivedTurn) -> TurnFact:
        return cls(turn.call_id, turn.index, turn.flow_version, turn.node, turn.kind, turn.language, turn.dialect,
                   turn.live_outcome, turn.failed, turn.dtmf)


#: The SQL that loads TurnFacts (``Archive.query``), in the dataclass's order.
TURN_FACTS_SQL = ("SELECT call_id, idx, flow_version, node, kind, language, dialect, live_outcome, failed, dtmf "
                  "FROM turns WHERE started_at >= ? AND started_at < ? ORDER BY call_id, idx")


@dataclass(frozen=True, slots=True)
class CallFact:
    """The columns of an archived call navigation analytics read."""

    call_id: str
    flow_version: int | None
    language: str
    dialect: str | None
    self_served: bool
    """Finished in self-service (the call's outcome)."""
    asked_person: bool
    left_in_ivr: bool
    ivr_s: float | None
    """Seconds in the IVR, when known."""

    @classmethod
    def of(cls, call: ArchivedCall) -> CallFact:
        ivr = call.ivr_ended_at - call.started_at if call.ivr_ended_at is not None \
            and call.ivr_ended_at >= call.started_at else None
        return cls(call.call_id, call.flow_version, call.language, call.dialect, call.outcome == "self_service",
                   call.asked_person, call.left_in_ivr, ivr)


#: The SQL that loads CallFacts, in the dataclass's order.
CALL_FACTS_SQL = ("SELECT call_id, flow_version, language, dialect, outcome = 'self_service', asked_person, "
                  "left_in_ivr, CASE WHEN ivr_ended_at >= started_at THEN ivr_ended_at - started_at END FROM calls "
                  "WHERE archived = 1 AND started_at >= ? AND started_at < ?")


@dataclass(frozen=True, slots=True)
class NavigationRow:
    """Navigation numbers of one group (see the module's doc for each)."""

    dimension: str
    """"version", "node", "language", "dialect" or "all"."""
    value: str
    """The group ("v3", "menu", "ko", "gyeongsang", "-" when unknown, "all")."""
    calls: int
    """Calls in the group."""
    spoken: int
    """Spoken answers at questions (ask turns without keys)."""
    containment: float | None
    first_try: float | None
    confirm: float | None
    confirm_rejected: float | None
    reprompt: float | None
    no_match: float | None
    asks_person: float | None
    hangup_in_ivr: float | None
    ivr_s: float | None
    keys_after_failure: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _group_of(dimension: str, turn: TurnFact | None, call: CallFact | None) -> str:
    if dimension == "version":
        version = turn.flow_version if turn is not None else call.flow_version if call is not None else None
        return f"v{version}" if version is not None else "file"
    if dimension == "language":
        return (turn.language if turn is not None else call.language if call is not None else "") or "-"
    if dimension == "dialect":
        return (turn.dialect if turn is not None else call.dialect if call is not None else None) or "-"
    return "all"


@dataclass(slots=True)
class _Counts:
    calls: set[str]
    spoken: int = 0
    first: int = 0
    first_acted: int = 0
    confirms: int = 0
    rejected: int = 0
    reprompts: int = 0
    nothing: int = 0
    failed: int = 0
    keys_after: int = 0


def navigation(turns: Sequence[TurnFact], calls: Iterable[CallFact], by: str = "node") -> list[NavigationRow]:
    """Navigation numbers per group of ``by`` (one of DIMENSIONS), biggest group first, then one "all" row.

    ``turns`` must be ordered by call and index (as ``TURN_FACTS_SQL`` loads them)."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}, not {by!r}")
    calls_by_id = {c.call_id: c for c in calls}
    counts: dict[str, _Counts] = defaultdict(lambda: _Counts(set()))
    total = _Counts(set())
    seen_at: set[tuple[str, str]] = set()
    last_failed: dict[tuple[str, str], bool] = {}
    for turn in turns:
        call = calls_by_id.get(turn.call_id)
        group = turn.node if by == "node" else _group_of(by, turn, call)
        # A call counts in a node's group once it reached the node; in other groups by the call's own value.
        if by == "node" or call is None:
            counts[group].calls.add(turn.call_id)
        if turn.kind != "ask":
            continue
        where = (turn.call_id, turn.node)
        first = where not in seen_at
        seen_at.add(where)
        key_after = bool(turn.dtmf) and last_failed.get(where, False)
        last_failed[where] = turn.failed
        for c in (counts[group], total):
            if key_after:
                c.keys_after += 1
            if turn.dtmf:
                continue
            c.spoken += 1
            if first:
                c.first += 1
                c.first_acted += turn.live_outcome in ACTED
            else:
                c.reprompts += 1
            c.confirms += turn.live_outcome in CONFIRMED_OR_NOT
            c.rejected += turn.live_outcome in ("confirm_rejected", "corrected")
            c.nothing += turn.live_outcome in NOTHING
            c.failed += turn.failed
    if by != "node":
        for call in calls_by_id.values():
            counts[_group_of(by, None, call)].calls.add(call.call_id)
    total.calls = set(calls_by_id) | {t.call_id for t in turns}
    rows = [_row(by, group, c, calls_by_id) for group, c in counts.items()]
    rows.sort(key=lambda r: (-r.calls, -r.spoken, r.value))
    return [*rows, _row("all", "all", total, calls_by_id)]


def _row(dimension: str, value: str, c: _Counts, calls_by_id: dict[str, CallFact]) -> NavigationRow:
    calls = [calls_by_id[i] for i in c.calls if i in calls_by_id]
    ivr = [call.ivr_s for call in calls if call.ivr_s is not None]
    return NavigationRow(
        dimension=dimension, value=value, calls=len(c.calls), spoken=c.spoken,
        containment=_rate(sum(call.self_served for call in calls), len(calls)),
        first_try=_rate(c.first_acted, c.first), confirm=_rate(c.confirms, c.spoken),
        confirm_rejected=_rate(c.rejected, c.confirms), reprompt=_rate(c.reprompts, c.spoken),
        no_match=_rate(c.nothing, c.spoken),
        asks_person=_rate(sum(call.asked_person for call in calls), len(calls)),
        hangup_in_ivr=_rate(sum(call.left_in_ivr for call in calls), len(calls)),
        ivr_s=round(sum(ivr) / len(ivr), 2) if ivr else None,
        keys_after_failure=_rate(c.keys_after, c.failed))
