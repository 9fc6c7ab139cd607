"""The card verifier: the one place a secure capture's digits go.

``POST <url>`` with ``{"what": "card"|"expiry"|"pin"|"otp", "digits": "..."}``; the verifier answers 200 with
``{"verified": true|false}``. Anything else — no answer within the timeout, another status, a body that is not that
JSON — is "unavailable": the caller is told and offered a person, and nothing is stored. The digits are never
logged, and neither is the verifier's body (it could echo them): problems name only what went wrong.

The demo verifier (``ivr.web.verifier``, on the web app at ``/verify/card``) checks Luhn and expiry; a deployment
points ``IVR_CARD_VERIFIER_URL`` at its payment processor's verification or tokenization service.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from ivr.privacy.cards import SecretKind, entry_problem

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 4096
"""A verifier's answer is a few bytes of JSON; anything longer is garbage, not read further."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the verifier said, reduced to what a record may keep."""

    verified: bool | None
    """True/False from the verifier; None when it gave no usable answer (timeout, error, garbage)."""
    problem: str = ""
    """Why there was no usable answer (never the digits, never the verifier's body)."""


Verify = Callable[[SecretKind, str], Awaitable[Verdict]]
"""A verifier as the navigator calls it: (what, digits) -> Verdict. It must never raise."""


class HttpVerifier:
    """Calls the configured verifier URL with a timeout; one short-lived request per entry."""

    def __init__(self, url: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._transport = transport

    async def __call__(self, what: SecretKind, digits: str) -> Verdict:
        if not self.url:
            return Verdict(None, "no card verifier configured (IVR_CARD_VERIFIER_URL)")
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport) as client:
                response = await client.post(self.url, json={"what": what.value, "digits": digits})
        except httpx.TimeoutException:
            return Verdict(None, f"the card verifier did not answer within {self.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Verdict(None, f"the card verifier could not be reached ({type(exc).__name__})")
        return _read(response)


def _read(response: httpx.Response) -> Verdict:
    if response.status_code != 200:
        return Verdict(None, f"the card verifier answered HTTP {response.status_code}")
    body = response.content
    if len(body) > MAX_ANSWER_BYTES:
        return Verdict(None, f"the card verifier answered {len(body)} bytes, not a verdict")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Verdict(None, "the card verifier's answer is not JSON")
    verified = data.get("verified") if isinstance(data, dict) else None
    if not isinstance(verified, bool):
        return Verdict(None, 'the card verifier\'s answer has no boolean "verified"')
    return Verdict(verified)


async def demo_verify(what: SecretKind, digits: str) -> Verdict:
    """The demo verifier's rule, in process (the text simulation; the web app's /verify/card answers the same):
    an entry of the right shape — a card passing Luhn, an expiry not past — is verified."""
    return Verdict(entry_problem(what, digits) is None)
