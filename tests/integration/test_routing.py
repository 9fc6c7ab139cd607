"""Routing to the right person through the real Asterisk, with pyVoIP phones registered as agents.

The demo directory (dialplans/demo_agents.json): F2001 is a field loan manager on mobile
extension 2001 and owns VIP customer C1001's open loans case; A1002 is a desk agent with loans
6 who speaks the gyeongsang dialect; F2002 is a field loan manager with loans 8. Key 3 in the
main menu is a loan. The controller under test runs with a 6 s ring timeout and 2 s wrap-up
(tests/integration/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.routing.agents import AgentDirectory, Presence
from ivr.sim.agent_phone import AgentPhone
from ivr.sim.simulator import Simulator
from ivr.telephony.ami import AmiClient
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

VIP_CALLER = "01012345678"  # C1001: VIP, gyeongsang, loans case owned by F2001
UNKNOWN_CALLER = "01077778888"
LOAN_KEY = "3"


@pytest.fixture
async def directory(live_stack: Settings) -> AsyncIterator[AgentDirectory]:
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    directory = AgentDirectory(client)
    yield directory
    for agent in await directory.all():  # nobody stays ready for the next test's calls
        await directory.set_presence(agent.id, Presence.OFFLINE)
    await client.aclose()


@pytest.fixture
def phones(live_stack: Settings) -> Iterator[dict[str, AgentPhone]]:
    started: dict[str, AgentPhone] = {}

    def _start(extension: str, **kwargs: Any) -> AgentPhone:
        phone = AgentPhone(live_stack, extension, **kwargs).start()
        started[extension] = phone
        return phone

    started_fn: Any = _start
    yield started_fn  # type: ignore[misc]
    for phone in started.values():
        phone.stop()


async def ready(directory: AgentDirectory, live_stack: Settings, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        await directory.set_presence(agent_id, Presence.READY)
    # The ACD must see the phones registered (DeviceStateChange) and the presence before the call.
    await wait_for(lambda: all(_acd_free(live_stack, a) for a in agent_ids), timeout=10)


def _acd_free(settings: Settings, agent_id: str) -> bool:
    """The controller's ACD (its snapshot, rewritten every second) shows the agent ready with a phone that can ring."""
    import redis as sync_redis

    client = sync_redis.from_url(settings.redis_url, decode_responses=True)
    try:
        raw = client.get("ivr:acd")
        agent = json.loads(raw)["agents"].get(agent_id, {}) if raw else {}
        return agent.get("shown") == "ready" and agent.get("device_state") == "NOT_INUSE"
    finally:
        client.close()


async def loan_call(live_stack: Settings, caller: str, **kwargs: Any) -> dict[str, Any]:
    return await Simulator(live_stack).run(caller, [], [LOAN_KEY], until="answered", timeout=60, **kwargs)


async def test_vip_caller_reaches_the_case_owners_mobile_extension(live_stack, directory, phones) -> None:  # type: ignore[no-untyped-def]
    mobile = phones("2001", answer="auto", talk_s=3)
    phones("1002", answer="auto", talk_s=3)
    await asyncio.sleep(1.5)  # registration -> DeviceStateChange NOT_INUSE
    await ready(directory, live_stack, "F2001", "A1002")
    record = await loan_call(live_stack, VIP_CALLER)
    assert (record["outcome"], record["agent"]) == ("answered", "F2001"), record["notes"]
    assert record["routing"][0]["rule"] == "case owner"
    ring = mobile.wait_for_ring(5)
    assert ring is not None and ring.caller_id == VIP_CALLER


async def test_owner_not_ready_goes_to_the_desk_agent_with_the_callers_dialect(  # type: ignore[no-untyped-def]
        live_stack, directory, phones) -> None:
    phones("2001", answer="auto", talk_s=3)
    desk = phones("1002", answer="auto", talk_s=3)
    phones("1004", answer="auto", talk_s=3)
    await asyncio.sleep(1.5)
    await ready(directory, live_stack, "A1002", "A1004")
    await directory.set_presence("F2001", Presence.NOT_READY, "visiting a client")
    record = await loan_call(live_stack, VIP_CALLER)
    assert (record["outcome"], record["agent"]) == ("answered", "A1002"), record["notes"]
    why = record["routing"][0]["why"]
    assert any("case owner F2001 skipped: not_ready: visiting a client" in w for w in why), why
    assert "dialect gyeongsang matched" in why[-1]
    assert desk.wait_for_ring(5) is not None


