"""An agent at work as the ACD tracks them (``Seat``), and what Asterisk's device states mean for taking a call.

A seat joins three things: who the agent is (the directory entry, ``ivr.records.agent``), what they chose
(presence, ``ivr.routing.agents``) and what their phone is doing (Asterisk's device state and the call ringing
or connected to them). The Asterisk side of the ACD (``asterisk.py``) keeps the phone's part up to date; the
bookkeeping (``bookkeeping.py``) reads ``routable`` to tell the router whether the agent can take a call now.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.records.agent import Agent
from ivr.routing.agents import Presence

UNAVAILABLE_DEVICE = frozenset({"UNAVAILABLE", "INVALID"})
"""Device states of a phone that cannot ring (not registered, no such device)."""
BUSY_DEVICE = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
"""Device states of a phone already on a call."""
RINGING_DEVICE = frozenset({"RINGING", "RINGINUSE"})
"""Device states of a phone ringing."""


@dataclass(slots=True)
class Seat:
    """An agent at work, as the ACD tracks them."""

    agent: Agent
    """The directory entry."""
    status: Presence = Presence.OFFLINE
    """The agent's own choice: offline, ready, not_ready (with ``reason``) or wrap_up."""
    reason: str = ""
    """Why not ready (lunch, training, rona, ...)."""
    device_state: str = "UNKNOWN"
    """Asterisk's state of the agent's device (DeviceStateChange)."""
    activity: str = ""
    """What a call is doing to them: ringing, on_call, wrap_up, or "" when free."""
    call_id: str = ""
    """The call ringing them or connected to them."""
    wrap_until: float = 0.0
    """End of after-call work (then the agent is free again)."""

    @property
    def routable(self) -> bool:
        return (self.status is Presence.READY and not self.activity
                and self.device_state not in UNAVAILABLE_DEVICE | BUSY_DEVICE)

    @property
    def shown(self) -> str:
        if self.activity:
            return self.activity
        if self.status is Presence.READY and self.device_state in UNAVAILABLE_DEVICE:
            return "ready (phone not registered)"
        return f"{self.status.value}: {self.reason}" if self.reason else self.status.value
