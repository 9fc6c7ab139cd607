"""A call (or a callback) the ACD is finding a person for (``Waiter``): what the router knows of it, and the rest.

The router (``ivr.routing.router``) sees only a ``WaitingCall``; a waiter carries it with everything else the
ACD needs along the way: the call record it saves, the caller's channel while they hold in Asterisk, the
number to call back once they accepted a callback, the state of the offer ringing an agent, and the customer
and history the agent's screen shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr.records.call import CallRecord
from ivr.records.customer import Contact, Customer
from ivr.routing.router import WaitingCall


@dataclass(slots=True)
class Waiter:
    """A call (or a callback) the ACD is finding a person for."""

    call: CallRecord
    """The call's record, saved as things happen."""
    waiting: WaitingCall
    """What the router knows of it."""
    patience_s: int
    """Seconds the caller is expected to hold before giving up."""
    patience_source: str
    """"customer", "learned" or "default"."""
    channel: str = ""
    """The caller's channel while holding."""
    in_router: bool = False
    """Holding in Asterisk and known to the router (waiting or offered)."""
    callback_number: str = ""
    """Set when the caller accepted a callback: the number to call back."""
    callback_attempts: int = 0
    last_announced_at: float = 0.0
    callback_offered: bool = False
    offer_deadline: float = 0.0
    """For callbacks: when an unanswered originate counts as ring-no-answer."""
    agent_answered: bool = False
    agent_channel: str = ""
    """The ringing agent leg (DialBegin's DestChannel): what a decline hangs up."""
    declined_by: str = ""
    """The agent who declined the offer: the end of their leg is not a ring-no-answer."""
    customer: Customer | None = None
    """The caller's customer record, for the agent's screen."""
    history: list[Contact] = field(default_factory=list)
    """The customer's recent contacts, for the agent's screen."""
