"""The ACD's bookkeeping (``Bookkeeping``): seats, waiters and the router's offers, with no Asterisk in sight.

What it keeps: a seat per agent in the directory (``seat.py``), a waiter per call or callback looking for a
person (``waiter.py``), and the pure router (``ivr.routing.router``) that matches them. What it does: tells
the router who can take a call (presence and device state joined), records what became of each offer
(answered, not answered, declined), keeps accepted callbacks (``callbacks.py``) and their attempts, runs the
clock (wrap-up ending, an unanswered callback ring counting as ring-no-answer, the router's widening), picks
the hold announcement, and writes what the supervisor wall and ``ivr status`` show.

What it does not do is talk to Asterisk: placing an offer (``_offer``) is the one thing it asks of its
subclass, the Asterisk side (``asterisk.py``), which also turns AMI events into the calls below. Kept apart
so each half reads on its own, and so this one needs no AMI to follow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from ivr.config import Settings
from ivr.records.call import CallRecord, Outcome
from ivr.records.customer import Contact, Customer
from ivr.routing.acd.callbacks import PendingCallbacks
from ivr.routing.acd.seat import Seat
from ivr.routing.acd.waiter import Waiter
from ivr.routing.agents import AgentDirectory, Presence
from ivr.routing.policy_settings import policy_from_settings
from ivr.routing.router import AgentState, Offer, Policy, Router, WaitingCall
from ivr.routing.screenpop import POPS_CHANNEL, build_pop
from ivr.voice.flow import Hold

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "ivr:acd"
"""The ACD's state as JSON, rewritten every second (ivr status, the supervisor wall, tests)."""

SaveHook = Callable[[CallRecord, str, dict[str, Any] | None], Awaitable[Any]]
"""Saves a call record with an event name (and extra fields for the event): the controller's CallStore.save."""


