"""Faults under load: the real stack with calls in flight, one fault at a time, and what became of every call.

``make chaos`` (``python -m bench.chaos``; ``--only NAME``, ``--calls N``) runs each scenario on the live stack
(``ivr up``; the controller is restarted first so it runs this checkout): it places calls through the simulator's
Local channels (keys only: no speech to misrecognize) and brings each to its place:

- ``menu``: a known customer at the main menu, who has said nothing yet (the IVR knows who they are);
- ``offer``: a customer who pressed 6 (a complaint) and hears the callback offer: the IVR has learned their intent,
  and so their queue (``complaints``), which is on the channel (``IVR_LEARNED_QUEUE``) for the dialplan's fallback;
- ``holding``: a caller holding for a person in the ACD's waiting room (loans, payments), nobody free;
- ``agent``: a caller talking with an agent (a pyVoIP phone registered as the agent's extension, answering).

Then the fault, then what each call came to. A call is **lost** when Asterisk ended it (nobody hung up on purpose:
the simulated callers stay on the line), or when it is still in the IVR after the fault has passed and the harness
has answered its question (trapped). It **kept its context** when it ends where what the IVR knew sends it: the menu
caller in ``general``, the offer caller in ``complaints``, the holding caller in the queue they held for, the
agent's caller still with the agent; and a caller the dialplan's fallback queued still carries their customer id on
the channel (what the agent's screen pop reads). After the fault a probe call must be served end to end.

The faults, and what ``recover_s`` runs from and to:

- ``controller_kill``: ``kill -9`` of the serving controller; from the kill until a new controller process serves
  FastAGI with AMI logged in.
- ``asterisk_restart``: ``core stop now``, then start; from the stop until the controller is logged in to the new
  Asterisk (its boot included).
- ``redis_restart``: Redis shut down cleanly for 5 s; from Redis back until the controller's heartbeat is written.
- ``redis_kill``: ``kill -9`` of Redis just after callbacks (holding callers press 1) and dispositions (the agents,
  through the pages' API) were written, 3 s down, then the AOF recovery; as above. None of them may be missing.
- ``port_busy``: ``kill -9`` of the controller, and another process takes the FastAGI port for 8 s before the next
  controller can (it accepts and closes: calls placed meanwhile go to the dialplan's fallback); from the port free
  until a controller serves it. The controller's log must name who held the port.
- ``disk_full``: the recordings folder on a full tmpfs (bind-mounted into Asterisk's root too) for 12 s, with new
  calls meanwhile; from the space back until a new call is recorded again. The log must say so, clearly.
- ``ami_drop``: AMI (port 5038) dropped both ways on loopback by iptables for 10 s; from the rule removed until the
  controller's AMI is logged in again.

An Asterisk restart ends every channel: its calls are lost by nature (counted as lost, not hidden); what is measured
there is recovery, and that nothing stale is left (no dropped caller still waiting in the ACD, every dropped call's
record ended). Every fault is undone in a ``finally`` (rules removed, mounts unmounted, the port released, whatever
was stopped started again), and the calls, agents' presence and the chaos customers are cleaned up after each
scenario. Prints a table; writes ``bench/out/chaos.json`` (a list of rows: ``scenario``, ``calls_in_flight``,
``calls_lost``, ``kept_context``, ``recover_s``, and the details) and ``bench/out/chaos.png`` (recovery per scenario).
Runs under the stack's lock (``/tmp/ivr-integration.lock``, taken by ``make chaos``). Needs root (iptables, mounts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from panoramisk.message import Message
from redis.exceptions import RedisError

from bench.common import OUT
from ivr.config import ASTERISK_PROJECT_DIR, PROJECT_DIR, Settings, load_settings
from ivr.ops import stack
from ivr.records.store import CONTROLLER_KEY, EVENTS_CHANNEL, call_key, reconnecting
from ivr.telephony.ami import AmiClient, AmiError
from ivr.telephony.tcp import port_holder

#: Targets (issue #14): no call lost, no callback or disposition lost after a Redis kill, back within 10 s.
RECOVER_TARGET_S = 10.0
SCENARIOS = ("controller_kill", "asterisk_restart", "redis_restart", "redis_kill", "port_busy", "disk_full",
             "ami_drop")


@dataclass(frozen=True, slots=True)
class Durations:
    """How long each fault lasts where it is not instantaneous."""

    redis_down_s: float = 5.0
    redis_killed_s: float = 3.0
    port_busy_s: float = 8.0
    disk_full_s: float = 12.0
    """Longer than the controller's disk check (every 10 s), so its alert is part of what is checked."""
    ami_drop_s: float = 10.0
    before_fault_s: float = 0.0
    """From the last call in its place to the fault. The benchmark strikes at once: the last callers have just been
    greeted, so what the IVR learned of them must already be on their channels. The suite leaves a second: its
    checks are about the fault, not that race."""


#: The suite's fast versions (tests/integration/test_faults.py): shorter outages, the same checks.
FAST = Durations(redis_down_s=2.0, redis_killed_s=1.0, port_busy_s=4.0, disk_full_s=11.0, before_fault_s=1.0)
#: The chaos customers' numbers (0109998xxxx) and ids; their data is removed after each scenario.
CUSTOMER_PREFIX, PHONE_PREFIX = "CHAOS-", "0109998"
#: Agents who take the ``agent`` calls (desk phones 1002 and 1004 speak loans and payments).
AGENTS = (("A1002", "1002"), ("A1004", "1004"))
IPTABLES_TAG = "ivr-chaos"
WHERE_WITH_A_PERSON = ("hold", "queue", "ringing", "agent")


