"""The ``ivr`` command: serve, set up and run the stack, place simulated calls."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from ivr.config import load_settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.importing import ImportResult

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
    from ivr.customers import CustomerStore

    async def work(client: aioredis.Redis) -> ImportResult[Any]:
        return await CustomerStore(client, timeout_s=10).import_file(file)

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
    from ivr.crm import crm_from_settings
    from ivr.customers import CustomerStore

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
    from ivr.agents import AgentDirectory
    from ivr.importing import AGENTS

    async def work(client: aioredis.Redis) -> ImportResult[Any]:
        return await AGENTS.run(file, AgentDirectory(client).put)

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
    from ivr.agents import AgentDirectory

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
    from ivr.agents import AGENT_SETTABLE, AgentDirectory, Presence

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

    from ivr.agent_phone import AgentPhone, AgentPhoneError

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

    from ivr.agents import AgentDirectory
    from ivr.auth import CALL_TAKERS, UserRole, UserStore

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
        existed = await store.get(username) is not None
        user = await store.add(username, password, chosen, agent,
                               name or (directory_agent.name if directory_agent else username))
        return user, existed

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
    from ivr.auth import UserStore

    async def work(client: aioredis.Redis) -> list[Any]:
        return await UserStore(client).all()

    for user in _with_redis(work):
        typer.echo(f"{user.username:<16} {user.role.value:<11} {user.agent_id or '-':<8} {user.name}")


@users_app.command("demo")
def users_demo() -> None:
    """Users for the demo agents (dialplans/demo_agents.json) and admin; passwords generated once into
    run/demo_users.env (mode 0600, never committed)."""
    from ivr.auth import ensure_demo_users

    users, path = _with_redis(ensure_demo_users)
    for user in users:
        typer.echo(f"{user.username:<8} {user.role.value:<11} {user.agent_id or '-'}")
    typer.echo(f"passwords: {path} (IVR_DEMO_PASSWORD_<USERNAME>)")


@dialplan_app.command("schema")
def dialplan_schema() -> None:
    """Print the flow format's JSON Schema."""
    from ivr.flow import Flow

    typer.echo(json.dumps(Flow.model_json_schema(), indent=2, ensure_ascii=False))
