"""``ivr users``: users of the web pages, and the demo's users (a dev tool, ``ivr.sim.demo_users``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ivr.cli.common import app, fail, record_audit, sim_extra_needed, with_redis

if TYPE_CHECKING:
    import redis.asyncio as aioredis

users_app = typer.Typer(help="Users of the web pages (agents, field managers, supervisors, admins).",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="agent, field, supervisor, admin or trainer")],
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
        fail(f"role {role!r}: one of {', '.join(r.value for r in UserRole)}")
    if chosen in CALL_TAKERS and not agent:
        fail(f"role {chosen.value} needs --agent ID (an agent of the directory: ivr agents list)")
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
        await record_audit(client, "role_change", f"user:{user.username}", detail)
        return user, before is not None

    try:
        user, existed = with_redis(work)
    except ValidationError as exc:  # a username or agent id the model refuses
        fail(_first_error(exc))
    except (LookupError, ValueError) as exc:  # unknown agent, short password
        fail(str(exc))
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

    for user in with_redis(work):
        typer.echo(f"{user.username:<16} {user.role.value:<11} {user.agent_id or '-':<8} {user.name}")


@users_app.command("demo")
def users_demo() -> None:
    """Users for the demo agents (dialplans/demo_agents.json) and admin; passwords generated once into
    run/demo_users.env (mode 0600, never committed)."""
    with sim_extra_needed():
        from ivr.sim.demo_users import ensure_demo_users

    users, path = with_redis(ensure_demo_users)
    for user in users:
        typer.echo(f"{user.username:<8} {user.role.value:<11} {user.agent_id or '-'}")
    typer.echo(f"passwords: {path} (IVR_DEMO_PASSWORD_<USERNAME>)")
