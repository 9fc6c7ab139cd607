"""Customers, found by the caller's number, with their open cases and contact history.

Redis keys: ``ivr:customer:<id>`` (JSON), ``ivr:phone:<number>`` (-> id) and
``ivr:customer:<id>:history`` (a stream of contacts, newest last, capped near 500). A lookup is
bounded in time: a slow or failing store never holds a call; the caller is then unknown.
Sites that keep customers elsewhere add a CRM (``ivr.routing.crm``), asked when Redis does not know the number.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError, field_validator
from redis.exceptions import RedisError, WatchError

from ivr.routing.importing import Importer, ImportResult, SourceRow, split_records
from ivr.telephony.agi import normalize_number

if TYPE_CHECKING:
    from ivr.routing.crm import CrmLookup

log = logging.getLogger(__name__)

#: Stream entries kept per customer (approximately: Redis trims whole macro nodes).
HISTORY_MAXLEN = 500
#: Contacts read when learning a customer's patience.
PATIENCE_SAMPLE = 100

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


def _phones_of(raw: str | bytes | None) -> list[str]:
    """The normalized numbers of a stored record, read leniently: an unreadable record still releases its index."""
    try:
        phones = json.loads(raw).get("phones", []) if raw else []
    except (ValueError, AttributeError):
        return []
    return [normalize_number(p) for p in phones if isinstance(p, str)]


def _parse_cases(cell: str) -> list[dict[str, str]]:
    return split_records(cell, ("id", "skill", "owner"), required=2)


#: Customers: CSV ``phones``/``accounts`` are ;-lists, ``cases`` is ``CASE-1:loans:F2001;CASE-2:cards``;
#: a number may belong to one customer of a file only.
CUSTOMERS: Importer[Customer] = Importer(
    Customer, list_columns=frozenset({"phones", "accounts"}), columns={"cases": _parse_cases},
    claims=lambda customer: customer.phones, claims_field="phones",
)


class CustomerStore:
    def __init__(self, redis: aioredis.Redis, timeout_s: float = 0.3, crm: CrmLookup | None = None) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self.crm = crm

    async def by_phone(self, number: str) -> Customer | None:
        """The customer calling from ``number``: Redis first, then the CRM if there is one; None if unknown or
        if the lookup fails or takes too long (each source is bounded by its own timeout)."""
        number = normalize_number(number)
        if not number:
            return None
        customer = await self._by_phone_in_redis(number)
        if customer is None and self.crm is not None:
            customer = await self.crm.lookup(number)
        return customer

    async def _by_phone_in_redis(self, number: str) -> Customer | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                customer_id = await self.redis.get(f"ivr:phone:{number}")
                raw = await self.redis.get(f"ivr:customer:{customer_id}") if customer_id else None
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("customer lookup for a caller failed (%s); treating the caller as unknown", exc or "timeout")
            return None
        try:
            return Customer.model_validate_json(raw) if raw else None
        except ValidationError as exc:  # written by hand or by an older version; the message would carry the data
            log.warning("customer %s is unreadable (%d errors); treating the caller as unknown",
                        customer_id, exc.error_count())
            return None

    async def get(self, customer_id: str) -> Customer | None:
        raw = await self.redis.get(f"ivr:customer:{customer_id}")
        return Customer.model_validate_json(raw) if raw else None

    async def put(self, customer: Customer) -> None:
        """Write the customer and their phone index in one transaction.

        Numbers the previous version of this customer had and this one has not stop pointing to them; a number
        taken from another customer is removed from that customer's record too (unless it is their last one), so
        a later re-save of theirs does not take it back. WATCH makes the read-then-write safe against a
        concurrent import: on a conflict the whole transaction is retried.
        """
        key = f"ivr:customer:{customer.id}"
        phone_keys = [f"ivr:phone:{phone}" for phone in customer.phones]
        async with self.redis.pipeline(transaction=True) as pipe:
            for _attempt in range(10):
                try:
                    await pipe.watch(key, *phone_keys)
                    old_phones = _phones_of(await pipe.get(key))
                    stale_keys = [f"ivr:phone:{p}" for p in old_phones if p not in customer.phones]
                    stale_owners: list[Any] = []
                    if stale_keys:
                        await pipe.watch(*stale_keys)
                        stale_owners = await pipe.mget(stale_keys)
                    owners = await pipe.mget(phone_keys)
                    losers = await self._losers(pipe, customer, owners)
                    pipe.multi()
                    pipe.set(key, customer.model_dump_json())
                    for phone_key in phone_keys:
                        pipe.set(phone_key, customer.id)
                    for stale_key, owner in zip(stale_keys, stale_owners, strict=True):
                        if owner == customer.id:  # another customer may have taken it meanwhile: then it is theirs
                            pipe.delete(stale_key)
                    for loser in losers:
                        pipe.set(f"ivr:customer:{loser.id}", loser.model_dump_json())
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise RedisError(f"customer {customer.id} not written: kept conflicting with concurrent writes")

    @staticmethod
    async def _losers(pipe: Any, customer: Customer, owners: list[Any]) -> list[Customer]:
        """Other customers whose numbers ``customer`` takes, with those numbers removed (pipe is WATCHing)."""
        losers: list[Customer] = []
        for other_id in sorted({owner for owner in owners if owner and owner != customer.id}):
            await pipe.watch(f"ivr:customer:{other_id}")
            raw = await pipe.get(f"ivr:customer:{other_id}")
            if not raw:
                continue
            other = Customer.model_validate_json(raw)
            kept = [phone for phone in other.phones if phone not in customer.phones]
            if not kept:
                # A customer needs a number; their record keeps it, but the index (what lookups use) moves.
                log.warning("number of customer %s moves to %s, who had no other number", other.id, customer.id)
                continue
            losers.append(other.model_copy(update={"phones": kept}))
        return losers

    # --- contact history

    async def add_contact(self, customer_id: str, contact: Contact) -> str:
        """Append a contact to the customer's history; returns the stream entry id."""
        return str(await self.redis.xadd(f"ivr:customer:{customer_id}:history", {"contact": contact.model_dump_json()},
                                         maxlen=HISTORY_MAXLEN, approximate=True))

    async def history(self, customer_id: str, count: int = 20) -> list[Contact]:
        """The customer's last ``count`` contacts, newest first."""
        entries = await self.redis.xrevrange(f"ivr:customer:{customer_id}:history", count=count) or []
        contacts = []
        for entry_id, fields in entries:
            try:
                contacts.append(Contact.model_validate_json((fields or {}).get("contact", "")))
            except ValueError:
                log.warning("contact %s of customer %s is unreadable; skipped", entry_id, customer_id)
        return contacts

    async def learned_patience(self, customer_id: str) -> int | None:
        """Patience learned from the last contacts (see ``learn_patience``); None if there is too little history."""
        return learn_patience(await self.history(customer_id, PATIENCE_SAMPLE))

    async def patience_for(self, customer: Customer | None, default_s: int) -> tuple[int, str]:
        """(seconds, source): the customer's own setting ("customer"), else learned from history ("learned"),
        else ``default_s`` ("default"). Bounded like a lookup: a slow store gives the default, never a wait."""
        if customer is None:
            return default_s, "default"
        if customer.patience_s is not None:
            return customer.patience_s, "customer"
        try:
            async with asyncio.timeout(self.timeout_s):
                learned = await self.learned_patience(customer.id)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("patience of customer %s not learned (%s); using the default", customer.id, exc or "timeout")
            learned = None
        return (learned, "learned") if learned is not None else (default_s, "default")

    # --- import

    async def import_file(self, path: Path) -> ImportResult[Customer]:
        """Import a CSV or JSON file: bad rows reported by line, good rows written one transaction each."""
        return await CUSTOMERS.run(path, self.put)

    async def import_rows(self, rows: list[Any]) -> tuple[int, list[str]]:
        """Validate already-loaded JSON rows, then import the good ones; returns (imported, errors by item)."""
        result = CUSTOMERS.validate(
            SourceRow(0, row, index) if isinstance(row, dict) else SourceRow(0, {}, index, "not a JSON object")
            for index, row in enumerate(rows, 1))
        for _, customer in result.good:
            await self.put(customer)
        return len(result.good), result.errors


def load_rows(text: str) -> list[dict[str, Any]]:
    """The rows of a JSON customers file (``import_file`` reads CSV too and reports lines)."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("a customers file is a JSON list of objects")
    return data
