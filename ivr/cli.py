"""The ``ivr`` command: serve, set up and run the stack, place simulated calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from ivr.config import load_settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.records.importing import ImportResult

T = TypeVar("T")

app = typer.Typer(help="Contact-center IVR on Asterisk: controller, stack and tools.", no_args_is_help=True)
models_app = typer.Typer(help="Vosk model packs.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _fail(message: str) -> NoReturn:
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
        _fail(str(exc))
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
    from ivr.sim.simulator import SimulationError, Simulator, summary

    settings = load_settings()
    try:
        if sip:
            from ivr.sim.sip_caller import SipCaller

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
    for decision in result["routing"]:
        typer.echo(f"  routing: {decision['agent']} by rule {decision['rule']!r} -> {decision['result']}"
                   f" ({'; '.join(decision['why'])})")
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
agents_app = typer.Typer(help="The agent directory and presence.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
dialplan_app = typer.Typer(help="IVR flows (dialplans/).", no_args_is_help=True)
app.add_typer(dialplan_app, name="dialplan")
users_app = typer.Typer(help="Users of the web pages (agents, field managers, supervisors, admins).",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")


def _with_redis(work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    """Run ``work`` with a Redis client of the configured server; an unreachable Redis is a clear error."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    settings = load_settings()

    async def run() -> T:
        client = aioredis.from_url(settings.redis_url, decode_responses=True)
        try:
            return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except RedisError as exc:  # redis-py wraps refused connections and timeouts in its own errors
        _fail(f"Redis at {settings.redis_url}: {exc} (is it running? ivr up)")


async def _audit(client: aioredis.Redis, action: str, target: str, detail: str) -> None:
    """Record an administrative change in the audit log (ivr audit), as the user running the command."""
    from ivr.voice.versions import AuditLog, current_user

    await AuditLog(client).record(current_user(), action, target, detail)


def _import_detail(file: Path, result: ImportResult[Any]) -> str:
    return f"{file.name}: imported {result.imported}, failed {len(result.errors)}"


def _report_import(file: Path, what: str, result: ImportResult[Any]) -> None:
    for warning in result.warnings:
        typer.secho(f"{file}: {warning}", fg=typer.colors.YELLOW, err=True)
    for error in result.errors:
        typer.secho(f"{file}: {error}", fg=typer.colors.RED, err=True)
    typer.echo(f"{what}: imported {result.imported}, failed {len(result.errors)}")
    # The good rows are in; a non-zero exit still tells a script that the file needs fixing.
    raise typer.Exit(1 if result.errors else 0)


@customers_app.command("import")
def customers_import(file: Path) -> None:
    """Import customers from CSV or JSON: bad rows are reported by line, good rows imported."""
    from ivr.routing.customers import CustomerStore

    async def work(client: aioredis.Redis) -> ImportResult[Any]:
        result = await CustomerStore(client, timeout_s=10).import_file(file)
        await _audit(client, "import", "customers", _import_detail(file, result))
        return result

    try:
        result = _with_redis(work)
    except ValueError as exc:  # the file as a whole (not a row) cannot be read: nothing was written
        _fail(f"{file}: {exc}")
    except OSError as exc:
        _fail(str(exc))
    _report_import(file, "customers", result)


@customers_app.command("show")
def customers_show(
    id_or_phone: str,
    default_patience: Annotated[int, typer.Option(help="patience (s) when neither set nor learned")] = 60,
) -> None:
    """Print a customer (by id, else by phone number) with their last 10 contacts and patience, as JSON."""
    from ivr.routing.crm import crm_from_settings
    from ivr.routing.customers import CustomerStore

    async def work(client: aioredis.Redis) -> dict[str, Any] | None:
        crm = crm_from_settings(load_settings())
        store = CustomerStore(client, timeout_s=5, crm=crm)
        try:
            customer = await store.get(id_or_phone) or await store.by_phone(id_or_phone)
            if customer is None:
                return None
            seconds, source = await store.patience_for(customer, default_patience)
            contacts = await store.history(customer.id, 10)
        finally:
            if crm is not None:
                await crm.aclose()
        return {**customer.model_dump(mode="json"), "patience": {"seconds": seconds, "source": source},
                "contacts": [contact.model_dump(mode="json") for contact in contacts]}

    shown = _with_redis(work)
    if shown is None:
        _fail(f"no customer with id or phone {id_or_phone}")
    typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@agents_app.command("import")
def agents_import(file: Path) -> None:
    """Import agents (the directory) from CSV or JSON: bad rows are reported by line, good rows imported."""
    from ivr.routing.agents import AGENTS, AgentDirectory

    async def work(client: aioredis.Redis) -> ImportResult[Any]:
        result = await AGENTS.run(file, AgentDirectory(client).put)
        await _audit(client, "import", "agents", _import_detail(file, result))
        return result

    try:
        result = _with_redis(work)
    except ValueError as exc:
        _fail(f"{file}: {exc}")
    except OSError as exc:
        _fail(str(exc))
    _report_import(file, "agents", result)


