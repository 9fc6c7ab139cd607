"""What the IVR has learned about a caller, as the channel variables the dialplan's fallback reads. Pure.

A caller tells the IVR who they are (their number finds the customer), what they want (an intent, so a queue and
its priority), and in which language and dialect. All of it is kept on the call's channel as soon as it is known
(``channel_variables``), so that if the controller dies or its AGI fails mid-call, the dialplan (``[hotline]``,
``fallback`` in asterisk_conf/extensions.conf) still sends the caller to the queue their intent named, with its
priority, rather than to ``general``; and the agent's screen pop, built when Asterisk's queue rings the agent,
shows the same facts (``ivr.routing.acd.fallback``) rather than an empty card.

The names are a contract with the dialplan and the pop, so they live here, once:

- ``IVR_LEARNED_QUEUE`` / ``IVR_LEARNED_PRIORITY``: the queue the flow would send the caller to from where they
  are (``route_ahead``), kept apart from ``IVR_QUEUE``/``IVR_PRIORITY``, which only the controller's hand-over
  sets: a normal hand-over works exactly as before, and a learned queue is never mistaken for a decision.
- ``IVR_CUSTOMER``, ``IVR_TIER``, ``IVR_INTENT``, ``IVR_LANGUAGE``, ``IVR_DIALECT``, ``IVR_SUMMARY``.

Every value is cut to characters that are safe in an AGI argument, an AMI header and a dialplan expression
(``safe_value``), and the summary never carries what a secure node collected, nor any run of digits long enough
to be a card or account number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ivr.records.call import CallRecord, Turn
from ivr.voice.flow import CallbackOfferNode, Flow, RouteNode, SayNode, TransferNode

QUEUE = "IVR_LEARNED_QUEUE"
PRIORITY = "IVR_LEARNED_PRIORITY"
CUSTOMER = "IVR_CUSTOMER"
TIER = "IVR_TIER"
INTENT = "IVR_INTENT"
LANGUAGE = "IVR_LANGUAGE"
DIALECT = "IVR_DIALECT"
SUMMARY = "IVR_SUMMARY"
VARIABLES = (CUSTOMER, TIER, INTENT, QUEUE, PRIORITY, LANGUAGE, DIALECT, SUMMARY)
"""Every variable the IVR keeps on a channel, in the order they are set."""

SUMMARY_CHARS = 160
"""The summary is a line on a card, not the transcript (the call record in Redis has every turn)."""
VALUE_CHARS = 64
"""Any other value: an id, a queue or intent name, a language."""
_ROUTE_STEPS = 8
"""How far ``route_ahead`` looks through nodes that go on by themselves (a flow's loop must not hang it)."""
_PUNCTUATION = frozenset("._-:/+@")
_LONG_DIGITS = re.compile(r"\d(?:[\s.-]?\d){4,}")
"""Five digits or more (maybe spaced or dashed): a card, account or phone number, or part of one."""


@dataclass(frozen=True, slots=True)
class Learned:
    """What the IVR knows of a caller at one moment (every field optional: an unknown caller who said nothing)."""

    customer: str | None = None
    """Customer id, when the caller's number is known."""
    tier: str | None = None
    """Customer tier (standard, gold, vip)."""
    intent: str | None = None
    """The intent the caller chose."""
    queue: str | None = None
    """The queue the flow sends the caller to from where they are; None: nothing decided yet (``general``)."""
    priority: int = 0
    """That queue's priority (the route node's): Asterisk's ``QUEUE_PRIO``."""
    language: str | None = None
    """The language the IVR speaks with the caller."""
    dialect: str | None = None
    """The caller's dialect, when known."""
    summary: str = ""
    """One line of what the caller said, for the agent's card."""

    def variables(self) -> dict[str, str]:
        """The channel variables for these facts, every value safe (an unknown fact is an empty value)."""
        known = self.queue is not None
        return {
            CUSTOMER: safe_value(self.customer or ""),
            TIER: safe_value(self.tier or ""),
            INTENT: safe_value(self.intent or ""),
            QUEUE: queue_name(self.queue or ""),
            PRIORITY: str(max(0, int(self.priority))) if known else "",
            LANGUAGE: safe_value(self.language or ""),
            DIALECT: safe_value(self.dialect or ""),
            SUMMARY: safe_value(self.summary, SUMMARY_CHARS),
        }

    def fill(self, call: CallRecord) -> CallRecord:
        """Complete ``call`` with these facts where it says nothing yet; returns it.

        The record in Redis is saved turn by turn, the facts node by node: the intent of the last answer (and so the
        queue) may be only in the facts when the controller dies in between."""
        call.customer = call.customer or self.customer
        call.tier = call.tier or self.tier
        call.intent = call.intent or self.intent
        call.dialect = call.dialect or self.dialect
        return call

    @classmethod
    def from_variables(cls, values: Mapping[str, str]) -> Learned:
        """Read the facts back from channel variables (an AMI Status reply) or their copy in Redis."""
        def get(name: str) -> str | None:
            return safe_value(str(values.get(name) or "")) or None

        priority = str(values.get(PRIORITY) or "")
        return cls(customer=get(CUSTOMER), tier=get(TIER), intent=get(INTENT),
                   queue=queue_name(str(values.get(QUEUE) or "")) or None,
                   priority=int(priority) if priority.isdigit() else 0, language=get(LANGUAGE),
                   dialect=get(DIALECT), summary=safe_value(str(values.get(SUMMARY) or ""), SUMMARY_CHARS))


def learned_of(call: CallRecord, route: tuple[str, int] | None) -> Learned:
    """The facts of ``call`` now, with the queue and priority the flow leads to from where the caller is."""
    return Learned(customer=call.customer, tier=call.tier, intent=call.intent, queue=route[0] if route else None,
                   priority=route[1] if route else 0, language=call.language, dialect=call.dialect,
                   summary=summary_of(call.turns))


def changes(sent: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The variables to set so the channel says ``wanted``, given it says ``sent``: one command per changed fact.

    A variable never set and still empty needs nothing (unset reads as empty in the dialplan)."""
    return {name: value for name, value in wanted.items() if sent.get(name, "") != value}


def route_ahead(flow: Flow, node_id: str) -> tuple[str, int] | None:
    """(queue, priority) the flow sends a caller to from ``node_id`` without asking them anything more, or None.

    A route node names both; a say node goes on; a callback offer keeps a place in its queue (the priority is
    the route's its "no" leads to, if it leads to one of the same queue); a transfer falls back to its queue.
    A question, a self-service lookup or a card entry may lead anywhere: None (what was learned before stays).
    """
    seen: set[str] = set()
    for _ in range(_ROUTE_STEPS):
        node = flow.nodes.get(node_id)
        if node is None or node_id in seen:
            return None
        seen.add(node_id)
        if isinstance(node, RouteNode):
            return node.queue, node.priority
        if isinstance(node, TransferNode):
            return node.fallback_queue, 0
        if isinstance(node, CallbackOfferNode):
            declined = route_ahead(flow, node.next)
            return (node.queue, declined[1]) if declined and declined[0] == node.queue else (node.queue, 0)
        if not isinstance(node, SayNode):
            return None
        node_id = node.next
    return None


def summary_of(turns: Iterable[Turn]) -> str:
    """What the caller said, turn by turn ("카드 분실 신고: lost_card / 네: lost_card"), for a card on a screen.

    Card entries (secure turns) are left out entirely, keys are shown only as short menu keys, and long runs of
    digits in what was heard are dropped: nothing a card or account number could hide in."""
    parts: list[str] = []
    for turn in turns:
        if turn.kind == "secure":
            continue
        said = _LONG_DIGITS.sub(" ", turn.transcript).strip()
        if not said and turn.dtmf and len(turn.dtmf) <= 2:
            said = f"key {turn.dtmf}"
        if said or turn.intent:
            parts.append(": ".join(p for p in (said, turn.intent or "") if p))
    return safe_value(" / ".join(parts), SUMMARY_CHARS)


def safe_value(text: str, limit: int = VALUE_CHARS) -> str:
    """``text`` with only letters (any script), digits, spaces and ``._-:/+@``, whitespace collapsed, cut to
    ``limit`` characters.

    Nothing that could end an AGI argument's quotes (``"``, ``\\``), start an AMI header (CR, LF) or mean
    something in a dialplan expression or application argument (``$ { } [ ] ( ) , ; & | < >`` ...) survives."""
    kept = "".join(c if c.isalnum() or c in _PUNCTUATION else " " for c in unicodedata.normalize("NFC", text))
    return " ".join(kept.split())[:limit].rstrip()


def queue_name(text: str) -> str:
    """A queue name as the dialplan filters it (``FILTER(a-z0-9_,...)``): what reaches ``Queue()``."""
    return "".join(c for c in text.lower() if c in "abcdefghijklmnopqrstuvwxyz0123456789_")[:VALUE_CHARS]


def redis_key(call_id: str) -> str:
    """Where the controller keeps a call's learned facts in Redis: a hash of ``VARIABLES``, beside ``ivr:call:<id>``."""
    return f"ivr:call:{call_id}:learned"