@dataclass(frozen=True, slots=True)
class Mix:
    """How many calls of each kind are in flight when the fault strikes."""

    menu: int
    """Known customers at the main menu, silent so far."""
    offer: int
    """Complaint callers hearing the callback offer (intent learned, queue ``complaints``)."""
    holding: int
    """Callers holding for a person (loans, payments; nobody free)."""
    agent: int
    """Callers talking with an agent (at most one per agent in ``AGENTS``)."""

    @property
    def total(self) -> int:
        return self.menu + self.offer + self.holding + self.agent

    @classmethod
    def of(cls, calls: int, agents: bool = True) -> Mix:
        """``calls`` in flight, spread as a busy hour has them: a quarter each in the menu and at the offer,
        the rest holding, and up to two with an agent."""
        agent = min(len(AGENTS), max(0, calls // 5)) if agents else 0
        menu = max(1, calls // 4)
        offer = max(1, calls // 4) if calls >= 3 else 0
        return cls(menu=menu, offer=offer, holding=max(0, calls - menu - offer - agent), agent=agent)


BENCH_MIX = Mix(menu=3, offer=3, holding=4, agent=2)


@dataclass
class ChaosCall:
    """One simulated call and what the harness saw of it."""

    kind: str
    """menu, offer, holding, agent, during (placed during the fault), probe."""
    caller: str
    customer: str | None
    """The chaos customer id the caller's number belongs to."""
    expect: str
    """Where the call must end: a queue name, or "agent"."""
    key: str | None = None
    """The key pressed at the main menu (None: silent)."""
    call_id: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:12]}")
    caller_channel: str = ""
    channel: str = ""
    placed_at: float = 0.0
    nodes: list[str] = field(default_factory=list)
    """Flow nodes the controller listened at (its call.listening events)."""
    held_in: str | None = None
    queued_in: str | None = None
    answered_by: str | None = None
    """The agent's channel once answered."""
    callback_at: float | None = None
    """When the caller pressed 1 for a callback (the call then ends by design)."""
    released: bool = False
    """The harness hung it up (not a loss)."""
    hung_up_at: float | None = None
    where: str = ""
    """At judgement: ivr, hold:<queue>, queue:<queue>, ringing, agent, gone, or other:<context>."""
    fallback: bool = False
    """The dialplan's fallback queued it (IVR_FALLBACK=1 on the channel)."""
    learned_customer: str = ""
    """IVR_CUSTOMER on the channel at judgement (what a fallback pop shows)."""
    lost: bool = False
    why: str = ""
    kept: bool = False

    @property
    def caller_uid(self) -> str:
        return "caller-" + self.call_id


@dataclass
class Fault:
    """What a fault's script measured."""

    recover_s: float | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    lost_by_nature: bool = False
    """Asterisk restarted: its channels ended, whatever anyone does."""


@dataclass
class Row:
    """One line of the table and of bench/out/chaos.json."""

    scenario: str
    calls_in_flight: int
    calls_lost: int
    kept_context: bool
    recover_s: float | None
    context_kept: int = 0
    """Calls (not lost) that ended where what the IVR knew sends them."""
    context_calls: int = 0
    calls_during_fault: int = 0
    probe_ok: bool = False
    """A call placed after recovery was served end to end (the controller routed it; it reached a person)."""
    target_met: bool = False
    lost: list[str] = field(default_factory=list)
    """Each lost call: kind, and why."""
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    measured_at: str = ""


class Harness:
    """The stack's clients for one scenario: AMI, Redis (the controller's events), agents' phones, the calls."""

    def __init__(self, settings: Settings, durations: Durations | None = None) -> None:
        self.settings = settings
        self.durations = durations or Durations()
        self.ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                             settings.ami_secret.get_secret_value())
        self.ami.on("*", self._on_ami)
        # Reconnecting as the controller's store does: after a Redis restart every pooled connection is dead.
        self.redis = aioredis.from_url(settings.redis_url, decode_responses=True, socket_timeout=2,
                                       socket_connect_timeout=1, retry=reconnecting())
        self.calls: dict[str, ChaosCall] = {}
        self.by_caller_uid: dict[str, ChaosCall] = {}
        self._events: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.phones: list[Any] = []
        self.numbers = 0
        self.customers: list[str] = []

    # --- lifecycle

    async def __aenter__(self) -> Harness:
        self.ami.start()
        if not await self.ami.wait_ready(15):
            raise RuntimeError(f"no AMI login at {self.settings.ami_host}:{self.settings.ami_port}: is `ivr up` done?"
                               f" ({self.ami.last_error})")
        self._events = asyncio.create_task(self._follow_events(), name="chaos-events")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.cleanup()
        if self._events is not None:
            self._events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events
        self.ami.close()
        await self.redis.aclose()

    async def _follow_events(self) -> None:
        """The controller's call events (Redis pub/sub), through Redis restarts."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(EVENTS_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    with contextlib.suppress(ValueError, TypeError):
                        event = json.loads(message["data"])
                        call = self.calls.get(str(event.get("call_id", "")))
                        if call is not None and event.get("type") == "call.listening":
                            call.nodes.append(str(event.get("node", "")))
                            self._changed.set()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _on_ami(self, event: Message) -> None:
        name, uid = event.get("Event", ""), event.get("Uniqueid", "")
        call = self.calls.get(uid)
        by_caller = self.by_caller_uid.get(uid)
        if by_caller is not None and name == "Newchannel":
            by_caller.caller_channel = event.get("Channel", "")
        if call is None:
            return
        if name == "Newchannel":
            call.channel = event.get("Channel", "")
        elif name == "UserEvent" and event.get("UserEvent") == "IvrHold":
            call.held_in = event.get("Queue", "")
        elif name == "UserEvent" and event.get("UserEvent") == "IvrCallback":
            call.callback_at = time.time()
        elif name == "QueueCallerJoin":
            call.queued_in = str(event.get("Queue", "")).removeprefix("q_")
        elif name == "DialEnd" and event.get("DialStatus") == "ANSWER" and \
                str(event.get("DestChannel", "")).startswith("PJSIP/"):  # an agent's phone, not the AudioSocket leg
            call.answered_by = event.get("DestChannel", "")
        elif name == "AgentConnect":
            call.answered_by = event.get("DestChannel", "") or event.get("Interface", "")
        elif name == "Hangup":
            call.hung_up_at = time.time()
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.25))
        return True

    # --- data: customers and agents

    async def new_customer(self) -> tuple[str, str]:
        from ivr.records.customer import Customer
        from ivr.routing.customers import CustomerStore

        self.numbers += 1
        number = f"{PHONE_PREFIX}{os.getpid() % 100:02d}{self.numbers:02d}"
        customer_id = f"{CUSTOMER_PREFIX}{os.getpid() % 100:02d}{self.numbers:02d}"
        # Patient customers: no callback offer while they hold (the scenario decides when one accepts a callback).
        await CustomerStore(self.redis, timeout_s=5).put(Customer(
            id=customer_id, name=f"혼돈 {self.numbers}", phones=[number], tier="standard", language="ko",
            patience_s=1800))
        self.customers.append(customer_id)
        return number, customer_id

    async def agents_ready(self, count: int) -> list[str]:
        """Start ``count`` agents' phones (auto-answer) and make them ready; returns their ids."""
        from ivr.routing.agents import AgentDirectory, Presence
        from ivr.sim.agent_phone import AgentPhone

        chosen = AGENTS[:count]
        for _agent, extension in chosen:
            phone = AgentPhone(self.settings, extension, answer="auto", answer_after_s=0.3)
            await asyncio.to_thread(phone.start)
            self.phones.append(phone)
        directory = AgentDirectory(self.redis)
        for agent, _extension in chosen:
            await directory.set_presence(agent, Presence.READY)
        ids = [agent for agent, _ in chosen]
        for _ in range(100):
            if await self._acd_free(ids):
                break
            await asyncio.sleep(0.1)
        return ids

    async def _acd_free(self, agent_ids: list[str]) -> bool:
        try:
            raw = await self.redis.get("ivr:acd")
        except (RedisError, OSError):
            return False
        agents = json.loads(raw)["agents"] if raw else {}
        return all(agents.get(a, {}).get("shown") == "ready" and agents.get(a, {}).get("device_state") == "NOT_INUSE"
                   for a in agent_ids)

    # --- calls

    async def place(self, kind: str, expect: str, key: str | None = None, known: bool = True) -> ChaosCall:
        number, customer = await self.new_customer() if known else (f"0107777{len(self.calls):04d}", None)
        call = ChaosCall(kind=kind, caller=number, customer=customer, expect=expect, key=key)
        self.calls[call.call_id] = call
        self.by_caller_uid[call.caller_uid] = call
        call.placed_at = time.time()
        await self.ami.originate("Local/s@sim-inbound/n", context="sim-caller", exten="s",
                                 caller_id=f'"chaos" <{number}>', variables={"SIM_CALLER": number},
                                 channel_id=call.caller_uid, other_channel_id=call.call_id, timeout_ms=15_000)
        return call

    async def press(self, call: ChaosCall, digits: str) -> None:
        await self.until(lambda: bool(call.caller_channel), 5)
        await self.ami.setvar(call.caller_channel, "SIM_DTMF", digits)

    async def bring(self, kind: str, key: str = "3") -> ChaosCall:
        """Place a call of ``kind`` and bring it to its place (see the module's docstring); ``key``: the menu key of
        a holding caller (3 loans, 4 payments)."""
        if kind == "menu":
            call = await self.place(kind, "general")
            ok = await self.until(lambda: "main_menu" in call.nodes, 30)
        elif kind == "offer":
            call = await self.place(kind, "complaints", key="6")
            ok = await self.until(lambda: "main_menu" in call.nodes, 30)
            await asyncio.sleep(0.5)
            await self.press(call, "6")
            ok = ok and await self.until(lambda: "complaint_callback" in call.nodes, 20)
        elif kind in ("holding", "agent"):
            key = "3" if kind == "agent" else key
            call = await self.place(kind, "agent" if kind == "agent" else {"3": "loans", "4": "payments"}[key],
                                    key=key)
            ok = await self.until(lambda: "main_menu" in call.nodes, 30)
            await asyncio.sleep(0.5)
            await self.press(call, key)
            if kind == "agent":
                ok = ok and await self.until(lambda: call.answered_by is not None, 40)
            else:
                ok = ok and await self.until(lambda: call.held_in is not None, 30)
        else:
            raise ValueError(f"unknown call kind {kind!r}")
        if not ok:
            raise RuntimeError(f"{kind} call {call.call_id} did not reach its place (nodes {call.nodes}, held "
                               f"{call.held_in}, answered {call.answered_by}): is the stack healthy? (`ivr status`)")
        return call

    async def bring_mix(self, mix: Mix) -> list[ChaosCall]:
        """Agents' calls first (they take the free agents), then holding callers (nobody free for them), then the
        offer and menu callers last: a silent caller stays in the menu only ~20 s before going to a person."""
        calls: list[ChaosCall] = []
        if mix.agent:
            await self.agents_ready(mix.agent)
            for _ in range(mix.agent):  # one at a time: each takes one agent
                calls.append(await self.bring("agent"))
        groups = [[("holding", "34"[n % 2]) for n in range(mix.holding)], [("offer", "")] * mix.offer,
                  [("menu", "")] * mix.menu]
        for group in groups:
            if group:
                calls += await asyncio.gather(*(self.bring(kind, key) for kind, key in group))
        return calls

    async def answer_pending(self) -> None:
        """After the fault: callers still in the IVR answer its question (menu: 0 for a person; offer: 2, hold)."""
        if not await self.ami.wait_ready(20):
            return
        channels = await self.channels()
        for call in self.calls.values():
            where = _where(channels.get(call.call_id))
            if where == "ivr" and call.kind in ("menu", "offer", "during"):
                with contextlib.suppress(AmiError):
                    await self.press(call, "2" if call.kind == "offer" else "0")

    async def settle(self, timeout: float = 40.0) -> None:
        """Until no call of the scenario is still in the IVR (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            channels = await self.channels()
            if not any(_where(channels.get(c.call_id)) == "ivr" for c in self.calls.values() if not c.released):
                return
            await asyncio.sleep(1.0)

    async def channels(self) -> dict[str, dict[str, str]]:
        """Asterisk's channels by uniqueid, from its CLI (not AMI: the AMI scenario blocks AMI)."""
        return await asyncio.to_thread(asterisk_channels, self.settings)

    async def hang_up(self, call: ChaosCall) -> None:
        call.released = True
        for channel in (call.caller_channel, call.channel):
            if channel:
                await asyncio.to_thread(stack.asterisk_rx, self.settings, f"channel request hangup {channel}")

    # --- judgement

    async def judge(self, lost_by_nature: bool = False) -> list[ChaosCall]:
        channels = await self.channels()
        judged = []
        for call in self.calls.values():
            if call.kind == "probe":
                continue
            line = channels.get(call.call_id)
            call.where = _where(line)
            if line is not None and call.where.startswith("queue"):
                variables = await asyncio.to_thread(channel_variables, self.settings, line["channel"])
                call.fallback = variables.get("IVR_FALLBACK") == "1"
                call.learned_customer = variables.get("IVR_CUSTOMER", "")
            if call.released:
                call.why = "released by the harness"
            elif call.callback_at is not None and call.where == "gone":
                call.why = "accepted a callback (ends by design)"
                call.kept = True
            elif call.where == "gone":
                call.lost, call.why = True, ("Asterisk restarted: its channels ended" if lost_by_nature
                                             else "Asterisk ended the call")
            elif call.where == "ivr":
                call.lost, call.why = True, "still in the IVR after the fault: trapped"
            elif call.where.split(":")[0] not in WHERE_WITH_A_PERSON:
                call.lost, call.why = True, f"in no queue and with nobody ({call.where})"
            if not call.lost and not call.released and call.callback_at is None:
                call.kept = self._kept(call)
            judged.append(call)
        return judged

    @staticmethod
    def _kept(call: ChaosCall) -> bool:
        place, _, queue = call.where.partition(":")
        if call.expect == "agent":
            return place == "agent"
        if place in ("ringing", "agent"):
            return True  # the ACD offered them (it routes by the queue it was handed)
        if queue != call.expect:
            return False
        # Queued by the dialplan's fallback after the IVR had them (it listened): the agent's pop reads what the
        # IVR learned from the channel. A call no controller ever took has nothing learned to keep.
        return not (call.fallback and call.nodes and call.customer and call.learned_customer != call.customer)

    # --- the controller, seen from outside

    async def heartbeat(self) -> dict[str, str]:
        try:
            return {str(k): str(v) for k, v in (await self.redis.hgetall(CONTROLLER_KEY)).items()}
        except (RedisError, OSError):
            return {}

    async def controller_serving(self, not_pid: int | None = None, since: float = 0.0) -> bool:
        """A controller (not ``not_pid``) beats after ``since`` with AMI logged in and holds the FastAGI port."""
        beat = await self.heartbeat()
        if not beat or float(beat.get("at", 0)) < since or beat.get("ami_ready") != "1":
            return False
        pid = int(beat.get("pid", 0))
        if not_pid is not None and pid == not_pid:
            return False
        return port_holder(self.settings.agi_port).startswith(f"pid {pid} ")

    async def wait_serving(self, since: float, timeout: float, not_pid: int | None = None) -> float | None:
        """Seconds from ``since`` until a controller serves (None: not within ``timeout``)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if await self.controller_serving(not_pid, since):
                return round(time.time() - since, 2)
            await asyncio.sleep(0.1)
        return None

    async def probe(self) -> bool:
        """A new call after the fault: the controller must route it (key 4: payments) to a person."""
        call = await self.place("probe", "payments", key="4")
        ok = await self.until(lambda: "main_menu" in call.nodes, 30)
        if ok:
            await asyncio.sleep(0.5)
            await self.press(call, "4")
            ok = await self.until(lambda: call.held_in == "payments" or call.answered_by is not None
                                  or call.queued_in == "payments", 30)
        await self.hang_up(call)
        return ok

    # --- cleanup

    async def cleanup(self) -> None:
        """Agents offline first (no callback or held caller reaches them), then every call, then the data."""
        from ivr.routing.agents import AgentDirectory, Presence

        with contextlib.suppress(RedisError, OSError):
            directory = AgentDirectory(self.redis)
            for agent, _ in AGENTS:
                await directory.set_presence(agent, Presence.OFFLINE)
        channels = await self.channels()
        mine = {c.call_id for c in self.calls.values()} | set(self.by_caller_uid)
        for uid, line in channels.items():
            if uid in mine:
                await asyncio.to_thread(stack.asterisk_rx, self.settings, f"channel request hangup {line['channel']}")
        for phone in self.phones:
            await asyncio.to_thread(phone.stop)
        self.phones.clear()
        await asyncio.sleep(1.5)  # the controller writes each ended call's record and contact history: after that
        with contextlib.suppress(RedisError, OSError):
            keys = []
            for customer in self.customers:
                keys += [f"ivr:customer:{customer}", f"ivr:customer:{customer}:history"]
            keys += [f"ivr:phone:{c.caller}" for c in self.calls.values()]
            for call_id in self.calls:
                keys += [call_key(call_id), f"{call_key(call_id)}:turns", f"{call_key(call_id)}:learned",
                         f"ivr:pop:{call_id}", f"ivr:disposition:{call_id}"]
            if keys:
                await self.redis.delete(*keys)
            if self.calls:
                await self.redis.hdel("ivr:callbacks:pending", *self.calls)


# --- Asterisk's side, through its CLI ---------------------------------------------------------------------


def asterisk_channels(settings: Settings) -> dict[str, dict[str, str]]:
    """``core show channels concise``: channel!context!exten!priority!state!app!data!cid!account!peeraccount!
    amaflags!duration!bridge!uniqueid, by uniqueid."""
    try:
        out = stack.asterisk_rx(settings, "core show channels concise", timeout=10).stdout
    except subprocess.TimeoutExpired:
        return {}
    channels: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        parts = line.split("!")
        if len(parts) < 14:
            continue
        channels[parts[13]] = {"channel": parts[0], "context": parts[1], "exten": parts[2], "app": parts[5],
                               "data": parts[6], "bridge": parts[12]}
    return channels


def channel_variables(settings: Settings, channel: str) -> dict[str, str]:
    """A channel's variables (``core show channel``), e.g. IVR_FALLBACK and IVR_CUSTOMER."""
    out = stack.asterisk_rx(settings, f"core show channel {channel}", timeout=10).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            found[name] = value
    return found


def _where(line: dict[str, str] | None) -> str:
    """Where a hotline channel is: with a person (hold/queue/ringing/agent), still in the IVR, or gone."""
    if line is None:
        return "gone"
    context = line["context"]
    if context == "hotline" or (context in ("sim-inbound", "app-call")):
        return "ivr"
    if context == "ivr-hold":
        return f"hold:{line['exten']}"
    if context == "ivr-queue":
        return "agent" if line["bridge"] else f"queue:{line['exten']}"
    if context == "ivr-offer":
        return "agent" if line["bridge"] else "ringing"
    return f"other:{context}"


# --- the faults ---------------------------------------------------------------------------------------------


class LogTail:
    """What a log file got after this object was made (bytes counted: the log has Korean in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_text(self) -> str:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""


async def kill_controller(h: Harness) -> tuple[int, float]:
    pid = stack.running_pid(h.settings, "controller")
    if pid is None:
        raise RuntimeError("no controller running: `ivr up` first")
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):  # gone (its sockets closed by the kernel) within milliseconds
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            break
        await asyncio.sleep(0.01)
    return pid, killed_at


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    return False


async def controller_kill(h: Harness) -> Fault:
    fault = Fault()
    pid, killed_at = await kill_controller(h)
    during = asyncio.create_task(h.place("during", "general"))  # a new call while the controller is down
    fault.recover_s = await h.wait_serving(killed_at, 30, not_pid=pid)
    await during
    if fault.recover_s is None:
        fault.notes.append("no controller served again within 30 s (is it supervised? `ivr status`)")
    return fault


async def asterisk_restart(h: Harness) -> Fault:
    fault = Fault(lost_by_nature=True)
    beat = await h.heartbeat()
    logins = int(beat.get("ami_logins", 0))
    stopped_at = time.time()
    await asyncio.to_thread(stack.asterisk_down, h.settings)
    await asyncio.to_thread(stack.asterisk_up, h.settings)
    fault.extra["asterisk_boot_s"] = round(time.time() - stopped_at, 2)
    deadline = time.time() + 30
    while time.time() < deadline:
        beat = await h.heartbeat()
        if beat.get("ami_ready") == "1" and int(beat.get("ami_logins", 0)) > logins:
            fault.recover_s = round(time.time() - stopped_at, 2)
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)  # the controller's view settles (hangups, re-reads)
    fault.extra.update(await stale_state(h))
    for phone in h.phones:  # registrations died with Asterisk; no later call goes to them
        await asyncio.to_thread(phone.stop)
    h.phones.clear()
    return fault


async def stale_state(h: Harness) -> dict[str, int]:
    """What the dropped calls left behind: callers still waiting in the ACD, records never ended."""
    ids = [c.call_id for c in h.calls.values() if c.kind != "probe"]
    try:
        raw = await h.redis.get("ivr:acd")
        waiting = json.loads(raw).get("waiting", {}) if raw else {}
        records = await h.redis.mget([call_key(i) for i in ids]) if ids else []
    except (RedisError, OSError):
        return {"stale_waiting": -1, "stale_records": -1}
    unended = sum(1 for r in records if r and json.loads(r).get("ended_at") is None)
    return {"stale_waiting": sum(1 for i in ids if i in waiting), "stale_records": unended}


async def redis_restart(h: Harness) -> Fault:
    fault = Fault()
    stopped_at = time.time()
    await asyncio.to_thread(stack._stop, h.settings, "redis")  # SIGTERM: Redis writes its AOF and exits
    during = [asyncio.create_task(h.place("during", "general", known=False)) for _ in range(2)]
    await asyncio.sleep(h.durations.redis_down_s)
    await asyncio.to_thread(stack.redis_up, h.settings)
    back_at = time.time()
    fault.extra["redis_down_s"] = round(back_at - stopped_at, 2)
    fault.recover_s = await h.wait_serving(back_at, 30)
    await asyncio.gather(*during)
    fault.extra["records_missing"] = await records_missing(h, [t.result() for t in during])
    return fault


async def records_missing(h: Harness, calls: list[ChaosCall], timeout: float = 10.0) -> int:
    """Calls placed while Redis was down whose record never reached it (the controller keeps them to write)."""
    deadline = time.time() + timeout
    missing = len(calls)
    while time.time() < deadline:
        with contextlib.suppress(RedisError, OSError):
            found = await h.redis.exists(*[call_key(c.call_id) for c in calls]) if calls else 0
            missing = len(calls) - int(found)
            if not missing:
                break
        await asyncio.sleep(0.5)
    return missing


async def redis_kill(h: Harness) -> Fault:
    """Callbacks and dispositions written, then Redis killed at once: the AOF must have them."""
    fault = Fault()
    callbacks = [c for c in h.calls.values() if c.kind == "holding"][:2]
    for call in callbacks:
        await h.press(call, "1")  # 1 while holding: call me back, keeping my place
    dispositions = await give_dispositions(h, [c for c in h.calls.values() if c.kind == "agent"])
    stored = await h.until(lambda: all(c.callback_at for c in callbacks), 10)
    deadline = time.time() + 5
    while stored and time.time() < deadline:
        with contextlib.suppress(RedisError, OSError):
            if all([await h.redis.hexists("ivr:callbacks:pending", c.call_id) for c in callbacks]):
                break
        await asyncio.sleep(0.02)
    pid = stack.running_pid(h.settings, "redis")
    if pid is None:
        raise RuntimeError("Redis is not running under `ivr up` (no pid file): cannot kill it")
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    fault.extra["killed_after_last_write_s"] = round(killed_at - max([dispositions.get("at", 0.0),
                                                                       *[c.callback_at or 0 for c in callbacks]]), 3)
    await asyncio.sleep(h.durations.redis_killed_s)
    await asyncio.to_thread(stack.redis_up, h.settings)
    back_at = time.time()
    fault.recover_s = await h.wait_serving(back_at, 30)
    fault.extra["aof_fsync"] = await _config(h, "appendfsync")
    kept_callbacks = 0
    with contextlib.suppress(RedisError, OSError):
        kept_callbacks = sum([bool(await h.redis.hexists("ivr:callbacks:pending", c.call_id)) for c in callbacks])
    kept_dispositions = 0
    with contextlib.suppress(RedisError, OSError):
        for call_id in dispositions.get("given", []):
            kept_dispositions += bool(await h.redis.exists(f"ivr:disposition:{call_id}"))
    fault.extra.update(callbacks_written=len(callbacks), callbacks_lost=len(callbacks) - kept_callbacks,
                       dispositions_written=len(dispositions.get("given", [])),
                       dispositions_lost=len(dispositions.get("given", [])) - kept_dispositions)
    # The ACD keeps the chaos callbacks in memory: a controller restart (after cleanup drops them from Redis) forgets
    # them, so no agent is later offered a chaos caller's callback.
    fault.extra["restart_after"] = True
    return fault


async def _config(h: Harness, name: str) -> str:
    with contextlib.suppress(RedisError, OSError):
        value = await h.redis.config_get(name)
        return str(value.get(name, ""))
    return ""


async def give_dispositions(h: Harness, calls: list[ChaosCall]) -> dict[str, Any]:
    """Each agent closes their call with a disposition through the pages' API (POST .../disposition: 201)."""
    import httpx

    from ivr.config import read_env_file
    from ivr.sim.demo_users import ensure_demo_users, env_key

    if not calls:
        return {}
    _users, path = await ensure_demo_users(h.redis)
    passwords = read_env_file(path)
    base = f"http://127.0.0.1:{h.settings.http_port}"
    given: list[str] = []
    at = 0.0
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as web:
        for call in calls:
            raw = await h.redis.get(f"ivr:pop:{call.call_id}")
            agent = json.loads(raw)["agent"] if raw else ""
            if not agent:
                continue
            login = await web.post("/api/login", json={"username": agent, "password": passwords[env_key(agent)]})
            login.raise_for_status()
            token = login.json()["token"]
            reply = await web.post(f"/api/calls/{call.call_id}/disposition",
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"disposition": "resolved", "notes": "chaos benchmark"})
            if reply.status_code == 201:
                given.append(call.call_id)
                at = time.time()
    return {"given": given, "at": at}


