"""The service notification protocol (``sd_notify``): "ready", "still alive", "stopping", as datagrams.

The controller tells whoever supervises it how it is doing: systemd (``Type=notify``, ``WatchdogSec=``) or the
project's own supervisor (``ivr.ops.supervisor``, for ``ivr up`` without systemd), which speaks the same
protocol. The protocol is a few lines and stable (systemd's sd_notify(3): newline-separated ``KEY=value``
assignments in one datagram to the AF_UNIX socket named by ``NOTIFY_SOCKET``; a leading ``@`` is the abstract
namespace), so it is written here rather than taken from a library. Without ``NOTIFY_SOCKET`` every call is a
no-op: the controller run by hand (``ivr serve``) notifies nobody.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

READY = "READY=1"
"""Serving: calls are taken (``Type=notify`` start-up is over)."""
WATCHDOG = "WATCHDOG=1"
"""Still alive: the event loop turned (``WatchdogSec=``)."""
STOPPING = "STOPPING=1"
"""Shutting down on purpose (a stop, not a crash)."""
STANDBY = "X_IVR_STANDBY=1"
"""The project's own: loaded and waiting to take over (``ivr serve --standby``); systemd ignores it."""


def notify(*assignments: str, address: str | None = None) -> bool:
    """Send ``assignments`` (e.g. ``READY``, ``"STATUS=serving"``) in one datagram to ``address`` (default:
    ``NOTIFY_SOCKET``); False if nobody listens."""
    address = os.environ.get("NOTIFY_SOCKET", "") if address is None else address
    if not address or not assignments:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(assignments).encode(), address)
    except OSError as exc:  # the supervisor went away: nothing to tell, nothing to fail
        log.debug("service notification not sent to %s (%s)", address, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """How often to send ``WATCHDOG`` (half the supervisor's timeout), or None when nobody watches this process.

    systemd names the watched process in ``WATCHDOG_PID``; a child that inherited the variables is not it."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
