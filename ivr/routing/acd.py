"""The ACD: the routing core (ivr.routing.router) wired to Asterisk and Redis.

Where callers wait: Asterisk's ``[ivr-hold]`` context (asterisk_conf/extensions.conf) plays
hold music and whatever announcement the ACD puts in the channel's ``IVR_ANNOUNCE``
(position and estimated wait, the callback offer); key 1 asks for a callback at any time.
Asterisk keeps the caller, so a controller restart loses nobody: the next controller finds
the holding channels (CoreShowChannels) and their records in Redis. Should the controller
stop beating (the global ``IVR_ACD_BEAT``), the dialplan hands holding callers to
Asterisk's own queues.

How a call reaches an agent: the router picks; the ACD sets ``IVR_OFFER_*`` on the
caller's channel and redirects it to ``[ivr-offer]``, which dials the agent's device.
Ring-no-answer (the dialplan reports it with UserEvent IvrOfferEnd) puts the agent
not ready ("rona") and the call back in its place, offered to the next agent. A callback
keeps the caller's place: when it is picked, the agent's device is originated first into
``[ivr-callback]``, which then dials the customer.

Presence: the agent's own choice (``ivr agents presence``, later the web pages) arrives
on the ``ivr:presence`` channel; what their device is doing comes from AMI
(DeviceStateChange, DialBegin/DialEnd). An agent is offered calls only when both agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from panoramisk.message import Message
from redis.exceptions import RedisError

from ivr.config import Settings, asterisk_path
from ivr.records.call import CallRecord, Outcome
from ivr.records.customer import Contact, Customer
from ivr.records.store import follow_channels
from ivr.routing.agents import Agent, AgentDirectory, Presence
from ivr.routing.router import AgentState, Offer, Policy, Router, WaitingCall
from ivr.routing.screenpop import POPS_CHANNEL, build_pop
from ivr.telephony.ami import AmiClient, AmiError
from ivr.voice.flow import Hold

log = logging.getLogger(__name__)

CALLBACKS_KEY = "ivr:callbacks:pending"
"""Hash: callback id -> JSON, so accepted callbacks survive a controller restart."""
SNAPSHOT_KEY = "ivr:acd"
"""The ACD's state as JSON, rewritten every second (ivr status, the supervisor wall, tests)."""
COMMANDS_CHANNEL = "ivr:acd:commands"
"""Pub/sub channel of commands from the web pages: {"type": "decline", "call_id", "agent"}."""
UNAVAILABLE_DEVICE = frozenset({"UNAVAILABLE", "INVALID"})
BUSY_DEVICE = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
RINGING_DEVICE = frozenset({"RINGING", "RINGINUSE"})

SaveHook = Callable[[CallRecord, str, dict[str, Any] | None], Awaitable[Any]]


@dataclass(slots=True)
class Seat:
    """An agent at work, as the ACD tracks them."""

    agent: Agent
    """The directory entry."""
    status: Presence = Presence.OFFLINE
    """The agent's own choice: offline, ready, not_ready (with ``reason``) or wrap_up."""
    reason: str = ""
    """Why not ready (lunch, training, rona, ...)."""
    device_state: str = "UNKNOWN"
    """Asterisk's state of the agent's device (DeviceStateChange)."""
    activity: str = ""
    """What a call is doing to them: ringing, on_call, wrap_up, or "" when free."""
    call_id: str = ""
    """The call ringing them or connected to them."""
    wrap_until: float = 0.0
    """End of after-call work (then the agent is free again)."""

    @property
    def routable(self) -> bool:
        return (self.status is Presence.READY and not self.activity
                and self.device_state not in UNAVAILABLE_DEVICE | BUSY_DEVICE)

    @property
    def shown(self) -> str:
        if self.activity:
            return self.activity
        if self.status is Presence.READY and self.device_state in UNAVAILABLE_DEVICE:
            return "ready (phone not registered)"
        return f"{self.status.value}: {self.reason}" if self.reason else self.status.value


