"""The controller: one asyncio process that Asterisk calls for every hotline call.

This module wires the protocols (FastAGI, AudioSocket, AMI) to the services
(navigation, the call store). A call's path through it:

1. Asterisk runs ``AGI(agi://.../hotline)``; we read the caller's number.
2. We issue an AudioSocket session UUID and ``EXEC Dial(AudioSocket/<us>/<uuid>/c(slin16 or slin),,g)``
   on the channel: Asterisk connects back with the caller's audio, at 16 kHz when the caller's leg is
   wideband (G.722, Opus). The ``AudioSocket()`` application cannot: it always sends 8 kHz.
3. The navigator walks the flow over that audio and decides on a queue.
4. We close the AudioSocket (Dial returns: its ``g`` option goes on), set ``IVR_ACTION=hold`` and
   ``IVR_QUEUE`` and return: the caller holds in the dialplan's waiting room while the
   ACD (ivr/routing/acd/) finds the person. Without agents in the directory (or without AMI),
   ``IVR_QUEUE`` alone sends the call to Asterisk's own queue.

Any failure on the way leaves IVR_QUEUE empty or the fallback queue: the
dialplan sends the caller to a person.

The flow is the live version in Redis (ivr.voice.versions; seeded from dialplans/hotline.yaml, which is
also what runs while Redis is unreachable). A publish reaches us on ``ivr:flows``: the new version is
validated, its prompts rendered, and it takes the calls that start from then on; a call keeps the
navigator (and so the version) it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import time
from typing import Any

from panoramisk.message import Message
from redis.exceptions import RedisError

from ivr import metrics, sdnotify
from ivr.config import Settings, asterisk_path
from ivr.privacy.redaction import warm_up as redaction_warm_up
from ivr.privacy.verifier import HttpVerifier
from ivr.recordings.index import RecordingIndex
from ivr.recordings.library import CallRecorder
from ivr.recordings.quality.worker import WorkerProcess as QualityWorkerProcess
from ivr.records.call import CallRecord, Outcome
from ivr.records.customer import Contact, Customer
from ivr.records.store import CallStore, call_key, follow_channels
from ivr.routing.acd import Acd
from ivr.routing.agents import AgentDirectory
from ivr.routing.crm import crm_from_settings
from ivr.routing.customers import CustomerStore
from ivr.telephony.agi import AgiSession, CallHungUp, FastAgiServer
from ivr.telephony.ami import AmiClient, AmiError
from ivr.telephony.audiosocket import AudioSession, AudioSocketServer, dial_format
from ivr.voice.flow import Flow, flow_queue_name, load_flow
from ivr.voice.navigator import Decision, DecisionKind, Learned, Navigator, Speech
from ivr.voice.navigator.learned import changes as learned_changes
from ivr.voice.navigator.learned import learned_of
from ivr.voice.navigator.learned import redis_key as learned_key
from ivr.voice.training.archiving import CallArchiver
from ivr.voice.training.retention import DailyPurge
from ivr.voice.validation import Context, load_context
from ivr.voice.versions import FLOWS_CHANNEL, AuditLog, FlowStore, Version, renderer_prerender
from ivr.web.app import serve_web, web_redis
from ivr.webrtc.gateway import AppCallGateway, AppCallRecord

log = logging.getLogger(__name__)

#: The flow the hotline runs (the AGI route "hotline").
FLOW_ID = "hotline"


class Controller:
    def __init__(self, settings: Settings, navigator: Navigator) -> None:
        self.settings = settings
        self.navigator = navigator
        """The navigator new calls get; replaced (never changed) when a new version of the flow goes live."""
        self.flow_version: int | None = None
        """The version of the flow ``navigator`` runs; None: the flow file (Redis unavailable at start)."""
        self._refused_version: int | None = None
        self.agi = FastAgiServer(settings.agi_host, settings.agi_port, settings.agi_environment_timeout)
        self.agi.route("hotline", self.handle_hotline)
        self.audio = AudioSocketServer(settings.audiosocket_host, settings.audiosocket_port)
        self.ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                             settings.ami_secret.get_secret_value())
        self.store = CallStore(settings.redis_url, settings.call_record_ttl_s)
        self.customers = CustomerStore(self.store.redis, crm=crm_from_settings(settings))
        self.flows = FlowStore(self.store.redis, settings=settings, context=self._flow_context,
                               prerender=renderer_prerender(navigator.speech.renderer, prompt_rates(settings)))
        self.archiver = CallArchiver(settings.archive_file, FLOW_ID)
        """The durable archive of finished calls (trainer loop, reports); written in a thread, never failing a call."""
        self.recordings = CallRecorder.from_settings(settings)
        """Call recordings made findable at hang-up (stereo WAV, hashed into the manifest, indexed for /qa)."""
        self.quality = QualityWorkerProcess(settings)
        """The quality checks' worker process (niced): transcribes each recorded call's agent, scores and flags it."""
        self.acd = Acd(settings, self.ami, AgentDirectory(self.store.redis), navigator.flow.hold, self._acd_save,
                       render=navigator.speech.renderer.render_async)
        self.ami.on("*", self.on_ami_event)
        self.ami.on("*", self.acd.on_ami_event)
        self.app_calls = AppCallGateway(settings, self.ami, self.store.redis, on_end=self._app_call_ended)
        """Customers calling from the bank's app over WebRTC (ivr/webrtc/): bridged into the hotline."""
        self.ami.on_connected = self.on_ami_connected
        self.facts = ChannelFacts(self.ami, self.store.redis, settings.call_record_ttl_s)
        """What the IVR learned of each caller, put on their channel (the dialplan's fallback reads it) and in Redis."""
        self.calls: dict[str, CallRecord] = {}
        """Live calls by call id (the hotline channel's uniqueid), until Asterisk reports the hangup."""
        self.started_at = time.time()
        self.calls_handled = 0
        self._background: set[asyncio.Future[bool]] = set()
        self.web: asyncio.Task[None] | None = None
        """The web pages' server (ivr/web/app.py), once started."""
        self._flow_updates: asyncio.Task[None] | None = None
        self.purges = DailyPurge(settings.archive_file, settings.recordings_dir, settings.turn_audio_retention_days,
                                 AuditLog(self.store.redis).record,
                                 held=RecordingIndex(settings.recordings_index_file).held_ids)
        """Old turn audio, purged once a day in a thread (audited as ``ivr recordings purge-turns``)."""
        self._purging: asyncio.Task[None] | None = None

    # --- lifecycle

    async def start(self) -> None:
        try:  # before the first call: it gets the live version
            await self.follow_live_flow()
        except Exception as exc:  # Redis unreachable: the flow file, until Redis is back
            log.warning("flow versions unavailable (%s): running %s from its file", exc, self.navigator.flow.id)
        self._flow_updates = asyncio.create_task(self._flow_feed(), name="flow-updates")
        self._purging = asyncio.create_task(self.purges.run(), name="turn-audio-purge")
        self.recordings.start()  # a full recordings disk is logged when it fills: calls go on, unrecorded
        self.quality.start()
        if not self.settings.ami_secret.get_secret_value():
            log.error("IVR_AMI_SECRET is empty: run `ivr setup`; AMI stays disconnected, calls still work")
        else:
            self.ami.start()
        await self.audio.start()
        await self.acd.start()
        await self.agi.start()
        await self.app_calls.start()
        # The agents' and supervisors' pages, in this loop; a busy port is logged and calls go on without them.
        self.web_redis = web_redis(self.settings)
        self.web = serve_web(self.settings, self.web_redis, self.acd, app_calls=self.app_calls)

    async def stop(self) -> None:
        await self.quality.stop()
        await self.recordings.stop()
        for task in (self._flow_updates, self._purging):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.web is not None:
            self.web.cancel()  # closes the pages' sockets and stops listening, within a few seconds
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.web
            await self.web_redis.aclose()
        await self.app_calls.stop()
        await self.agi.stop()
        await self.acd.stop()
        await self.audio.stop()
        self.ami.close()
        await self.store.close()

    async def serve_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("controller ready (pid %d)", os.getpid())
        # Whoever supervises us (systemd, or `ivr up`'s supervisor) hears that calls are taken, then a ping per turn
        # of this loop: a loop stuck for the watchdog's time gets this process killed and replaced.
        sdnotify.notify(sdnotify.READY, f"STATUS=serving calls (pid {os.getpid()})")
        watched = sdnotify.watchdog_interval_s() is not None
        while not stop.is_set():
            if watched:
                sdnotify.notify(sdnotify.WATCHDOG)
            await self.store.heartbeat(self.health())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        log.info("controller stopping; calls in the IVR fall through to the dialplan's queue")
        sdnotify.notify(sdnotify.STOPPING)
        await self.stop()

    def health(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "started_at": round(self.started_at, 3),
            "ami_ready": int(self.ami.ready),
            "ami_logins": self.ami.logins,
            "ami_error": self.ami.last_error,
            "calls_live": len(self.calls),
            "calls_handled": self.calls_handled,
            "agi_active": len(self.agi.active),
            "audiosocket_rejected": self.audio.rejected,
            "acd_agents": len(self.acd.seats),
            "acd_waiting": len(self.acd.router.waiting),
            "acd_offers": len(self.acd.router.offers),
            "flow_version": self.flow_version or 0,
            **self.app_calls.health(),
            "at": round(time.time(), 3),
        }

    # --- the flow's versions

    async def _flow_context(self) -> Context:
        """What a new version is validated against (the speech model's vocabulary only warns: not read here)."""
        return dataclasses.replace(await load_context(self.settings, self.store.redis), vocabulary=None)

    async def follow_live_flow(self) -> None:
        """Run the live version of the flow for new calls, if it is not the one running (seeded the first time)."""
        version = await self.flows.live(FLOW_ID)
        if version is None:
            await self.flows.seed(FLOW_ID, self.settings.dialplans_dir / f"{FLOW_ID}.yaml")
            version = await self.flows.live(FLOW_ID)
        if version is not None and version.number not in (self.flow_version, self._refused_version):
            await self._switch(version)

    async def _switch(self, version: Version) -> None:
        report = await self.flows.validate(FLOW_ID, version.text)
        if not report.ok or report.flow is None:
            self._refused_version = version.number
            log.error("flow %s version %d refused, new calls stay on version %s: %s", FLOW_ID, version.number,
                      self.flow_version, "; ".join(p.format() for p in report.errors[:5]))
            return
        navigator = self._navigator_for(report.flow)
        rendered = await asyncio.to_thread(navigator.speech.renderer.prerender, navigator.prompts(),
                                           prompt_rates(self.settings))
        # One assignment, no await in between: a call takes either the old pair or the new one.
        self.navigator, self.flow_version = navigator, version.number
        self.acd.hold = report.flow.hold
        log.info("flow %s version %d live for new calls (%s by %s; %d prompts rendered new)", FLOW_ID,
                 version.number, version.action, version.author, rendered)

    def _navigator_for(self, flow: Flow) -> Navigator:
        current = self.navigator
        return Navigator(flow, current.speech, current.recordings_dir, customers=self.customers.by_phone,
                         on_listen=self.on_listen, on_turn=self.store.append_turn,
                         on_prompt_done=self.on_prompt_done, verify=current.verify, recording=current.recording,
                         on_learned=self.on_learned)

    async def _flow_feed(self) -> None:
        """Follow publishes (ivr:flows); after a lost subscription, catch up with what went live meanwhile."""
        async def handle(_channel: str, message: dict[str, Any]) -> None:
            if message.get("flow") == FLOW_ID:
                await self.follow_live_flow()

        await follow_channels(self.store.redis, (FLOWS_CHANNEL,), handle, "flow updates",
                              on_subscribed=self.follow_live_flow)

    # --- a call

    async def handle_hotline(self, agi: AgiSession) -> None:
        env = agi.env
        # The flow this call walks to its end, whatever is published meanwhile.
        navigator, flow_version = self.navigator, self.flow_version
        call = CallRecord(call_id=env.uniqueid, caller=env.caller, channel=env.channel,
                          language=navigator.flow.languages[0], flow_version=flow_version)
        self.calls[call.call_id] = call
        self.calls_handled += 1
        metrics.CALLS.inc()
        app_customer = self.app_calls.identify(call)  # an app call: the customer its signed token names
        customer = await (self.customers.by_id(app_customer) if app_customer else self.customers.by_phone(call.caller))
        if app_customer and customer is not None and customer.phones and not call.caller:
            call.caller = customer.phones[0]  # the number on file (not a caller ID): self-service and callbacks
        call.apply_customer(customer, navigator.flow.languages)
        log.info("call %s from %s (%s) on %s", call.call_id, call.caller or "withheld",
                 call.customer or "unknown caller", call.channel)
        await self.store.save(call, "call.started")
        await self.facts.at_start(call, agi)
        try:
            decision = await self._navigate(call, agi, navigator)
        except CallHungUp:
            decision = Decision.caller_hung_up()
        except Exception as exc:
            # Never a dead end: log it, and the caller goes to a person: the one their intent named, if they gave one.
            log.exception("call %s: navigation failed", call.call_id)
            metrics.error(metrics.ErrorKind.NAVIGATION)
            call.note(f"controller error: {type(exc).__name__}: {exc}")
            learned = self.facts.known.get(call.call_id) or Learned()
            decision = Decision(DecisionKind.QUEUE, queue=learned.queue or self.settings.fallback_queue,
                                priority=learned.priority, reason="controller error")
        call.note(f"decision: {decision.reason}")
        await self._hand_over(call, agi, decision, customer, navigator)
        if decision.line_failed:
            # Asterisk resets the socket when the caller hangs up mid-prompt: that is no fault. A line that
            # broke under a caller who is still there is one (they went to a person all the same).
            if agi.hung_up:
                call.note("the caller had hung up: the line ended with the call")
            else:
                metrics.error(metrics.ErrorKind.AUDIO_LINE)
                log.error("call %s: the audio line failed with the caller on the line; handed to a person",
                          call.call_id)
        await self.store.save(call, "call.routed" if call.queue else "call.updated")
        # The IVR part is over: archived now (and completed when the call ends), off the call's path.
        self._later(self.archiver.archive(call, navigator.flow.agent_intent, time.time()))

    async def _hand_over(self, call: CallRecord, agi: AgiSession, decision: Decision,
                         customer: Customer | None = None, navigator: Navigator | None = None) -> None:
        """Tell the dialplan what to do next, and record the outcome."""
        variables: dict[str, str] = {}
        if decision.kind is DecisionKind.QUEUE and decision.queue:
            call.queue, call.outcome = decision.queue, Outcome.QUEUED
            variables = {"IVR_QUEUE": decision.queue, "IVR_PRIORITY": str(decision.priority)}
            if self.acd.accepting and not agi.hung_up:
                variables.update(await self._hold_for_acd(call, decision, customer, navigator or self.navigator))
        elif decision.kind is DecisionKind.TRANSFER and decision.target:
            call.transfer_to, call.queue, call.outcome = decision.target, decision.queue, Outcome.QUEUED
            variables = {"IVR_ACTION": "transfer", "IVR_TARGET": decision.target,
                         "IVR_QUEUE": decision.queue or self.settings.fallback_queue}
        elif decision.kind is DecisionKind.CALLBACK:
            call.queue, call.outcome = decision.queue, Outcome.CALLBACK
            await self.store.request_callback(call)  # the audit trail (ivr:callbacks)
            # The ACD keeps the caller's place and calls back in turn: an agent first, then the caller.
            await self.acd.request_callback(call, decision.queue or self.settings.fallback_queue,
                                            decision.skills[0] if decision.skills else None, decision.priority,
                                            customer)
            variables = {"IVR_ACTION": "hangup"}
        else:
            if decision.caller_left:
                call.outcome = Outcome.ABANDONED
            else:
                call.outcome = Outcome.SELF_SERVICE if call.self_served else Outcome.ABANDONED
            variables = {"IVR_ACTION": "hangup"}
        if agi.hung_up:
            return
        with contextlib.suppress(CallHungUp):
            for name, value in variables.items():
                await agi.set_variable(name, value)

    async def _hold_for_acd(self, call: CallRecord, decision: Decision, customer: Customer | None,
                            navigator: Navigator) -> dict[str, str]:
        """Hand the call to the ACD: what the router needs to know, and what the waiting room plays."""
        skill = decision.skills[0] if decision.skills else (decision.queue or self.settings.fallback_queue)
        owner = customer.case_owner(skill) if customer else None
        hold = navigator.flow.hold
        patience = (hold.patience_s, "default")
        if customer:
            try:
                patience = await asyncio.wait_for(self.customers.patience_for(customer, hold.patience_s), 0.3)
            except Exception as exc:  # history unavailable: the flow's default is a fine answer
                log.debug("call %s: patience not looked up (%s)", call.call_id, exc)
        history = []
        if customer:
            with contextlib.suppress(Exception):  # the screen shows less; the call goes on
                history = await asyncio.wait_for(self.customers.history(customer.id, 10), 0.3)
        self.acd.expect(call, decision.queue or self.settings.fallback_queue, skill, decision.priority, owner,
                        patience, customer, history)
        variables = {"IVR_ACTION": "hold"}
        accepted = hold.callback_accepted.get(call.language)
        if accepted:
            with contextlib.suppress(Exception):
                path = await navigator.speech.renderer.render_async(accepted, call.language)
                variables["IVR_CALLBACK_ACCEPTED"] = asterisk_path(path.with_suffix(""))
        return variables

    async def _navigate(self, call: CallRecord, agi: AgiSession, navigator: Navigator) -> Decision:
        session_id, connected = self.audio.expect(call.call_id)
        native = await agi.get_variable("CHANNEL(audionativeformat)") or ""
        heard_as = dial_format(native, self.settings.wideband)
        target = (f"AudioSocket/{self.settings.audiosocket_host}:{self.settings.audiosocket_port}"
                  f"/{session_id}/c({heard_as})")
        log.debug("call %s: caller's leg is %s: hearing it as %s", call.call_id, native or "?", heard_as)
        # EXEC Dial returns only when the socket closes, so it runs beside the navigation; "g": the call
        # goes on here after the AudioSocket leg hangs up.
        audiosocket_app = asyncio.create_task(agi.exec("Dial", target, "", "g"), name=f"audiosocket-{call.call_id}")
        try:
            started: set[asyncio.Future[Any]] = {audiosocket_app, connected}
            done, _ = await asyncio.wait(started,
                                         timeout=self.settings.audiosocket_connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if connected not in done:
                self.audio.forget(session_id)
                if audiosocket_app.done() and isinstance(audiosocket_app.exception(), CallHungUp):
                    raise CallHungUp("caller hung up before audio started")
                reason = "AudioSocket did not connect" if not done else "the AudioSocket dial ended before connecting"
                call.note(f"{reason}: to a person")
                log.error("call %s: %s", call.call_id, reason)
                metrics.error(metrics.ErrorKind.AUDIOSOCKET_CONNECT)
                return Decision(DecisionKind.QUEUE, queue=self.settings.fallback_queue, reason=reason)
            session: AudioSession = connected.result()
            try:
                decision = await navigator.run(call, session)
            finally:
                call.heard_at_hz = session.rate if session.frames_in else None
                await session.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(audiosocket_app), 5)
            if session.end is not None and session.end.caller_left and decision.kind is DecisionKind.HANGUP:
                raise CallHungUp(session.close_reason)
            return decision
        finally:
            if not audiosocket_app.done():
                audiosocket_app.cancel()
            with contextlib.suppress(BaseException):
                await audiosocket_app

    async def on_listen(self, call: CallRecord, node: str, prompt_s: float) -> None:
        # The simulator (and the supervisor wall) follow calls through these events.
        await self.store.save(call, "call.listening", {"node": node, "prompt_s": round(prompt_s, 3)})

    async def on_learned(self, call: CallRecord, learned: Learned) -> None:
        # Off the call's path: the facts go to the channel and Redis in the background, in order.
        self.facts.tell(call, learned)

    async def on_prompt_done(self, call: CallRecord, node: str) -> None:
        # When the prompt truly ended (played out or cut): under load the paced playback outlasts its seconds.
        await self.store.save(call, "call.prompt_done", {"node": node})

    # --- what Asterisk tells us about calls after the IVR

    async def on_ami_connected(self) -> None:
        """After every AMI login: the ACD reads device states and takes over holding callers; then the calls a previous
        controller took, still up in Asterisk, are followed again (their outcome and end get recorded)."""
        channels = await self.acd.on_ami_connected()
        await self._readopt(channels)

    async def _readopt(self, channels: list[Message]) -> None:
        """Live calls with a record in Redis that this process does not know (it restarted): followed again. A caller
        the dialplan's fallback sent to Asterisk's queue meanwhile gets that queue in their record."""
        live = {e.get("Uniqueid", ""): e for e in channels
                if e.get("Context") in READOPTED_CONTEXTS and e.get("Uniqueid", "") not in self.calls}
        live.pop("", None)
        if not live:
            return
        try:
            async with self.store.redis.pipeline(transaction=False) as pipe:
                for uid in live:
                    pipe.get(call_key(uid))
                    pipe.hgetall(learned_key(uid))
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("live calls not re-adopted: Redis unavailable (%s)", exc)
            return
        adopted = 0
        for (uid, event), raw, facts in zip(live.items(), replies[::2], replies[1::2], strict=True):
            waiter = self.acd.waiters.get(uid)
            call = waiter.call if waiter else CallRecord.from_dict(json.loads(raw)) if raw else None
            if call is None or call.ended_at is not None or uid in self.calls:
                continue
            Learned.from_variables(facts or {}).fill(call)  # the last answer's intent may be only in the facts
            self.calls[uid] = call
            adopted += 1
            if event.get("Context") == "ivr-queue":
                queue = event.get("Exten", "")
                if call.outcome is None:
                    why = "nothing learned" if queue == self.settings.fallback_queue else "the queue the IVR learned"
                    call.note(f"the controller stopped mid-call: the dialplan queued the caller in {queue} ({why})")
                call.queue, call.outcome = queue or call.queue, call.outcome or Outcome.QUEUED
            call.note("followed again by a restarted controller")
            self._later(self.store.save(call, "call.updated"))
        if adopted:
            log.info("re-adopted %d live calls from Asterisk and Redis", adopted)

    def on_ami_event(self, event: Message) -> None:
        name = event.get("Event", "")
        call = self.calls.get(event.get("Uniqueid", ""))
        if call is None:
            return
        changed = True
        if name == "QueueCallerJoin":
            call.queue = flow_queue_name(event.get("Queue", "")) or call.queue
            call.outcome = call.outcome or Outcome.QUEUED
        elif name == "AgentConnect":
            call.agent = event.get("MemberName") or event.get("Interface")
            call.outcome = Outcome.ANSWERED
        elif name == "QueueCallerAbandon":
            call.outcome = Outcome.ABANDONED
        elif name == "Hangup":
            call.ended_at = time.time()
            if call.outcome is None:
                call.outcome = Outcome.ABANDONED
            self.calls.pop(call.call_id, None)
            self.facts.forget(call.call_id)
            self._later(self.archiver.archive(call, self.navigator.flow.agent_intent))
            self._later(self.recordings.finish(call))
            if call.customer:
                self._later(self._remember_contact(call))
        else:
            changed = False
        if changed:
            self._later(self.store.save(call, "call.ended" if name == "Hangup" else "call.updated"))

    async def _acd_save(self, call: CallRecord, event: str, extra: dict[str, Any] | None = None) -> bool:
        """The ACD's saves; after the hangup (a callback reached or given up) the archive hears of them too."""
        saved = await self.store.save(call, event, extra)
        if call.ended_at is not None:
            self._later(self.archiver.archive(call, self.navigator.flow.agent_intent))
        return saved

    def _later(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _app_call_ended(self, app_call: AppCallRecord, call: CallRecord | None) -> None:
        """An app call's leg ended (ivr/webrtc/gateway.py noted why on the record): save the record with it."""
        if call is not None:
            await self.store.save(call, "call.updated", {"app_end": call.app_end})

    async def _remember_contact(self, call: CallRecord) -> None:
        """The customer's contact history (what the agent's screen shows, and what patience is learned from)."""
        end = call.answered_at or call.ended_at
        wait = round(end - call.queued_at, 1) if call.queued_at and end else None
        contact = Contact(at=call.started_at, channel="app" if call.via == "app" else "voice",
                          call_id=call.call_id, path=call.path,
                          intent=call.intent, queue=call.queue, agent=call.agent, wait_s=wait,
                          outcome=call.outcome.value if call.outcome else "")
        try:
            await self.customers.add_contact(call.customer or "", contact)
        except Exception as exc:  # history is for later; the call itself is over
            log.warning("call %s: contact history not written (%s)", call.call_id, exc)


READOPTED_CONTEXTS = frozenset({"hotline", "ivr-hold", "ivr-offer", "ivr-queue"})
"""Dialplan contexts where a call a previous controller took may still be (asterisk_conf/extensions.conf)."""


class ChannelFacts:
    """What the IVR learned of each caller (``ivr.voice.navigator.learned``), on their channel and in Redis.

    On the channel, so that if this process dies mid-call the dialplan's fallback still sends the caller to the
    queue their intent named, with its priority ([hotline], ``fallback``); in Redis (``learned_key``), so that the
    agent's pop and a restarted controller find it. Over AMI Setvar, not AGI: for the whole navigation the call's
    AGI is busy running the AudioSocket Dial, and an AGI command would only run after it. One Setvar per changed
    fact, sent in order per call and never on the call's path: a slow AMI delays the facts, not the caller.
    """

    def __init__(self, ami: AmiClient, redis: Any, ttl_s: int, timeout_s: float = 2.0) -> None:
        self.ami = ami
        self.redis = redis
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.known: dict[str, Learned] = {}
        """The latest facts of each call in the IVR (the controller's own fallback uses them too)."""
        self._sent: dict[str, dict[str, str]] = {}
        self._last: dict[str, asyncio.Future[None]] = {}
        """Each call's last send: the next one waits for it (the channel ends up with the latest values)."""

    async def at_start(self, call: CallRecord, agi: AgiSession) -> None:
        """What is known as the call starts (the customer, tier, language), on the channel over AGI before the
        navigation: the AGI is still free then, and a controller killed a second into the greeting leaves a fallback
        pop with the customer on it (AMI Setvar in the background could come too late: the chaos bench saw it)."""
        learned = learned_of(call, None)
        wanted = {name: value for name, value in learned.variables().items() if value}
        set_now: dict[str, str] = {}
        for name, value in wanted.items():
            try:
                await agi.set_variable(name, value)
            except Exception as exc:  # the caller hung up, or the line broke: ``tell`` tries over AMI
                log.info("call %s: %s not set on the channel at the start (%s)", call.call_id, name, exc)
                break
            set_now[name] = value
        self._sent[call.call_id] = set_now
        self.tell(call, learned, stored=False)

    def tell(self, call: CallRecord, learned: Learned, stored: bool = True) -> None:
        """``learned`` on the channel (what changed since the last time) and in Redis, in the background.
        ``stored=False``: the channel already says all of it (``at_start``); Redis gets every fact."""
        self.known[call.call_id] = learned
        sent = self._sent.setdefault(call.call_id, {})
        changed = learned_changes(sent, learned.variables())
        to_store = changed if stored else {**learned.variables(), **changed}
        if not to_store:
            return
        sent.update(changed)
        task = asyncio.ensure_future(self._send(self._last.get(call.call_id), call, changed, to_store))
        self._last[call.call_id] = task

        def done(finished: asyncio.Future[None], call_id: str = call.call_id) -> None:
            if self._last.get(call_id) is finished:
                del self._last[call_id]

        task.add_done_callback(done)

    def forget(self, call_id: str) -> None:
        self.known.pop(call_id, None)
        self._sent.pop(call_id, None)

    async def _send(self, previous: asyncio.Future[None] | None, call: CallRecord, changed: dict[str, str],
                    to_store: dict[str, str]) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(learned_key(call.call_id), mapping=to_store)
                pipe.expire(learned_key(call.call_id), self.ttl_s)
                await pipe.execute()
        except Exception as exc:  # the channel still gets them; the pop shows less
            log.debug("call %s: learned facts not stored in Redis (%s)", call.call_id, exc)
        if not changed or not call.channel or not self.ami.ready:
            return
        for name, value in changed.items():
            try:
                await self.ami.action({"Action": "Setvar", "Channel": call.channel, "Variable": name, "Value": value},
                                      timeout=self.timeout_s)
            except AmiError as exc:  # the caller hung up, or AMI went away: Redis has the facts
                log.info("call %s: %s not set on the channel (%s)", call.call_id, name, exc)
                return


class AmiRecordingPause:
    """The call recording (the dialplan's MixMonitor) muted in both directions while a secure node collects card data.

    ``IVR_SECURE`` on the channel says a mute is (or may be) on: set before muting, cleared only after unmuting. If
    the controller dies or loses AMI in between, the variable is still set when the call leaves the AGI, and the
    dialplan restarts the recording on the same file (asterisk_conf/extensions.conf, [hotline]): the recording is
    never left muted, and the keys, pressed while it was muted, are never in it.
    """

    def __init__(self, ami: AmiClient, timeout_s: float = 2.0) -> None:
        self.ami = ami
        self.timeout_s = timeout_s

    async def pause(self, call: CallRecord) -> bool:
        if not call.channel:
            return False
        try:
            await self.ami.action({"Action": "Setvar", "Channel": call.channel, "Variable": "IVR_SECURE",
                                   "Value": "1"}, timeout=self.timeout_s)
            await self._mute(call, True)
        except AmiError as exc:
            log.error("call %s: recording not muted (%s): no card data is taken", call.call_id, exc)
            return False
        return True

    async def resume(self, call: CallRecord) -> bool:
        try:
            await self._mute(call, False)
            await self.ami.action({"Action": "Setvar", "Channel": call.channel, "Variable": "IVR_SECURE",
                                   "Value": ""}, timeout=self.timeout_s)
        except AmiError as exc:
            log.warning("call %s: recording not unmuted by the controller (%s): the dialplan resumes it",
                        call.call_id, exc)
            return False
        return True

    async def _mute(self, call: CallRecord, on: bool) -> None:
        await self.ami.action({"Action": "MixMonitorMute", "Channel": call.channel, "Direction": "both",
                               "State": "1" if on else "0"}, timeout=self.timeout_s)


def prompt_rates(settings: Settings) -> tuple[int, ...]:
    """The rates prompts are rendered at ahead of calls: 16 kHz too when wideband callers are heard in HD."""
    return (8000, 16000) if settings.wideband else (8000,)


def build_controller(settings: Settings) -> Controller:
    from asr import default_registry
    from tts import PromptRenderer

    flow = load_flow(settings.dialplans_dir / "hotline.yaml")
    speech = Speech(default_registry(), PromptRenderer(settings.prompts_dir))
    navigator = Navigator(flow, speech, settings.recordings_dir)
    rendered = speech.renderer.prerender(navigator.prompts(), prompt_rates(settings))
    log.info("flow %s loaded; %d prompts rendered new", flow.id, rendered)
    # Loading the model now keeps the first caller from waiting for it.
    for language in flow.languages:
        try:
            speech.registry.get(language)
            metrics.set_up(metrics.Component.ASR, True)  # /readyz: a model is loaded
        except Exception as exc:
            log.warning("no speech recognition for %r: %s (callers in that language use keys)", language, exc)
    controller = Controller(settings, navigator)
    navigator.on_listen = controller.on_listen
    navigator.on_prompt_done = controller.on_prompt_done
    navigator.on_learned = controller.on_learned
    navigator.on_turn = controller.store.append_turn
    navigator.customers = controller.customers.by_phone
    navigator.verify = HttpVerifier(settings.card_verifier, settings.card_verifier_timeout_s)
    redaction_warm_up()  # before the first call: the first redaction would otherwise stall the event loop ~1 s
    navigator.recording = AmiRecordingPause(controller.ami)
    return controller
