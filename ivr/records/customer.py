"""The caller's customer profile as it travels with a call: who they are, their open cases and their contacts.

Plain pydantic models with no I/O; the store (``ivr.routing.customers``) keeps them in Redis, the CRM lookup
(``ivr.routing.crm``) brings them from a bank's system, the call record and the screen pop carry them.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ivr.records.importing import Importer, split_records
from ivr.telephony.agi import normalize_number

# Digits a masked account id may show (first 6, last 4: the PCI DSS display rule); anything else is a mask.
_MASKED = re.compile(r"^[0-9]{0,6}[*•xX]+[0-9]{0,4}$")


class Case(BaseModel):
    """An open (or closed) matter the customer has with the bank, owned by one person."""

    id: str = Field(min_length=1, max_length=64)
    """The case's id in the bank's case system."""
    skill: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]+$")
    """The routing skill / queue it belongs to (``loans``, ``cards``)."""
    owner: str | None = None
    """Agent id of the person handling it (a field manager for a loan): the caller's best next contact."""
    status: Literal["open", "closed"] = "open"
    """Closed cases are kept for the agent's screen but never route."""
    summary: str | None = None
    """One line for the agent's screen."""
    opened_at: float | None = None
    """Unix time; decides which open case is the most recent."""


class Customer(BaseModel):
    """A bank's customer as the IVR and the agent's screen see them."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """The bank's customer id (part of Redis keys, hence the restricted alphabet)."""
    name: str = Field(min_length=1)
    """As the agent greets them."""
    phones: list[str] = Field(min_length=1)
    """Numbers the customer calls from, normalized (digits, optional leading +); each one indexes the customer."""
    tier: str = Field(default="standard", pattern=r"^(standard|gold|vip)$")
    """standard, gold or vip: VIPs go to VIP-cleared agents."""
    balance: int | None = Field(default=None, description="for the self-service demo, in won")
    """Spoken by the self-service node (demo data: a real site reads the core banking system)."""
    accounts: list[str] = Field(default_factory=list, description="masked account ids")
    """Masked account ids (``110-***-**1234``): never a full number, so a leak of this store leaks none."""
    language: str | None = None
    """Preferred language (``ko``, ``en``): the IVR speaks it without asking."""
    dialect: str | None = None
    """Dialect (``gyeongsang``): routing prefers an agent who speaks it."""
    patience_s: int | None = Field(default=None, ge=0)
    """Seconds on hold before they usually give up; unset = learned from their history."""
    cases: list[Case] = Field(default_factory=list)
    """Their cases; an open one's owner is who they should reach."""

    @field_validator("phones")
    @classmethod
    def _normalized_phones(cls, phones: list[str]) -> list[str]:
        normalized: list[str] = []
        for phone in phones:
            number = normalize_number(phone)
            if not 3 <= len(number.lstrip("+")) <= 20:
                raise ValueError(f"{phone!r} is not a phone number")
            if number not in normalized:
                normalized.append(number)
        return normalized

    @field_validator("accounts")
    @classmethod
    def _masked_accounts(cls, accounts: list[str]) -> list[str]:
        for index, account in enumerate(accounts, 1):
            if not _MASKED.match(re.sub(r"[^0-9*•xX]", "", account)):
                # Never echo the number back: the error ends up in terminals and logs.
                digits = re.sub(r"\D", "", account)
                raise ValueError(f"account {index} (ending {digits[-4:]}) is not masked: show at most the first 6 "
                                 "and last 4 digits and mask the rest with *, e.g. 110-***-**1234")
        return accounts

    @field_validator("cases")
    @classmethod
    def _unique_cases(cls, cases: list[Case]) -> list[Case]:
        ids = [case.id for case in cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a case id appears twice: {', '.join(ids)}")
        return cases

    def open_cases(self) -> list[Case]:
        return [case for case in self.cases if case.status == "open"]

    def case_owner(self, skill: str | None = None) -> str | None:
        """The owner of the open case for ``skill``; with no skill or no such case, of the most recent open case."""
        owned = [(case.opened_at or 0.0, index, case) for index, case in enumerate(self.open_cases()) if case.owner]
        matching = [entry for entry in owned if entry[2].skill == skill] if skill else []
        candidates = matching or owned
        # Newest first; among cases without a date, the one listed last.
        return max(candidates, key=lambda entry: entry[:2])[2].owner if candidates else None


class Contact(BaseModel):
    """One contact with the customer: a call, a callback, a web chat."""

    at: float = Field(default_factory=time.time)
    """Unix time the contact started."""
    channel: str = "voice"
    """voice, callback, web, ..."""
    call_id: str | None = None
    """The call's id (Asterisk uniqueid) when it was a call."""
    path: list[str] = Field(default_factory=list)
    """IVR nodes visited, in order."""
    intent: str | None = None
    """What the customer wanted, as understood."""
    queue: str | None = None
    """Queue the contact went to, if any."""
    agent: str | None = None
    """Agent id who handled it, if any."""
    wait_s: float | None = Field(default=None, ge=0)
    """Seconds waited in the queue (until answered or given up); what patience is learned from."""
    outcome: str = ""
    """self_service, answered, abandoned, callback, ... (the call record's outcomes)."""
    disposition: str | None = None
    """How the agent closed it (resolved, follow_up, escalated, no_action), from their screen."""
    notes: str | None = None
    """The agent's notes (long numbers masked before they are stored)."""
    ticket_id: str | None = None
    """The ticket opened for it (stream ``ivr:tickets``), if any."""


def learn_patience(contacts: list[Contact]) -> int | None:
    """Seconds this customer waits, from their contacts: how long they held before giving up, else how long they
    sat through before an answer, with a margin. None when the history says too little."""
    abandoned = [c.wait_s for c in contacts if c.outcome == "abandoned" and c.wait_s is not None]
    if len(abandoned) >= 2:
        return round(statistics.median(abandoned))
    answered = sorted(c.wait_s for c in contacts if c.outcome == "answered" and c.wait_s is not None)
    if len(answered) >= 3:
        # Nearest-rank 90th percentile: a wait they actually sat through, not an interpolation between two.
        p90 = answered[math.ceil(0.9 * len(answered)) - 1]
        return round(p90 * 1.2)
    return None


def _parse_cases(cell: str) -> list[dict[str, str]]:
    return split_records(cell, ("id", "skill", "owner"), required=2)


#: Customers: CSV ``phones``/``accounts`` are ;-lists, ``cases`` is ``CASE-1:loans:F2001;CASE-2:cards``;
#: a number may belong to one customer of a file only.
CUSTOMERS: Importer[Customer] = Importer(
    Customer, list_columns=frozenset({"phones", "accounts"}), columns={"cases": _parse_cases},
    claims=lambda customer: customer.phones, claims_field="phones",
)
