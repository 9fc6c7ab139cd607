"""Customers, found by the caller's number. The seam issue 4's customer store fills in.

Redis keys: ``ivr:customer:<id>`` (JSON) and ``ivr:phone:<number>`` (-> id). A lookup is
bounded in time: a slow or failing store never holds a call; the caller is then unknown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import RedisError

from ivr.agi import normalize_number

log = logging.getLogger(__name__)


class Customer(BaseModel):
    """A bank's customer as the IVR and the agent's screen see them."""

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    phones: list[str] = Field(min_length=1)
    tier: str = Field(default="standard", pattern=r"^(standard|gold|vip)$")
    balance: int | None = Field(default=None, description="for the self-service demo, in won")
    accounts: list[str] = Field(default_factory=list, description="masked account ids")
    language: str | None = None
    dialect: str | None = None
    patience_s: int | None = Field(default=None, ge=0)


class CustomerStore:
    def __init__(self, redis: aioredis.Redis, timeout_s: float = 0.3) -> None:
        self.redis = redis
        self.timeout_s = timeout_s

    async def by_phone(self, number: str) -> Customer | None:
        number = normalize_number(number)
        if not number:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                customer_id = await self.redis.get(f"ivr:phone:{number}")
                raw = await self.redis.get(f"ivr:customer:{customer_id}") if customer_id else None
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("customer lookup for a caller failed (%s); treating the caller as unknown", exc or "timeout")
            return None
        return Customer.model_validate_json(raw) if raw else None

    async def put(self, customer: Customer) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"ivr:customer:{customer.id}", customer.model_dump_json())
            for phone in customer.phones:
                pipe.set(f"ivr:phone:{normalize_number(phone)}", customer.id)
            await pipe.execute()

    async def import_rows(self, rows: list[dict[str, Any]]) -> tuple[int, list[str]]:
        """Validate every row, then import the good ones; returns (imported, errors by row)."""
        good: list[Customer] = []
        errors: list[str] = []
        for index, row in enumerate(rows, 1):
            try:
                good.append(Customer.model_validate(row))
            except ValidationError as exc:
                reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                errors.append(f"row {index}: {reasons}")
        for customer in good:
            await self.put(customer)
        return len(good), errors


def load_rows(text: str) -> list[dict[str, Any]]:
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("a customers file is a JSON list of objects")
    return data
