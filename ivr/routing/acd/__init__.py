"""The ACD: the routing core (ivr.routing.router) wired to Asterisk and Redis.

Callers wait in Asterisk (``[ivr-hold]``), the router picks their person, and the ACD rings that person:
the caller's channel is redirected to ``[ivr-offer]``, or, for a caller who accepted a callback (while
holding, or in the flow), the agent's device is originated into ``[ivr-callback]``, which then dials the
customer. Presence is the agent's own choice (``ivr:presence``) joined with what Asterisk says their device is
doing; an agent is offered calls only when both agree.

One concept per module, split along the one seam that matters: what needs Asterisk and what does not.

- ``seat``: ``Seat``, an agent at work (directory entry, presence, device state, the call on them);
- ``waiter``: ``Waiter``, a call or callback looking for a person (what the router knows of it, and the rest);
- ``callbacks``: accepted callbacks kept in Redis (``CALLBACKS_KEY``) so a restart calls them all back;
- ``bookkeeping``: ``Bookkeeping``, seats, waiters and offers without AMI: outcomes of offers, presence,
  callbacks' attempts, the clock (wrap-up, widening), the hold announcement's words, the snapshot;
- ``asterisk``: ``Acd``, the bookkeeping over AMI: Asterisk's events in, redirects and originates out,
  declines, the heartbeat, announcements, adopting holding callers after a restart.

Everything a caller of the ACD imports is here: ``from ivr.routing.acd import Acd``.
"""

from __future__ import annotations

from ivr.routing.acd.asterisk import COMMANDS_CHANNEL, Acd
from ivr.routing.acd.bookkeeping import SNAPSHOT_KEY, AcdStats, Bookkeeping, SaveHook
from ivr.routing.acd.callbacks import CALLBACKS_KEY, PendingCallbacks
from ivr.routing.acd.seat import BUSY_DEVICE, RINGING_DEVICE, UNAVAILABLE_DEVICE, Seat
from ivr.routing.acd.waiter import Waiter

__all__ = [
    "BUSY_DEVICE",
    "CALLBACKS_KEY",
    "COMMANDS_CHANNEL",
    "RINGING_DEVICE",
    "SNAPSHOT_KEY",
    "UNAVAILABLE_DEVICE",
    "Acd",
    "AcdStats",
    "Bookkeeping",
    "PendingCallbacks",
    "SaveHook",
    "Seat",
    "Waiter",
]