async def port_busy(h: Harness) -> Fault:
    """The controller dies and, before the next one starts, another process takes the FastAGI port for a while."""
    fault = Fault()
    log = LogTail(h.settings.logs_dir / "controller.log")
    pid, _killed_at = await kill_controller(h)

    async def refuse(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # not a FastAGI server: Asterisk's AGI() fails and the dialplan's fallback takes the call

    # The killed process's threads close its sockets as they exit, shortly after it is reported dead: the port is
    # taken as soon as it is free (well before the supervisor's next controller, 0.5 s later at the earliest).
    squatter = None
    for _ in range(400):
        try:
            squatter = await asyncio.start_server(refuse, h.settings.agi_host, h.settings.agi_port)
            break
        except OSError:
            await asyncio.sleep(0.005)
    if squatter is None:
        raise RuntimeError(f"the FastAGI port {h.settings.agi_port} did not come free within 2 s of the kill")
    try:
        taken_at = time.time()
        during = [await h.place("during", "general") for _ in range(2)]
        await asyncio.sleep(h.durations.port_busy_s)
        channels = await h.channels()
        fault.extra["during_in_fallback"] = sum(
            1 for c in during if _where(channels.get(c.call_id)).startswith("queue:general"))
    finally:
        squatter.close()
        await squatter.wait_closed()
    freed_at = time.time()
    fault.extra["port_busy_s"] = round(freed_at - taken_at, 2)
    fault.recover_s = await h.wait_serving(freed_at, 30, not_pid=pid)
    said = log.new_text()
    fault.extra["clear_error_logged"] = f"FastAGI port {h.settings.agi_host}:{h.settings.agi_port} is taken by pid " \
        f"{os.getpid()}" in said
    if not fault.extra["clear_error_logged"]:
        fault.notes.append("the controller's log does not name the process holding the FastAGI port")
    return fault


@contextlib.contextmanager
def full_recordings_disk(settings: Settings) -> Iterator[Path]:
    """The recordings folder on a tiny tmpfs with no room and no inodes left, seen by the controller and by Asterisk
    (bind-mounted into its root, where MixMonitor writes); unmounted (lazily if busy) whatever happens."""
    host = settings.recordings_dir
    inside = recordings_inside_asterisk(settings)
    mounted: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=4,mode=0755", "ivr-chaos-full", str(host)],
                       check=True)
        mounted.append(host)
        subprocess.run(["mount", "--bind", str(host), str(inside)], check=True)
        mounted.append(inside)
        with contextlib.suppress(OSError), open(host / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        for n in range(4):  # the inodes too
            with contextlib.suppress(OSError):
                (host / f"filler{n}").mkdir()
        yield host
    finally:
        for target in reversed(mounted):
            if subprocess.run(["umount", str(target)], check=False, capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(target)], check=False)