async def test_ring_no_answer_goes_to_the_next_agent_and_the_first_goes_not_ready(  # type: ignore[no-untyped-def]
        live_stack, directory, phones) -> None:
    silent = phones("2002", answer="never")
    phones("1002", answer="auto", talk_s=3)
    await asyncio.sleep(1.5)
    await ready(directory, live_stack, "F2002", "A1002")
    record = await loan_call(live_stack, UNKNOWN_CALLER)
    assert (record["outcome"], record["agent"]) == ("answered", "A1002"), record["notes"]
    assert [(r["agent"], r["result"]) for r in record["routing"]] == [
        ("F2002", "not answered: NOANSWER"), ("A1002", "answered")]
    assert silent.rings and silent.rings[0].answered_at is None
    presence = await directory.presence("F2002")
    assert (presence["status"], presence["reason"]) == ("not_ready", "rona")


async def test_callback_calls_the_agent_first_then_the_customer(live_stack, directory, phones) -> None:  # type: ignore[no-untyped-def]
    customer = phones(live_stack.sim_extension, answer="auto", talk_s=2)  # the caller's own phone, called back
    agent = phones("1002", answer="auto", talk_s=4)
    await asyncio.sleep(1.5)
    simulator = Simulator(live_stack)
    record = await simulator.run(live_stack.sim_extension, [], [LOAN_KEY], until="queued", timeout=60, keep=True)
    assert record["outcome"] == "queued" and simulator.last_call is not None
    ami = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                    live_stack.ami_secret.get_secret_value())
    ami.start()
    try:
        assert await ami.wait_ready(10)
        await ami.setvar(simulator.last_call.caller_channel, "SIM_DTMF", "1")  # 1 while holding: call me back
        client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
        try:
            async def outcome() -> str:
                raw = await client.get(f"ivr:call:{record['call_id']}")
                return json.loads(raw)["outcome"] if raw else ""

            for _ in range(100):
                if await outcome() == "callback":
                    break
                await asyncio.sleep(0.1)
            assert await outcome() == "callback"
            assert agent.rings == []  # nobody ready yet: the callback waits in line
            await ready(directory, live_stack, "A1002")
            agent_ring = await asyncio.to_thread(agent.wait_for_ring, 15)
            customer_ring = await asyncio.to_thread(customer.wait_for_ring, 20)
            assert agent_ring is not None and customer_ring is not None
            assert agent_ring.answered_at is not None and agent_ring.answered_at <= customer_ring.at
            for _ in range(100):
                if await outcome() == "answered":
                    break
                await asyncio.sleep(0.1)
            final = json.loads(await client.get(f"ivr:call:{record['call_id']}"))
            assert (final["outcome"], final["agent"]) == ("answered", "A1002"), final["notes"]
        finally:
            await client.aclose()
    finally:
        with contextlib.suppress(Exception):
            await ami.hangup(simulator.last_call.caller_channel)
        ami.close()


async def test_controller_restart_drops_neither_the_answered_call_nor_the_holding_one(  # type: ignore[no-untyped-def]
        live_stack, directory, phones) -> None:
    from ivr.ops import stack

    agent = phones("1002", answer="auto", talk_s=12)
    await asyncio.sleep(1.5)
    await ready(directory, live_stack, "A1002")
    answered = await loan_call(live_stack, UNKNOWN_CALLER, keep=True)
    assert (answered["outcome"], answered["agent"]) == ("answered", "A1002")
    holding = await Simulator(live_stack).run("01055556666", [], [LOAN_KEY], until="queued", timeout=60, keep=True)
    assert holding["outcome"] == "queued"

    await asyncio.to_thread(stack.controller_down, live_stack)
    await asyncio.to_thread(stack.controller_up, live_stack)
    # The answered call is in Asterisk's bridge: it goes on until the agent hangs up after talking.
    ring = agent.rings[0]
    ended = await asyncio.to_thread(agent.wait_for_end, 20)
    assert ended is ring and ring.ended_by.value == "agent", ring
    # The new controller adopted the caller still holding; the agent, free again, gets them.
    async def rung() -> bool:
        return any(r.caller_id == "01055556666" for r in agent.rings)

    for _ in range(250):
        if await rung():
            break
        await asyncio.sleep(0.1)
    assert await rung(), [r.caller_id for r in agent.rings]
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    try:
        assert await wait_for_async(lambda: _outcome(client, holding["call_id"]), "answered", timeout=10)
        record = json.loads(await client.get(f"ivr:call:{holding['call_id']}"))
        assert "adopted by a restarted controller while holding" in record["notes"]
    finally:
        await client.aclose()


async def _outcome(client: aioredis.Redis, call_id: str) -> str:
    raw = await client.get(f"ivr:call:{call_id}")
    return json.loads(raw).get("outcome") or "" if raw else ""


async def wait_for_async(probe, expected: str, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout * 10)):
        if await probe() == expected:
            return True
        await asyncio.sleep(0.1)
    return await probe() == expected
