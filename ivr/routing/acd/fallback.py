"""The screen pop of a call that Asterisk's own queue rings an agent with, not the ACD.

The ACD publishes a pop when it offers a call itself ([ivr-offer]). A call also reaches agents straight from
Asterisk's queue: the controller died (or its AGI failed) mid-call and the dialplan's fallback sent the caller
to the queue their intent named, or the ACD was not taking calls. Queue's ``AgentCalled`` event names the caller's
channel and the agent's device; what the IVR learned comes from Redis (the call record with its turns, and the
learned facts beside it) or, when Redis has nothing, from the caller's channel variables (one AMI ``Status``),
so the agent never gets an empty card for a caller who told the IVR who they are and what they want.

``fallback_record`` and ``fallback_pop`` are pure; ``gather`` does the reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from ivr.records.call import CallRecord, Outcome
from ivr.records.customer import Contact, Customer
from ivr.records.store import call_key
from ivr.routing.customers import CustomerStore
from ivr.routing.screenpop import build_pop
from ivr.telephony.ami import AmiClient, AmiError
from ivr.voice.flow import flow_queue_name
from ivr.voice.navigator.learned import VARIABLES, Learned, summary_of
from ivr.voice.navigator.learned import redis_key as learned_key

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_S = 0.5
"""Each lookup for the pop (Redis, AMI, the customer): the agent's phone is ringing."""


@dataclass(slots=True)
class Found:
    """What was found about a call Asterisk's queue offers: the stored record, the facts, where they came from."""

    stored: dict[str, Any] | None = None
    """The call record in Redis (``ivr:call:<id>``), if any."""
    learned: Learned = field(default_factory=Learned)
    """The learned facts (Redis first, else the channel's variables)."""
    source: str = "none"
    """"redis", "channel" or "none"."""
    customer: Customer | None = None
    history: list[Contact] = field(default_factory=list)


def fallback_record(call_id: str, caller: str, asterisk_queue: str, found: Found) -> CallRecord:
    """The call record the pop is built from: the stored one, else one made of the channel's facts; in the queue
    Asterisk has the caller in."""
    learned = found.learned
    if found.stored:
        call = learned.fill(CallRecord.from_dict(found.stored))
    else:
        call = CallRecord(call_id=call_id, caller=caller, customer=learned.customer, tier=learned.tier,
                          language=learned.language or "ko", dialect=learned.dialect)
        call.intent = learned.intent
    call.queue = flow_queue_name(asterisk_queue) or call.queue or learned.queue
    call.outcome = call.outcome or Outcome.QUEUED
    return call


def fallback_pop(call: CallRecord, found: Found, agent_id: str, now: float | None = None) -> dict[str, Any]:
    """The pop (``ivr.routing.screenpop.build_pop``) with what the IVR learned and how the call came."""
    pop = build_pop(call, found.customer, found.history, agent_id, now)
    pop["via"] = "asterisk_queue"
    pop["ivr"]["summary"] = found.learned.summary or summary_of(call.turns)
    pop["ivr"]["priority"] = found.learned.priority
    pop["ivr"]["learned_from"] = found.source
    if pop["customer"] is None and call.customer:  # the customer's record is gone or slow: their id and tier
        pop["customer"] = {"id": call.customer, "name": call.customer_name, "tier": call.tier,
                           "vip": call.tier == "vip", "language": call.language, "dialect": call.dialect,
                           "accounts": [], "patience_s": None, "cases": []}
    return pop


def channel_variables(reply: Any) -> dict[str, str]:
    """``NAME=value`` pairs of the ``Variable`` headers of an AMI Status reply (one header: a string, several: a
    list, as panoramisk parses them)."""
    values: dict[str, str] = {}
    for event in reply if isinstance(reply, list) else [reply]:
        if event.get("Event") != "Status":
            continue
        headers = event.get("Variable") or []
        for item in headers if isinstance(headers, list) else [headers]:
            name, _, value = str(item).partition("=")
            values[name.strip()] = value
    return values


async def gather(call_id: str, channel: str, redis: Any, ami: AmiClient | None,
                 customers: CustomerStore) -> Found:
    """Read what is known of ``call_id``: Redis first (the record and the learned facts), else the channel."""
    found = Found()
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(call_key(call_id))
            pipe.hgetall(learned_key(call_id))
            raw, facts = await asyncio.wait_for(pipe.execute(), LOOKUP_TIMEOUT_S)
        found.stored = json.loads(raw) if raw else None
        if facts:
            found.learned, found.source = Learned.from_variables(facts), "redis"
        elif found.stored:
            found.source = "redis"
    except (RedisError, OSError, TimeoutError, ValueError) as exc:
        log.info("call %s: pop facts not read from Redis (%s)", call_id, exc)
    if found.source == "none" and ami is not None and channel:
        with contextlib.suppress(AmiError, ValueError):
            reply = await ami.action({"Action": "Status", "Channel": channel, "Variables": ",".join(VARIABLES)},
                                     timeout=LOOKUP_TIMEOUT_S)
            values = channel_variables(reply)
            if any(values.get(name) for name in VARIABLES):
                found.learned, found.source = Learned.from_variables(values), "channel"
    customer_id = (found.stored or {}).get("customer") or found.learned.customer
    if customer_id:
        with contextlib.suppress(Exception):  # the card shows less; the phone still rings
            found.customer = await asyncio.wait_for(customers.get(customer_id), LOOKUP_TIMEOUT_S)
            found.history = await asyncio.wait_for(customers.history(customer_id, 10), LOOKUP_TIMEOUT_S)
    return found