async def disk_full(h: Harness) -> Fault:
    fault = Fault()
    log = LogTail(h.settings.logs_dir / "controller.log")
    with full_recordings_disk(h.settings):
        during = [await h.place("during", "general") for _ in range(2)]
        await h.until(lambda: all("main_menu" in c.nodes for c in during), 20)
        await asyncio.sleep(2)
        await h.hang_up(during[0])  # ends during the fault: its missing recording must be explained
        await asyncio.sleep(h.durations.disk_full_s)
        channels = await h.channels()
        fault.extra["during_still_up"] = sum(1 for c in during[1:] if c.call_id in channels)
    freed_at = time.time()
    said = log.new_text()
    fault.extra["disk_alert_logged"] = "the recordings disk is full" in said
    fault.extra["call_not_recorded_logged"] = f"call {during[0].call_id} was NOT recorded" in said
    # Recovery: a new call is recorded again (MixMonitor's file appears on the real disk).
    probe = await h.place("probe", "general")
    day_glob = f"calls/*/{probe.call_id}.raw"
    deadline = time.time() + 30
    while time.time() < deadline:
        if any(h.settings.recordings_dir.glob(day_glob)):
            fault.recover_s = round(time.time() - freed_at, 2)
            break
        await asyncio.sleep(0.1)
    await h.hang_up(probe)
    return fault