@agents_app.command("list")
def agents_list() -> None:
    """The directory: id, name, role, device, skills and presence."""
    from ivr.routing.agents import AgentDirectory

    async def work(client: aioredis.Redis) -> list[tuple[Any, dict[str, Any]]]:
        directory = AgentDirectory(client)
        return [(agent, await directory.presence(agent.id)) for agent in await directory.all()]

    for agent, presence in _with_redis(work):
        skills = ",".join(f"{skill}:{level}" for skill, level in sorted(agent.skills.items())) or "-"
        status = presence["status"] + (f" ({presence['reason']})" if presence.get("reason") else "")
        if presence.get("activity"):  # what Asterisk says they are doing (ringing, on a call), next to their choice
            status += f", {presence['activity']}"
        typer.echo(f"{agent.id:<8} {agent.name:<12} {agent.role.value:<10} {agent.device:<18} {skills:<44} {status}")


@agents_app.command("presence")
def agents_presence(
    agent_id: str,
    status: Annotated[str, typer.Argument(help="ready, not_ready, wrap_up or offline")],
    reason: Annotated[str, typer.Option(help="why not ready (lunch, training, ...)")] = "",
) -> None:
    """Set an agent's presence, as their desktop would; the controller's ACD follows at once."""
    from ivr.routing.agents import AGENT_SETTABLE, AgentDirectory, Presence

    try:
        chosen = Presence(status)
    except ValueError:
        chosen = None
    if chosen not in AGENT_SETTABLE:
        _fail(f"presence {status!r}: one of {', '.join(sorted(p.value for p in AGENT_SETTABLE))}")
    assert chosen is not None

    async def work(client: aioredis.Redis) -> bool:
        directory = AgentDirectory(client)
        if await directory.get(agent_id) is None:
            return False
        await directory.set_presence(agent_id, chosen, reason if chosen is Presence.NOT_READY else "")
        return True

    if not _with_redis(work):
        _fail(f"no agent {agent_id!r} in the directory (ivr agents import FILE)")
    typer.echo(f"{agent_id}: {chosen.value}" + (f" ({reason})" if reason and chosen is Presence.NOT_READY else ""))


@agents_app.command("phone")
def agents_phone(
    extension: str,
    answer: Annotated[str, typer.Option(help="auto, never or reject")] = "auto",
    talk: Annotated[float, typer.Option(help="seconds to stay on an answered call")] = 10.0,
    seconds: Annotated[float, typer.Option(help="how long to stay registered (0: until Ctrl-C)")] = 0.0,
) -> None:
    """A softphone registered as an agent's extension (pyVoIP), for demos and trying routing without a headset."""
    import time

    from ivr.sim.agent_phone import AgentPhone, AgentPhoneError

    try:
        phone = AgentPhone(load_settings(), extension, answer=answer, talk_s=talk).start()  # type: ignore[arg-type]
    except (AgentPhoneError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"extension {extension} registered ({answer}); Ctrl-C to stop")
    seen = 0
    deadline = time.monotonic() + seconds if seconds else float("inf")
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            for ring in phone.rings[seen:]:
                typer.echo(f"{extension}: call from {ring.caller_name or ''} <{ring.caller_id}>")
                seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        phone.stop()


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="agent, field, supervisor or admin")],
    agent: Annotated[str | None, typer.Option(help="the directory's agent id (required for agent and field)")] = None,
    name: Annotated[str | None, typer.Option(help="shown on the pages (default: the agent's name)")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
) -> None:
    """Create a web user, or replace one (a new password, role or agent)."""
    from pydantic import ValidationError

    from ivr.routing.agents import AgentDirectory
    from ivr.web.auth import CALL_TAKERS, UserRole, UserStore

    try:
        chosen = UserRole(role)
    except ValueError:
        _fail(f"role {role!r}: one of {', '.join(r.value for r in UserRole)}")
    if chosen in CALL_TAKERS and not agent:
        _fail(f"role {chosen.value} needs --agent ID (an agent of the directory: ivr agents list)")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)

    async def work(client: aioredis.Redis) -> tuple[Any, bool]:
        directory_agent = await AgentDirectory(client).get(agent) if agent else None
        if agent and directory_agent is None:
            raise LookupError(f"no agent {agent!r} in the directory (ivr agents import FILE)")
        store = UserStore(client)
        before = await store.get(username)
        user = await store.add(username, password, chosen, agent,
                               name or (directory_agent.name if directory_agent else username))
        agent_part = f", agent {user.agent_id}" if user.agent_id else ""
        if before is None:
            detail = f"created with role {user.role.value}{agent_part}"
        elif (before.role, before.agent_id) != (user.role, user.agent_id):
            detail = f"role {before.role.value} -> {user.role.value}{agent_part} (password set)"
        else:
            detail = f"password set; role {user.role.value}{agent_part} unchanged"
        await _audit(client, "role_change", f"user:{user.username}", detail)
        return user, before is not None

    try:
        user, existed = _with_redis(work)
    except ValidationError as exc:  # a username or agent id the model refuses
        _fail(_first_error(exc))
    except (LookupError, ValueError) as exc:  # unknown agent, short password
        _fail(str(exc))
    typer.echo(f"{'updated' if existed else 'created'} {user.username} ({user.role.value}"
               + (f", agent {user.agent_id}" if user.agent_id else "") + ")")


