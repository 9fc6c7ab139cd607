"""The agent's desk behind the web pages: agents and presence, screen pops, decline, dispositions and tickets.

Services only (no HTTP): ``ivr.web.app`` maps them to routes. Who may see what is decided here, so a
route cannot forget it: a call taker sees only pops of calls offered to them, and may decline or
close only those; a pop that is not theirs is "not found", not "forbidden" (no hint that it exists).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from ivr.privacy.redaction import redact
from ivr.records.agent import Agent
from ivr.records.archive import Archive
from ivr.records.customer import Contact
from ivr.records.store import call_key
from ivr.routing.acd import COMMANDS_CHANNEL
from ivr.routing.agents import AgentDirectory, Presence
from ivr.routing.customers import CustomerStore
from ivr.web.auth import CALL_TAKERS, User

log = logging.getLogger(__name__)

TICKETS_STREAM = "ivr:tickets"
TICKETS_MAXLEN = 100_000

#: Ticket templates, by name: the one table of them (the pages get it from GET /api/ticket-templates). A call's
#: intent chooses the template of the same name, else "general"; an intent with a template of its own needs a ticket.
TICKET_TEMPLATES: dict[str, dict[str, Any]] = {
    "lost_card": {"title": "Lost or stolen card", "fields": [
        {"name": "card_last4", "label": "Card (last 4 digits)", "required": True},
        {"name": "lost_at", "label": "When and where it was lost", "required": False},
        {"name": "blocked", "label": "Card blocked (yes/no)", "required": True},
        {"name": "reissue_to", "label": "Send the new card to", "required": False},
    ]},
    "complaint": {"title": "Complaint", "fields": [
        {"name": "category", "label": "Category", "required": True},
        {"name": "summary", "label": "What happened", "required": True},
        {"name": "wanted", "label": "What the customer asks for", "required": False},
    ]},
    "loan": {"title": "Loan enquiry", "fields": [
        {"name": "product", "label": "Product", "required": True},
        {"name": "amount", "label": "Amount (won)", "required": False},
        {"name": "callback_at", "label": "Best time to call back", "required": False},
    ]},
    "general": {"title": "General enquiry", "fields": [
        {"name": "summary", "label": "Summary", "required": True},
    ]},
}
FIELD_MAX_CHARS = 500


class InvalidInput(Exception):
    """A request that is well-formed but wrong for this data (a 422 naming ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class NotFound(Exception):
    """Nothing there, or nothing this user may see (the same answer, on purpose)."""


class Conflict(Exception):
    """The request contradicts what is already recorded."""


class PresenceChange(BaseModel):
    """POST /api/agents/{id}/presence."""

    status: Literal["ready", "not_ready", "wrap_up", "offline"]
    reason: str = Field(default="", max_length=100, description="why not ready (lunch, training, ...)")


class TicketRequest(BaseModel):
    template: str = Field(min_length=1, max_length=40)
    fields: dict[str, str] = Field(default_factory=dict, max_length=20)


class DispositionRequest(BaseModel):
    """POST /api/calls/{call_id}/disposition."""

    disposition: Literal["resolved", "follow_up", "escalated", "no_action"]
    notes: str = Field(default="", max_length=2000)
    ticket: TicketRequest | None = None
    reason: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                               description="the intent that was the caller's reason (labels the call's failed turns)")


def check_ticket(ticket: TicketRequest) -> dict[str, str]:
    """The ticket's fields, checked against its template and redacted (ivr.privacy.redaction: card numbers cut to
    their first 6 and last 4 digits, other personal numbers and addresses replaced by tags)."""
    template = TICKET_TEMPLATES.get(ticket.template)
    if template is None:
        raise InvalidInput("ticket.template", f"unknown template {ticket.template!r}; one of "
                           + ", ".join(sorted(TICKET_TEMPLATES)))
    known = {f["name"]: f for f in template["fields"]}
    for name, value in ticket.fields.items():
        if name not in known:
            raise InvalidInput(f"ticket.fields.{name}", f"not a field of the {ticket.template} template")
        if len(value) > FIELD_MAX_CHARS:
            raise InvalidInput(f"ticket.fields.{name}", f"at most {FIELD_MAX_CHARS} characters")
    for name, spec in known.items():
        if spec["required"] and not ticket.fields.get(name, "").strip():
            raise InvalidInput(f"ticket.fields.{name}", f"required by the {ticket.template} template")
    return {name: redact(value.strip(), mask_cards=True) for name, value in ticket.fields.items()}


