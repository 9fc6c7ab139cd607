"""``ivr recordings verify | purge | hold | release | keygen``: call recordings' integrity, retention and legal
hold (the ``recordings`` group lives in ivr/cli/report.py, with ``purge-turns``)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from ivr.cli.common import fail, record_audit, with_redis
from ivr.cli.report import recordings_app
from ivr.config import load_settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.recordings.library import RecordingLibrary

CallId = Annotated[str, typer.Argument(help="the call's id (Asterisk uniqueid)")]
Reason = Annotated[str, typer.Option("--reason", "-m", help="why (a case number, a complaint)")]


def _library() -> RecordingLibrary:
    from ivr.recordings.library import RecordingLibrary

    try:
        return RecordingLibrary.from_settings(load_settings())
    except ValueError as exc:
        fail(str(exc))


def _audit(action: str, target: str, detail: str) -> None:
    """The admin audit log; the recordings' own access log (SQLite) has it whether Redis is up or not."""
    async def work(client: aioredis.Redis) -> None:
        await record_audit(client, action, target, detail)

    try:
        with_redis(work)
    except typer.Exit:
        typer.secho("recorded in the recordings' access log, not in the audit log (Redis unreachable)",
                    fg=typer.colors.YELLOW, err=True)


@recordings_app.command("verify")
def verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check every recording against the chained SHA-256 manifest: exit 0 when intact, 1 naming each broken entry
    (a changed byte, a missing or truncated file, an entry edited, removed or reordered)."""
    report = _library().verify()
    if as_json:
        typer.echo(json.dumps({"entries": report.entries, "intact": report.intact,
                               "head": asdict(report.head) if report.head else None,
                               "problems": [asdict(p) | {"message": p.message()} for p in report.problems]}))
    else:
        for problem in report.problems:
            typer.secho(problem.message(), fg=typer.colors.RED, err=True)
        head = f"; head: entry {report.head.seq} {report.head.hash}" if report.head else ""
        verdict = "intact" if report.intact else f"{len(report.problems)} problems"
        typer.echo(f"{report.entries} manifest entries: {verdict}{head}")
    raise typer.Exit(0 if report.intact else 1)


@recordings_app.command("purge")
def purge(days: Annotated[int | None, typer.Option(help="keep this many days (default: the setting "
                                                       "IVR_CALL_RECORDING_RETENTION_DAYS, 5 years)")] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go; delete nothing")] = False,
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Remove call recordings past their retention, except calls under legal hold; audited, each removal in the
    manifest. (Turn audio has its own retention: ``ivr recordings purge-turns``.)"""
    from ivr.voice.versions import current_user

    settings = load_settings()
    keep = days if days is not None else settings.call_recording_retention_days
    library = _library()
    try:
        report = library.purge(keep, current_user(), dry_run=dry_run)
    except ValueError as exc:
        fail(str(exc))
    if not dry_run and (report.purged or report.files):
        head = library.index.head()
        suffix = f"; manifest head {head.seq} {head.hash}" if head else ""
        _audit("purge-calls", str(settings.recordings_dir / "calls"),
               report.detail() + (f": {', '.join(report.purged[:50])}" if report.purged else "") + suffix)
    if as_json:
        typer.echo(json.dumps({**asdict(report), "dry_run": dry_run}))
    else:
        typer.echo(("would purge " if dry_run else "purged ") + report.detail())


@recordings_app.command("hold")
def hold(call_id: CallId, reason: Reason) -> None:
    """Put a call's recording under legal hold: no purge removes it until it is released. Audited."""
    from ivr.recordings.library import RecordingError
    from ivr.voice.versions import current_user

    try:
        row = _library().hold(call_id, current_user(), "cli", reason)
    except (ValueError, RecordingError) as exc:
        fail(str(exc))
    _audit("recording-hold", call_id, reason)
    typer.echo(f"call {call_id} held by {row.held_by}: {row.hold_reason}")


@recordings_app.command("release")
def release(call_id: CallId, reason: Reason) -> None:
    """End a legal hold: the recording is purged again when its retention ends. Audited."""
    from ivr.recordings.library import RecordingError
    from ivr.voice.versions import current_user

    try:
        _library().release(call_id, current_user(), "cli", reason)
    except (ValueError, RecordingError) as exc:
        fail(str(exc))
    _audit("recording-release", call_id, reason)
    typer.echo(f"call {call_id}: hold released")


@recordings_app.command("access")
def access(call_id: Annotated[str | None, typer.Argument(help="one call (default: all)")] = None,
           count: Annotated[int, typer.Option(help="newest first")] = 50) -> None:
    """Who played, downloaded, held, purged or was refused which recording, and when."""
    for entry in _library().index.access(call_id, count):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
        typer.echo(f"{when}  {entry.who:<12} {entry.role:<10} {entry.action:<9} {entry.call_id:<24} {entry.detail}")


@recordings_app.command("keygen")
def keygen() -> None:
    """Print a new key for IVR_RECORDINGS_KEY (encryption at rest, AES-256-GCM). Keep it with the other secrets:
    recordings encrypted with it cannot be played without it."""
    from ivr.recordings.crypto import new_key

    typer.echo(new_key())
