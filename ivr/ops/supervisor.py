"""The controller's supervisor: restarts it with backoff, says why it ended, kills it when it hangs, keeps a spare.

``ivr up`` runs it (there is no systemd on a development machine or in a container), and the systemd unit
``ivr install`` writes runs it too, so both get the same recovery::

    python -m ivr.ops.supervisor --state run/supervisor.json --pid-file run/pids/controller.pid \\
        --standby-pid-file run/pids/controller-standby.pid --notify run/supervisor.notify -- python -m ivr serve

What it does:

- **Restart with backoff.** When the controller ends (a crash, ``kill -9``, an exit), the supervisor logs how
  (exit code or signal, and how long it had served) into the controller's log and starts the next one after a
  pause: 0.5 s, doubling to 10 s while restarts keep failing, back to 0.5 s once a controller has served 60 s.
- **A warm standby.** Starting a controller takes ~10 s on two cores (imports, the Vosk model, Presidio), longer
  than callers should wait for the IVR. So, two seconds after the controller is serving, the supervisor starts
  a second one with ``--standby`` (at a lower CPU priority): it loads everything, says so, and waits. When the
  controller ends, the standby is told to take over (SIGUSR1) and serves within about a second; a new standby is
  loaded behind it. Cost: the standby's memory (~0.7 GB). ``--no-standby`` turns it off.
- **Watchdog.** The controller speaks the service notification protocol (``ivr.sdnotify``, as to systemd):
  ``READY=1`` once it takes calls, ``WATCHDOG=1`` every second. No ping for ``--watchdog`` seconds (its event
  loop is stuck), or not ready within ``--start-timeout``, and it is killed (SIGABRT first: the controller's
  faulthandler writes every thread's stack to the log) and replaced.
- **Under systemd**, it forwards ``READY=1`` upstream when the first controller is ready and pings systemd's own
  watchdog every second: systemd watches the supervisor, the supervisor watches the controller.

``--state`` is a JSON file for ``ivr status``: pids, restarts, the last exit and how long recovery took.
Standard library only, and nothing of the project but ``ivr.sdnotify``: the supervisor starts in milliseconds
and shares no code, and so no bug, with what it watches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr import sdnotify

log = logging.getLogger("ivr.supervisor")

STANDBY_NICE = 10
"""A loading standby yields the CPU to the calls; it is reniced to 0 when it takes over."""
KILL_GRACE_S = 5.0
"""After SIGABRT (or SIGTERM at shutdown), this long before SIGKILL."""
STOP_GRACE_S = 20.0
"""``ivr down``: how long the controller may take to stop cleanly."""


@dataclass(slots=True)
class Backoff:
    """The pause before each restart: ``first_s``, doubling up to ``max_s`` while restarts keep failing, and back to
    ``first_s`` once a controller has served ``healthy_s`` (a crash after a good hour is not a crash loop)."""

    first_s: float = 0.5
    max_s: float = 10.0
    healthy_s: float = 60.0
    _next_s: float = field(default=0.0, repr=False)

    def pause(self, served_s: float) -> float:
        """The pause before the next start, given how long the one that just ended had served."""
        if served_s >= self.healthy_s or self._next_s == 0.0:
            self._next_s = self.first_s
        pause, self._next_s = self._next_s, min(self._next_s * 2, self.max_s)
        return pause


def exit_reason(returncode: int) -> str:
    """How a process ended, for the log: "killed by signal 9 (SIGKILL)", "exited with code 1"."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return "exited normally (code 0)" if returncode == 0 else f"exited with code {returncode}"