class Desk:
    """The services of the agents' and supervisors' pages, over Redis."""

    def __init__(self, redis: aioredis.Redis, pop_ttl_s: int = 7 * 24 * 3600, archive: Archive | None = None) -> None:
        self.redis = redis
        self.archive = archive
        """The archive of finished calls: a disposition (and its reason) completes the call's entry."""
        self.directory = AgentDirectory(redis)
        self.customers = CustomerStore(redis)
        self.pop_ttl_s = pop_ttl_s

    # --- agents and presence

    @staticmethod
    def agent_view(agent: Agent, presence: dict[str, Any]) -> dict[str, Any]:
        return {"id": agent.id, "name": agent.name, "role": agent.role.value, "device": agent.device,
                "skills": dict(agent.skills), "status": presence["status"], "reason": presence["reason"],
                "activity": presence["activity"], "call_id": presence["call_id"]}

    async def agents(self) -> list[dict[str, Any]]:
        return [self.agent_view(agent, await self.directory.presence(agent.id)) for agent in await self.directory.all()]

    async def agent(self, agent_id: str) -> dict[str, Any]:
        agent = await self.directory.get(agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id} in the directory")
        return self.agent_view(agent, await self.directory.presence(agent_id))

    async def set_presence(self, agent_id: str, change: PresenceChange) -> None:
        """Record and publish (``ivr:presence``): the ACD of every controller follows."""
        if await self.directory.get(agent_id) is None:
            raise NotFound(f"no agent {agent_id} in the directory")
        status = Presence(change.status)
        await self.directory.set_presence(agent_id, status, change.reason.strip() if status is Presence.NOT_READY
                                          else "", by="web")

    # --- calls

    async def pop(self, call_id: str, user: User) -> dict[str, Any]:
        """The screen pop of ``call_id`` if ``user`` may see it (call takers: only their own offers)."""
        raw = await self.redis.get(f"ivr:pop:{call_id}")
        stored = json.loads(raw) if raw else None
        if not stored or (user.role in CALL_TAKERS and stored.get("agent") != user.agent_id):
            raise NotFound(f"no screen pop for call {call_id}")
        return dict(stored["pop"])

    async def decline(self, call_id: str, user: User) -> None:
        """Ask the ACD (whichever controller holds the call) to move the call on; the agent stays ready."""
        await self.pop(call_id, user)
        await self.redis.publish(COMMANDS_CHANNEL, json.dumps(
            {"type": "decline", "call_id": call_id, "agent": user.agent_id}))

    async def disposition(self, call_id: str, user: User, request: DispositionRequest) -> str | None:
        """Close the call from the agent's side: history entry, optional ticket; returns the ticket id.

        Once per call (409 after): the first disposition is the record.
        """
        pop = await self.pop(call_id, user)
        fields = check_ticket(request.ticket) if request.ticket else {}
        notes = redact(request.notes.strip(), mask_cards=True)
        now = time.time()
        ticket_id = f"T{time.strftime('%Y%m%d', time.localtime(now))}-{secrets.token_hex(4).upper()}" \
            if request.ticket else None
        record = {"call_id": call_id, "agent": user.agent_id, "by": user.username, "at": now,
                  "disposition": request.disposition, "notes": notes, "ticket_id": ticket_id,
                  "reason": request.reason}
        if not await self.redis.set(f"ivr:disposition:{call_id}", json.dumps(record, ensure_ascii=False),
                                    nx=True, ex=self.pop_ttl_s):
            raise Conflict(f"call {call_id} already has a disposition")
        try:
            await self._store_disposition(call_id, user, request, pop, notes, fields, ticket_id, now)
        except BaseException:
            # Nothing half-done stays claimed: the agent can send it again.
            await self.redis.delete(f"ivr:disposition:{call_id}")
            raise
        await self._archive_disposition(call_id, request, now)
        return ticket_id

    async def _archive_disposition(self, call_id: str, request: DispositionRequest, now: float) -> None:
        """The archive's copy (AHT, and the reason as a suggested label); it is for later: a failure is logged."""
        if self.archive is None:
            return
        archive = self.archive
        try:
            await asyncio.to_thread(archive.set_disposition, call_id, request.disposition, request.reason, now)
        except Exception as exc:
            log.error("call %s: disposition not archived (%s)", call_id, exc)

    async def _store_disposition(self, call_id: str, user: User, request: DispositionRequest, pop: dict[str, Any],
                                 notes: str, fields: dict[str, str], ticket_id: str | None, now: float) -> None:
        customer = (pop.get("customer") or {}).get("id")
        if request.ticket:
            template = TICKET_TEMPLATES[request.ticket.template]
            await self.redis.xadd(TICKETS_STREAM, {
                "ticket_id": ticket_id or "", "call_id": call_id, "customer": customer or "",
                "agent": user.agent_id or "", "template": request.ticket.template, "title": template["title"],
                "fields": json.dumps(fields, ensure_ascii=False), "notes": notes,
                "disposition": request.disposition, "at": str(now)}, maxlen=TICKETS_MAXLEN, approximate=True)
        if customer:
            ivr = pop.get("ivr") or {}
            raw_call = await self.redis.get(call_key(call_id))
            started = json.loads(raw_call).get("started_at") if raw_call else None
            await self.customers.add_contact(customer, Contact(
                at=started or pop.get("offered_at") or now, channel="voice", call_id=call_id,
                path=list(ivr.get("path") or []), intent=ivr.get("intent"), queue=ivr.get("queue"),
                agent=user.agent_id, outcome="answered", disposition=request.disposition, notes=notes or None,
                ticket_id=ticket_id))
