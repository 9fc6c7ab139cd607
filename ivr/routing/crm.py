"""Customers from a site's CRM, for sites that do not keep them in Redis.

``GET <url>?phone=<number>`` answers the Customer JSON (200) or 404 for an unknown number. The
CRM sits on the path of every call, so a lookup is bounded by a hard timeout around the whole
request, answers (and, for less long, "unknown") are cached in memory, and a failing CRM is
logged about once a minute rather than once per call: the caller is then simply unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from cachetools import TTLCache
from pydantic import ValidationError

from ivr.config import Settings
from ivr.records.customer import Customer
from ivr.telephony.agi import normalize_number

log = logging.getLogger(__name__)

#: Seconds between two warnings about a failing CRM (the ones in between are counted, not logged).
WARN_EVERY_S = 60.0
_CACHE_SIZE = 10_000


class CrmLookup:
    def __init__(self, url: str, timeout_s: float = 0.5, cache_ttl_s: float = 300.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._hits: TTLCache[str, Customer] = TTLCache(_CACHE_SIZE, ttl=cache_ttl_s)
        # Misses expire sooner: a customer just registered in the CRM should be recognized on their next call.
        self._misses: TTLCache[str, bool] = TTLCache(_CACHE_SIZE, ttl=cache_ttl_s / 10)
        self._client: httpx.AsyncClient | None = None
        self._last_warning = -WARN_EVERY_S
        self._unreported = 0
        self.requests = 0
        """Requests sent to the CRM (cache hits send none)."""

    async def lookup(self, number: str) -> Customer | None:
        """The customer with this number, or None if the CRM does not know it, fails or is too slow."""
        number = normalize_number(number)
        if not number or number in self._misses:
            return None
        if (cached := self._hits.get(number)) is not None:
            return cached
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        self.requests += 1
        try:
            # asyncio.timeout bounds the whole exchange; httpx's own timeouts are per phase (connect, each read).
            async with asyncio.timeout(self.timeout_s):
                response = await self._client.get(self.url, params={"phone": number})
            if response.status_code == 404:
                self._misses[number] = True
                return None
            response.raise_for_status()
            customer = Customer.model_validate_json(response.content)
        except TimeoutError:
            self._failed(f"no answer within {self.timeout_s:g} s")
            return None
        except ValidationError as exc:  # the message would carry the customer's data into the log
            self._failed(f"answer is not a customer ({exc.error_count()} errors)")
            return None
        except (httpx.HTTPError, OSError) as exc:
            self._failed(str(exc) or type(exc).__name__)
            return None
        self._hits[number] = customer
        return customer

    def _failed(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_warning < WARN_EVERY_S:
            self._unreported += 1
            return
        more = f" ({self._unreported} more failures since the last warning)" if self._unreported else ""
        log.warning("CRM lookup at %s failed: %s; the caller is treated as unknown%s", self.url, reason, more)
        self._last_warning, self._unreported = now, 0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def crm_from_settings(settings: Settings) -> CrmLookup | None:
    """The CRM lookup the settings configure (``IVR_CRM_URL``), or None."""
    if not settings.crm_url:
        return None
    return CrmLookup(settings.crm_url, timeout_s=settings.crm_timeout_s, cache_ttl_s=settings.crm_cache_ttl_s)
