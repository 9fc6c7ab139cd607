"""What every command group shares: the one typer app, failing with a message, Redis for a command,
the audit log, import reports, and the dev tools loaded only when a command needs them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from ivr.config import load_settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.records.importing import ImportResult

T = TypeVar("T")

app = typer.Typer(help="Contact-center IVR on Asterisk: controller, stack and tools.", no_args_is_help=True)

#: What to install when a command needs the simulators' extra (pyVoIP) and it is missing.
SIM_EXTRA_HINT = "pip install 'ivr[sim]'"


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextlib.contextmanager
def sim_extra_needed() -> Iterator[None]:
    """Around a command's imports of the dev tools (``ivr.sim``): the product installs without the ``[sim]``
    extra, and a command that needs it then says what to install instead of showing a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "pyVoIP":
            raise
        fail(f"this command needs the simulation tools (pyVoIP), not installed here: {SIM_EXTRA_HINT}")


def with_redis(work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
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
        fail(f"Redis at {settings.redis_url}: {exc} (is it running? ivr up)")


async def record_audit(client: aioredis.Redis, action: str, target: str, detail: str) -> None:
    """Record an administrative change in the audit log (ivr audit), as the user running the command."""
    from ivr.voice.versions import AuditLog, current_user

    await AuditLog(client).record(current_user(), action, target, detail)


def import_detail(file: Path, result: ImportResult[Any]) -> str:
    return f"{file.name}: imported {result.imported}, failed {len(result.errors)}"


def run_import(file: Path, what: str, load: Callable[[aioredis.Redis], Awaitable[ImportResult[Any]]]) -> NoReturn:
    """Import ``file`` with ``load``, put it on the audit trail, report it, and exit 1 if a row failed.

    ValueError: the file as a whole (not a row) cannot be read, so nothing was written.
    """

    async def work(client: aioredis.Redis) -> ImportResult[Any]:
        result = await load(client)
        await record_audit(client, "import", what, import_detail(file, result))
        return result

    try:
        result = with_redis(work)
    except ValueError as exc:
        fail(f"{file}: {exc}")
    except OSError as exc:
        fail(str(exc))
    report_import(file, what, result)


def report_import(file: Path, what: str, result: ImportResult[Any]) -> NoReturn:
    for warning in result.warnings:
        typer.secho(f"{file}: {warning}", fg=typer.colors.YELLOW, err=True)
    for error in result.errors:
        typer.secho(f"{file}: {error}", fg=typer.colors.RED, err=True)
    typer.echo(f"{what}: imported {result.imported}, failed {len(result.errors)}")
    # The good rows are in; a non-zero exit still tells a script that the file needs fixing.
    raise typer.Exit(1 if result.errors else 0)
