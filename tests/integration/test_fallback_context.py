"""``kill -9`` of the controller with calls in the IVR that have told it what they want, through the real Asterisk.

Callers who gave an intent must land in the Asterisk queue their intent named, with its priority (not in
``general``); a caller who said nothing lands in ``general``; a caller holding for the ACD keeps their place with
the next controller; the supervisor has a controller serving again within 10 s; a new call is answered by the IVR;
and when Asterisk's queue rings an agent, the agent's pop shows what the IVR had learned, not an empty card.

To keep callers in the IVR after they answered, the test publishes a version of the hotline with a long notice
between the menu and the route for cards and loans (and priorities on loans and payments); the original flow is
live again at the end, and the controller is up (supervised) with this checkout's code, as the next test expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.ops import stack
from ivr.records.store import CONTROLLER_KEY, call_key
from ivr.sim.agent_phone import AgentPhone
from ivr.sim.simulator import Simulator
from ivr.telephony.ami import AmiClient, AmiError
from ivr.voice.versions import FlowStore

pytestmark = pytest.mark.integration

AUTHOR = "test_fallback_context"
NOTICE = "고객님의 요청을 확인하고 있습니다. 잠시만 기다려 주십시오. " * 4
"""Said between the menu and the route: the caller is still in the IVR, their queue already known (~15 s)."""
NOTICE_EN = "We are looking into your request. Please hold on. " * 4
RECOVERY_TARGET_S = 10.0
CARDS_VIP = "01012345678"  # C1001, a VIP in the demo customers: the pop shows their card


def with_notices(text: str) -> str:
    """The hotline with a notice before cards and loans, and priorities 5 on loans and 3 on payments."""
    edits = [
        ("      lost_card: to_cards\n", "      lost_card: cards_notice\n"),
        ("      loan: to_loans\n", "      loan: loans_notice\n"),
        ("  to_loans: {type: route, queue: loans, skills: [loans]}\n",
         "  to_loans: {type: route, queue: loans, skills: [loans], priority: 5}\n"),
        ("  to_payments: {type: route, queue: payments, skills: [payments]}\n",
         "  to_payments: {type: route, queue: payments, skills: [payments], priority: 3}\n"
         f"  cards_notice: {{type: say, prompt: {{ko: \"{NOTICE}\", en: \"{NOTICE_EN}\"}}, next: to_cards}}\n"
         f"  loans_notice: {{type: say, prompt: {{ko: \"{NOTICE}\", en: \"{NOTICE_EN}\"}}, next: to_loans}}\n"),
    ]
    for old, new in edits:
        assert text.count(old) == 1, f"the hotline changed shape ({old.strip()!r}): update this test's edit"
        text = text.replace(old, new)
    return text


async def controller_runs(redis: aioredis.Redis, version: int, timeout: float = 30.0) -> bool:
    for _ in range(int(timeout / 0.2)):
        if await redis.hget(CONTROLLER_KEY, "flow_version") == str(version):
            return True
        await asyncio.sleep(0.2)
    return False


def supervisor_state(settings: Settings) -> dict[str, Any]:
    try:
        return dict(json.loads(stack.supervisor_state_file(settings).read_text()))
    except (OSError, ValueError):
        return {}


async def until(what: str, probe: Any, timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(step)


class Caller:
    """One simulated caller kept on the line, and the hotline channel Asterisk gave it."""

    def __init__(self, settings: Settings, number: str, keys: list[str], intent: str | None,
                 expected: tuple[str, str]) -> None:
        self.simulator = Simulator(settings)
        self.keys, self.intent = keys, intent
        self.expected_queue, self.expected_priority = expected
        self.task = asyncio.create_task(self.simulator.run(number, [], keys, until="queued", timeout=100,
                                                           keep=True))

    @property
    def call_id(self) -> str:
        return self.simulator.last_call.call_id if self.simulator.last_call else ""


async def test_a_killed_controller_loses_no_caller_and_no_context(live_stack: Settings) -> None:
    settings = live_stack
    redis = aioredis.from_url(settings.redis_url, decode_responses=True)
    store = FlowStore(redis, settings=settings)
    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                    settings.ami_secret.get_secret_value())
    events: list[Any] = []
    ami.on("*", events.append)
    ami.start()
    original = await store.live("hotline")
    assert original is not None
    callers: list[Caller] = []
    holding: Caller | None = None
    phone: AgentPhone | None = None
    try:
        assert await ami.wait_ready(10), ami.last_error
        # The supervisor's spare is loaded: a kill now is what a kill is in production (after `ivr up` settles).
        await until("the standby controller loaded", lambda: _true(supervisor_state(settings).get("standby_loaded")),
                    120, step=0.5)
        published = await store.publish("hotline", with_notices(original.text), AUTHOR, "notices before routes",
                                         base=original.number)
        assert await controller_runs(redis, published.number)

        callers = [
            Caller(settings, CARDS_VIP, ["2"], "lost_card", ("cards", "10")),
            Caller(settings, "01099990201", ["2"], "lost_card", ("cards", "10")),
            Caller(settings, "01099990202", ["3"], "loan", ("loans", "5")),
            Caller(settings, "01099990203", [], None, ("general", "0")),  # says nothing: nothing learned
        ]
        holding = Caller(settings, "01099990204", ["4"], "transfer", ("payments", "3"))  # holding for the ACD
        placed = [*callers, holding]
        await until("the callers placed", lambda: _true(all(c.call_id for c in placed)), 15)

        async def learned(caller: Caller) -> bool:
            channel = _hotline_channel(events, caller.call_id)
            if not channel:
                return False
            with contextlib.suppress(AmiError):
                reply = await ami.action({"Action": "Getvar", "Channel": channel, "Variable": "IVR_LEARNED_QUEUE"})
                return _first(reply).get("Value") == caller.expected_queue
            return False

        for caller in callers[:3]:  # the queue is on the channel as soon as the key is in
            await until(f"IVR_LEARNED_QUEUE on {caller.call_id}", lambda c=caller: learned(c), 30)
        assert await until("the payments caller holding", lambda: _true(_held(events, holding.call_id)), 30)
        for caller in callers:
            record = json.loads(await redis.get(call_key(caller.call_id)) or "{}")
            assert record.get("outcome") is None, f"{caller.call_id} left the IVR before the kill: {record}"

        killed = stack.running_pid(settings, "controller")
        assert killed is not None
        killed_at = time.monotonic()
        os.kill(killed, signal.SIGKILL)

        # Every caller in the IVR lands in the queue their intent named, with its priority; nobody is lost.
        for caller in callers:
            joined = await until(f"{caller.call_id} in an Asterisk queue",
                                 lambda c=caller: _value(_joined(events, c.call_id)), 10)
            assert joined == f"q_{caller.expected_queue}", (caller.call_id, joined)
        entries = await _queue_entries(ami, {f"q_{c.expected_queue}" for c in callers})
        for caller in callers:
            assert entries.get(caller.call_id) == caller.expected_priority, (caller.call_id, entries)

        # The supervisor has a controller serving again, and it took over the caller holding for the ACD.
        def serving() -> bool:
            state = supervisor_state(settings)
            return bool(state.get("controller_ready") and state.get("controller_pid") not in (None, killed)
                        and stack.port_open(settings.agi_host, settings.agi_port))

        await until("a controller serving again", lambda: _true(serving()), 30, step=0.05)
        recovered_s = time.monotonic() - killed_at
        print(f"\ncontroller serving again {recovered_s:.2f} s after kill -9 "
              f"(supervisor: {supervisor_state(settings).get('last_recovery_s')} s from the exit it saw)")
        assert recovered_s < RECOVERY_TARGET_S, f"back after {recovered_s:.1f} s"
        state = supervisor_state(settings)
        assert state["last_exit"] == "killed by signal 9 (SIGKILL)"

        async def adopted() -> dict[str, Any] | None:
            snapshot = json.loads(await redis.get("ivr:acd") or "{}")
            return dict(snapshot.get("waiting", {}).get(holding.call_id) or {}) or None

        waiting = await until("the holding caller adopted", adopted, 15)
        assert (waiting["queue"], waiting["priority"]) == ("payments", 3)

        # The IVR answers a new call.
        fresh = await Simulator(settings).run("01099990205", [], ["4"], until="queued", timeout=60)
        assert (fresh["intent"], fresh["queue"], fresh["outcome"]) == ("transfer", "payments", "queued"), fresh
        assert fresh["turns"] and fresh["turns"][0]["dtmf"] == "4"

        # What the callers had told the IVR is in their records...
        for caller in callers:
            record = json.loads(await redis.get(call_key(caller.call_id)) or "{}")
            assert (record.get("queue"), record.get("outcome"), record.get("intent")) == (
                caller.expected_queue, "queued", caller.intent), record
            why = "nothing learned" if caller.expected_queue == "general" else "the queue the IVR learned"
            assert (f"the controller stopped mid-call: the dialplan queued the caller in {caller.expected_queue}"
                    f" ({why})") in record["notes"], record["notes"]
        # ...and on the pop when Asterisk's queue rings an agent (1001 serves cards: linear, first in line).
        with contextlib.suppress(AmiError):  # a ring-no-answer of an earlier test may have paused the member
            await ami.action({"Action": "QueuePause", "Interface": "PJSIP/1001", "Paused": "false"})
        phone = await asyncio.to_thread(AgentPhone(settings, "1001", answer="never").start)

        told = {c.call_id: c for c in callers[:3]}

        async def popped() -> dict[str, Any] | None:
            for call_id in told:  # 1001 serves cards and loans: whichever queue rings it first
                raw = await redis.get(f"ivr:pop:{call_id}")
                if raw and json.loads(raw).get("agent") == "A1001":
                    return dict(json.loads(raw)["pop"])
            return None

        pop = await until("the agent's pop", popped, 20)
        rung = told[pop["call_id"]]
        assert pop["via"] == "asterisk_queue" and pop["ivr"]["learned_from"] == "redis"
        assert (pop["ivr"]["intent"], pop["ivr"]["queue"], str(pop["ivr"]["priority"])) == (
            rung.intent, rung.expected_queue, rung.expected_priority)
        assert pop["ivr"]["turns"] and pop["ivr"]["turns"][0]["keys"] == rung.keys[0]
        assert pop["ivr"]["summary"] == f"key {rung.keys[0]}: {rung.intent}"
        if pop["call_id"] == callers[0].call_id:
            assert pop["customer"]["id"] == "C1001"
    finally:
        for caller in [*callers, *([holding] if holding is not None else [])]:
            sim = caller.simulator.last_call
            if sim is not None and sim.caller_channel:
                with contextlib.suppress(Exception):
                    await ami.hangup(sim.caller_channel)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(caller.task, 10)
        if phone is not None:
            await asyncio.to_thread(phone.stop)
        live = await store.live("hotline")
        if live is not None and live.text != original.text:
            live = await store.rollback("hotline", original.number, AUTHOR, "restore after test_fallback_context")
        if live is not None:
            await controller_runs(redis, live.number)
        ami.close()
        await redis.aclose()


async def _true(value: Any) -> bool:
    return bool(value)


async def _value(value: Any) -> Any:
    return value


def _first(reply: Any) -> Any:
    return reply[0] if isinstance(reply, list) else reply


def _hotline_channel(events: list[Any], call_id: str) -> str:
    return next((e.get("Channel", "") for e in events
                 if e.get("Event") == "Newchannel" and e.get("Uniqueid") == call_id), "")


def _joined(events: list[Any], call_id: str) -> str | None:
    return next((e.get("Queue") for e in events
                 if e.get("Event") == "QueueCallerJoin" and e.get("Uniqueid") == call_id), None)


def _held(events: list[Any], call_id: str) -> bool:
    return any(e.get("Event") == "UserEvent" and e.get("UserEvent") == "IvrHold" and e.get("Uniqueid") == call_id
               for e in events)


async def _queue_entries(ami: AmiClient, queues: set[str]) -> dict[str, str]:
    """Call id -> its priority in Asterisk's queue (QueueStatus' QueueEntry events)."""
    entries: dict[str, str] = {}
    for queue in queues:
        for event in await ami.action({"Action": "QueueStatus", "Queue": queue}):  # type: ignore[union-attr]
            if event.get("Event") == "QueueEntry":
                entries[event.get("Uniqueid", "")] = event.get("Priority", "")
    return entries