def iptables(action: str, direction: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", action, "INPUT", "-i", "lo", "-p", "tcp", direction, str(port), "-m", "comment",
                           "--comment", IPTABLES_TAG, "-j", "DROP"], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def ami_blocked(port: int) -> Iterator[None]:
    """Every AMI packet on loopback dropped, both ways (a silent link, not a refused one); the rules go in a
    ``finally``, and any rule tagged ``ivr-chaos`` a crashed run left behind goes too."""
    if shutil.which("iptables") is None:
        raise RuntimeError("iptables is not installed: apt-get install iptables (make setup installs it)")
    try:
        for direction in ("--dport", "--sport"):
            result = iptables("-I", direction, port)
            if result.returncode:
                raise RuntimeError(f"iptables refused the rule: {result.stderr.strip()}")
        yield
    finally:
        remove_chaos_rules(port)


def remove_chaos_rules(port: int) -> None:
    for direction in ("--dport", "--sport"):
        while iptables("-D", direction, port).returncode == 0:
            pass


async def ami_drop(h: Harness) -> Fault:
    fault = Fault()
    beat = await h.heartbeat()
    logins = int(beat.get("ami_logins", 0))
    with ami_blocked(h.settings.ami_port):
        await asyncio.sleep(h.durations.ami_drop_s)
        beat = await h.heartbeat()
        fault.extra["controller_saw_the_link_down"] = beat.get("ami_ready") == "0"
    freed_at = time.time()
    deadline = freed_at + 30
    while time.time() < deadline:
        beat = await h.heartbeat()
        if beat.get("ami_ready") == "1" and (int(beat.get("ami_logins", 0)) > logins
                                              or not fault.extra["controller_saw_the_link_down"]):
            fault.recover_s = round(time.time() - freed_at, 2)
            break
        await asyncio.sleep(0.1)
    fault.extra["ami_relogins"] = int(beat.get("ami_logins", 0)) - logins
    return fault


