"""``ivr dialplan``: IVR flows: schema, validate, simulate, publish, history, diff, rollback
(ivr.voice: validation, simulation, versions)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ivr.cli.common import app, fail, with_redis
from ivr.config import load_settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

dialplan_app = typer.Typer(help="IVR flows (dialplans/).", no_args_is_help=True)
app.add_typer(dialplan_app, name="dialplan")


@dialplan_app.command("schema")
def dialplan_schema() -> None:
    """Print the flow format's JSON Schema."""
    from ivr.voice.flow import Flow

    typer.echo(json.dumps(Flow.model_json_schema(), indent=2, ensure_ascii=False))


def _flow_files(files: list[Path] | None) -> list[Path]:
    if files:
        return files
    folder = load_settings().dialplans_dir
    with contextlib.suppress(ValueError):  # shown as the admin would type them
        folder = folder.relative_to(Path.cwd())
    return sorted(p for p in folder.glob("*.yaml") if not p.name.endswith(".cases.yaml"))


def _read_flow_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: {exc}")


async def _optional_redis() -> aioredis.Redis | None:
    """A client of the configured Redis if it answers (within a second), else None."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(load_settings().redis_url, decode_responses=True, socket_connect_timeout=1,
                               socket_timeout=5)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        return None
    return client


def _print_problems(problems: list[Any], warnings: bool = True) -> None:
    for problem in problems:
        if problem.severity == "warning" and not warnings:
            continue
        colour = typer.colors.RED if problem.severity == "error" else typer.colors.YELLOW
        typer.secho(problem.format(), fg=colour, err=True)


@dialplan_app.command("validate")
def dialplan_validate(
    files: Annotated[list[Path] | None, typer.Argument(help="flow files (default: every flow in dialplans/)")] = None,
    cases: Annotated[bool, typer.Option("--cases", help="also run each flow's saved simulations "
                                                        "(<flow>.cases.yaml)")] = False,
    warnings: Annotated[bool, typer.Option(help="show warnings (vocabulary, unused intents)")] = True,
) -> None:
    """Check flows: format, graph, a person within two failures, queues/skills/extensions, languages,
    conflicting phrases and keys, words the speech model does not know. Exit 1 on any error."""
    from ivr.voice.simulation import CaseError, cases_path, load_cases, run_cases
    from ivr.voice.validation import load_context, validate_text

    settings = load_settings()

    async def work() -> bool:
        client = await _optional_redis()
        try:
            context = await load_context(settings, client)
        finally:
            if client is not None:
                await client.aclose()
        if client is None:
            typer.secho("note: Redis not reachable: skills are not checked against the agent directory",
                        fg=typer.colors.YELLOW, err=True)
        all_ok = True
        for path in _flow_files(files):
            report = await asyncio.to_thread(validate_text, _read_flow_text(path), str(path), context)
            _print_problems(report.problems, warnings)
            errors, warned = len(report.errors), len(report.warnings)
            verdict = "ok" if report.ok else "INVALID"
            typer.echo(f"{path}: {verdict} ({errors} error{'s' * (errors != 1)}, "
                       f"{warned} warning{'s' * (warned != 1)})")
            all_ok &= report.ok
            if not cases or report.flow is None:
                continue
            case_file = cases_path(path)
            if not case_file.exists():
                typer.echo(f"{case_file}: no saved simulations")
                continue
            try:
                results = await run_cases(report.flow, load_cases(case_file))
            except CaseError as exc:
                typer.secho(str(exc), fg=typer.colors.RED, err=True)
                all_ok = False
                continue
            for result in results:
                if result.ok:
                    typer.echo(f"  case {result.name}: ok")
                else:
                    typer.secho(f"  FAIL {result.message}", fg=typer.colors.RED)
            failed = sum(not r.ok for r in results)
            typer.echo(f"{case_file}: {len(results) - failed} passed, {failed} failed")
            all_ok &= not failed
        return all_ok

    raise typer.Exit(0 if asyncio.run(work()) else 1)


@dialplan_app.command("simulate")
def dialplan_simulate(
    file: Path,
    caller: Annotated[str, typer.Option(help="the caller's number (their customer data applies)")] = "",
    inputs: Annotated[list[str] | None, typer.Option("--input", "-i", help='an answer: words, "key:3", silence or '
                                                     "hangup (repeatable; none: type them as the call goes)")] = None,
    language: Annotated[str | None, typer.Option(help="the caller's language (default: theirs, else the flow's first)")]
    = None,
    customers: Annotated[Path | None, typer.Option(help="customers file (CSV/JSON) instead of the customer store")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Walk a flow without Asterisk: each prompt, what the engine heard, the intent scores, and the route."""
    import dataclasses

    from ivr.voice.simulation import CaseError, SimStep, customers_from_file, simulate
    from ivr.voice.validation import validate_text

    report = validate_text(_read_flow_text(file), str(file))
    if report.flow is None:
        _print_problems(report.problems)
        fail(f"{file}: cannot be simulated until its errors are fixed")
    flow = report.flow
    interactive = not inputs and not as_json

    def show(step: SimStep) -> None:
        if as_json:
            return
        if step.kind == "say":
            typer.echo(f"[{step.node}] IVR: {step.prompt}")
            return
        if not interactive and step.prompt:
            typer.echo(f"[{step.node}] IVR: {step.prompt}")
        scores = ", ".join(f"{intent} {score:.2f}" for intent, score in step.scores.items()) or "no intent"
        typer.secho(f"    caller: {step.heard or '(silence)'}  ->  {step.intent or '-'}   [{scores}]",
                    fg=typer.colors.CYAN)

    async def ask(step: SimStep) -> str | None:
        if step.prompt:
            typer.echo(f"[{step.node}] IVR: {step.prompt}")
        try:
            return await asyncio.to_thread(input, "caller> ")
        except EOFError:
            return None

    async def work() -> Any:
        client = None
        lookup: Any = None
        if customers is not None:
            lookup = customers_from_file(customers)
        else:
            client = await _optional_redis()
            if client is None:
                typer.secho("note: Redis not reachable: every caller is unknown (--customers FILE to use a file)",
                            fg=typer.colors.YELLOW, err=True)
            else:
                from ivr.routing.customers import CustomerStore

                lookup = CustomerStore(client, timeout_s=2)
        try:
            return await simulate(flow, list(inputs or []), caller=caller, customers=lookup, language=language,
                                  ask=ask if interactive else None, on_step=show)
        finally:
            if client is not None:
                await client.aclose()

    if interactive:
        typer.echo('Type what the caller says, "key:3" for keys, "silence", or "hangup" (Ctrl-D hangs up).')
    try:
        result = asyncio.run(work())
    except (ValueError, CaseError, OSError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("\nsimulation stopped")
        raise typer.Exit(130) from None
    if as_json:
        json.dump({"steps": [dataclasses.asdict(s) for s in result.steps], "decision": result.decision,
                   "record": result.record}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    decision, record = result.decision, result.record
    where = {"queue": f"queue {decision['queue']}", "transfer": f"extension {decision['target']}"
             f" (else queue {decision['queue']})", "callback": f"a callback (queue {decision['queue']})",
             "hangup": "hang-up"}[decision["kind"]]
    typer.secho(f"=> {where}: {decision['reason']}; outcome {record['outcome']}, intent {record['intent'] or '-'}"
                f", path {' > '.join(record['path'])}", bold=True)
    if record.get("customer"):
        typer.echo(f"   caller {record['caller']}: customer {record['customer']} ({record['customer_name']}, "
                   f"{record['tier']}), language {record['language']}")


def _flow_store(client: aioredis.Redis) -> Any:
    from ivr.voice.versions import FlowStore

    return FlowStore(client, settings=load_settings())


@dialplan_app.command("publish")
def dialplan_publish(
    file: Path,
    comment: Annotated[str, typer.Option("--comment", "-m", help="what changed and why (kept in the history)")],
    base: Annotated[int | None, typer.Option(help="the live version your edit started from: refused if another "
                                             "went live since (default: publish over the live version)")] = None,
    author: Annotated[str | None, typer.Option(help="who publishes (default: $SUDO_USER or $USER)")] = None,
    override: Annotated[str | None, typer.Option(help="why to publish although its replay breaks more turns than "
                                                      "it fixes (ivr dialplan replay)")] = None,
) -> None:
    """Validate, pre-render the prompts and make FILE the live version of its flow, for new calls at once.
    A replay of FILE (`ivr dialplan replay FILE`) is kept with the version and can refuse it (see --override)."""
    from ivr.voice.training.gate import GateRefused
    from ivr.voice.validation import validate_text
    from ivr.voice.versions import BaseChanged, InvalidFlow, current_user

    text = _read_flow_text(file)
    parsed = validate_text(text, str(file))
    if parsed.flow is None:
        _print_problems(parsed.problems)
        fail(f"{file}: not published; the live flow is unchanged")
    flow_id = parsed.flow.id

    async def work(client: aioredis.Redis) -> tuple[Any, Any]:
        store = _flow_store(client)
        before = await store.live(flow_id)
        return before, await store.publish(flow_id, text, author or current_user(), comment, base, override=override)

    try:
        before, version = with_redis(work)
    except InvalidFlow as exc:
        _print_problems(exc.report.problems, warnings=False)
        fail(f"{file}: not published ({len(exc.report.errors)} errors); the live flow is unchanged")
    except BaseChanged as exc:
        fail(f"{exc} (your text is still in {file})")
    except GateRefused as exc:
        fail(str(exc))
    if version.replay:
        typer.echo(f"replay kept with the version: {version.replay['turns']} turns, {version.replay['fixed']} fixed, "
                   f"{version.replay['broken']} broken" + (f"; override: {version.replay['override']}"
                                                           if version.replay.get("override") else ""))
    typer.echo(f"published {flow_id} version {version.number} (was {before.number if before else 'none'}): "
               "live for new calls; calls in progress finish on their version")


@dialplan_app.command("history")
def dialplan_history(flow: Annotated[str | None, typer.Argument(help="a flow id (default: list the flows)")] = None
                     ) -> None:
    """The flows and their live versions, or one flow's versions (newest first)."""
    import time as _time

    def when(at: float | None) -> str:
        return _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(at)) if at else "-"

    async def work(client: aioredis.Redis) -> tuple[Any, Any]:
        store = _flow_store(client)
        if flow is None:
            return await store.flows(), None
        return await store.history(flow), await store.live(flow)

    rows, live = with_redis(work)
    if flow is None:
        for item in rows:
            typer.echo(f"{item['id']:<16} live v{item['live']}  ({item['versions']} versions, "
                       f"updated {when(item['updated_at'])})")
        if not rows:
            typer.echo("no flow published yet (the controller seeds dialplans/hotline.yaml when it starts)")
        return
    if not rows:
        fail(f"flow {flow!r} has no versions")
    for version in rows:
        mark = "*" if live and version.number == live.number else " "
        typer.echo(f"{mark} v{version.number:<4} {when(version.at)}  {version.author:<12} {version.action:<9} "
                   f"{version.comment}")


@dialplan_app.command("diff")
def dialplan_diff(flow: str, a: int, b: int) -> None:
    """What changed from version A to version B of FLOW (a unified diff)."""
    from ivr.voice.versions import UnknownVersion

    async def work(client: aioredis.Redis) -> str:
        return str(await _flow_store(client).diff(flow, a, b))

    try:
        text = with_redis(work)
    except UnknownVersion as exc:
        fail(str(exc))
    typer.echo(text.rstrip("\n") if text else f"versions {a} and {b} of {flow} have the same text")


@dialplan_app.command("rollback")
def dialplan_rollback(
    flow: str,
    number: int,
    comment: Annotated[str, typer.Option("--comment", "-m", help="why")] = "",
    author: Annotated[str | None, typer.Option(help="who (default: $SUDO_USER or $USER)")] = None,
) -> None:
    """Make version NUMBER of FLOW live again, in one step (as a new version; the history keeps everything)."""
    from ivr.voice.versions import InvalidFlow, UnknownVersion, current_user

    async def work(client: aioredis.Redis) -> Any:
        return await _flow_store(client).rollback(flow, number, author or current_user(), comment)

    try:
        version = with_redis(work)
    except UnknownVersion as exc:
        fail(str(exc))
    except InvalidFlow as exc:
        _print_problems(exc.report.problems, warnings=False)
        fail(f"version {number} of {flow} is no longer valid here; the live flow is unchanged")
    typer.echo(f"{flow}: version {version.number} live (the text of version {number}) for new calls")


@dialplan_app.command("replay")
def dialplan_replay(
    flow: Annotated[str, typer.Argument(help="a flow file (the candidate) or a flow id (its live version)")],
    since: Annotated[str, typer.Option(help="replay the turns of this last period: 30d, 12h, 90m")] = "30d",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    workers: Annotated[int | None, typer.Option(help="recognition processes (default: every core)")] = None,
) -> None:
    """Replay a candidate version against the recorded turns of the last period: each turn heard again with its
    grammars and understood with its intents, compared with the turn's label and with what happened live. The
    result is kept for the publish of that exact text (a version breaking more turns than it fixes then needs
    `ivr dialplan publish --override`)."""
    import time as _time

    from ivr.voice.flow import FlowError, parse_flow
    from ivr.voice.training.replay import archived_turns, parse_since, replay

    settings = load_settings()
    try:
        window = parse_since(since)
    except ValueError as exc:
        fail(str(exc))

    async def live_text() -> str | None:
        client = await _optional_redis()
        if client is None:
            return None
        try:
            from ivr.voice.versions import FlowStore

            live = await FlowStore(client, settings=settings).live(flow)
            return live.text if live else None
        finally:
            await client.aclose()

    path = Path(flow)
    if path.suffix in (".yaml", ".yml") or path.exists():
        text = _read_flow_text(path)
    else:
        found = asyncio.run(live_text())
        if found is None:
            fail(f"{flow!r} is neither a flow file nor a flow with a live version (is Redis running?)")
        text = found
    try:
        candidate = parse_flow(text, str(flow))
    except FlowError as exc:
        fail(str(exc))
    start = _time.time() - window
    turns = archived_turns(settings.archive_file, settings.recordings_dir, candidate.id, start)
    show = not as_json and sys.stderr.isatty()
    if not as_json:
        when = _time.strftime("%Y-%m-%d %H:%M", _time.localtime(start))
        typer.echo(f"replaying {len(turns)} turns of {candidate.id} since {when}", err=True)
    with typer.progressbar(length=len(turns), label="replay", file=sys.stderr if show else None,
                           hidden=not show) as bar:
        last = [0]

        def progress(done: int, total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        result = replay(text, turns, workers=workers, progress=progress, since=start)

    async def keep() -> bool:
        from ivr.voice.training.gate import save_result

        client = await _optional_redis()
        if client is None:
            return False
        try:
            await save_result(client, result)
            return True
        finally:
            await client.aclose()

    kept = asyncio.run(keep())
    if as_json:
        json.dump(result.to_dict(), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    typer.echo(result.summary())
    typer.echo(f"  right live {result.right_before} -> now {result.right_after} of {result.judged} turns with a known "
               f"intent ({result.labeled} labeled); {result.calls} calls; {result.audio_s:.0f} s of audio in "
               f"{result.wall_s:.1f} s on {result.workers} processes")
    for truth, row in result.by_label.items():
        typer.echo(f"  {truth:<12} -> " + ", ".join(f"{now} {count}" for now, count in sorted(row.items())))
    for item in result.unreadable_files[:10]:
        typer.secho(f"  unreadable: {item['turn']} {item['audio']}: {item['error']}", fg=typer.colors.YELLOW, err=True)
    if not kept:
        typer.secho("note: Redis not reachable: this result is not kept for the publish", fg=typer.colors.YELLOW,
                    err=True)
