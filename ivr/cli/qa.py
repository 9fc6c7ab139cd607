"""``ivr qa check-checklist | worker | status | review | recheck``: the automated quality checks
(ivr/recordings/quality/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ivr.cli.common import app, fail
from ivr.config import load_settings

if TYPE_CHECKING:
    from ivr.recordings.quality.service import QualityService

qa_app = typer.Typer(help="Automated quality checks: the checklist, the worker, progress and the review list.",
                     no_args_is_help=True)
app.add_typer(qa_app, name="qa")


@qa_app.command("check-checklist")
def check_checklist(
    file: Annotated[Path, typer.Argument(help="the checklist (YAML), e.g. dialplans/qa-checklist.yaml")],
    vocabulary: Annotated[bool, typer.Option(help="warn about phrase words the speech model cannot hear")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate a checklist like a flow: every problem as file:line: severity: path: message; exit 1 on errors."""
    from ivr.recordings.quality.checklist import validate_checklist
    from ivr.voice.validation.context import asterisk_queues, model_vocabulary

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: cannot read the checklist: {exc}")
    words = model_vocabulary(load_settings().default_language) if vocabulary else None
    report = validate_checklist(text, str(file), asterisk_queues(),
                                (lambda word: word in words) if words is not None else None)
    if as_json:
        typer.echo(json.dumps({"ok": report.ok, "problems": [p.to_dict() for p in report.problems]},
                              ensure_ascii=False))
    else:
        for problem in report.problems:
            typer.secho(problem.format(), fg=typer.colors.RED if problem.severity == "error" else typer.colors.YELLOW,
                        err=True)
        if report.ok and report.checklist is not None:
            queues = ", ".join(sorted(report.checklist.queues)) or "none"
            typer.echo(f"{file}: ok ({len(report.checklist.every_queue)} items on every call; queues: {queues})")
    if not report.ok:
        raise typer.Exit(1)


@qa_app.command("worker")
def worker(parent: Annotated[int | None, typer.Option(help="stop when this process (the controller) is gone")]
           = None) -> None:
    """Run the quality worker in the foreground (the controller keeps one running; IVR_QA_WORKERS threads)."""
    from ivr import logs
    from ivr.recordings.quality.worker import run_worker

    settings = load_settings()
    logs.configure()
    run_worker(settings, parent)


def _service() -> QualityService:
    from ivr.recordings.quality.service import QualityService

    try:
        return QualityService.from_settings(load_settings())
    except ValueError as exc:
        fail(str(exc))


@qa_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The quality queue: queued, running, done, skipped, failed, flagged; the checklist's state."""
    progress = _service().progress()
    if as_json:
        typer.echo(json.dumps(progress, ensure_ascii=False))
        return
    typer.echo("  ".join(f"{k} {progress[k]}" for k in ("queued", "running", "done", "flagged", "skipped",
                                                         "failed")))
    typer.echo(f"agent talk transcribed: {progress['audio_s_done']:.0f} s; CPU-s per audio s: "
               f"{progress['cpu_s_per_audio_s']}")
    if progress["checklist_error"]:
        typer.secho(f"checks paused: {progress['checklist_error']}", fg=typer.colors.RED, err=True)


@qa_app.command("review")
def review(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Flagged calls, the latest first, with the moments to hear."""
    total, items = _service().jobs.review(limit)
    if as_json:
        typer.echo(json.dumps({"total": total, "items": [vars_of(i) for i in items]}, ensure_ascii=False))
        return
    typer.echo(f"{total} flagged calls")
    for item in items:
        typer.echo(f"{item.call_id}  queue {item.queue or '-'}  agent {item.agent or '-'}  score {item.score}")
        for finding in item.findings:
            at = int(finding["at_s"])
            typer.echo(f"    {at // 60}:{at % 60:02d}  {finding['kind']}: {finding['text']}")


@qa_app.command("recheck")
def recheck(call_id: Annotated[str, typer.Argument(help="the call's id")]) -> None:
    """Check a call again (after the checklist changed)."""
    if not _service().jobs.requeue(call_id):
        fail(f"call {call_id} is not in the quality queue (or is being checked now)")
    typer.echo(f"call {call_id} queued again")


def vars_of(item: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    return asdict(item) if is_dataclass(item) and not isinstance(item, type) else {}

