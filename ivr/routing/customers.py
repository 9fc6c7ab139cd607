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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError, WatchError

from ivr.records.customer import CUSTOMERS, Contact, Customer, learn_patience
from ivr.records.importing import ImportResult, SourceRow
from ivr.records.redis_text import text
from ivr.telephony.agi import normalize_number

if TYPE_CHECKING:
    from ivr.routing.crm import CrmLookup

log = logging.getLogger(__name__)

#: Stream entries kept per customer (approximately: Redis trims whole macro nodes).
HISTORY_MAXLEN = 500
#: Contacts read when learning a customer's patience.
PATIENCE_SAMPLE = 100

def _phones_of(raw: str | bytes | None) -> list[str]:
    """The normalized numbers of a stored record, read leniently: an unreadable record still releases its index."""
    try:
        phones = json.loads(raw).get("phones", []) if raw else []
    except (ValueError, AttributeError):
        return []
    return [normalize_number(p) for p in phones if isinstance(p, str)]


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
                raw = await self.redis.get(f"ivr:customer:{text(customer_id)}") if customer_id else None
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("customer lookup for a caller failed (%s); treating the caller as unknown", exc or "timeout")
            return None
        try:
            return Customer.model_validate_json(raw) if raw else None
        except ValidationError as exc:  # written by hand or by an older version; the message would carry the data
            log.warning("customer %s is unreadable (%d errors); treating the caller as unknown",
                        customer_id, exc.error_count())
            return None

    async def by_id(self, customer_id: str) -> Customer | None:
        """The customer with this id (an app call's token names it), bounded like ``by_phone``: None if unknown,
        unreadable, or if the lookup fails or takes too long."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.get(customer_id)
        except (TimeoutError, RedisError, OSError, ValidationError) as exc:
            log.warning("customer %s not looked up (%s); treating the caller as unknown", customer_id,
                        type(exc).__name__)
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
