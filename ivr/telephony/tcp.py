"""The TCP listener that Asterisk connects to (FastAGI, AudioSocket): start, report the port, stop.

A port another process holds is not fatal: the listener says who holds it and takes the port as soon as it is free
(``start`` returns at once; ``listening`` says when). The controller's other parts (AMI, the ACD holding callers,
the pages) keep working meanwhile, and a supervisor restarting the whole process in a loop would do no better.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from pathlib import Path

from ivr import metrics

log = logging.getLogger(__name__)


class TcpListener:
    """Base for the controller's servers; subclasses implement ``_handle`` for one connection."""

    protocol = "TCP"
    #: StreamReader buffer limit; a protocol with bounded messages sets it lower.
    read_limit = 2**16
    #: What happens to calls while another process holds the port (said in the log line).
    while_busy = "connections reach whatever holds the port"
    #: How often a taken port is tried again, and how often the log says it is still taken.
    busy_retry_s, busy_reminder_s = 1.0, 30.0

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._waiting: asyncio.Task[None] | None = None
        """Trying again for a port another process holds (None once listening, or when it was free at once)."""

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Listen; if another process holds the port, say who and keep trying in the background."""
        try:
            await self._listen()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.error("%s port %s:%d is taken by %s: retrying every %g s; meanwhile %s", self.protocol, self.host,
                      self.port, port_holder(self.port) or "another process", self.busy_retry_s, self.while_busy)
            self._waiting = asyncio.create_task(self._wait_for_port(), name=f"{self.protocol}-port")

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=self.read_limit)
        self.port = self._server.sockets[0].getsockname()[1]  # the real port when asked for port 0
        log.info("%s listening on %s:%d", self.protocol, self.host, self.port)
        metrics.set_up(self.protocol, True)  # ivr_up{component="fastagi" | "audiosocket" | ...}

    async def _wait_for_port(self) -> None:
        since = last_said = time.monotonic()
        while True:
            await asyncio.sleep(self.busy_retry_s)
            try:
                await self._listen()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    log.error("%s cannot listen on %s:%d (%s); retrying", self.protocol, self.host, self.port, exc)
                now = time.monotonic()
                if now - last_said >= self.busy_reminder_s:
                    last_said = now
                    log.error("%s port %s:%d still taken by %s after %.0f s", self.protocol, self.host, self.port,
                              port_holder(self.port) or "another process", now - since)
                continue
            log.warning("%s port %s:%d free again after %.1f s: taking calls", self.protocol, self.host, self.port,
                        time.monotonic() - since)
            return

    async def stop(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waiting
            self._waiting = None
        if self._server:
            metrics.set_up(self.protocol, False)
            self._server.close()
            await self._server.wait_closed()


def port_holder(port: int) -> str:
    """Which process listens on TCP ``port`` ("pid 123 (python3 -m http.server)"), from /proc; "" if unknown.

    For the log line that says why a listener cannot start: "taken" alone sends an operator hunting."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is the tenth field.
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return ""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                        return f"pid {pid} ({' '.join(command.replace(chr(0), ' ').split())[:80]})"
    return "a process this user cannot see"
