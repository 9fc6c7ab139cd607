"""The controller: one asyncio process that Asterisk calls for every hotline call.

This module wires the protocols (FastAGI, AudioSocket, AMI) to the services
(navigation, the call store). A call's path through it:

1. Asterisk runs ``AGI(agi://.../hotline)``; we read the caller's number.
2. We issue an AudioSocket session UUID and ``EXEC AudioSocket`` on the channel;
   Asterisk connects back with the caller's audio.
3. The navigator walks the flow over that audio and decides on a queue.
4. We close the AudioSocket (AudioSocket() returns), set ``IVR_QUEUE`` and return:
   the dialplan queues the call. AMI events then tell us who answered.

Any failure on the way leaves IVR_QUEUE empty or the fallback queue: the
dialplan sends the caller to a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from panoramisk.message import Message

from ivr.agi import AgiSession, CallHungUp, FastAgiServer
from ivr.ami import AmiClient
from ivr.audiosocket import AudioSession, AudioSocketServer
from ivr.calls import CallRecord, Outcome
from ivr.config import Settings
from ivr.customers import CustomerStore
from ivr.flow import load_flow
from ivr.navigator import Decision, Navigator, Speech
from ivr.store import CallStore

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, settings: Settings, navigator: Navigator) -> None:
        self.settings = settings
        self.navigator = navigator
        self.agi = FastAgiServer(settings.agi_host, settings.agi_port, settings.agi_environment_timeout)
        self.agi.route("hotline", self.handle_hotline)
        self.audio = AudioSocketServer(settings.audiosocket_host, settings.audiosocket_port)
        self.ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                             settings.ami_secret.get_secret_value())
        self.ami.on("*", self.on_ami_event)
        self.store = CallStore(settings.redis_url, settings.call_record_ttl_s)
        self.customers = CustomerStore(self.store.redis)
        self.calls: dict[str, CallRecord] = {}
        """Live calls by call id (the hotline channel's uniqueid), until Asterisk reports the hangup."""
        self.started_at = time.time()
        self.calls_handled = 0
        self._background: set[asyncio.Future[bool]] = set()

    # --- lifecycle

    async def start(self) -> None:
        if not self.settings.ami_secret.get_secret_value():
            log.error("IVR_AMI_SECRET is empty: run `ivr setup`; AMI stays disconnected, calls still work")
        else:
            self.ami.start()
        await self.audio.start()
        await self.agi.start()

    async def stop(self) -> None:
        await self.agi.stop()
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
        while not stop.is_set():
            await self.store.heartbeat(self.health())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        log.info("controller stopping; calls in the IVR fall through to the dialplan's queue")
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
            "at": round(time.time(), 3),
        }

    # --- a call

    async def handle_hotline(self, agi: AgiSession) -> None:
        env = agi.env
        call = CallRecord(call_id=env.uniqueid, caller=env.caller, channel=env.channel,
                          language=self.navigator.flow.languages[0])
        self.calls[call.call_id] = call
        self.calls_handled += 1
        customer = await self.customers.by_phone(call.caller)
        if customer:
            call.customer, call.customer_name, call.tier = customer.id, customer.name, customer.tier
            call.dialect = customer.dialect
            if customer.language in self.navigator.flow.languages:
                call.language, call.language_source = customer.language, "customer"
        log.info("call %s from %s (%s) on %s", call.call_id, call.caller or "withheld",
                 call.customer or "unknown caller", call.channel)
        await self.store.save(call, "call.started")
        try:
            decision = await self._navigate(call, agi)
        except CallHungUp:
            decision = Decision("hangup", reason="caller hung up")
        except Exception as exc:
            # Never a dead end: log it, and the caller goes to a person.
            log.exception("call %s: navigation failed", call.call_id)
            call.note(f"controller error: {type(exc).__name__}: {exc}")
            decision = Decision("queue", queue=self.settings.fallback_queue, reason="controller error")
        call.note(f"decision: {decision.reason}")
        await self._hand_over(call, agi, decision)
        await self.store.save(call, "call.routed" if call.queue else "call.updated")

    async def _hand_over(self, call: CallRecord, agi: AgiSession, decision: Decision) -> None:
        """Tell the dialplan what to do next, and record the outcome."""
        variables: dict[str, str] = {}
        if decision.kind == "queue" and decision.queue:
            call.queue, call.outcome = decision.queue, Outcome.QUEUED
            variables = {"IVR_QUEUE": decision.queue, "IVR_PRIORITY": str(decision.priority)}
        elif decision.kind == "transfer" and decision.target:
            call.transfer_to, call.queue, call.outcome = decision.target, decision.queue, Outcome.QUEUED
            variables = {"IVR_ACTION": "transfer", "IVR_TARGET": decision.target,
                         "IVR_QUEUE": decision.queue or self.settings.fallback_queue}
        elif decision.kind == "callback":
            call.queue, call.outcome = decision.queue, Outcome.CALLBACK
            await self.store.request_callback(call)
            variables = {"IVR_ACTION": "hangup"}
        else:
            if decision.reason == "caller hung up":
                call.outcome = Outcome.ABANDONED
            else:
                call.outcome = Outcome.SELF_SERVICE if call.self_served else Outcome.ABANDONED
            variables = {"IVR_ACTION": "hangup"}
        if agi.hung_up:
            return
        with contextlib.suppress(CallHungUp):
            for name, value in variables.items():
                await agi.set_variable(name, value)

    async def _navigate(self, call: CallRecord, agi: AgiSession) -> Decision:
        session_id, connected = self.audio.expect(call.call_id)
        target = f"{session_id},{self.settings.audiosocket_host}:{self.settings.audiosocket_port}"
        # EXEC AudioSocket returns only when the socket closes, so it runs beside the navigation.
        audiosocket_app = asyncio.create_task(agi.exec("AudioSocket", target), name=f"exec-audiosocket-{call.call_id}")
        try:
            done, _ = await asyncio.wait({audiosocket_app, connected},
                                         timeout=self.settings.audiosocket_connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if connected not in done:
                self.audio.forget(session_id)
                if audiosocket_app.done() and isinstance(audiosocket_app.exception(), CallHungUp):
                    raise CallHungUp("caller hung up before audio started")
                reason = "AudioSocket did not connect" if not done else "AudioSocket() ended before connecting"
                call.note(f"{reason}: to a person")
                log.error("call %s: %s", call.call_id, reason)
                return Decision("queue", queue=self.settings.fallback_queue, reason=reason)
            session: AudioSession = connected.result()
            try:
                decision = await self.navigator.run(call, session)
            finally:
                await session.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(audiosocket_app), 5)
            if session.close_reason.startswith(("hangup", "socket closed by Asterisk")) and decision.kind == "hangup":
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

    # --- what Asterisk tells us about calls after the IVR

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
        else:
            changed = False
        if changed:
            task = asyncio.ensure_future(self.store.save(call, "call.ended" if name == "Hangup" else "call.updated"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)


def flow_queue_name(asterisk_queue: str) -> str:
    """Asterisk's queue 'q_cards' is the flow's queue 'cards' (see asterisk_conf/queues.conf)."""
    return asterisk_queue.removeprefix("q_")


def build_controller(settings: Settings) -> Controller:
    from asr import default_registry
    from tts import PromptRenderer

    flow = load_flow(settings.dialplans_dir / "hotline.yaml")
    speech = Speech(default_registry(), PromptRenderer(settings.prompts_dir))
    navigator = Navigator(flow, speech, settings.recordings_dir)
    rendered = speech.renderer.prerender(navigator.prompts())
    log.info("flow %s loaded; %d prompts rendered new", flow.id, rendered)
    # Loading the model now keeps the first caller from waiting for it.
    for language in flow.languages:
        try:
            speech.registry.get(language)
        except Exception as exc:
            log.warning("no speech recognition for %r: %s (callers in that language use keys)", language, exc)
    controller = Controller(settings, navigator)
    navigator.on_listen = controller.on_listen
    navigator.on_turn = controller.store.append_turn
    navigator.customers = controller.customers.by_phone
    return controller
