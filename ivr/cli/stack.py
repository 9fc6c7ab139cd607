"""The stack: ``ivr serve``, ``setup``, ``up``, ``down``, ``status``, ``doctor``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

import typer

from ivr.cli.common import app, fail
from ivr.config import load_settings

if TYPE_CHECKING:
    from ivr.ops.stack import Check


@app.command()
def serve(log_level: str = "INFO") -> None:
    """Run the controller (FastAGI + AudioSocket + AMI) in the foreground."""
    from ivr import logs
    from ivr.controller import build_controller

    logs.configure(log_level)
    settings = load_settings()
    controller = build_controller(settings)
    asyncio.run(controller.serve_forever())


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
    """What is running."""
    from ivr.ops import stack

    checks = stack.status(load_settings())
    _print_checks(checks)
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


@app.command()
def doctor() -> None:
    """Check every component and say precisely what is missing and how to fix it."""
    from ivr.ops import stack

    checks = stack.doctor(load_settings())
    _print_checks(checks)
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


def _print_checks(checks: Iterable[Check]) -> None:
    for check in checks:
        mark = typer.style(" ok " if check.ok else "FAIL", fg=typer.colors.GREEN if check.ok else typer.colors.RED)
        typer.echo(f"[{mark}] {check.name:<28} {check.detail}")
