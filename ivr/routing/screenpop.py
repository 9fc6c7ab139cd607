"""The screen pop: what the person who picks up sees before they say hello. Pure (no I/O).

Complete but minimal: the customer card (name, tier, language and dialect, masked accounts,
patience, open cases), what the IVR heard (each turn's transcript and confidence, the
intent), how long they waited, why the router chose this agent, and recent contacts. No
full card or account number ever: anything that looks like one is cut to its first 6 and
last 4 digits here, whatever its source, so a mistake upstream cannot leak through a screen.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ivr.records.call import CallRecord
from ivr.records.customer import Contact, Customer

POPS_CHANNEL = "ivr:pops"
"""Redis pub/sub channel: {"agent": id, "pop": {...}} for every offer, to every web process."""

_LONG_NUMBER = re.compile(r"\d(?:[ -]?\d){11,18}")


def mask_numbers(text: str) -> str:
    """Keep at most the first 6 and last 4 digits of any 12-19 digit run (a card or account number)."""
    def cut(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]
    return _LONG_NUMBER.sub(cut, text)


def build_pop(call: CallRecord, customer: Customer | None, history: list[Contact], agent_id: str,
              now: float | None = None, limit: int = 10) -> dict[str, Any]:
    now = time.time() if now is None else now
    decision = call.routing[-1] if call.routing else {}
    return {
        "call_id": call.call_id,
        "agent_id": agent_id,
        "offered_at": now,
        "caller": call.caller,
        "known": customer is not None,
        "customer": _card(customer) if customer else None,
        # App calls: who the app's signed token says is calling ("authenticated in app"), and the screen they
        # called from (the intent hint); None for a phone call, known by caller ID at best.
        "authenticated": {"by": "app", "label": "authenticated in app", "customer_id": call.app_customer,
                          "screen": call.app_screen, "intent_hint": call.app_intent}
        if call.via == "app" else None,
        "language": call.language,
        "dialect": call.dialect,
        "ivr": {
            "path": list(call.path),
            "intent": call.intent,
            "queue": call.queue,
            "turns": [{"node": t.node, "transcript": mask_numbers(t.transcript), "confidence": round(t.confidence, 2),
                       "intent": t.intent, "score": round(t.score, 2), "keys": "*" * len(t.dtmf) if len(t.dtmf) > 4
                       else t.dtmf} for t in call.turns],
        },
        "waited_s": round(now - call.queued_at, 1) if call.queued_at else None,
        "routing": {"rule": decision.get("rule"), "why": decision.get("why", [])},
        "history": [_contact(c) for c in history[:limit]],
    }


def _card(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "tier": customer.tier,
        "vip": customer.tier == "vip",
        "language": customer.language,
        "dialect": customer.dialect,
        "accounts": [mask_numbers(a) for a in customer.accounts],
        "patience_s": customer.patience_s,
        "cases": [{"id": c.id, "skill": c.skill, "owner": c.owner, "summary": c.summary}
                  for c in customer.open_cases()],
    }


def _contact(contact: Contact) -> dict[str, Any]:
    return {"at": contact.at, "channel": contact.channel, "intent": contact.intent, "queue": contact.queue,
            "agent": contact.agent, "wait_s": contact.wait_s, "outcome": contact.outcome}