FAULTS: dict[str, Callable[[Harness], Awaitable[Fault]]] = {
    "controller_kill": controller_kill, "asterisk_restart": asterisk_restart, "redis_restart": redis_restart,
    "redis_kill": redis_kill, "port_busy": port_busy, "disk_full": disk_full, "ami_drop": ami_drop,
}


# --- running it ---------------------------------------------------------------------------------------------


def prepare(settings: Settings) -> None:
    """This checkout's controller and dialplan, Redis fsyncing before every reply, no leftovers of a crashed run."""
    remove_chaos_rules(settings.ami_port)
    stack.up(settings, controller=False)
    stack.asterisk_rx(settings, "dialplan reload")
    stack.controller_down(settings)
    stack.up(settings)
    asyncio.run(_fsync_always(settings))


async def _fsync_always(settings: Settings) -> None:
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:  # a Redis started before this checkout's `ivr up` fsyncs every second: as `ivr up` would start it now
        await client.config_set("appendfsync", "always")
    finally:
        await client.aclose()


def restore(settings: Settings) -> None:
    """Whatever a fault left stopped or changed, back: the rules, Redis, Asterisk, the controller."""
    remove_chaos_rules(settings.ami_port)
    for target in (recordings_inside_asterisk(settings), settings.recordings_dir):
        if stack._mounted(target) and _is_chaos_tmpfs(target):
            subprocess.run(["umount", "-l", str(target)], check=False)
    stack.up(settings)


