"""What each turn of a finished call did, and the labels that come for free (pure).

A call record says what was heard and understood turn by turn; this reads it as a trainer would: which
turns failed (speech was given a chance and led nowhere), what the caller did next, and, where the caller
then made it clear, what they meant: a key pressed after speech failed ("key"), a correction of the engine
("correction"). The agent's disposition reason ("disposition") arrives later, through the archive.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.records.archive import ArchivedCall, ArchivedTurn
from ivr.records.call import CallRecord, Outcome, Turn

AGENT_KEY = "0"
#: Turn outcomes that are a failure of speech (the turns trainers label).
FAILED_OUTCOMES = frozenset({"no_match", "confirm_rejected", "corrected", "error", "no_input"})


@dataclass(frozen=True, slots=True)
class _Read:
    """What one turn did live, as read from the turns around it."""

    outcome: str
    """See ``ArchivedTurn.live_outcome``."""
    failed: bool
    """See ``ArchivedTurn.failed``."""
    next_step: str
    """See ``ArchivedTurn.next_step``."""
    label: str | None = None
    """A free label (what the caller made clear afterwards)."""
    label_source: str | None = None
    """"key" or "correction"."""


def _describe(turn: Turn, agent_intent: str) -> str:
    """A later turn, as the next step of a failed one."""
    if turn.dtmf:
        if turn.dtmf == AGENT_KEY or turn.intent == agent_intent:
            return f"pressed {turn.dtmf}: a person"
        return f"pressed {turn.dtmf}: {turn.intent}" if turn.intent else f"pressed {turn.dtmf}: no such key"
    if not turn.transcript:
        return "said nothing"
    return f"said \u201c{turn.transcript}\u201d: {turn.intent or 'not understood'}"


def _call_end(call: CallRecord, asked_person: bool, left_in_ivr: bool) -> str:
    if asked_person:
        return "asked for a person"
    if left_in_ivr:
        return "hung up"
    if call.outcome is Outcome.SELF_SERVICE:
        return "self-service"
    if call.outcome is Outcome.CALLBACK:
        return "callback"
    if call.queue:
        return f"to a person ({call.queue})"
    return call.outcome.value if call.outcome else "ended"


def left_in_ivr(call: CallRecord) -> bool:
    """The caller hung up while still in the IVR (not in a queue, not served)."""
    return call.outcome is Outcome.ABANDONED and not call.queue and not call.self_served and not call.queued_at


def read_turns(call: CallRecord, agent_intent: str = "agent") -> list[_Read]:
    """What each turn of ``call`` did, in order (see :class:`ArchivedTurn` for the words used)."""
    turns = call.turns
    asked = any(t.dtmf == AGENT_KEY for t in turns) or call.intent == agent_intent or \
        bool(turns and turns[-1].kind == "ask" and turns[-1].intent == agent_intent)
    left = left_in_ivr(call)
    reads: list[_Read] = []
    for i, turn in enumerate(turns):
        if turn.kind != "ask":
            reads.append(_Read("answer", False, ""))
            continue
        confirm = turns[i + 1] if i + 1 < len(turns) and turns[i + 1].kind == "confirm" \
            and turns[i + 1].node == turn.node else None
        after = i + (2 if confirm else 1)
        following = turns[after] if after < len(turns) else None
        if turn.dtmf:
            agent = turn.dtmf == AGENT_KEY or turn.intent == agent_intent
            outcome = "agent" if agent else "key" if turn.intent else "no_match"
        elif turn.error:
            outcome = "error"
        elif not turn.transcript:
            outcome = "hangup" if following is None and left else "no_input"
        elif confirm is not None:
            outcome = "confirmed" if confirm.intent and confirm.intent == turn.intent else \
                "corrected" if confirm.intent else "confirm_rejected"
        elif turn.intent == agent_intent and (following is None or following.node != turn.node):
            outcome = "agent"
        elif following is not None and following.kind == "ask":
            outcome = "no_match" if following.node == turn.node else "act" if turn.intent else "no_match"
        elif turn.intent and turn.intent == call.intent:
            outcome = "act"
        else:
            outcome = "no_match"
        failed = outcome in FAILED_OUTCOMES and not turn.dtmf
        if confirm is not None and outcome == "corrected":
            step = f"said no: {confirm.intent}" + (" (corrected)" if confirm.correction else "")
        elif confirm is not None and outcome == "confirm_rejected":
            step = f"said no to {turn.intent}"
        elif following is not None and following.node == turn.node:
            step = _describe(following, agent_intent)
        elif outcome in ("act", "confirmed", "key"):
            step = f"went on: {turn.intent}"
        else:
            step = _call_end(call, asked, left)
        reads.append(_Read(outcome, failed, step))
    return _free_labels(turns, reads, agent_intent)


def _free_labels(turns: list[Turn], reads: list[_Read], agent_intent: str) -> list[_Read]:
    """Failed turns get the intent the caller made clear right after at the same question."""
    out = list(reads)
    for i, (turn, read) in enumerate(zip(turns, reads, strict=True)):
        if turn.kind == "confirm" and i > 0 and reads[i - 1].outcome == "corrected" and turn.intent:
            label, source, last = turn.intent, "correction", i - 1
        elif turn.kind == "ask" and read.outcome == "key" and turn.intent and turn.intent != agent_intent:
            label, source, last = turn.intent, "key", i - 1
        elif turn.kind == "ask" and turn.correction and turn.intent and turn.intent != agent_intent \
                and read.outcome in ("act", "confirmed"):
            label, source, last = turn.intent, "correction", i - 1
        else:
            continue
        # This turn's own failure (a corrected ask), then the failed turns before it at the same question.
        j = last
        while j >= 0 and turns[j].node == turn.node:
            if turns[j].kind == "ask":
                if not out[j].failed:
                    break
                if out[j].label is None:
                    out[j] = _Read(out[j].outcome, True, out[j].next_step, label, source)
            j -= 1
    return out


def archive_rows(call: CallRecord, flow_id: str, agent_intent: str = "agent",
                 ivr_ended_at: float | None = None) -> tuple[ArchivedCall, list[ArchivedTurn]]:
    """The archive's rows for a call: the call and each of its turns, with what they did and free labels."""
    reads = read_turns(call, agent_intent)
    outcome = call.outcome.value if call.outcome else ""
    turns = [ArchivedTurn(
        call_id=call.call_id, index=i + 1, flow_id=flow_id, flow_version=call.flow_version, node=t.node,
        kind=t.kind, language=t.language or call.language, dialect=t.dialect, transcript=t.transcript,
        alternatives=tuple((str(a.get("text", "")), float(a.get("confidence", 0.0))) for a in t.alternatives),
        intent=t.intent, score=float(t.score), confidence=float(t.confidence), dtmf=t.dtmf, audio=t.audio,
        audio_rate=call.heard_at_hz if t.audio else None, started_at=t.started_at, decided_at=t.decided_at,
        error=t.error, live_outcome=r.outcome, failed=r.failed, next_step=r.next_step, call_outcome=outcome,
        label=r.label, label_source=r.label_source, label_dialect=None, labeled_by=None, cluster=None)
        for i, (t, r) in enumerate(zip(call.turns, reads, strict=True))]
    asked = any(r.outcome == "agent" for r in reads) or call.intent == agent_intent
    last_turn_end = max((t.decided_at or t.started_at for t in call.turns), default=None)
    archived = ArchivedCall(
        call_id=call.call_id, caller=call.caller, flow_id=flow_id, flow_version=call.flow_version,
        language=call.language, dialect=call.dialect, started_at=call.started_at,
        ivr_ended_at=ivr_ended_at or call.queued_at or last_turn_end or call.ended_at, ended_at=call.ended_at,
        outcome=outcome, intent=call.intent, queue=call.queue, agent=call.agent, self_served=call.self_served,
        queued_at=call.queued_at, answered_at=call.answered_at, asked_person=asked, left_in_ivr=left_in_ivr(call),
        callback_requested=call.outcome is Outcome.CALLBACK or any("accepted a callback" in n for n in call.notes),
        callback_kept=any(n.startswith("callback: customer reached") for n in call.notes),
        heard_at_hz=call.heard_at_hz, disposition=None, disposition_reason=None, disposition_at=None)
    return archived, turns
