"""The ACD's Asterisk side (``Acd``): the bookkeeping (``bookkeeping.py``) wired to Asterisk over AMI.

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
``[ivr-callback]`` (channel ``cb-<call id>-<attempt>``), which then dials the customer
(``IVR_CALLBACK_DIAL``).

So here: AMI events in (UserEvents of the dialplan, device states, Dial and Hangup), offers out (the redirect,
the originate), a decline from the web pages (hanging up the ringing leg), the heartbeat, the announcements
set on holding channels, and adopting callers found holding (or being offered) after a restart. Everything
that needs no AMI is the bookkeeping's, which this class extends.

Calls Asterisk's own queues ring agents with (the dialplan's fallback while the controller was away, or no ACD):
the agent's seat follows them (ringing, on a call) and their pop is built from what the IVR learned
(``fallback.py``), so the agent sees who is calling and why, not an empty card.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk.message import Message
from redis.exceptions import RedisError

from ivr.config import Settings, asterisk_path
from ivr.records.call import CallRecord
from ivr.records.store import follow_channels
from ivr.routing.acd import fallback
from ivr.routing.acd.bookkeeping import Bookkeeping, SaveHook
from ivr.routing.acd.seat import BUSY_DEVICE, RINGING_DEVICE
from ivr.routing.acd.waiter import Waiter
from ivr.routing.agents import PRESENCE_CHANNEL, AgentDirectory
from ivr.routing.customers import CustomerStore
from ivr.routing.router import Offer, Policy
from ivr.telephony.ami import AmiClient, AmiError
from ivr.voice.flow import Hold
from ivr.voice.navigator.learned import Learned
from ivr.voice.navigator.learned import redis_key as learned_key

log = logging.getLogger(__name__)

COMMANDS_CHANNEL = "ivr:acd:commands"
"""Pub/sub channel of commands from the web pages: {"type": "decline", "call_id", "agent"}."""
OFFER_RETRY_S = 1.0
"""A call whose offer Asterisk refused (AMI down, the caller gone) is back in line after this long."""


class Acd(Bookkeeping):
    """The ACD the controller runs: the bookkeeping, Asterisk's events, and the offers placed over AMI."""

    def __init__(self, settings: Settings, ami: AmiClient, directory: AgentDirectory, hold: Hold,
                 save: SaveHook, render: Callable[[str, str], Awaitable[Any]] | None = None,
                 policy: Policy | None = None) -> None:
        super().__init__(settings, directory, hold, save, policy)
        self.ami = ami
        self.render = render
        self.customers = CustomerStore(directory.redis)
        """Customer cards for the pops of calls Asterisk's own queues offer (``fallback.py``)."""
        self._runner: list[asyncio.Task[None]] = []
        self._last_beat = 0.0

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

    async def on_ami_connected(self) -> list[Message]:
        """After (re)connecting to Asterisk: device states, and callers already holding or being offered (a restarted
        controller takes them over in their place). Returns the channels Asterisk listed (CoreShowChannel events)."""
        # AMI may log in before the directory is loaded; the states must land on known seats.
        await self._loaded.wait()
        channels: list[Message] = []
        try:
            for event in _as_list(await self.ami.action({"Action": "DeviceStateList"})):
                self.on_ami_event(event)
            channels = [e for e in _as_list(await self.ami.action({"Action": "CoreShowChannels"}))
                        if e.get("Event") == "CoreShowChannel"]
            for event in channels:
                if event.get("Context") == "ivr-hold":
                    await self._adopt(event.get("Uniqueid", ""), event.get("Channel", ""))
                elif event.get("Context") == "ivr-offer":
                    await self._adopt_offered(event)
        except AmiError as exc:
            log.warning("ACD could not read Asterisk's state: %s", exc)
        return channels

    # --- AMI events

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
            elif name == "AgentCalled":
                self._on_queue_ring(event)
            elif name in ("AgentRingNoAnswer", "AgentDump", "AgentConnect"):
                self._on_queue_ring_end(name, event)
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
        elif status and waiter.waiting.id not in self.router.offers:
            # An offer a previous controller made (adopted ringing): the agent is free again, and the caller, back
            # in the waiting room (IvrHold), rejoins the line in their place.
            if seat.call_id == waiter.call.call_id:
                self._set_activity(seat, "", "")
        elif status:
            self._not_answered(waiter, seat.agent.id, status, now)

    def _on_hangup(self, uid: str, now: float) -> None:
        if uid.startswith("cb-"):  # the agent leg of a callback
            waiter = self.waiters.get(uid.removeprefix("cb-").rsplit("-", 1)[0])
            if waiter and not waiter.agent_answered and waiter.waiting.id in self.router.offers:
                self._not_answered(waiter, self.router.offers[waiter.waiting.id].agent_id, "NOANSWER", now)
            return
        waiter = self.waiters.get(uid)
        if waiter is None:
            for seat in self.seats.values():  # a caller Asterisk's queue was ringing an agent with
                if seat.call_id == uid and seat.activity == "ringing":
                    self._set_activity(seat, "", "")
            return
        if waiter.callback_number:
            return  # a callback keeps its place after the caller hangs up
        self._caller_left(waiter, now)

    # --- calls Asterisk's own queues offer (the dialplan's fallback)

    def _on_queue_ring(self, event: Message) -> None:
        """Asterisk's queue rings an agent (AgentCalled): their seat is ringing, and their screen shows the call."""
        seat = self.seats.get(self.by_device.get(event.get("Interface", ""), ""))
        uid = event.get("Uniqueid", "")
        if seat is None or not uid:
            return
        self._set_activity(seat, "ringing", uid)
        waiter = self.waiters.get(uid)
        if waiter is not None:
            self._spawn(self.publish_pop(waiter, seat))
        else:
            self._spawn(self._publish_fallback_pop(uid, event.get("Channel", ""), event.get("CallerIDNum", ""),
                                                   event.get("Queue", ""), seat.agent.id))

    def _on_queue_ring_end(self, name: str, event: Message) -> None:
        seat = self.seats.get(self.by_device.get(event.get("Interface", ""), ""))
        uid = event.get("Uniqueid", "")
        if seat is None or seat.call_id != uid:
            return
        if name == "AgentConnect":
            self._set_activity(seat, "on_call", uid)
        elif seat.activity == "ringing":  # not answered, or the caller left: free again
            self._set_activity(seat, "", "")

    async def _publish_fallback_pop(self, uid: str, channel: str, caller: str, queue: str, agent_id: str) -> None:
        found = await fallback.gather(uid, channel, self.directory.redis, self.ami, self.customers)
        call = fallback.fallback_record(uid, caller if caller.replace("+", "").isdigit() else "", queue, found)
        await self._publish(uid, agent_id, fallback.fallback_pop(call, found, agent_id))
        log.info("call %s: Asterisk's %s rings %s; pop from %s (intent %s)", uid, queue, agent_id, found.source,
                 call.intent or "none")

    # --- offers placed in Asterisk

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
            # Most likely the caller hung up meanwhile; otherwise the call goes back in line, after a pause:
            # at once, an AMI that is down would be asked again and again (the same agent is still free).
            log.warning("call %s: offer to %s failed (%s)", offer.call_id, seat.agent.id, exc)
            waiter.call.routing[-1]["result"] = f"offer failed: {exc}"
            seat.call_id = ""
            if self.router.offers.get(offer.call_id) == offer:
                self._run(self.router.withdraw(offer.call_id, time.time()))
                if waiter.callback_number or waiter.channel:
                    self._back_in_line_later(waiter, OFFER_RETRY_S)
            self._sync(seat, time.time())
        self._persist(waiter.call, "call.updated")

    def callback_dial(self, number: str) -> str:
        """Internal extensions (and the simulator's phone) directly; everyone else through the trunk."""
        local = {*self.settings.desk_extensions, *self.settings.field_extensions, self.settings.sim_extension}
        return f"PJSIP/{number}" if number in local else self.settings.callback_dial.format(number=number)

    # --- commands from the web pages, presence from elsewhere

    async def _presence_feed(self) -> None:
        """Follow presence changes and commands made elsewhere (CLI, web pages)."""
        async def handle(channel: str, message: dict[str, Any]) -> None:
            if channel == COMMANDS_CHANNEL:
                await self.apply_command(message)
            else:
                await self.apply_presence(message)

        await follow_channels(self.directory.redis, (PRESENCE_CHANNEL, COMMANDS_CHANNEL), handle, "ACD")

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

    # --- the clock: the heartbeat, the bookkeeping's clock, announcements

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
        self.advance(now)
        await self.write_snapshot()
        for waiter in list(self.waiters.values()):
            if waiter.in_router and not waiter.callback_number and waiter.waiting.id in self.router.waiting:
                await self._announce(waiter, now)

    async def _announce(self, waiter: Waiter, now: float) -> None:
        text = self.announcement(waiter, now)
        if not text or self.render is None:
            return
        waiter.last_announced_at = now
        try:
            path = await self.render(text, waiter.call.language)
            await self.ami.setvar(waiter.channel, "IVR_ANNOUNCE", asterisk_path(path.with_suffix("")))
        except (AmiError, OSError, RuntimeError) as exc:
            log.debug("call %s: announcement skipped (%s)", waiter.call.call_id, exc)

    # --- restart recovery

    async def _adopt(self, uid: str, channel: str, enqueue: bool = True) -> None:
        """A caller holding in Asterisk that this controller did not put there (it restarted): back in line in their
        place (the time they joined it), with the queue and priority the IVR learned."""
        if not uid or uid in self.waiters:
            return
        raw, facts = None, {}
        try:
            async with self.directory.redis.pipeline(transaction=False) as pipe:
                pipe.get(f"ivr:call:{uid}")
                pipe.hgetall(learned_key(uid))
                raw, facts = await pipe.execute()
        except (RedisError, OSError):
            pass
        learned = Learned.from_variables(facts or {})
        call = CallRecord.from_dict(json.loads(raw)) if raw else CallRecord(call_id=uid, caller="")
        queue = call.queue or learned.queue or self.settings.fallback_queue
        call.note("adopted by a restarted controller while holding")
        self.expect(call, queue, queue, learned.priority if learned.queue == queue else 0, None,
                    (self.hold.patience_s, "default"))
        waiter = self.waiters[uid]
        waiter.channel = channel
        if enqueue:
            waiter.in_router = True
            self._run(self.router.enqueue(waiter.waiting, time.time()))

    async def _adopt_offered(self, event: Message) -> None:
        """A caller a previous controller was offering to an agent ([ivr-offer]): followed, not offered again.

        Ringing: the seat rings with the call; the Dial's end says what happened (answered, or back to the waiting
        room, where the caller rejoins the line in their place). Bridged: the agent has them; the seat is on the call.
        """
        uid = event.get("Uniqueid", "")
        await self._adopt(uid, event.get("Channel", ""), enqueue=False)
        waiter = self.waiters.get(uid)
        device = str(event.get("ApplicationData", "")).split(",")[0] if event.get("Application") == "Dial" else ""
        seat = self.seats.get(self.by_device.get(device, ""))
        if waiter is None or seat is None:
            return
        if event.get("BridgeId"):
            waiter.call.agent = waiter.call.agent or seat.agent.id
            waiter.call.answered_at = waiter.call.answered_at or time.time()
            self._set_activity(seat, "on_call", uid)
        else:
            self._set_activity(seat, "ringing", uid)
        self._persist(waiter.call, "call.updated")


def _device_of(channel: str) -> str:
    """PJSIP/1001-0000002a -> PJSIP/1001 (the device a channel belongs to)."""
    return channel.rsplit("-", 1)[0] if "-" in channel else channel


def _quote(text: str) -> str:
    return "".join(c for c in text if c not in '"\r\n<>')


def _as_list(reply: Message | list[Message]) -> list[Message]:
    return reply if isinstance(reply, list) else [reply]