def recordings_inside_asterisk(settings: Settings) -> Path:
    """Where Asterisk's root sees the recordings folder (the project is bind-mounted at /srv/ivr in it)."""
    return (settings.asterisk_root / str(ASTERISK_PROJECT_DIR).lstrip("/")
            / settings.recordings_dir.relative_to(PROJECT_DIR))


def _is_chaos_tmpfs(target: Path) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        return any(line.split()[4] == str(target) and "ivr-chaos-full" in line for line in table)


async def run_scenario(settings: Settings, name: str, mix: Mix, durations: Durations | None = None) -> Row:
    """Place ``mix``, strike with fault ``name``, judge every call; the stack is restored before returning."""
    row = Row(scenario=name, calls_in_flight=0, calls_lost=0, kept_context=False, recover_s=None,
              measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    restart_after = False
    if name in ("controller_kill", "port_busy"):
        await wait_for_standby(settings)
    try:
        async with Harness(settings, durations) as h:
            in_flight = await h.bring_mix(mix)
            row.calls_in_flight = len(in_flight)
            await asyncio.sleep(h.durations.before_fault_s)
            try:
                fault = await FAULTS[name](h)
            finally:
                await asyncio.to_thread(restore, settings)
            row.recover_s, row.notes, row.details = fault.recover_s, fault.notes, dict(fault.extra)
            restart_after = bool(fault.extra.pop("restart_after", False))
            row.details.pop("restart_after", None)
            if not await h.ami.wait_ready(30):
                row.notes.append("the harness's AMI did not come back")
            await h.answer_pending()
            await h.settle()
            judged = await h.judge(fault.lost_by_nature)
            row.calls_during_fault = sum(1 for c in judged if c.kind == "during")
            row.calls_lost = sum(1 for c in judged if c.lost)
            row.lost = [f"{c.kind} {c.call_id}: {c.why}" for c in judged if c.lost]
            survivors = [c for c in judged if not c.lost and not c.released]
            row.context_calls = len(survivors)
            row.context_kept = sum(1 for c in survivors if c.kept)
            # Nothing survived (an Asterisk restart): nothing was kept either.
            row.kept_context = row.context_calls > 0 and row.context_kept == row.context_calls
            row.details["ends"] = {c.call_id: describe_end(c) for c in judged}
            row.probe_ok = await h.probe()
    finally:
        await asyncio.to_thread(restore, settings)
        if restart_after:
            await fresh_controller(settings)
    by_nature = name == "asterisk_restart"
    row.target_met = (
        (by_nature or (row.calls_lost == 0 and row.kept_context)) and row.probe_ok
        and row.recover_s is not None and row.recover_s <= RECOVER_TARGET_S
        and row.details.get("callbacks_lost", 0) == 0 and row.details.get("dispositions_lost", 0) == 0
        and row.details.get("stale_waiting", 0) == 0 and row.details.get("stale_records", 0) == 0)
    return row


async def fresh_controller(settings: Settings) -> None:
    """A new controller process (it forgets the chaos callbacks the last one kept in memory): the supervised one is
    stopped and its standby takes over; without a supervisor, stopped and started."""
    pid = stack.running_pid(settings, "controller")
    if pid is None or not stack.running_pid(settings, "supervisor"):
        await asyncio.to_thread(stack.controller_down, settings)
        await asyncio.to_thread(stack.up, settings)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 90
    while time.time() < deadline:
        current = stack.running_pid(settings, "controller")
        if current not in (None, pid) and port_holder(settings.agi_port).startswith(f"pid {current} "):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("no controller took over after the chaos controller was stopped: `ivr status`")


def describe_end(call: ChaosCall) -> str:
    """"offer -> queue:complaints (fallback, customer C1 on the channel)", and what was wrong when it was."""
    text = f"{call.kind} -> {call.where}"
    if call.fallback:
        text += f" (fallback, customer {call.learned_customer or 'none'} on the channel)"
    if call.lost:
        text += f": LOST, {call.why}"
    elif not call.kept and not call.released and call.callback_at is None:
        text += f": context NOT kept (expected {call.expect}, customer {call.customer or 'none'})"
    return text


async def wait_for_standby(settings: Settings, timeout: float = 90.0) -> None:
    """A supervised controller's warm standby loaded (as it is in steady state), so a kill is measured as it
    would happen at any time but the first minute after a start."""
    state_file = settings.run_dir / "supervisor.json"
    supervisor = stack.running_pid(settings, "supervisor")
    with contextlib.suppress(OSError):
        if b"--no-standby" in Path(f"/proc/{supervisor}/cmdline").read_bytes():
            return
    deadline = time.time() + timeout
    while time.time() < deadline and stack.running_pid(settings, "supervisor"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state_file.read_text()).get("standby_loaded"):
                return
        await asyncio.sleep(0.5)


def table(rows: list[Row]) -> str:
    head = f"{'scenario':<17}{'in flight':>10}{'lost':>6}{'context':>9}{'recover s':>11}{'probe':>7}  target"
    lines = [head, "-" * len(head)]
    for r in rows:
        recover = "-" if r.recover_s is None else f"{r.recover_s:.1f}"
        lost = f"{r.calls_lost}*" if r.scenario == "asterisk_restart" else str(r.calls_lost)
        lines.append(f"{r.scenario:<17}{r.calls_in_flight:>10}{lost:>6}{r.context_kept:>4}/{r.context_calls:<4}"
                     f"{recover:>11}{'ok' if r.probe_ok else 'FAIL':>7}  {'met' if r.target_met else 'MISSED'}")
    lines.append("* an Asterisk restart ends its channels: those calls are lost by nature (callers call again)")
    return "\n".join(lines)


def write(rows: list[Row]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "chaos.json").write_text(json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False))
    chart(rows, OUT / "chaos.png")


