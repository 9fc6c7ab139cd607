"""The stack: ``ivr serve``, ``setup``, ``up``, ``down``, ``status``, ``doctor``, ``install`` (systemd units)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ivr.cli.common import app, fail
from ivr.config import load_settings

if TYPE_CHECKING:
    from ivr.ops.stack import Check


@app.command()
def serve(log_level: str = "INFO",
          standby: bool = typer.Option(False, help="load everything, then wait for SIGUSR1 before taking calls "
                                                   "(the supervisor's warm spare)")) -> None:
    """Run the controller (FastAGI + AudioSocket + AMI) in the foreground."""
    import faulthandler

    from ivr import logs
    from ivr.controller import build_controller

    # A supervisor's watchdog kills a hung controller with SIGABRT: every thread's stack goes to the log first.
    faulthandler.enable()
    if standby:  # from the start: SIGUSR1's default action would end a standby told to take over mid-load
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    logs.configure(log_level)
    settings = load_settings()
    controller = build_controller(settings)
    if standby and not _take_over_when_told():
        return
    asyncio.run(controller.serve_forever())


def _take_over_when_told() -> bool:
    """A loaded standby: say so to the supervisor and wait for SIGUSR1 (serve) or SIGTERM/SIGINT (not needed)."""
    import logging

    from ivr import sdnotify

    waited = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    sdnotify.notify(sdnotify.STANDBY, "STATUS=standby: loaded, waiting to take over")
    logging.getLogger("ivr.cli").info("standby controller loaded (pid %d); waiting to take over", os.getpid())
    received = signal.sigwait(waited)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, waited)
    return received == signal.SIGUSR1


@app.command()
def setup() -> None:
    """Generate per-machine secrets and the Asterisk includes (idempotent)."""
    from ivr.ops.provision import provision, relative

    for path in provision(load_settings()):
        typer.echo(f"wrote {relative(path)}")


@app.command()
def up(controller: bool = typer.Option(True, help="start the controller too")) -> None:
    """Start Redis, Asterisk and the controller in the background."""
    from ivr.ops import stack

    try:
        stack.up(load_settings(), controller=controller)
    except stack.StackError as exc:
        fail(str(exc))
    _print_checks(stack.status(load_settings()))


@app.command()
def down() -> None:
    """Stop the controller, Asterisk and Redis."""
    from ivr.ops import stack

    stack.down(load_settings())
    typer.echo("stack stopped")


@app.command()
def status() -> None:
    """What is running. Exit status 0: all up; 3: parts still starting (the controller just started); 1: a failure."""
    from ivr.ops import stack

    checks = stack.status(load_settings())
    _print_checks(checks)
    raise typer.Exit(_exit_status(checks))


#: Where `ivr install` writes its units by default (the administrator's units folder).
SYSTEMD_UNITS_DIR = Path("/etc/systemd/system")


@app.command()
def install(
    directory: Annotated[Path, typer.Option(help="where the unit files go")] = SYSTEMD_UNITS_DIR,
    verify: Annotated[bool, typer.Option(help="check them with `systemd-analyze verify` when it is installed")] = True,
) -> None:
    """Write systemd units for a bare machine: Redis, Asterisk in its root, the supervised controller (ivr.target).

    Stop the stack `ivr up` started first (`ivr down`); then `systemctl daemon-reload` and
    `systemctl enable --now ivr.target`.
    """
    import shutil
    import subprocess
    import sys

    from ivr.config import ASTERISK_PROJECT_DIR, PROJECT_DIR
    from ivr.ops import stack
    from ivr.ops.units import UnitInputs, render_units, verify_problems

    settings = load_settings()
    generated = settings.run_dir / "asterisk" / "generated" / "manager_users.conf"
    if not generated.exists():
        fail(f"{generated} is missing: run `ivr setup` first (secrets and Asterisk's generated configuration)")
    for sub in ("lib", "spool", "run", "log", "cache"):  # Asterisk's folders (configured in asterisk.conf)
        (settings.run_dir / "asterisk" / sub).mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    inputs = UnitInputs(
        project=PROJECT_DIR, redis_argv=stack.redis_argv(settings),
        controller_argv=stack.supervisor_argv(settings, python=sys.executable),
        asterisk_root=settings.asterisk_root, asterisk_conf=stack.ASTERISK_CONF,
        asterisk_project=str(ASTERISK_PROJECT_DIR),
        asterisk_ctl=settings.run_dir / "asterisk" / "run" / "asterisk.ctl",
        controller_log=settings.logs_dir / "controller.log", systemd_version=_systemd_version())
    units = render_units(inputs)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (directory / name).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {directory / name}")
    if verify and shutil.which("systemd-analyze"):
        result = subprocess.run(["systemd-analyze", "verify", *(str(directory / n) for n in units)],
                                capture_output=True, text=True, check=False)
        problems = verify_problems(result.stdout + result.stderr,
                                   (settings.asterisk_root / "usr/sbin/asterisk").exists())
        typer.echo("systemd-analyze verify: " + ("ok" if not problems else "problems:"))
        for line in problems:
            typer.echo(f"  {line}")
    booted = Path("/run/systemd/system").is_dir()
    typer.echo("next: ivr down; systemctl daemon-reload; systemctl enable --now ivr.target"
               if booted else "systemd is not running here: the units take effect on a machine booted with it")


def _systemd_version() -> int | None:
    import subprocess

    try:
        out = subprocess.run(["systemctl", "--version"], capture_output=True, text=True, timeout=5, check=False)
        return int(out.stdout.split()[1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


@app.command()
def doctor() -> None:
    """Check every component and say precisely what is missing and how to fix it."""
    from ivr.ops import stack

    checks = stack.doctor(load_settings())
    _print_checks(checks)
    raise typer.Exit(_exit_status(checks))


#: `ivr status`'s exit status while parts are still starting (neither up, 0, nor failed, 1).
EXIT_STARTING = 3


def _exit_status(checks: Iterable[Check]) -> int:
    checks = list(checks)
    if all(c.ok for c in checks):
        return 0
    return EXIT_STARTING if all(c.ok or c.starting for c in checks) else 1


def _print_checks(checks: Iterable[Check]) -> None:
    for check in checks:
        if check.ok:
            mark = typer.style(" ok ", fg=typer.colors.GREEN)
        elif check.starting:
            mark = typer.style("wait", fg=typer.colors.YELLOW)  # starting: not a failure (yet)
        else:
            mark = typer.style("FAIL", fg=typer.colors.RED)
        typer.echo(f"[{mark}] {check.name:<28} {check.detail}")
