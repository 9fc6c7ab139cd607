"""Secure capture: card data keyed while the call recording is paused, sent only to the verifier.

A ``secure_digits`` node (``ivr.voice.flow.SecureDigitsNode``) runs here: pause the recording (``RecordingPause``,
AMI ``MixMonitorMute`` in the controller), play the prompt, collect keys, check the entry's shape
(``ivr.privacy.cards``), send it to the verifier (``ivr.privacy.verifier``), and resume the recording on every way
out — verified, refused, no input, no verdict, a person asked for, a hang-up, an error — in a ``finally``.

Nothing of the entry is kept: the caller's audio during the node is dropped (a phone's in-band tones would be in
it), the turn's ``dtmf`` and transcript stay empty and no turn audio is saved, the call's notes say only why an
entry failed, and the record's ``secure_spans`` keep verified yes/no and a card's last four digits.

If the recording cannot be paused, nothing is collected: the caller hears ``unavailable`` and goes on by
``on_unavailable`` (a person). If it cannot be resumed (AMI lost), the call's ``IVR_SECURE`` channel variable is
still set, and the dialplan resumes the recording when the call leaves the IVR (asterisk_conf/extensions.conf).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ivr.privacy.cards import RULES, SecretKind, entry_problem, last4
from ivr.privacy.verifier import Verify
from ivr.records.call import CallRecord
from ivr.telephony.audiosocket import AudioSession, CallerDtmf, CallerGone

log = logging.getLogger(__name__)

PERSON_KEY = "*"
"""At a secure node ``0`` is a digit: ``*`` asks for a person."""
END_KEY = "#"
"""Ends an entry shorter than the kind's longest (a 15-digit card, a 4-digit PIN)."""
POLL_S = 0.05

# What takes the call out of a secure node, as SecureDigitsNode labels its exits.
VERIFIED = "verified"
FAILED = "failed"
NO_INPUT = "no_input"
UNAVAILABLE = "unavailable"
PERSON = "person"
"""Not an exit: the caller pressed * (the navigator sends them to the fallback queue)."""
HUNG_UP = "hung_up"
"""Not an exit: the caller left."""


class RecordingPause(Protocol):
    """Pauses and resumes the call's recording (the controller: AMI MixMonitorMute, both directions)."""

    async def pause(self, call: CallRecord) -> bool:
        """True once the recording is paused; False when it could not be (then nothing is collected)."""
        ...

    async def resume(self, call: CallRecord) -> bool:
        """True once the recording records again; False when it could not be (the dialplan resumes it later)."""
        ...


@dataclass(slots=True)
class KeyEntry:
    """One entry of keys. ``digits`` lives only until it is sent to the verifier."""

    digits: str = ""
    ended: str = NO_INPUT
    """"complete" (the kind's longest), "terminator" (#), "timeout" (inter-digit), NO_INPUT, PERSON or HUNG_UP."""


async def key_entry(session: AudioSession, kind: SecretKind, prompt: Any | None, first_digit_s: float,
                    inter_digit_s: float, on_prompt_done: Callable[[], Awaitable[None]] | None = None) -> KeyEntry:
    """Keys until the entry is complete; `prompt` is a playback whose ``done`` the first-key timer waits for.

    Audio frames are read and dropped: nothing the caller sends during the entry is kept. `on_prompt_done` runs once
    when the prompt is over (played out or cut by a key), as after a question's prompt.
    """
    loop = asyncio.get_running_loop()
    rule, entry = RULES[kind], KeyEntry()
    deadline: float | None = None
    prompt_over = False

    async def over() -> None:
        nonlocal prompt_over
        if not prompt_over:
            prompt_over = True
            if on_prompt_done is not None:
                await on_prompt_done()

    while True:
        if not prompt_over and (prompt is None or prompt.done.done()):
            await over()
            deadline = deadline or loop.time() + first_digit_s
        if deadline is not None and loop.time() >= deadline:
            entry.ended = "timeout" if entry.digits else NO_INPUT
            return entry
        event = await session.next_event(timeout=POLL_S)
        if isinstance(event, CallerGone):
            entry.ended = HUNG_UP
            return entry
        if not isinstance(event, CallerDtmf):
            continue  # audio (and its in-band tones) is dropped
        session.stop_playback()
        await over()  # a key cuts the prompt
        if event.digit == PERSON_KEY:
            entry.ended = PERSON
            return entry
        if event.digit == END_KEY:
            if entry.digits:
                entry.ended = "terminator"
                return entry
            deadline = loop.time() + first_digit_s
            continue
        if event.digit.isdigit():
            entry.digits += event.digit
            if len(entry.digits) >= rule.max_digits:
                entry.ended = "complete"
                return entry
        deadline = loop.time() + inter_digit_s


def new_span(node_id: str, kind: SecretKind) -> dict[str, Any]:
    """A record's ``secure_spans`` entry (ivr.records.call.CallRecord.secure_spans)."""
    return {"node": node_id, "started_at": round(time.time(), 3), "ended_at": None, "what": kind.value,
            "verified": None, "last4": None}


async def verify_entry(verify: Verify, kind: SecretKind, entry: KeyEntry, span: dict[str, Any]) -> tuple[str, str]:
    """(VERIFIED / FAILED / UNAVAILABLE, what to note): the entry checked, sent, and forgotten."""
    digits, entry.digits = entry.digits, ""
    problem = entry_problem(kind, digits)
    if problem is not None:
        return FAILED, f"entry refused before verification: {problem}"
    try:
        verdict = await verify(kind, digits)
    except Exception as exc:  # a verifier must not raise; if one does, its message may hold the digits
        log.error("card verifier raised %s", type(exc).__name__)
        return UNAVAILABLE, f"the card verifier failed ({type(exc).__name__})"
    if verdict.verified is None:
        return UNAVAILABLE, verdict.problem or "the card verifier gave no verdict"
    span["verified"] = verdict.verified
    if verdict.verified:
        span["last4"] = last4(kind, digits)
        return VERIFIED, ""
    return FAILED, "the verifier refused the entry"