@dataclass(slots=True)
class Waiter:
    """A call (or a callback) the ACD is finding a person for."""

    call: CallRecord
    """The call's record, saved as things happen."""
    waiting: WaitingCall
    """What the router knows of it."""
    patience_s: int
    """Seconds the caller is expected to hold before giving up."""
    patience_source: str
    """"customer", "learned" or "default"."""
    channel: str = ""
    """The caller's channel while holding."""
    in_router: bool = False
    """Holding in Asterisk and known to the router (waiting or offered)."""
    callback_number: str = ""
    """Set when the caller accepted a callback: the number to call back."""
    callback_attempts: int = 0
    last_announced_at: float = 0.0
    callback_offered: bool = False
    offer_deadline: float = 0.0
    """For callbacks: when an unanswered originate counts as ring-no-answer."""
    agent_answered: bool = False
    agent_channel: str = ""
    """The ringing agent leg (DialBegin's DestChannel): what a decline hangs up."""
    declined_by: str = ""
    """The agent who declined the offer: the end of their leg is not a ring-no-answer."""
    customer: Customer | None = None
    """The caller's customer record, for the agent's screen."""
    history: list[Contact] = field(default_factory=list)
    """The customer's recent contacts, for the agent's screen."""


@dataclass(slots=True)
class AcdStats:
    """Handled-time average for the estimated wait."""

    handle_s: float = 180.0
    answered: int = 0
    offers: int = 0
    ronas: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Acd:
    def __init__(self, settings: Settings, ami: AmiClient, directory: AgentDirectory, hold: Hold,
                 save: SaveHook, render: Callable[[str, str], Awaitable[Any]] | None = None,
                 policy: Policy | None = None) -> None:
        self.settings = settings
        self.ami = ami
        self.directory = directory
        self.hold = hold
        self.save = save
        self.render = render
        self.router = Router(policy or Policy())
        self.seats: dict[str, Seat] = {}
        self.by_device: dict[str, str] = {}
        self.waiters: dict[str, Waiter] = {}
        self.stats = AcdStats()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._runner: list[asyncio.Task[None]] = []
        self._last_beat = 0.0
        self._loaded = asyncio.Event()
        """Set once the directory is loaded: Asterisk's device states mean nothing before (no seats)."""

    # --- lifecycle

    @property
    def accepting(self) -> bool:
        """Calls are held for the router only when it has agents and can talk to Asterisk."""
        return bool(self.seats) and self.ami.ready

    async def start(self) -> None:
        try:
            await self.reload()
        except (RedisError, OSError) as exc:
            log.error("agent directory not loaded (%s): calls go to Asterisk's queues", exc)
        self._loaded.set()
        self._runner = [asyncio.create_task(self._ticker(), name="acd-tick"),
                        asyncio.create_task(self._presence_feed(), name="acd-presence")]

    async def stop(self) -> None:
        for task in self._runner:
            task.cancel()
        for task in self._runner:
            with contextlib.suppress(BaseException):
                await task

    async def reload(self) -> None:
        """Load the directory, presence and pending callbacks from Redis."""
        now = time.time()
        agents = await self.directory.all()
        for agent in agents:
            presence = await self.directory.presence(agent.id)
            seat = self.seats.get(agent.id) or Seat(agent)
            seat.agent = agent
            seat.status, seat.reason = Presence(presence["status"]), presence["reason"]
            if presence.get("activity"):
                # What a previous controller saw the phone doing is stale: device states say it afresh.
                self._spawn(self.directory.set_activity(agent.id, "", ""))
            if seat.status not in (Presence.OFFLINE, Presence.READY, Presence.NOT_READY):
                seat.status = Presence.READY if seat.status is Presence.WRAP_UP else Presence.NOT_READY
            self._add_seat(seat, now)
        log.info("ACD: %d agents in the directory", len(self.seats))
        self._loaded.set()
        for raw in (await self.directory.redis.hgetall(CALLBACKS_KEY)).values():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._restore_callback(json.loads(raw), now)

    def _add_seat(self, seat: Seat, now: float) -> None:
        self.seats[seat.agent.id] = seat
        self.by_device[seat.agent.device] = seat.agent.id
        state = AgentState(id=seat.agent.id, skills=dict(seat.agent.skills),
                           languages=frozenset(seat.agent.languages), dialects=frozenset(seat.agent.dialects),
                           vip=seat.agent.vip, idle_since=now)
        known = self.router.agents.get(seat.agent.id)
        if known:
            state.idle_since, state.ready = known.idle_since, known.ready
        self._run(self.router.upsert_agent(state, now))
        self._sync(seat, now)

    async def on_ami_connected(self) -> None:
        """After (re)connecting to Asterisk: device states, and callers already holding."""
        # AMI may log in before the directory is loaded; the states must land on known seats.
        await self._loaded.wait()
        try:
            for event in _as_list(await self.ami.action({"Action": "DeviceStateList"})):
                self.on_ami_event(event)
            for event in _as_list(await self.ami.action({"Action": "CoreShowChannels"})):
                if event.get("Event") == "CoreShowChannel" and event.get("Context") == "ivr-hold":
                    await self._adopt(event.get("Uniqueid", ""), event.get("Channel", ""))
        except AmiError as exc:
            log.warning("ACD could not read Asterisk's state: %s", exc)

    # --- calls from the controller

    def expect(self, call: CallRecord, queue: str, skill: str, priority: int, owner: str | None,
               patience: tuple[int, str], customer: Customer | None = None,
               history: list[Contact] | None = None) -> None:
        """The controller is handing ``call`` to the hold context; the router takes it when it arrives there."""
        call.queued_at = call.queued_at or time.time()
        waiting = WaitingCall(id=call.call_id, skill=skill, enqueued_at=call.queued_at, language=call.language,
                              dialect=call.dialect, vip=call.tier == "vip", priority=priority, owner=owner,
                              queue=queue, patience_s=patience[0] if patience[1] != "default" else None)
        self.waiters[call.call_id] = Waiter(call, waiting, patience_s=patience[0], patience_source=patience[1],
                                            customer=customer, history=list(history or []))

    # --- AMI

    def on_ami_event(self, event: Message) -> None:
        name = event.get("Event", "")
        now = time.time()
        try:
            if name == "UserEvent":
                self._on_user_event(event.get("UserEvent", ""), event, now)
            elif name == "DeviceStateChange":
                self._on_device(event.get("Device", ""), event.get("State", ""), now)
            elif name == "DialBegin":
                self._on_dial_begin(event, now)
            elif name == "DialEnd":
                self._on_dial_end(event, now)
            elif name == "Hangup":
                self._on_hangup(event.get("Uniqueid", ""), now)
        except Exception:
            # One event's trouble must not stop the others (or the AMI reader).
            log.exception("ACD: %s event not handled", name)

    def _on_user_event(self, kind: str, event: Message, now: float) -> None:
        uid = event.get("Uniqueid", "")
        waiter = self.waiters.get(uid)
        if kind == "IvrHold":
            if waiter is None:
                self._spawn(self._adopt(uid, event.get("Channel", "")))
            elif not waiter.in_router:
                waiter.channel = event.get("Channel", "")
                waiter.in_router = True
                waiter.call.note(f"holding for a person in {waiter.waiting.queue}"
                                 f" (patience {waiter.patience_s} s, {waiter.patience_source})")
                self._run(self.router.enqueue(waiter.waiting, now))
                self._persist(waiter.call, "call.holding")
        elif kind == "IvrOfferEnd" and waiter is not None:
            status = event.get("Status", "")
            if status != "ANSWER":
                self._not_answered(waiter, event.get("Agent", ""), status or "NOANSWER", now)
        elif kind == "IvrCallback" and waiter is not None:
            self._accept_callback(waiter, now)
        elif kind == "IvrCallbackAgent":
            waiter = self.waiters.get(event.get("Id", ""))
            if waiter:
                waiter.agent_answered = True
                self._answered(waiter, event.get("Agent", ""), now)
        elif kind == "IvrCallbackEnd":
            waiter = self.waiters.get(event.get("Id", ""))
            if waiter:
                self._callback_ended(waiter, event.get("Status", ""), now)

    def _on_device(self, device: str, state: str, now: float) -> None:
        seat = self.seats.get(self.by_device.get(device, ""))
        if seat is None:
            return
        previous, seat.device_state = seat.device_state, state
        if state in BUSY_DEVICE and state not in RINGING_DEVICE and seat.activity != "on_call":
            self._set_activity(seat, "on_call", seat.call_id)
        elif state == "NOT_INUSE" and seat.activity == "on_call":
            seat.wrap_until = now + self.settings.acd_wrap_up_s
            self._set_activity(seat, "wrap_up", "")
        if previous != state:
            self._sync(seat, now)

    def _on_dial_begin(self, event: Message, now: float) -> None:
        waiter = self.waiters.get(event.get("Uniqueid", ""))
        seat = self.seats.get(self.by_device.get(_device_of(event.get("DestChannel", "")), ""))
        if waiter and seat:
            waiter.agent_channel = event.get("DestChannel", "")
            seat.call_id = waiter.call.call_id
            self._set_activity(seat, "ringing", waiter.call.call_id)
            self._spawn(self.publish_pop(waiter, seat))
            self._persist(waiter.call, "call.offered", {"agent": seat.agent.id})

    def _on_dial_end(self, event: Message, now: float) -> None:
        waiter = self.waiters.get(event.get("Uniqueid", ""))
        seat = self.seats.get(self.by_device.get(_device_of(event.get("DestChannel", "")), ""))
        if waiter is None or seat is None:
            return
        status = event.get("DialStatus", "")
        if status == "ANSWER":
            self._answered(waiter, seat.agent.id, now)
        elif status in ("CANCEL", "") and seat.call_id == waiter.call.call_id:
            self._set_activity(seat, "", "")  # the caller hung up while it rang: the agent is free again
        elif status:
            self._not_answered(waiter, seat.agent.id, status, now)

    def _on_hangup(self, uid: str, now: float) -> None:
        if uid.startswith("cb-"):  # the agent leg of a callback
            waiter = self.waiters.get(uid.removeprefix("cb-").rsplit("-", 1)[0])
            if waiter and not waiter.agent_answered and waiter.waiting.id in self.router.offers:
                self._not_answered(waiter, self.router.offers[waiter.waiting.id].agent_id, "NOANSWER", now)
            return
        waiter = self.waiters.get(uid)
        if waiter is None or waiter.callback_number:
            return  # a callback keeps its place after the caller hangs up
        offer = self.router.offers.get(uid)
        self._run(self.router.withdraw(uid, now))
        for seat in self.seats.values():
            if seat.call_id == uid and seat.activity in ("ringing", "on_call"):
                # Devices without state (a mobile number on the trunk) say nothing more: wrap up from here.
                seat.wrap_until = now + self.settings.acd_wrap_up_s
                self._set_activity(seat, "wrap_up" if seat.activity == "on_call" else "", "")
        if offer and not waiter.call.answered_at and offer.agent_id in self.seats:
            self._sync(self.seats[offer.agent_id], now)
        if waiter.call.answered_at:
            self.stats.handle_s = 0.9 * self.stats.handle_s + 0.1 * max(1.0, now - waiter.call.answered_at)
        else:
            waiter.call.outcome = Outcome.ABANDONED
            waiter.call.note(f"caller hung up after holding {now - (waiter.call.queued_at or now):.0f} s")
        del self.waiters[uid]

    # --- decisions and their outcomes

    def _run(self, offers: list[Offer]) -> None:
        for offer in offers:
            self._spawn(self._offer(offer))

    async def _offer(self, offer: Offer) -> None:
        waiter = self.waiters.get(offer.call_id)
        seat = self.seats.get(offer.agent_id)
        if waiter is None or seat is None:
            self._run(self.router.withdraw(offer.call_id, time.time()))
            return
        self.stats.offers += 1
        seat.call_id = waiter.call.call_id
        waiter.call.routing.append({"at": round(time.time(), 3), "agent": seat.agent.id, "rule": offer.rule,
                                    "level": int(offer.level), "why": list(offer.why), "result": "offered"})
        log.info("call %s -> %s (%s): %s", offer.call_id, seat.agent.id, offer.rule, "; ".join(offer.why))
        timeout = str(self.settings.acd_ring_timeout_s)
        try:
            if waiter.callback_number:
                waiter.offer_deadline = time.time() + self.settings.acd_ring_timeout_s + 5
                waiter.agent_answered = False
                await self.ami.originate(
                    seat.agent.device, context="ivr-callback", exten="s",
                    caller_id=f'"{_quote(waiter.call.customer_name or "callback")}" <{waiter.callback_number}>',
                    variables={"IVR_CALLBACK_ID": waiter.call.call_id, "IVR_OFFER_AGENT": seat.agent.id,
                               "IVR_CALLBACK_DIAL": self.callback_dial(waiter.callback_number)},
                    channel_id=f"cb-{waiter.call.call_id}-{waiter.callback_attempts}",
                    timeout_ms=self.settings.acd_ring_timeout_s * 1000)
                self._set_activity(seat, "ringing", waiter.call.call_id)
                self._spawn(self.publish_pop(waiter, seat))
            else:
                for name, value in (("IVR_OFFER_AGENT", seat.agent.id), ("IVR_OFFER_DEVICE", seat.agent.device),
                                    ("IVR_OFFER_TIMEOUT", timeout)):
                    await self.ami.setvar(waiter.channel, name, value)
                await self.ami.redirect(waiter.channel, "ivr-offer")
        except AmiError as exc:
            # Most likely the caller hung up meanwhile; otherwise the call goes back in line.
            log.warning("call %s: offer to %s failed (%s)", offer.call_id, seat.agent.id, exc)
            waiter.call.routing[-1]["result"] = f"offer failed: {exc}"
            seat.call_id = ""
            if self.router.offers.get(offer.call_id) == offer:
                self._run(self.router.withdraw(offer.call_id, time.time()))
                if waiter.callback_number or waiter.channel:
                    self._run(self.router.enqueue(waiter.waiting, time.time()))
            self._sync(seat, time.time())
        self._persist(waiter.call, "call.updated")

    def _answered(self, waiter: Waiter, agent_id: str, now: float) -> None:
        offer = self.router.answered(waiter.waiting.id)
        agent_id = offer.agent_id if offer else agent_id
        call = waiter.call
        call.agent, call.outcome, call.answered_at = agent_id, Outcome.ANSWERED, now
        if call.routing:
            call.routing[-1]["result"] = "answered"
        self.stats.answered += 1
        seat = self.seats.get(agent_id)
        if seat:
            self._set_activity(seat, "on_call", call.call_id)
        self._persist(call, "call.answered", {"agent": agent_id})

    def _not_answered(self, waiter: Waiter, agent_id: str, status: str, now: float) -> None:
        """Ring-no-answer (RONA), busy or unreachable: the agent stops getting calls; the call goes on."""
        offer = self.router.offers.get(waiter.waiting.id)
        if offer is None or (agent_id and agent_id == waiter.declined_by):
            return  # a declined offer's leg ending (DialEnd, IvrOfferEnd) is not a ring-no-answer
        agent_id = offer.agent_id
        self.stats.ronas += 1
        reason = "rona" if status == "NOANSWER" else f"unreachable ({status.lower()})"
        if waiter.call.routing:
            waiter.call.routing[-1]["result"] = f"not answered: {status}"
        waiter.call.note(f"{agent_id} did not answer ({status}): set not ready, next agent")
        seat = self.seats.get(agent_id)
        if seat:
            seat.status, seat.reason, seat.call_id = Presence.NOT_READY, reason, ""
            self._set_activity(seat, "", "")
            self._spawn(self.directory.set_presence_quietly(agent_id, Presence.NOT_READY, reason))
            self._sync(seat, now)
        self._run(self.router.declined(waiter.waiting.id, waiter.waiting, now))
        self._persist(waiter.call, "call.updated")

    def _accept_callback(self, waiter: Waiter, now: float) -> None:
        waiter.callback_number = waiter.call.caller
        waiter.call.outcome = Outcome.CALLBACK
        waiter.call.note(f"caller accepted a callback after {now - (waiter.call.queued_at or now):.0f} s;"
                         " keeps place in line")
        self._spawn(self._store_callback(waiter))
        self._persist(waiter.call, "call.callback")

    def _callback_ended(self, waiter: Waiter, status: str, now: float) -> None:
        call = waiter.call
        if status == "ANSWER":
            call.note("callback: customer reached")
            self._forget_callback(waiter)
            return
        waiter.callback_attempts += 1
        call.note(f"callback attempt {waiter.callback_attempts}: customer not reached ({status or 'unknown'})")
        call.outcome = Outcome.CALLBACK
        if waiter.callback_attempts >= self.settings.acd_callback_attempts:
            call.note("callback given up")
            self._forget_callback(waiter)
        else:
            waiter.agent_answered = False
            loop = asyncio.get_running_loop()
            loop.call_later(self.settings.acd_callback_retry_s,
                            lambda: self._run(self.router.enqueue(waiter.waiting, time.time())))
        self._persist(call, "call.updated")

    def _forget_callback(self, waiter: Waiter) -> None:
        self.waiters.pop(waiter.call.call_id, None)
        self._spawn(self._drop_stored_callback(waiter.call.call_id))
        self._persist(waiter.call, "call.updated")

    def callback_dial(self, number: str) -> str:
        """Internal extensions (and the simulator's phone) directly; everyone else through the trunk."""
        local = {*self.settings.desk_extensions, *self.settings.field_extensions, self.settings.sim_extension}
        return f"PJSIP/{number}" if number in local else self.settings.callback_dial.format(number=number)

    async def publish_pop(self, waiter: Waiter, seat: Seat) -> None:
        """The agent's phone is ringing: their screen shows who and why (every web process hears it)."""
        pop = build_pop(waiter.call, waiter.customer, waiter.history, seat.agent.id)
        payload = json.dumps({"agent": seat.agent.id, "pop": pop}, ensure_ascii=False)
        try:
            async with self.directory.redis.pipeline(transaction=False) as pipe:
                pipe.set(f"ivr:pop:{waiter.call.call_id}", payload, ex=self.settings.call_record_ttl_s)
                pipe.publish(POPS_CHANNEL, payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("call %s: screen pop not published (%s)", waiter.call.call_id, exc)

    # --- presence

    def _sync(self, seat: Seat, now: float) -> None:
        """Tell the router whether the agent can take a call now."""
        if seat.agent.id in self.router.agents:
            self._run(self.router.set_ready(seat.agent.id, seat.routable, now, seat.shown))

    def _set_activity(self, seat: Seat, activity: str, call_id: str) -> None:
        if (seat.activity, seat.call_id) == (activity, call_id):
            return
        seat.activity, seat.call_id = activity, call_id
        self._spawn(self.directory.set_activity(seat.agent.id, activity, call_id))
        self._sync(seat, time.time())

    async def _presence_feed(self) -> None:
        """Follow presence changes and commands made elsewhere (CLI, web pages)."""
        async def handle(channel: str, message: dict[str, Any]) -> None:
            if channel == COMMANDS_CHANNEL:
                await self.apply_command(message)
            else:
                await self.apply_presence(message)

        await follow_channels(self.directory.redis, ("ivr:presence", COMMANDS_CHANNEL), handle, "ACD")

    async def apply_command(self, command: dict[str, Any]) -> None:
        """A command from the web pages (ivr:acd:commands); every controller hears it, the one holding the call acts."""
        if command.get("type") == "decline":
            await self.decline(str(command.get("call_id", "")), str(command.get("agent", "")))

    async def decline(self, call_id: str, agent_id: str) -> bool:
        """The agent turned down the call ringing them: it goes on to the next agent and they stay ready.

        Only a call ringing through [ivr-offer] now, for that agent (not a callback: its agent leg is the
        call itself); anything else (answered, gone, already offered elsewhere) is ignored.
        """
        waiter, offer = self.waiters.get(call_id), self.router.offers.get(call_id)
        if waiter is None or offer is None or offer.agent_id != agent_id or waiter.callback_number:
            return False
        waiter.declined_by = agent_id
        if waiter.call.routing:
            waiter.call.routing[-1]["result"] = "declined"
        waiter.call.note(f"{agent_id} declined the call: next agent, {agent_id} stays ready")
        leg, waiter.agent_channel = waiter.agent_channel, ""
        try:
            if leg:
                await self.ami.hangup(leg, cause=21)  # 21: call rejected
            else:  # their phone is not ringing yet: the caller goes back to the waiting room instead
                await self.ami.redirect(waiter.channel, "ivr-hold", waiter.waiting.queue)
        except AmiError as exc:
            log.info("call %s: decline by %s: %s", call_id, agent_id, exc)
        if self.router.offers.get(call_id) is not offer:
            return False  # answered or hung up meanwhile
        self._run(self.router.declined(call_id, waiter.waiting, time.time()))
        seat = self.seats.get(agent_id)
        if seat and seat.call_id == call_id:
            self._set_activity(seat, "", "")  # free again (and ready): the router may offer them another call
        self._persist(waiter.call, "call.updated")
        return True

    async def apply_presence(self, message: dict[str, Any]) -> None:
        agent_id = str(message.get("agent", ""))
        if message.get("directory"):
            agent = await self.directory.get(agent_id)
            if agent:
                seat = self.seats.get(agent_id) or Seat(agent)
                seat.agent = agent
                self._add_seat(seat, time.time())
            return
        seat = self.seats.get(agent_id)
        if seat is None or message.get("by") == "acd" or "status" not in message:
            return
        status, now = Presence(message["status"]), time.time()
        if status is Presence.WRAP_UP:  # the agent asks for after-call work time
            seat.status, seat.reason, seat.wrap_until = Presence.READY, "", now + self.settings.acd_wrap_up_s
            self._set_activity(seat, "wrap_up", "")
        else:
            seat.status = status
            seat.reason = str(message.get("reason", "")) if status is Presence.NOT_READY else ""
            if status is Presence.READY and seat.activity == "wrap_up":
                self._set_activity(seat, "", "")  # the agent finished after-call work early
        self._sync(seat, now)

    # --- the clock: widening, wrap-up, announcements, callback offers, the heartbeat

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.tick(time.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ACD tick failed")

    async def tick(self, now: float) -> None:
        if self.ami.ready and now - self._last_beat >= 5:
            with contextlib.suppress(AmiError):
                await self.ami.setvar(None, "IVR_ACD_BEAT", str(int(now)))
                self._last_beat = now
        for seat in self.seats.values():
            if seat.activity == "wrap_up" and now >= seat.wrap_until:
                self._set_activity(seat, "", "")
        for waiter in list(self.waiters.values()):
            offer = self.router.offers.get(waiter.waiting.id)
            if offer and waiter.callback_number and not waiter.agent_answered and 0 < waiter.offer_deadline < now:
                self._not_answered(waiter, offer.agent_id, "NOANSWER", now)
        self._run(self.router.tick(now))
        with contextlib.suppress(RedisError, OSError):
            await self.directory.redis.set(SNAPSHOT_KEY, json.dumps(self.snapshot(), ensure_ascii=False), ex=10)
        for waiter in list(self.waiters.values()):
            if waiter.in_router and not waiter.callback_number and waiter.waiting.id in self.router.waiting:
                await self._announce(waiter, now)

    async def _announce(self, waiter: Waiter, now: float) -> None:
        waited = now - waiter.waiting.enqueued_at
        language = waiter.call.language
        text = ""
        if not waiter.callback_offered and waited >= max(5, waiter.patience_s - self.hold.offer_before_s):
            waiter.callback_offered = True
            text = self.hold.callback_offer.get(language, "")
            waiter.call.note(f"callback offered after {waited:.0f} s (patience {waiter.patience_s} s)")
        elif now - waiter.last_announced_at >= self.hold.announce_every_s:
            position = self.router.position(waiter.waiting.id) or 1
            minutes = self.estimated_wait_s(waiter.waiting, position) / 60
            text = self.hold.position.get(language, "").format(position=position, minutes=max(1, math.ceil(minutes)))
        if not text or self.render is None:
            return
        waiter.last_announced_at = now
        try:
            path = await self.render(text, language)
            await self.ami.setvar(waiter.channel, "IVR_ANNOUNCE", asterisk_path(path.with_suffix("")))
        except (AmiError, OSError, RuntimeError) as exc:
            log.debug("call %s: announcement skipped (%s)", waiter.call.call_id, exc)

    def estimated_wait_s(self, waiting: WaitingCall, position: int) -> float:
        """Position × average handling time ÷ agents signed in with the skill."""
        staffed = sum(1 for s in self.seats.values()
                      if s.status is not Presence.OFFLINE and s.agent.skills.get(waiting.skill, 0) >= 1)
        return position * self.stats.handle_s / max(1, staffed)

    # --- restart recovery and persistence

    async def _adopt(self, uid: str, channel: str) -> None:
        """A caller holding in Asterisk that this controller did not put there (it restarted)."""
        if not uid or uid in self.waiters:
            return
        try:
            raw = await self.directory.redis.get(f"ivr:call:{uid}")
        except (RedisError, OSError):
            raw = None
        call = CallRecord.from_dict(json.loads(raw)) if raw else CallRecord(call_id=uid, caller="")
        queue = call.queue or self.settings.fallback_queue
        call.note("adopted by a restarted controller while holding")
        self.expect(call, queue, queue, 0, None, (self.hold.patience_s, "default"))
        waiter = self.waiters[uid]
        waiter.channel, waiter.in_router = channel, True
        self._run(self.router.enqueue(waiter.waiting, time.time()))

    async def _store_callback(self, waiter: Waiter) -> None:
        data = {"call": waiter.call.to_dict(), "skill": waiter.waiting.skill, "queue": waiter.waiting.queue,
                "priority": waiter.waiting.priority, "owner": waiter.waiting.owner, "number": waiter.callback_number}
        try:
            await self.directory.redis.hset(CALLBACKS_KEY, waiter.call.call_id, json.dumps(data, ensure_ascii=False))
        except (RedisError, OSError) as exc:
            waiter.call.note(f"callback not stored in Redis ({exc}); kept in memory")

    async def _drop_stored_callback(self, call_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.directory.redis.hdel(CALLBACKS_KEY, call_id)

    def _restore_callback(self, data: dict[str, Any], now: float) -> None:
        call = CallRecord.from_dict(data["call"])
        if call.call_id in self.waiters:
            return
        self.expect(call, data["queue"], data["skill"], int(data.get("priority", 0)), data.get("owner"),
                    (self.hold.patience_s, "default"))
        waiter = self.waiters[call.call_id]
        waiter.callback_number, waiter.in_router = data["number"], True
        self._run(self.router.enqueue(waiter.waiting, now))

    def _persist(self, call: CallRecord, event: str, extra: dict[str, Any] | None = None) -> None:
        self._spawn(self.save(call, event, extra))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def snapshot(self) -> dict[str, Any]:
        """For `ivr status` and the supervisor wall."""
        return {
            "agents": {s.agent.id: {"shown": s.shown, "device": s.agent.device, "device_state": s.device_state}
                       for s in self.seats.values()},
            "waiting": {w.waiting.id: {"queue": w.waiting.queue, "position": self.router.position(w.waiting.id),
                                       "callback": bool(w.callback_number)}
                        for w in self.waiters.values() if w.waiting.id in self.router.waiting},
            "offers": {o.call_id: o.agent_id for o in self.router.offers.values()},
            "answered": self.stats.answered, "ronas": self.stats.ronas,
        }


def _device_of(channel: str) -> str:
    """PJSIP/1001-0000002a -> PJSIP/1001 (the device a channel belongs to)."""
    return channel.rsplit("-", 1)[0] if "-" in channel else channel


def _quote(text: str) -> str:
    return "".join(c for c in text if c not in '"\r\n<>')


def _as_list(reply: Message | list[Message]) -> list[Message]:
    return reply if isinstance(reply, list) else [reply]
