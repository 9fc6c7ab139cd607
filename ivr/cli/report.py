"""``ivr report``: navigation analytics and contact-center KPIs from the archive of finished calls; and
``ivr recordings purge-turns``: turn audio past its retention, deleted (labels and statistics stay), audited."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ivr.cli.common import app, fail, record_audit, with_redis
from ivr.config import load_settings
from ivr.privacy.redaction import redact

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.voice.training.service import TrainerService

report_app = typer.Typer(help="Navigation analytics and KPIs from the archive of finished calls.",
                         no_args_is_help=True)
app.add_typer(report_app, name="report")
recordings_app = typer.Typer(help="Call and turn recordings.", no_args_is_help=True)
app.add_typer(recordings_app, name="recordings")

Since = Annotated[str, typer.Option(help="window: a span back from now (7d, 12h, 30m) or a date (YYYY-MM-DD)")]


def _service() -> TrainerService:
    from ivr.records.archive import Archive
    from ivr.routing.policy_settings import service_level_targets
    from ivr.voice.training.service import TrainerService

    settings = load_settings()
    archive = Archive(settings.archive_file)
    try:
        archive.query("SELECT 1")
    except Exception as exc:
        fail(f"archive {settings.archive_file}: {exc}")
    return TrainerService(archive, settings.recordings_dir, service_level_targets(settings))


def _since(text: str) -> float:
    from ivr.voice.training.service import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        fail(str(exc))


def exported(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as every export writes them: each text cell through the redaction step (ivr.privacy.redaction)."""
    return [{k: redact(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1.0 else f"{value:.1f}"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str], seconds: frozenset[str] = frozenset()) -> None:
    cells = [[(f"{r[c]:.1f}" if c in seconds and r[c] is not None else _cell(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


@report_app.command("navigation")
def navigation(since: Since = "7d",
               by: Annotated[str, typer.Option(help="version, node, language or dialect")] = "node",
               as_json: Annotated[bool, typer.Option("--json", help="JSON: {since, by, rows}")] = False) -> None:
    """Containment, first-try recognition, confirms, reprompts, no-matches, asks for a person, hang-ups in the IVR,
    time in the IVR and keys after speech failed, per flow version, node, language or dialect."""
    start = _since(since)
    try:
        rows = [r.to_dict() for r in _service().navigation(start, by=by)]
    except ValueError as exc:
        fail(str(exc))
    rows = exported(rows)
    if as_json:
        typer.echo(json.dumps({"since": start, "by": by, "rows": rows}, ensure_ascii=False))
        return
    if len(rows) <= 1 and not rows[0]["calls"]:
        typer.echo(f"no calls archived since {since}")
        return
    _table(rows, ["value", "calls", "spoken", "containment", "first_try", "confirm", "confirm_rejected", "reprompt",
                  "no_match", "asks_person", "hangup_in_ivr", "ivr_s", "keys_after_failure"], frozenset({"ivr_s"}))


@report_app.command("kpi")
def kpi(since: Since = "7d",
        as_json: Annotated[bool, typer.Option("--json", help="JSON: {since, rows}")] = False,
        as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row")] = False) -> None:
    """Containment, IVR abandonment, transfer rate, service level, ASA, queue abandonment, AHT, repeat contacts in
    7 days and callbacks kept, per day, queue and flow version."""
    start = _since(since)
    rows = exported([r.to_dict() for r in _service().kpis(start)])
    if as_json:
        typer.echo(json.dumps({"since": start, "rows": rows}, ensure_ascii=False))
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return
    _table(rows, list(rows[0]), frozenset({"asa", "aht"}))


@recordings_app.command("purge-turns")
def purge_turns(days: Annotated[int | None, typer.Option(help="keep this many days (default: the setting "
                                                               "IVR_TURN_AUDIO_RETENTION_DAYS)")] = None,
                dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go; delete nothing")] = False,
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Delete turn recordings older than the retention; the archive keeps the turns, labels and statistics. Audited."""
    from ivr.recordings.index import RecordingIndex
    from ivr.voice.training.retention import purge_turn_audio
    from ivr.voice.versions import current_user

    settings = load_settings()
    keep = days if days is not None else settings.turn_audio_retention_days
    try:
        held = RecordingIndex(settings.recordings_index_file).held_ids()  # legal holds keep their turn audio too
        result = purge_turn_audio(_service().archive, settings.recordings_dir, keep, current_user(), dry_run=dry_run,
                                  held=held)
    except ValueError as exc:
        fail(str(exc))
    if not dry_run:
        async def audit(client: aioredis.Redis) -> None:
            await record_audit(client, "purge-turns", str(settings.recordings_dir / "turns"), result.detail())

        try:
            with_redis(audit)
        except typer.Exit:  # Redis down: the archive's own purge record stands; say so
            typer.secho("the purge is recorded in the archive, not in the audit log (Redis unreachable)",
                        fg=typer.colors.YELLOW, err=True)
    if as_json:
        typer.echo(json.dumps({**asdict(result), "dry_run": dry_run}))
    else:
        typer.echo(("would purge " if dry_run else "purged ") + result.detail())
