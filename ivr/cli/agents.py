"""``ivr agents``: the agent directory, presence, and a test softphone for an agent's extension."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ivr.cli.common import app, fail, run_import, sim_extra_needed, with_redis
from ivr.config import load_settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis


agents_app = typer.Typer(help="The agent directory and presence.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")


@agents_app.command("import")
def agents_import(file: Path) -> None:
    """Import agents (the directory) from CSV or JSON: bad rows are reported by line, good rows imported."""
    from ivr.records.agent import AGENTS
    from ivr.routing.agents import AgentDirectory

    run_import(file, "agents", lambda client: AGENTS.run(file, AgentDirectory(client).put))


@agents_app.command("list")
def agents_list() -> None:
    """The directory: id, name, role, device, skills and presence."""
    from ivr.routing.agents import AgentDirectory

    async def work(client: aioredis.Redis) -> list[tuple[Any, dict[str, Any]]]:
        directory = AgentDirectory(client)
        return [(agent, await directory.presence(agent.id)) for agent in await directory.all()]

    for agent, presence in with_redis(work):
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
        fail(f"presence {status!r}: one of {', '.join(sorted(p.value for p in AGENT_SETTABLE))}")
    assert chosen is not None

    async def work(client: aioredis.Redis) -> bool:
        directory = AgentDirectory(client)
        if await directory.get(agent_id) is None:
            return False
        await directory.set_presence(agent_id, chosen, reason if chosen is Presence.NOT_READY else "")
        return True

    if not with_redis(work):
        fail(f"no agent {agent_id!r} in the directory (ivr agents import FILE)")
    typer.echo(f"{agent_id}: {chosen.value}" + (f" ({reason})" if reason and chosen is Presence.NOT_READY else ""))


@agents_app.command("phone")
def agents_phone(
    extension: str,
    answer: Annotated[str, typer.Option(help="auto, never or reject")] = "auto",
    talk: Annotated[float, typer.Option(help="seconds to stay on an answered call")] = 10.0,
    seconds: Annotated[float, typer.Option(help="how long to stay registered (0: until Ctrl-C)")] = 0.0,
) -> None:
    """A softphone registered as an agent's extension (pyVoIP), for demos and trying routing without a headset."""
    with sim_extra_needed():
        from ivr.sim.agent_phone import AgentPhone, AgentPhoneError

    try:
        phone = AgentPhone(load_settings(), extension, answer=answer, talk_s=talk).start()  # type: ignore[arg-type]
    except (AgentPhoneError, ValueError) as exc:
        fail(str(exc))
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
