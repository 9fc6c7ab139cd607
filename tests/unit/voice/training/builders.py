"""Call records for the trainer loop's tests: a few turns, as the navigator records them."""

from __future__ import annotations

import itertools
from typing import Any

from ivr.records.call import CallRecord, Outcome, Turn

_ids = itertools.count(1)


def said(node: str, text: str, intent: str | None = None, score: float = 0.0, kind: str = "ask",
         nbest: tuple[str, ...] = (), at: float = 1_800_000_000.0, **more: Any) -> Turn:
    """A spoken turn: heard ``text`` (and n-best), understood ``intent`` (or nothing)."""
    alternatives = [{"text": t, "confidence": 0.5} for t in (text, *nbest)] if text else []
    return Turn(node=node, transcript=text, intent=intent, score=score, kind=kind, language="ko",
                alternatives=alternatives, started_at=at, decided_at=at + 2, **more)


def pressed(node: str, key: str, intent: str | None, at: float = 1_800_000_000.0) -> Turn:
    return Turn(node=node, dtmf=key, intent=intent, score=1.0 if intent else 0.0, language="ko", started_at=at,
                decided_at=at + 1)


def call(*turns: Turn, outcome: Outcome = Outcome.QUEUED, intent: str | None = None, queue: str | None = None,
         caller: str = "01012345678", started_at: float = 1_800_000_000.0, call_id: str | None = None,
         **more: Any) -> CallRecord:
    record = CallRecord(call_id=call_id or f"1800.{next(_ids)}", caller=caller, started_at=started_at,
                        intent=intent, queue=queue, outcome=outcome, heard_at_hz=8000, flow_version=3, **more)
    record.turns = list(turns)
    record.path = [t.node for t in turns if t.kind == "ask"]
    return record


def failed_then_key(node: str = "menu", text: str = "자나 조회", intent: str = "balance", key: str = "1",
                    at: float = 1_800_000_000.0, **more: Any) -> CallRecord:
    """Speech failed, then the caller pressed the intent's key (the free label "key")."""
    return call(said(node, text, at=at, audio=f"turns/2027-01-15/x-{at}.wav"), pressed(node, key, intent, at=at + 5),
                outcome=Outcome.SELF_SERVICE, intent=intent, self_served=True, started_at=at, **more)