def parse_notification(data: bytes) -> dict[str, str]:
    """``KEY=value`` lines of one notification datagram (lines without ``=`` are ignored)."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key.strip()] = value
    return fields


@dataclass(slots=True)
class Child:
    """A controller process the supervisor started: the one serving, or the standby."""

    role: str
    """"controller" (serving, or starting to) or "standby" (loading, or loaded and waiting)."""
    process: asyncio.subprocess.Process
    started_at: float
    """When it was started, or promoted from standby (monotonic): start-up is timed from here."""
    loaded: bool = False
    """A standby said it has loaded everything (``X_IVR_STANDBY=1``)."""
    ready_at: float | None = None
    """When it said ``READY=1`` (monotonic)."""
    pinged_at: float = 0.0
    """Its last sign of life (monotonic)."""
    take_over_when_loaded: bool = False
    """Promoted before it had loaded: it takes over as soon as it has."""
    killing: bool = False

    @property
    def pid(self) -> int:
        return int(self.process.pid)


class Supervisor:
    """Runs ``command`` as the controller (and ``command --standby`` as its spare), for ever."""

    def __init__(self, command: Sequence[str], *, pid_file: Path, standby_pid_file: Path, state_file: Path,
                 notify_path: Path, standby: bool = True, watchdog_s: float = 10.0, start_timeout_s: float = 120.0,
                 standby_delay_s: float = 2.0, backoff: Backoff | None = None, upstream: str = "",
                 upstream_watchdog: bool = False) -> None:
        self.command = list(command)
        self.pid_file, self.standby_pid_file, self.state_file = pid_file, standby_pid_file, state_file
        self.notify_path = notify_path
        self.want_standby = standby
        self.watchdog_s, self.start_timeout_s, self.standby_delay_s = watchdog_s, start_timeout_s, standby_delay_s
        self.backoff = backoff or Backoff()
        self.standby_backoff = Backoff(first_s=2.0, max_s=60.0)
        self.upstream, self.upstream_watchdog = upstream, upstream_watchdog
        self.controller: Child | None = None
        self.standby: Child | None = None
        self.restarts = 0
        self.last_exit = ""
        self.last_exit_at: float | None = None
        self.last_recovery_s: float | None = None
        self._down_since: float | None = None
        """When the serving controller ended (monotonic), until the next one is ready."""
        self._restart_at = 0.0
        self._standby_at = 0.0
        self._told_upstream = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()
        self._last_state = ""
        self._socket: socket.socket | None = None

    # --- the loop

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        self._socket = self._bind()
        loop.add_reader(self._socket.fileno(), self._on_notification)
        log.info("supervisor (pid %d) starts the controller: %s%s", os.getpid(), " ".join(self.command),
                 "; a warm standby follows it" if self.want_standby else "")
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if self.controller is None and now >= self._restart_at:
                    await self._start_controller(now)
                self._watch_health(now)
                if (self.want_standby and self.standby is None and self.controller is not None
                        and self.controller.ready_at is not None
                        and now >= max(self._standby_at, self.controller.ready_at + self.standby_delay_s)):
                    self.standby = await self._spawn("standby")
                if self.upstream_watchdog:
                    sdnotify.notify(sdnotify.WATCHDOG, address=self.upstream)
                self._write_state()
                self._wake.clear()
                # A second at most (the watchdogs' pace); sooner when a restart is due (a pause of the backoff).
                due = self._restart_at - time.monotonic() if self.controller is None else 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(1.0, max(0.0, due)))
        finally:
            await self._shutdown()
        return 0

    def _stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _start_controller(self, now: float) -> None:
        standby, self.standby = self.standby, None
        if standby is None:
            self.controller = await self._spawn("controller")
            return
        standby.role, standby.started_at, self.controller = "controller", now, standby
        self.standby_pid_file.unlink(missing_ok=True)
        _write_pid(self.pid_file, standby.pid)
        _renice(standby.pid, 0)
        if standby.loaded:
            self._take_over(standby)
        else:
            standby.take_over_when_loaded = True
            log.info("standby controller (pid %d) takes over as soon as it has loaded", standby.pid)

    def _take_over(self, child: Child) -> None:
        log.info("standby controller (pid %d) takes over", child.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGUSR1)

    async def _spawn(self, role: str) -> Child:
        env = dict(os.environ)
        for name in ("WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(name, None)
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        env["WATCHDOG_USEC"] = str(int(self.watchdog_s * 1_000_000))
        argv = [*self.command, "--standby"] if role == "standby" else self.command
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.DEVNULL)
        child = Child(role, process, started_at=time.monotonic())
        if role == "standby":  # at once, before it starts threads: they inherit it (the calls keep the CPU)
            _renice(child.pid, STANDBY_NICE)
        _write_pid(self.pid_file if role == "controller" else self.standby_pid_file, child.pid)
        log.info("%s started (pid %d)", "controller" if role == "controller" else "standby controller", child.pid)
        watcher = asyncio.create_task(self._await_exit(child))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return child

    async def _await_exit(self, child: Child) -> None:
        code = await child.process.wait()
        self._exited(child, code)
        self._wake.set()

    def _exited(self, child: Child, code: int) -> None:
        now, reason = time.monotonic(), exit_reason(code)
        if child is self.standby:
            self.standby = None
            self.standby_pid_file.unlink(missing_ok=True)
            if not self._stopping.is_set():
                pause = self.standby_backoff.pause(now - child.started_at)
                self._standby_at = now + pause
                log.warning("standby controller (pid %d) %s; another in %.1f s", child.pid, reason, pause)
            return
        if child is not self.controller:
            return
        self.controller = None
        if self._stopping.is_set():
            log.info("controller (pid %d) stopped: %s", child.pid, reason)
            return
        served = now - child.ready_at if child.ready_at is not None else 0.0
        pause = self.backoff.pause(served)
        self.restarts += 1
        self.last_exit, self.last_exit_at = reason, time.time()
        self._down_since = self._down_since or now
        self._restart_at = now + pause
        nxt = "its standby takes over" if self.standby is not None else "a new one starts"
        log.error("controller (pid %d) %s after serving %.0f s; %s in %.1f s (restart %d)", child.pid, reason,
                  served, nxt, pause, self.restarts)

    # --- what the controllers say, and what they do not

    def _bind(self) -> socket.socket:
        self.notify_path.parent.mkdir(parents=True, exist_ok=True)
        self.notify_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # each datagram says which process sent it
        sock.bind(str(self.notify_path))
        os.chmod(self.notify_path, 0o600)
        return sock

    def _on_notification(self) -> None:
        assert self._socket is not None
        while True:
            try:
                data, ancillary, _flags, _address = self._socket.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            pid = _sender(ancillary)
            child = next((c for c in (self.controller, self.standby) if c is not None and c.pid == pid), None)
            if child is not None:
                self._notified(child, parse_notification(data), time.monotonic())

    def _notified(self, child: Child, fields: dict[str, str], now: float) -> None:
        child.pinged_at = now
        if fields.get("X_IVR_STANDBY") == "1" and not child.loaded:
            child.loaded = True
            log.info("standby controller (pid %d) loaded in %.1f s; waiting to take over", child.pid,
                     now - child.started_at)
            if child.take_over_when_loaded:
                self._take_over(child)
        if fields.get("READY") == "1" and child is self.controller and child.ready_at is None:
            child.ready_at = now
            if self._down_since is not None:
                self.last_recovery_s = round(now - self._down_since, 2)
                log.info("controller (pid %d) serving again %.1f s after the last one %s", child.pid,
                         self.last_recovery_s, self.last_exit)
                self._down_since = None
            else:
                log.info("controller (pid %d) ready in %.1f s", child.pid, now - child.started_at)
            if self.upstream and not self._told_upstream:
                self._told_upstream = sdnotify.notify(sdnotify.READY, address=self.upstream)
            self._wake.set()

    def _watch_health(self, now: float) -> None:
        child = self.controller
        if child is not None and not child.killing:
            if child.ready_at is None and now - child.started_at > self.start_timeout_s:
                self._kill(child, f"not ready {self.start_timeout_s:.0f} s after it started")
            elif child.ready_at is not None and now - max(child.ready_at, child.pinged_at) > self.watchdog_s:
                self._kill(child, f"no sign of life for {self.watchdog_s:.0f} s (hung)")
        standby = self.standby
        if standby is not None and not standby.killing and not standby.loaded \
                and now - standby.started_at > self.start_timeout_s:
            self._kill(standby, f"not loaded {self.start_timeout_s:.0f} s after it started")

    def _kill(self, child: Child, why: str) -> None:
        """SIGABRT (the controller's faulthandler writes its threads' stacks to the log), SIGKILL if it lingers."""
        child.killing = True
        log.error("%s (pid %d): %s; killing it", child.role, child.pid, why)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGABRT)

        def finish() -> None:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

        asyncio.get_running_loop().call_later(KILL_GRACE_S, finish)

    # --- state and shutdown

    def state(self) -> dict[str, Any]:
        controller, standby = self.controller, self.standby
        return {
            "supervisor_pid": os.getpid(),
            "controller_pid": controller.pid if controller else None,
            "controller_ready": bool(controller and controller.ready_at is not None),
            "standby_pid": standby.pid if standby else None,
            "standby_loaded": bool(standby and standby.loaded),
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "last_recovery_s": self.last_recovery_s,
            "stopping": self._stopping.is_set(),
        }

    def _write_state(self) -> None:
        text = json.dumps(self.state())
        if text == self._last_state:
            return
        self._last_state = text
        with contextlib.suppress(OSError):
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(text + "\n")
            temporary.replace(self.state_file)

    async def _shutdown(self) -> None:
        self._stopping.set()
        if self.upstream:
            sdnotify.notify(sdnotify.STOPPING, address=self.upstream)
        children = [c for c in (self.standby, self.controller) if c is not None and c.process.returncode is None]
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.process.terminate()
        for child in children:
            try:
                await asyncio.wait_for(child.process.wait(), STOP_GRACE_S)
            except TimeoutError:
                log.error("%s (pid %d) did not stop in %.0f s; killed", child.role, child.pid, STOP_GRACE_S)
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()
        if self._watchers:
            await asyncio.wait(list(self._watchers), timeout=2)
        self._write_state()
        for path in (self.pid_file, self.standby_pid_file, self.notify_path):
            path.unlink(missing_ok=True)
        log.info("supervisor stopped")


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sending process's pid, from the SCM_CREDENTIALS the kernel attaches (SO_PASSCRED)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            return int(struct.unpack("=iII", data[:12])[0])
    return None


def _write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def _renice(pid: int, niceness: int) -> None:
    """Every thread of ``pid`` to ``niceness`` (Linux keeps a niceness per thread); needs root or CAP_SYS_NICE."""
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tasks:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except PermissionError:
            log.warning("controller (pid %d) keeps running at a lower CPU priority: raising it needs root or "
                        "CAP_SYS_NICE (or run the supervisor with --no-standby)", pid)
            return
        except OSError:
            continue


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.ops.supervisor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", type=Path, required=True, help="JSON state for `ivr status`")
    parser.add_argument("--pid-file", type=Path, required=True, help="the serving controller's pid")
    parser.add_argument("--standby-pid-file", type=Path, required=True, help="the standby's pid")
    parser.add_argument("--notify", type=Path, required=True, help="the notification socket to create")
    parser.add_argument("--no-standby", action="store_true", help="no warm spare: restarts are cold (~10 s)")
    parser.add_argument("--watchdog", type=float, default=10.0, help="seconds without a ping before a kill")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds to become ready")
    parser.add_argument("command", nargs="+", help="the controller's command (after --)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # one line at a time into the log
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    # Under systemd: our own notifications go upstream; the controllers get our socket instead.
    upstream = os.environ.pop("NOTIFY_SOCKET", "")
    upstream_watchdog = sdnotify.watchdog_interval_s() is not None and bool(upstream)
    supervisor = Supervisor(args.command, pid_file=args.pid_file, standby_pid_file=args.standby_pid_file,
                            state_file=args.state, notify_path=args.notify, standby=not args.no_standby,
                            watchdog_s=args.watchdog, start_timeout_s=args.start_timeout, upstream=upstream,
                            upstream_watchdog=upstream_watchdog)
    return asyncio.run(supervisor.run())


if __name__ == "__main__":
    sys.exit(main())
