"""systemd units for a bare machine (``ivr install``): Redis, Asterisk in its root, the supervised controller. Pure.

``render_units`` turns paths and command lines into unit files' text; ``ivr install`` (ivr/cli/stack.py) writes
them. The stack is the one ``ivr up`` runs, with systemd in place of the pid files:

- ``ivr-redis.service``: redis-server with the stack's arguments (AOF, fsync on every write), ``Restart=always``.
- ``ivr-asterisk.service``: Asterisk chrooted in its Debian root by systemd itself (``RootDirectory=`` with the API
  file systems mounted and the project bound at /srv/ivr: what ``ivr up`` does with mount and chroot),
  ``Restart=always``.
- ``ivr-controller.service``: ``Type=notify``, ``Restart=always``, ``WatchdogSec=``; it runs the supervisor
  (ivr/ops/supervisor.py), which forwards ``READY=1`` when the controller takes calls and pings systemd's
  watchdog, and itself restarts a controller that dies or hangs, from a warm standby in about a second.
- ``ivr.target``: the three together (``systemctl enable --now ivr.target``).

Restart backoff: ``RestartSec=`` doubling up to 10 s needs systemd 254 (``RestartSteps=``,
``RestartMaxDelaySec=``); older systemd restarts at a fixed pace (the supervisor has its own backoff anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

UNIT_NAMES = ("ivr-redis.service", "ivr-asterisk.service", "ivr-controller.service", "ivr.target")
WATCHDOG_S = 10
"""systemd kills (and restarts) a supervisor that stops pinging for this long."""
RESTART_STEPS_SINCE = 254
"""The systemd version that has RestartSteps= and RestartMaxDelaySec=."""


@dataclass(frozen=True, slots=True)
class UnitInputs:
    """What the units are made of (``ivr install`` reads them from the settings and this checkout)."""

    project: Path
    """The checkout (WorkingDirectory; bound into Asterisk's root at ``asterisk_project``)."""
    redis_argv: Sequence[str]
    """redis-server's command line (``ivr.ops.stack.redis_argv``)."""
    controller_argv: Sequence[str]
    """The supervised controller's command line (``ivr.ops.stack.supervisor_argv``)."""
    asterisk_root: Path
    """The Debian root Asterisk runs in."""
    asterisk_conf: str
    """asterisk.conf's path inside that root."""
    asterisk_project: str
    """Where the project is inside the root (/srv/ivr: the configuration's paths)."""
    asterisk_ctl: Path
    """Asterisk's control socket on the host (a stale one from a killed Asterisk is removed before a start)."""
    controller_log: Path
    """The controller's log (its lines and the supervisor's, as with ``ivr up``)."""
    systemd_version: int | None = None
    """The installed systemd's version (None: unknown, the units keep to what every current systemd knows)."""


def exec_line(argv: Sequence[str]) -> str:
    """A command line for ``ExecStart=``: each word quoted when it must be, ``%`` and ``$`` escaped.

    systemd splits on blanks and honours double quotes with C-style escapes; it expands ``%`` specifiers and
    ``$VARIABLES`` in Exec lines, so a literal one is written twice."""
    words = []
    for arg in argv:
        text = str(arg).replace("%", "%%").replace("$", "$$")
        if text == "" or any(c.isspace() or c in "\"'\\;" for c in text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(text)
    return " ".join(words)


def render_units(inputs: UnitInputs) -> dict[str, str]:
    """The unit files' names and text."""
    backoff = ["RestartSec=500ms"]
    if inputs.systemd_version is not None and inputs.systemd_version >= RESTART_STEPS_SINCE:
        backoff += ["RestartSteps=5", "RestartMaxDelaySec=10s"]
    asterisk = f"/usr/sbin/asterisk -C {inputs.asterisk_conf}"
    return {
        "ivr-redis.service": _unit(
            "IVR: Redis (calls, agents, flows; append-only file, fsync on every write)",
            after=["network.target"],
            service=["Type=simple", f"ExecStart={exec_line(inputs.redis_argv)}", "Restart=always", "RestartSec=1s"]),
        "ivr-asterisk.service": _unit(
            "IVR: Asterisk 22 in its Debian root",
            after=["network.target"],
            service=[
                "Type=simple",
                f"RootDirectory={inputs.asterisk_root}",
                "MountAPIVFS=yes",
                f"BindPaths={inputs.project}:{inputs.asterisk_project}",
                # "+": on the host, not in the root. A control socket left by a killed Asterisk makes -rx deaf.
                f"ExecStartPre=+/bin/rm -f {inputs.asterisk_ctl}",
                f"ExecStart={asterisk} -U root -G root -f",
                f"ExecStop={asterisk} -rx {exec_line(['core stop gracefully'])}",
                "Restart=always",
                "RestartSec=2s",
                "TimeoutStopSec=30s",
            ]),
        "ivr-controller.service": _unit(
            "IVR: the controller (FastAGI, AudioSocket, AMI, the ACD, the web pages), supervised",
            after=["network.target", "ivr-redis.service", "ivr-asterisk.service"],
            wants=["ivr-redis.service", "ivr-asterisk.service"],
            unit_extra=["StartLimitIntervalSec=0"],  # never give up: a hotline with no IVR sends everyone to a queue
            service=[
                "Type=notify",
                "NotifyAccess=main",
                f"WorkingDirectory={inputs.project}",
                f"ExecStart={exec_line(inputs.controller_argv)}",
                "Restart=always",
                *backoff,
                f"WatchdogSec={WATCHDOG_S}s",
                "TimeoutStartSec=180s",
                "TimeoutStopSec=60s",
                # The supervisor stops its controllers itself (SIGTERM, then their calls fall through to the dialplan).
                "KillMode=mixed",
                "Environment=PYTHONUNBUFFERED=1",
                f"StandardOutput=append:{inputs.controller_log}",
                "StandardError=inherit",
            ]),
        "ivr.target": "\n".join([
            "[Unit]",
            "Description=IVR: Redis, Asterisk and the controller",
            "Wants=ivr-redis.service ivr-asterisk.service ivr-controller.service",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]),
    }


def verify_problems(output: str, asterisk_in_root: bool) -> list[str]:
    """``systemd-analyze verify``'s findings that are real: it checks Exec paths on the host, not inside
    ``RootDirectory=`` (systemd #20402), so Asterisk's binary, present in its root (``asterisk_in_root``), is not
    a finding there."""
    inside_root = "Command /usr/sbin/asterisk is not executable"
    return [line for line in output.splitlines() if line.strip() and not (
        asterisk_in_root and line.startswith("ivr-asterisk.service: ") and inside_root in line)]


def _unit(description: str, *, after: list[str], service: list[str], wants: list[str] | None = None,
          unit_extra: list[str] | None = None) -> str:
    lines = ["[Unit]", f"Description={description}", f"After={' '.join(after)}"]
    if wants:
        lines.append(f"Wants={' '.join(wants)}")
    lines += ["PartOf=ivr.target", *(unit_extra or []), "", "[Service]", *service, "", "[Install]",
              "WantedBy=ivr.target", ""]
    return "\n".join(lines)