@dataclass(slots=True)
class AcdStats:
    """Handled-time average for the estimated wait."""

    handle_s: float = 180.0
    answered: int = 0
    offers: int = 0
    ronas: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Bookkeeping:
    """Seats, waiters and the router; every change that needs Asterisk goes through ``_offer`` (the subclass's)."""

    def __init__(self, settings: Settings, directory: AgentDirectory, hold: Hold, save: SaveHook,
                 policy: Policy | None = None) -> None:
        self.settings = settings
        self.directory = directory
        self.hold = hold
        self.save = save
        self.router = Router(policy or policy_from_settings(settings))
        self._learned: collections.OrderedDict[str, None] = collections.OrderedDict()
        """Call ids of contacts whose disposition the value model has learned (bounded)."""
        self.seats: dict[str, Seat] = {}
        self.by_device: dict[str, str] = {}
        self.waiters: dict[str, Waiter] = {}
        self.stats = AcdStats()
        self.callbacks = PendingCallbacks(directory.redis)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loaded = asyncio.Event()
        """Set once the directory is loaded: Asterisk's device states mean nothing before (no seats)."""

    # --- the directory

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
        for data in await self.callbacks.all():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._restore_callback(data, now)

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

    # --- calls from the controller

    def expect(self, call: CallRecord, queue: str, skill: str, priority: int, owner: str | None,
               patience: tuple[int, str], customer: Customer | None = None,
               history: list[Contact] | None = None) -> None:
        """The controller is handing ``call`` to the hold context; the router takes it when it arrives there."""
        call.queued_at = call.queued_at or time.time()
        waiting = WaitingCall(id=call.call_id, skill=skill, enqueued_at=call.queued_at, language=call.language,
                              dialect=call.dialect, vip=call.tier == "vip", priority=priority, owner=owner,
                              queue=queue, patience_s=patience[0] if patience[1] != "default" else None,
                              tier=call.tier if call.tier in ("standard", "gold", "vip") else None)
        self.waiters[call.call_id] = Waiter(call, waiting, patience_s=patience[0], patience_source=patience[1],
                                            customer=customer, history=list(history or []))
        self.learn(history or [], skill)

    def learn(self, contacts: list[Contact], default_skill: str = "") -> None:
        """Teach the value model the dispositions of a caller's contact history (each contact once).

        A contact's skill is its queue (else ``default_skill``); an unknown disposition is skipped with a warning
        naming the field, never raised into call handling."""
        triples = []
        for contact in contacts:
            key = contact.call_id or f"{contact.agent}:{contact.at}"
            if not contact.agent or not contact.disposition or key in self._learned:
                continue
            self._learned[key] = None
            while len(self._learned) > 100_000:
                self._learned.popitem(last=False)
            triples.append((contact.agent, contact.queue or default_skill, contact.disposition))
        for problem in self.router.model.learn_all(triples):
            log.warning("contact history: %s", problem)

    async def request_callback(self, call: CallRecord, queue: str, skill: str | None = None, priority: int = 0,
                               customer: Customer | None = None, history: list[Contact] | None = None) -> bool:
        """The caller accepted a callback in the flow (a ``callback_offer`` node) and hangs up: they keep a place
        in ``queue`` and are called back in turn, like a caller who pressed 1 while holding: an agent first
        (``[ivr-callback]``), then the caller's number, with the same attempts and retries.

        Kept in Redis (``CALLBACKS_KEY``) before this returns, so a controller restart calls back too.
        False when there is nobody to call back (the number is withheld).
        """
        if not call.caller:
            call.note("callback accepted, but the number is withheld: nobody to call back")
            log.warning("call %s: callback accepted without a number to call back", call.call_id)
            return False
        if call.call_id in self.waiters:
            return True
        skill = skill or queue
        owner = customer.case_owner(skill) if customer else None
        self.expect(call, queue, skill, priority, owner, (self.hold.patience_s, "default"), customer, history)
        waiter = self.waiters[call.call_id]
        waiter.callback_number, waiter.in_router = call.caller, True
        call.outcome = Outcome.CALLBACK
        call.note(f"caller accepted a callback in the flow; keeps a place in {queue}")
        await self._store_callback(waiter)
        self._run(self.router.enqueue(waiter.waiting, time.time()))
        self._persist(call, "call.callback")
        return True

    # --- offers and their outcomes

    def _run(self, offers: list[Offer]) -> None:
        for offer in offers:
            self._spawn(self._offer(offer))

    async def _offer(self, offer: Offer) -> None:
        """Ring the agent the router picked: the Asterisk side's to do (``Acd._offer``)."""
        raise NotImplementedError

    def _answered(self, waiter: Waiter, agent_id: str, now: float) -> None:
        # Predicted free: the running average handle time, plus after-call work (what a hold weighs).
        offer = self.router.answered(waiter.waiting.id,
                                     free_at=now + self.stats.handle_s + self.settings.acd_wrap_up_s)
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

    def _caller_left(self, waiter: Waiter, now: float) -> None:
        """The caller hung up (while holding, ringing or talking): the call leaves the line and frees its agent."""
        uid = waiter.call.call_id
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
            self._back_in_line_later(waiter, self.settings.acd_callback_retry_s)
        self._persist(call, "call.updated")

    def _back_in_line_later(self, waiter: Waiter, delay_s: float) -> None:
        """Put the call back in line after ``delay_s``, unless it has left (or is back) by then."""
        def again() -> None:
            call_id = waiter.waiting.id
            if (self.waiters.get(call_id) is waiter and call_id not in self.router.waiting
                    and call_id not in self.router.offers):
                self._run(self.router.enqueue(waiter.waiting, time.time()))

        asyncio.get_running_loop().call_later(delay_s, again)

    def _forget_callback(self, waiter: Waiter) -> None:
        self.waiters.pop(waiter.call.call_id, None)
        self._spawn(self.callbacks.drop(waiter.call.call_id))
        self._persist(waiter.call, "call.updated")

    async def publish_pop(self, waiter: Waiter, seat: Seat) -> None:
        """The agent's phone is ringing: their screen shows who and why (every web process hears it)."""
        await self._publish(waiter.call.call_id, seat.agent.id,
                            build_pop(waiter.call, waiter.customer, waiter.history, seat.agent.id))

    async def _publish(self, call_id: str, agent_id: str, pop: dict[str, Any]) -> None:
        """Keep the pop (``ivr:pop:<call id>``, what a reloaded page asks for) and push it to every web process."""
        payload = json.dumps({"agent": agent_id, "pop": pop}, ensure_ascii=False)
        try:
            async with self.directory.redis.pipeline(transaction=False) as pipe:
                pipe.set(f"ivr:pop:{call_id}", payload, ex=self.settings.call_record_ttl_s)
                pipe.publish(POPS_CHANNEL, payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("call %s: screen pop not published (%s)", call_id, exc)

    # --- presence

    def _sync(self, seat: Seat, now: float) -> None:
        """Tell the router whether the agent can take a call now, and, when busy on a call or in after-call
        work, when they are predicted free (the router may hold a caller for them)."""
        if seat.agent.id in self.router.agents:
            free_at: float | None = None
            if not seat.routable and seat.status is Presence.READY:
                if seat.activity == "wrap_up":
                    free_at = seat.wrap_until
                elif seat.activity == "on_call":
                    known = self.router.agents[seat.agent.id].free_at
                    free_at = known if known is not None else now + self.stats.handle_s + self.settings.acd_wrap_up_s
            self._run(self.router.set_ready(seat.agent.id, seat.routable, now, seat.shown, free_at=free_at))

    def _set_activity(self, seat: Seat, activity: str, call_id: str) -> None:
        if (seat.activity, seat.call_id) == (activity, call_id):
            return
        seat.activity, seat.call_id = activity, call_id
        self._spawn(self.directory.set_activity(seat.agent.id, activity, call_id))
        self._sync(seat, time.time())

    async def apply_presence(self, message: dict[str, Any]) -> None:
        agent_id = str(message.get("agent", ""))
        if message.get("directory"):
            agent = await self.directory.get(agent_id)
            if agent:
                entry = self.seats.get(agent_id) or Seat(agent)
                entry.agent = agent
                self._add_seat(entry, time.time())
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

    # --- the clock: wrap-up, unanswered callback rings, widening; the announcement's words

    def advance(self, now: float) -> None:
        """What time alone changes: after-call work ends, a callback's unanswered ring counts as ring-no-answer,
        and waiting calls widen their requirement (the router's tick)."""
        for seat in self.seats.values():
            if seat.activity == "wrap_up" and now >= seat.wrap_until:
                self._set_activity(seat, "", "")
        for waiter in list(self.waiters.values()):
            offer = self.router.offers.get(waiter.waiting.id)
            if offer and waiter.callback_number and not waiter.agent_answered and 0 < waiter.offer_deadline < now:
                self._not_answered(waiter, offer.agent_id, "NOANSWER", now)
        self._run(self.router.tick(now))

    def announcement(self, waiter: Waiter, now: float) -> str:
        """What a holding caller hears next: the callback offer (once, before patience runs out), or every
        ``announce_every_s`` their position and estimated wait; "" when nothing is due."""
        waited = now - waiter.waiting.enqueued_at
        language = waiter.call.language
        if not waiter.callback_offered and waited >= max(5, waiter.patience_s - self.hold.offer_before_s):
            waiter.callback_offered = True
            waiter.call.note(f"callback offered after {waited:.0f} s (patience {waiter.patience_s} s)")
            return self.hold.callback_offer.get(language, "")
        if now - waiter.last_announced_at >= self.hold.announce_every_s:
            position = self.router.position(waiter.waiting.id) or 1
            minutes = self.estimated_wait_s(waiter.waiting, position) / 60
            return self.hold.position.get(language, "").format(position=position, minutes=max(1, math.ceil(minutes)))
        return ""

    def estimated_wait_s(self, waiting: WaitingCall, position: int) -> float:
        """Position × average handling time ÷ agents signed in with the skill."""
        staffed = sum(1 for s in self.seats.values()
                      if s.status is not Presence.OFFLINE and s.agent.skills.get(waiting.skill, 0) >= 1)
        return position * self.stats.handle_s / max(1, staffed)

    # --- persistence

    async def _store_callback(self, waiter: Waiter) -> None:
        """Keep the callback in Redis (a restarted controller calls back too). Redis down: kept in memory, and stored
        in the background as soon as Redis answers (the caller is not held for it; a callback is never lost)."""
        try:
            await self.callbacks.put(waiter)
        except (RedisError, OSError) as exc:
            waiter.call.note(f"callback not stored in Redis yet ({exc}); kept in memory until it is")
            log.error("call %s: callback not stored in Redis (%s); kept in memory, stored when Redis is back",
                      waiter.call.call_id, exc)
            self._spawn(self._store_callback_later(waiter))

    async def _store_callback_later(self, waiter: Waiter, first_s: float = 0.5, max_s: float = 5.0) -> None:
        delay = first_s
        while self.waiters.get(waiter.call.call_id) is waiter:  # until it is called back or given up
            await asyncio.sleep(delay)
            delay = min(2 * delay, max_s)
            try:
                await self.callbacks.put(waiter)
            except (RedisError, OSError):
                continue
            log.info("call %s: callback stored in Redis after the outage", waiter.call.call_id)
            return

    def _restore_callback(self, data: dict[str, Any], now: float) -> None:
        call = CallRecord.from_dict(data["call"])
        if call.call_id in self.waiters:
            return
        self.expect(call, data["queue"], data["skill"], int(data.get("priority", 0)), data.get("owner"),
                    (self.hold.patience_s, "default"))
        waiter = self.waiters[call.call_id]
        waiter.callback_number, waiter.in_router = data["number"], True
        self._run(self.router.enqueue(waiter.waiting, now))

    async def write_snapshot(self) -> None:
        """``snapshot()`` where ``ivr status``, the supervisor wall and the tests read it (expires unless rewritten)."""
        with contextlib.suppress(RedisError, OSError):
            await self.directory.redis.set(SNAPSHOT_KEY, json.dumps(self.snapshot(), ensure_ascii=False), ex=10)

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
                                       "priority": w.waiting.priority, "callback": bool(w.callback_number)}
                        for w in self.waiters.values() if w.waiting.id in self.router.waiting},
            "offers": {o.call_id: o.agent_id for o in self.router.offers.values()},
            "answered": self.stats.answered, "ronas": self.stats.ronas,
            "decisions": self.decisions(),
            "service_levels": {queue: round(level, 3) for queue in {w.waiting.queue for w in self.waiters.values()}
                               if (level := self.router.service_level(queue)) is not None},
        }

    def decisions(self, now: float | None = None) -> list[dict[str, Any]]:
        """The live routing decisions, for the supervisor wall: per waiting or offered call, its queue, the value
        estimate of the match (offered) and why it waits (held for a better agent, widened, nobody free)."""
        now = time.time() if now is None else now
        shown: list[dict[str, Any]] = []
        for waiter in self.waiters.values():
            call_id = waiter.waiting.id
            entry: dict[str, Any] = {"call_id": call_id, "queue": waiter.waiting.queue,
                                     "waited_s": int(max(0.0, now - waiter.waiting.enqueued_at))}
            offer = self.router.offers.get(call_id)
            waiting = self.router.waiting.get(call_id)
            if offer is not None:
                entry.update(state="offered", agent=offer.agent_id, rule=offer.rule,
                             fcr=None if offer.fcr != offer.fcr else round(offer.fcr, 3),
                             value=None if offer.value != offer.value else round(offer.value, 3),
                             why=offer.why[-1] if offer.why else "")
            elif waiting is not None:
                held = waiting.held_for is not None
                entry.update(state="held" if held else "waiting", agent=waiting.held_for, level=int(waiting.level),
                             why=waiting.hold_note if held else
                             f"level {int(waiting.level)}: no qualified agent free")
            else:
                continue
            shown.append(entry)
        return shown[:200]