def _first_error(exc: Any) -> str:
    """A pydantic ValidationError's first problem, on one line."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else str(first["msg"])


@users_app.command("list")
def users_list() -> None:
    """The web users: username, role, agent, name."""
    from ivr.web.auth import UserStore

    async def work(client: aioredis.Redis) -> list[Any]:
        return await UserStore(client).all()

    for user in _with_redis(work):
        typer.echo(f"{user.username:<16} {user.role.value:<11} {user.agent_id or '-':<8} {user.name}")


@users_app.command("demo")
def users_demo() -> None:
    """Users for the demo agents (dialplans/demo_agents.json) and admin; passwords generated once into
    run/demo_users.env (mode 0600, never committed)."""
    from ivr.web.auth import ensure_demo_users

    users, path = _with_redis(ensure_demo_users)
    for user in users:
        typer.echo(f"{user.username:<8} {user.role.value:<11} {user.agent_id or '-'}")
    typer.echo(f"passwords: {path} (IVR_DEMO_PASSWORD_<USERNAME>)")


@dialplan_app.command("schema")
def dialplan_schema() -> None:
    """Print the flow format's JSON Schema."""
    from ivr.voice.flow import Flow

    typer.echo(json.dumps(Flow.model_json_schema(), indent=2, ensure_ascii=False))


# --- flows: validate, simulate, publish, history, diff, rollback (ivr.voice: validation, simulation, versions)


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
        _fail(f"{path}: {exc}")


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
        _fail(f"{file}: cannot be simulated until its errors are fixed")
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
        _fail(str(exc))
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
) -> None:
    """Validate, pre-render the prompts and make FILE the live version of its flow, for new calls at once."""
    from ivr.voice.validation import validate_text
    from ivr.voice.versions import BaseChanged, InvalidFlow, current_user

    text = _read_flow_text(file)
    parsed = validate_text(text, str(file))
    if parsed.flow is None:
        _print_problems(parsed.problems)
        _fail(f"{file}: not published; the live flow is unchanged")
    flow_id = parsed.flow.id

    async def work(client: aioredis.Redis) -> tuple[Any, Any]:
        store = _flow_store(client)
        before = await store.live(flow_id)
        return before, await store.publish(flow_id, text, author or current_user(), comment, base)

    try:
        before, version = _with_redis(work)
    except InvalidFlow as exc:
        _print_problems(exc.report.problems, warnings=False)
        _fail(f"{file}: not published ({len(exc.report.errors)} errors); the live flow is unchanged")
    except BaseChanged as exc:
        _fail(f"{exc} (your text is still in {file})")
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

    rows, live = _with_redis(work)
    if flow is None:
        for item in rows:
            typer.echo(f"{item['id']:<16} live v{item['live']}  ({item['versions']} versions, "
                       f"updated {when(item['updated_at'])})")
        if not rows:
            typer.echo("no flow published yet (the controller seeds dialplans/hotline.yaml when it starts)")
        return
    if not rows:
        _fail(f"flow {flow!r} has no versions")
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
        text = _with_redis(work)
    except UnknownVersion as exc:
        _fail(str(exc))
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
        version = _with_redis(work)
    except UnknownVersion as exc:
        _fail(str(exc))
    except InvalidFlow as exc:
        _print_problems(exc.report.problems, warnings=False)
        _fail(f"version {number} of {flow} is no longer valid here; the live flow is unchanged")
    typer.echo(f"{flow}: version {version.number} live (the text of version {number}) for new calls")


@app.command("audit")
def audit(count: Annotated[int, typer.Option(help="how many entries, newest first")] = 50,
          as_json: Annotated[bool, typer.Option("--json", help="one JSON list")] = False) -> None:
    """Who published, rolled back, imported or changed a role, and when."""
    import time as _time

    from ivr.voice.versions import AuditLog

    async def work(client: aioredis.Redis) -> list[dict[str, Any]]:
        return await AuditLog(client).entries(count)

    entries = _with_redis(work)
    if as_json:
        typer.echo(json.dumps(entries, ensure_ascii=False))
        return
    for entry in entries:
        when = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(entry["at"]))
        typer.echo(f"{when}  {entry['who']:<12} {entry['action']:<12} {entry['target']:<20} {entry['detail']}")