def chart(rows: list[Row], path: Path) -> Path:
    """Recovery per scenario against the 10 s target; under each bar, the calls lost and the context kept."""
    import matplotlib

    matplotlib.use("Agg")  # no screen on a server
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9.0, 4.2))
    try:
        values = [r.recover_s if r.recover_s is not None else 0.0 for r in rows]
        colors = ["#4878a8" if r.target_met else "#c0392b" for r in rows]
        drawn = axes.bar(range(len(rows)), values, color=colors, width=0.6)
        axes.bar_label(drawn, labels=["-" if r.recover_s is None else f"{r.recover_s:.1f} s" for r in rows])
        axes.axhline(RECOVER_TARGET_S, color="#c0392b", linestyle="--", label=f"target ({RECOVER_TARGET_S:g} s)")
        axes.set_xticks(range(len(rows)), [
            f"{r.scenario.replace('_', chr(10))}\nlost {r.calls_lost}/{r.calls_in_flight}"
            f"{'*' if r.scenario == 'asterisk_restart' else ''}\ncontext {r.context_kept}/{r.context_calls}"
            for r in rows], fontsize=8)
        axes.set_ylabel("recovery (s)")
        axes.set_ylim(0, max([RECOVER_TARGET_S, *values]) * 1.2)
        axes.set_title("Faults under load: recovery, calls lost, context kept (red: a target missed)")
        axes.legend(loc="upper right")
        figure.text(0.01, 0.01, "* an Asterisk restart ends its channels: lost by nature", fontsize=7)
        figure.tight_layout(rect=(0, 0.03, 1, 1))
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)")
    parser.add_argument("--calls", type=int, default=BENCH_MIX.total, help="calls in flight per scenario")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: the faults need iptables, mounts and the stack's processes")
    settings = load_settings()
    mix = BENCH_MIX if args.calls == BENCH_MIX.total else Mix.of(args.calls)
    prepare(settings)
    rows: list[Row] = []
    for name in args.only or SCENARIOS:
        print(f"chaos: {name} with {mix.total} calls in flight ...", flush=True)
        try:
            rows.append(asyncio.run(run_scenario(settings, name, mix)))
        except Exception as exc:  # one scenario's failure is a row saying why; the others still run
            rows.append(Row(scenario=name, calls_in_flight=0, calls_lost=0, kept_context=False, recover_s=None,
                            notes=[f"scenario failed: {type(exc).__name__}: {exc}"],
                            measured_at=time.strftime("%Y-%m-%dT%H:%M:%S")))
            restore(settings)
        print(table(rows[-1:]).splitlines()[2], *rows[-1].notes, *rows[-1].lost, sep="\n  ", flush=True)
    print("\nchaos: faults under load")
    print(table(rows))
    write(rows)
    print(f"-> {(OUT / 'chaos.json').relative_to(PROJECT_DIR)}, {(OUT / 'chaos.png').relative_to(PROJECT_DIR)}")
    return 0 if all(r.target_met for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
