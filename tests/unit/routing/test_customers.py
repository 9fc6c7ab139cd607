"""The customer store: model rules, the phone index, contact history, patience and the CRM lookup."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from ivr.config import PROJECT_DIR
from ivr.records.customer import Case, Contact, Customer, learn_patience
from ivr.routing.crm import CrmLookup
from ivr.routing.customers import CustomerStore, load_rows


def customer(id: str = "C1", phones: tuple[str, ...] = ("01011112222",), **fields: object) -> Customer:
    return Customer.model_validate({"id": id, "name": f"name of {id}", "phones": list(phones), **fields})


# --- the model


@pytest.mark.parametrize("account", ["110-***-**1234", "123456******1234", "****1234", "110-xxx-xx1234", "KB ****"])
def test_masked_accounts_are_accepted(account: str) -> None:
    assert customer(accounts=[account]).accounts == [account]


@pytest.mark.parametrize("account", ["110-123-451234", "1234567890123456", "4111 1111 1111 1111", "1234567*12345"])
def test_unmasked_accounts_are_rejected_without_echoing_the_number(account: str) -> None:
    with pytest.raises(ValidationError) as caught:
        customer(accounts=["110-***-**1234", account])
    message = caught.value.errors()[0]["msg"]
    assert "account 2" in message and "first 6 and last 4 digits" in message
    assert account not in message


def test_phones_are_normalized_and_deduplicated() -> None:
    assert customer(phones=("010-1111-2222", "01011112222", "+44 7700 900123")).phones == ["01011112222",
                                                                                          "+447700900123"]
    with pytest.raises(ValidationError, match="is not a phone number"):
        customer(phones=("n/a",))


def test_case_owner_by_skill_else_most_recent_open_case() -> None:
    c = customer(cases=[
        Case(id="K1", skill="loans", owner="F2001", opened_at=100),
        Case(id="K2", skill="cards", owner="A1003", opened_at=300),
        Case(id="K3", skill="payments", owner="A1004", opened_at=900, status="closed"),
        Case(id="K4", skill="general", owner=None, opened_at=950),
    ])
    assert [case.id for case in c.open_cases()] == ["K1", "K2", "K4"]
    assert c.case_owner("loans") == "F2001"
    assert c.case_owner("cards") == "A1003"
    # No open case for the skill (a closed one does not count), or no skill: the newest open case with an owner.
    assert c.case_owner("payments") == "A1003"
    assert c.case_owner(None) == "A1003"
    assert customer().case_owner("loans") is None
    with pytest.raises(ValidationError, match="case id appears twice"):
        customer(cases=[Case(id="K1", skill="loans"), Case(id="K1", skill="cards")])


# --- the store and the phone index


async def test_put_and_lookup_by_any_number_form(redis_db: aioredis.Redis) -> None:
    store = CustomerStore(redis_db)
    await store.put(customer("C1", ("01011112222", "0215880000")))
    found = await store.by_phone("010-1111-2222")
    assert found is not None and found.id == "C1"
    assert (await store.by_phone("0215880000")).id == "C1"  # type: ignore[union-attr]
    assert await store.by_phone("01099999999") is None
    assert await store.by_phone("anonymous") is None


async def test_a_number_dropped_by_a_customer_stops_pointing_to_them(redis_db: aioredis.Redis) -> None:
    store = CustomerStore(redis_db)
    await store.put(customer("C1", ("01011112222", "01033334444")))
    await store.put(customer("C1", ("01033334444",)))
    assert await redis_db.get("ivr:phone:01011112222") is None
    assert await store.by_phone("01011112222") is None
    assert (await store.by_phone("01033334444")).id == "C1"  # type: ignore[union-attr]


async def test_a_number_moving_to_another_customer(redis_db: aioredis.Redis) -> None:
    store = CustomerStore(redis_db)
    await store.put(customer("A", ("01011112222", "01033334444")))
    await store.put(customer("B", ("01011112222",)))
    assert (await store.by_phone("01011112222")).id == "B"  # type: ignore[union-attr]
    # A's record no longer lists the number, so saving A again does not take it back.
    a = await store.get("A")
    assert a is not None and a.phones == ["01033334444"]
    await store.put(a)
    assert (await store.by_phone("01011112222")).id == "B"  # type: ignore[union-attr]
    # A's old version listed the number; dropping it now must not unhook B.
    await store.put(customer("A", ("01055556666",)))
    assert await redis_db.get("ivr:phone:01011112222") == "B"
    assert await redis_db.get("ivr:phone:01033334444") is None


async def test_import_file_writes_good_rows_only(tmp_path: Path, redis_db: aioredis.Redis) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("id,name,phones,accounts\nC1,Kim,01011112222,110-***-**1234\n"
                    "C2,Lee,01033334444,1101234567891234\nC3,Park,01011112222,\nC4,Choi,01055556666,\n",
                    encoding="utf-8")
    result = await CustomerStore(redis_db).import_file(path)
    assert result.imported == 2 and [e.split(":")[0] for e in result.errors] == ["line 3", "line 4"]
    assert sorted(await redis_db.keys("ivr:customer:*")) == ["ivr:customer:C1", "ivr:customer:C4"]
    assert sorted(await redis_db.keys("ivr:phone:*")) == ["ivr:phone:01011112222", "ivr:phone:01055556666"]


async def test_import_rows_of_the_demo_file(redis_db: aioredis.Redis) -> None:
    rows = load_rows((PROJECT_DIR / "dialplans" / "demo_customers.json").read_text(encoding="utf-8"))
    store = CustomerStore(redis_db)
    assert await store.import_rows(rows) == (3, [])
    vip = await store.by_phone("01012345678")
    assert vip is not None and vip.case_owner("loans") == "F2001" and vip.patience_s == 30
    imported, errors = await store.import_rows([{"id": "X"}, "junk"])
    assert imported == 0 and errors[0].startswith("item 1: ") and errors[1] == "item 2: not a JSON object"


async def test_an_unreachable_store_means_an_unknown_caller_quickly() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    try:
        assert await CustomerStore(client, timeout_s=0.3).by_phone("01011112222") is None
    finally:
        await client.aclose()


# --- contact history and patience


async def test_history_newest_first(redis_db: aioredis.Redis) -> None:
    store = CustomerStore(redis_db)
    for n in range(5):
        await store.add_contact("C1", Contact(at=1000.0 + n, call_id=f"call-{n}", path=["main_menu", f"node{n}"],
                                              intent="loans", queue="loans", wait_s=float(n), outcome="answered"))
    history = await store.history("C1", count=3)
    assert [c.call_id for c in history] == ["call-4", "call-3", "call-2"]
    assert history[0].path == ["main_menu", "node4"] and history[0].wait_s == 4.0
    assert len(await store.history("C1")) == 5
    assert await store.history("nobody") == []


def contacts(*pairs: tuple[str, float | None]) -> list[Contact]:
    return [Contact(outcome=outcome, wait_s=wait) for outcome, wait in pairs]


def test_learned_patience_rules() -> None:
    # Two abandons or more: the median abandon wait (answered calls then do not matter).
    assert learn_patience(contacts(("abandoned", 40), ("abandoned", 20), ("abandoned", 90),
                                   ("answered", 300))) == 40
    assert learn_patience(contacts(("abandoned", 30), ("abandoned", 45))) == 38  # median 37.5, rounded
    # One abandon is not a pattern: three answered calls give the 90th percentile answered wait x 1.2.
    answered = contacts(("abandoned", 5), *[("answered", float(w)) for w in (10, 50, 20, 30, 40, 60, 70, 80, 90, 100)])
    assert learn_patience(answered) == 108  # p90 of 10..100 (nearest rank) is 90
    assert learn_patience(contacts(("answered", 10), ("answered", 20), ("answered", 25))) == 30
    # Too little: fewer than 3 answered, waits unknown, other outcomes.
    assert learn_patience(contacts(("answered", 10), ("answered", 20), ("abandoned", 5))) is None
    assert learn_patience(contacts(("abandoned", None), ("abandoned", None), ("answered", None))) is None
    assert learn_patience(contacts(("self_service", 0), ("callback", 30), ("error", 1))) is None
    assert learn_patience([]) is None


async def test_patience_sources(redis_db: aioredis.Redis) -> None:
    store = CustomerStore(redis_db)
    assert await store.patience_for(customer("C1", patience_s=30), 60) == (30, "customer")
    assert await store.patience_for(customer("C1"), 60) == (60, "default")
    assert await store.patience_for(None, 45) == (45, "default")
    for wait in (25.0, 35.0):
        await store.add_contact("C1", Contact(outcome="abandoned", wait_s=wait))
    assert await store.learned_patience("C1") == 30
    assert await store.patience_for(customer("C1"), 60) == (30, "learned")
    # The customer's own setting wins over what was learned.
    assert await store.patience_for(customer("C1", patience_s=0), 60) == (0, "customer")


# --- the CRM


class FakeCrm:
    """A real HTTP/1.1 server on loopback: answers by the number asked for, counts requests per number."""

    FAST, SLOW, MISSING, BROKEN, GARBLED = "01000000001", "01000000002", "01000000404", "01000000500", "01000000003"

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/customers"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readuntil(b"\r\n\r\n")).decode()
            target = request.split(" ", 2)[1]
            phone = parse_qs(urlsplit(target).query).get("phone", [""])[0]
            self.hits[phone] += 1
            status, body = 200, json.dumps({"id": f"CRM-{phone[-4:]}", "name": "From the CRM", "phones": [phone],
                                            "tier": "gold"}).encode()
            if phone == self.SLOW:
                # Trickle headers for 1.5 s: each read is quick, so only a timeout on the whole request stops it.
                writer.write(b"HTTP/1.1 200 OK\r\n")
                for n in range(15):
                    await asyncio.sleep(0.1)
                    writer.write(f"X-Wait: {n}\r\n".encode())
                    await writer.drain()
                writer.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                return
            if phone == self.MISSING:
                status, body = 404, b'{"detail": "not found"}'
            elif phone == self.BROKEN:
                status, body = 500, b"oops"
            elif phone == self.GARBLED:
                body = b'{"name": "no id"}'
            reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (the slow case)
        finally:
            writer.close()


@pytest.fixture
async def crm_server() -> AsyncIterator[FakeCrm]:
    fake = FakeCrm()
    fake.server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    yield fake
    fake.server.close()
    await fake.server.wait_closed()


@pytest.fixture
async def crm(crm_server: FakeCrm) -> AsyncIterator[CrmLookup]:
    lookup = CrmLookup(crm_server.url, timeout_s=0.3, cache_ttl_s=60)
    yield lookup
    await lookup.aclose()


async def test_crm_answers_when_redis_does_not_know_and_is_cached(redis_db: aioredis.Redis, crm_server: FakeCrm,
                                                                 crm: CrmLookup) -> None:
    store = CustomerStore(redis_db, crm=crm)
    found = await store.by_phone("010-0000-0001")
    assert found is not None and found.id == "CRM-0001" and found.tier == "gold"
    again = await store.by_phone(FakeCrm.FAST)
    assert again == found
    assert crm_server.hits[FakeCrm.FAST] == 1  # the second lookup came from the cache


async def test_redis_is_asked_before_the_crm(redis_db: aioredis.Redis, crm_server: FakeCrm, crm: CrmLookup) -> None:
    store = CustomerStore(redis_db, crm=crm)
    await store.put(customer("LOCAL", (FakeCrm.FAST,)))
    assert (await store.by_phone(FakeCrm.FAST)).id == "LOCAL"  # type: ignore[union-attr]
    assert crm_server.hits[FakeCrm.FAST] == 0


async def test_a_slow_crm_does_not_hold_the_call(redis_db: aioredis.Redis, crm_server: FakeCrm,
                                                 crm: CrmLookup) -> None:
    store = CustomerStore(redis_db, crm=crm)
    started = time.monotonic()
    assert await store.by_phone(FakeCrm.SLOW) is None
    # Loose bound: the server takes 1.5 s; the lookup gives up after 0.3 s (plus scheduling on a busy machine).
    assert time.monotonic() - started < 1.2
    assert crm_server.hits[FakeCrm.SLOW] == 1


async def test_unknown_numbers_are_cached_failures_are_not(crm_server: FakeCrm, crm: CrmLookup,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    assert await crm.lookup(FakeCrm.MISSING) is None
    assert await crm.lookup(FakeCrm.MISSING) is None
    assert crm_server.hits[FakeCrm.MISSING] == 1
    with caplog.at_level(logging.WARNING, logger="ivr.routing.crm"):
        assert await crm.lookup(FakeCrm.BROKEN) is None
        assert await crm.lookup(FakeCrm.BROKEN) is None
        assert await crm.lookup(FakeCrm.GARBLED) is None
    # A failing CRM is asked again on the next call (it may have recovered) ...
    assert crm_server.hits[FakeCrm.BROKEN] == 2 and crm_server.hits[FakeCrm.GARBLED] == 1
    # ... but logged about once a minute, not once per call.
    warnings = [r.getMessage() for r in caplog.records if r.name == "ivr.routing.crm"]
    assert len(warnings) == 1 and "500" in warnings[0]
    assert crm.requests == 4


async def test_an_unreachable_crm_means_an_unknown_caller(redis_db: aioredis.Redis) -> None:
    crm = CrmLookup("http://127.0.0.1:1/customers", timeout_s=0.3, cache_ttl_s=60)
    try:
        assert await CustomerStore(redis_db, crm=crm).by_phone(FakeCrm.FAST) is None
    finally:
        await crm.aclose()
