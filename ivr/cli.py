"""The ``ivr`` command: serve, set up and run the stack, place simulated calls."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ivr.config import load_settings

app = typer.Typer(help="Contact-center IVR on Asterisk: controller, stack and tools.", no_args_is_help=True)
models_app = typer.Typer(help="Vosk model packs.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


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
    from ivr.provision import provision, relative

    for path in provision(load_settings()):
        typer.echo(f"wrote {relative(path)}")


@app.command()
def up(controller: bool = typer.Option(True, help="start the controller too")) -> None:
    """Start Redis, Asterisk and the controller in the background."""
    from ivr import stack

    try:
        stack.up(load_settings(), controller=controller)
    except stack.StackError as exc:
        _fail(str(exc))
    _print_checks(stack.status(load_settings()))


@app.command()
def down() -> None:
    """Stop the controller, Asterisk and Redis."""
    from ivr import stack

    stack.down(load_settings())
    typer.echo("stack stopped")


@app.command()
def status() -> None:
    """What is running."""
    from ivr import stack

    checks = stack.status(load_settings())
    _print_checks(checks)
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


@app.command()
def doctor() -> None:
    """Check every component and say precisely what is missing and how to fix it."""
    from ivr import stack

    checks = stack.doctor(load_settings())
    _print_checks(checks)
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


def _print_checks(checks) -> None:  # type: ignore[no-untyped-def]
    for check in checks:
        mark = typer.style(" ok " if check.ok else "FAIL", fg=typer.colors.GREEN if check.ok else typer.colors.RED)
        typer.echo(f"[{mark}] {check.name:<28} {check.detail}")


@app.command()
def call(
    caller: Annotated[str, typer.Option(help="caller number presented to the hotline")] = "01012345678",
    audio: Annotated[list[Path] | None, typer.Option(help="WAV answering the next question (repeatable)")] = None,
    dtmf: Annotated[list[str] | None, typer.Option(help="keys answering the next question, after the audio")] = None,
    until: Annotated[str, typer.Option(help="queued | answered | end")] = "queued",
    timeout: Annotated[float, typer.Option(help="seconds before giving up")] = 60.0,
    barge_in: Annotated[bool, typer.Option(help="answer while the prompt still plays")] = False,
    sip: Annotated[bool, typer.Option(help="call through a pyVoIP SIP phone instead of a Local channel")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Place a simulated call through the real Asterisk and print its record."""
    from ivr.simulator import SimulationError, Simulator, summary

    settings = load_settings()
    try:
        if sip:
            from ivr.sip_caller import SipCaller

            record = SipCaller(settings).run(caller, audio or [], dtmf or [], until=until, timeout=timeout,
                                             barge_in=barge_in)
        else:
            record = asyncio.run(Simulator(settings).run(caller, audio or [], dtmf or [], until=until,
                                                         timeout=timeout, barge_in=barge_in))
    except SimulationError as exc:
        _fail(str(exc))
    result = summary(record)
    if as_json:
        json.dump(result, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    typer.echo(f"call {result['call_id']} from {result['caller']}: {result['outcome']}"
               f" -> queue {result['queue'] or '-'}, agent {result['agent'] or '-'}")
    typer.echo(f"  path: {' > '.join(result['path'] or [])}")
    for turn in result["turns"]:
        typer.echo(f"  [{turn['node']}] heard {turn['transcript']!r} ({turn['confidence']}) keys {turn['dtmf']!r}"
                   f" -> {turn['intent']} ({turn['score']})")
    for note in result["notes"]:
        typer.echo(f"  note: {note}")


@models_app.command("list")
def models_list() -> None:
    """Model packs available on this machine."""
    from asr import default_registry

    for pack in default_registry().packs():
        typer.echo(f"{pack.language:<6} {pack.dialect or '-':<10} {pack.path}")


@models_app.command("pull")
def models_pull(language: str) -> None:
    """Download a small Vosk model for LANGUAGE with vosk's own downloader (needs internet)."""
    from asr import ModelMissing, pull

    try:
        path = pull(language)
    except ModelMissing as exc:
        _fail(str(exc))
    typer.echo(f"model for {language} in {path}")


customers_app = typer.Typer(help="Customer data (caller-ID lookup, self-service).", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
dialplan_app = typer.Typer(help="IVR flows (dialplans/).", no_args_is_help=True)
app.add_typer(dialplan_app, name="dialplan")


@customers_app.command("import")
def customers_import(file: Path) -> None:
    """Import customers from a JSON list; bad rows are reported by row, good rows imported."""
    import redis.asyncio as aioredis

    from ivr.customers import CustomerStore, load_rows

    try:
        rows = load_rows(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"{file}: {exc}")

    async def run() -> tuple[int, list[str]]:
        client = aioredis.from_url(load_settings().redis_url, decode_responses=True)
        try:
            return await CustomerStore(client, timeout_s=10).import_rows(rows)
        finally:
            await client.aclose()

    imported, errors = asyncio.run(run())
    for error in errors:
        typer.secho(f"{file}: {error}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"imported {imported} customers, {len(errors)} rows rejected")
    raise typer.Exit(1 if errors else 0)


@dialplan_app.command("schema")
def dialplan_schema() -> None:
    """Print the flow format's JSON Schema."""
    from ivr.flow import Flow

    typer.echo(json.dumps(Flow.model_json_schema(), indent=2, ensure_ascii=False))
