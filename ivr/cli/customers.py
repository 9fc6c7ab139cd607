"""``ivr customers``: customer data (caller-ID lookup, self-service)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ivr.cli.common import app, fail, run_import, with_redis
from ivr.config import load_settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis


customers_app = typer.Typer(help="Customer data (caller-ID lookup, self-service).", no_args_is_help=True)
app.add_typer(customers_app, name="customers")


@customers_app.command("import")
def customers_import(file: Path) -> None:
    """Import customers from CSV or JSON: bad rows are reported by line, good rows imported."""
    from ivr.routing.customers import CustomerStore

    run_import(file, "customers", lambda client: CustomerStore(client, timeout_s=10).import_file(file))


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

    shown = with_redis(work)
    if shown is None:
        fail(f"no customer with id or phone {id_or_phone}")
    typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))
