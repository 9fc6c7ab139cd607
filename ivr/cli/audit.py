"""``ivr audit``: who changed what (publishes, rollbacks, imports, role changes)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ivr.cli.common import app, with_redis

if TYPE_CHECKING:
    import redis.asyncio as aioredis


@app.command("audit")
def audit(count: Annotated[int, typer.Option(help="how many entries, newest first")] = 50,
          as_json: Annotated[bool, typer.Option("--json", help="one JSON list")] = False) -> None:
    """Who published, rolled back, imported or changed a role, and when."""
    from ivr.voice.versions import AuditLog

    async def work(client: aioredis.Redis) -> list[dict[str, Any]]:
        return await AuditLog(client).entries(count)

    entries = with_redis(work)
    if as_json:
        typer.echo(json.dumps(entries, ensure_ascii=False))
        return
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["at"]))
        typer.echo(f"{when}  {entry['who']:<12} {entry['action']:<12} {entry['target']:<20} {entry['detail']}")
