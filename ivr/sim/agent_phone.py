"""An agent's softphone (a desk or a field manager's mobile extension), for routing tests.

:class:`AgentPhone` registers a pyVoIP phone as one of the extensions ``ivr setup``
creates (1001-1004, 2001-2002) and takes the calls Asterisk sends it: it answers them
("auto"), lets them ring until Asterisk gives up ("never", so Dial/Queue see ring-no-answer)
or declines them with 486 Busy Here ("reject"). Every incoming INVITE is recorded as a
:class:`RingEvent`, so a test can check who rang, when, and how the call ended.

It is built on :mod:`ivr.sim.pyvoip_patches`: pyVoIP 1.6.8 was written to place calls more than
to take them, and every fix it needs for that (CANCEL ignored, responses with the wrong Contact or tags,
RTP clients stopped before they started, a late start of receiving) is listed and made there. What is
left here is the phone's own call handling: one call at a time (pyVoIP does not record an incoming
call's RTP port on the call, so a second call could be given the port of the first: any other INVITE
is answered 486 Busy Here, as a phone without call waiting does), one worker thread per call (pyVoIP
would run its callback in a thread started 1 s after the INVITE), and a re-INVITE answered without
starting the call's media a second time.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from ivr.config import Settings
from ivr.sim.pyvoip_patches import (
    AnsweringCall,
    AnsweringPhone,
    CallState,
    PhoneStatus,
    SIPMessage,
    parse_from_header,
)
from ivr.sim.simulator import SimulationError
from ivr.sim.sip_caller import SIP_SERVER, _free_udp_port
from ivr.sim.sip_phone import local_ip_towards, sip_password

log = logging.getLogger(__name__)

#: Where agent phones pick their RTP port: apart from the simulated caller's (sip_caller.RTP_PORTS,
#: 11000-11100) so a caller and agents in one process never collide, and from Asterisk's (10000-10999).
AGENT_RTP_PORTS = range(11200, 11400)


AnswerMode = Literal["auto", "never", "reject"]
ANSWER_MODES: tuple[str, ...] = ("auto", "never", "reject")


class CallEnd(enum.StrEnum):
    """How a call to the agent ended."""

    CANCELLED = "cancelled"
    """Asterisk sent CANCEL while it rang: the caller gave up, Dial/Queue timed out, or another phone answered."""
    REMOTE = "remote"
    """Asterisk sent BYE after the agent answered."""
    AGENT = "agent"
    """The agent hung up (talk_s elapsed, or hangup())."""
    REJECTED = "rejected"
    """The agent declined the ringing call (answer="reject", or hangup() while ringing): 486 Busy Here."""
    BUSY = "busy"
    """Refused with 486 Busy Here because the phone already had a call."""
    FAILED = "failed"
    """The phone could not take the call (no usable codec, RTP port taken): 488 or 500."""
    STOPPED = "stopped"
    """The phone was stopped during the call."""


@dataclass
class RingEvent:
    """One incoming call (INVITE) to the phone, updated as the call goes on."""

    at: float
    """time.time() when the INVITE arrived."""
    call_id: str
    """The INVITE's SIP Call-ID (Asterisk's ``CHANNEL(pjsip,call-id)`` on the agent's channel)."""
    caller_id: str
    """The caller's number: the user part of the From URI (Asterisk's CALLERID(num))."""
    caller_name: str
    """The From header's display name (Asterisk's CALLERID(name)); "" if none."""
    answered_at: float | None = None
    """time.time() when the phone sent its 200 OK; None if it never answered."""
    ended_at: float | None = None
    """time.time() when the call ended (CANCEL or BYE received, BYE or 486 sent); None while it goes on."""
    ended_by: CallEnd | None = None
    """How it ended; None while it goes on."""


class AgentPhoneError(SimulationError):
    """The phone could not start (no route to Asterisk, no password, registration refused)."""


# --- pyVoIP, receiving side -----------------------------------------------------------------

# The ports of this process's phones: _free_udp_port only checks that a port can be bound now, and a
# phone binds its RTP port only when it answers, so two phones could otherwise pick the same one.
_ports_lock = threading.Lock()
_ports_claimed: set[int] = set()


def _claim_port(ip: str, candidates: range | None) -> int:
    with _ports_lock:
        for _ in range(64):
            port = _free_udp_port(ip, candidates)
            if port not in _ports_claimed:
                _ports_claimed.add(port)
                return port
    raise AgentPhoneError(f"no free UDP port on {ip} in {candidates} for another phone")


def _release_port(port: int) -> None:
    with _ports_lock:
        _ports_claimed.discard(port)




class _AgentVoIPPhone(AnsweringPhone):
    """The pyVoIP phone under an AgentPhone: INVITE, CANCEL and BYE go to the AgentPhone."""

    def __init__(self, agent: AgentPhone, *args: Any) -> None:
        self.agent = agent
        super().__init__(*args)

    def on_invite(self, request: SIPMessage) -> None:
        self.agent._on_invite(request)

    def on_cancel(self, request: SIPMessage) -> None:
        self.agent._on_cancel(request)

    def on_bye(self, request: SIPMessage) -> None:
        self.agent._on_bye(request)


@dataclass(eq=False)
class _Line:
    """The phone's one call."""

    ring: RingEvent
    call: AnsweringCall
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the call has ended (wakes the worker)."""
    worker: threading.Thread | None = None


# --- the phone ------------------------------------------------------------------------------


class AgentPhone:
    """A SIP softphone registered as an agent's extension, answering as told and recording every ring.

    ``answer``: "auto" answers ``answer_after_s`` after the INVITE, sends silence, and hangs up after
    ``talk_s`` seconds (None: when the far end does); "never" lets it ring until Asterisk cancels;
    "reject" declines with 486 Busy Here after ``answer_after_s``. Blocking methods are for threads
    (or ``asyncio.to_thread``): pyVoIP is thread-based.
    """

    def __init__(self, settings: Settings, extension: str, answer: AnswerMode = "auto", answer_after_s: float = 0.5,
                 talk_s: float | None = None, server: tuple[str, int] = SIP_SERVER,
                 rtp_ports: range = AGENT_RTP_PORTS) -> None:
        if answer not in ANSWER_MODES:
            raise ValueError(f"answer must be one of {', '.join(ANSWER_MODES)}, not {answer!r}")
        self.settings, self.extension, self.answer = settings, extension, answer
        self.answer_after_s, self.talk_s = answer_after_s, talk_s
        self.server, self.rtp_ports = server, rtp_ports
        self.sip_port = 0
        """The phone's SIP (UDP) port once started: its contact is sip:<extension>@<ip>:<sip_port>."""
        self.rtp_port = 0
        """The phone's RTP port once started (one call at a time)."""
        self.my_ip = ""
        self.phone: _AgentVoIPPhone | None = None
        self._cond = threading.Condition(threading.RLock())  # guards everything below and call state changes
        self._rings: list[RingEvent] = []
        self._line: _Line | None = None
        self._running = False
        self._threads: list[threading.Thread] = []  # workers and RTP threads of past calls, joined by stop()
        self._reported: dict[str, set[int]] = {"ring": set(), "answer": set(), "end": set()}
        # (indices in _rings each wait_for_* has returned: calls can end in another order than they rang)

    # --- lifecycle

    def start(self) -> AgentPhone:
        """Register (synchronously); raises AgentPhoneError if Asterisk refuses or does not answer."""
        if self.phone is not None:
            raise RuntimeError(f"agent phone {self.extension} already started")
        try:
            password = sip_password(self.settings, self.extension)
        except SimulationError as exc:
            raise AgentPhoneError(str(exc)) from None
        host, port = self.server
        try:
            self.my_ip = local_ip_towards(host, port)
        except OSError as exc:
            raise AgentPhoneError(f"no route to Asterisk's SIP at {host}:{port}: {exc}") from None
        self.sip_port = _claim_port(self.my_ip, None)
        self.rtp_port = _claim_port(self.my_ip, self.rtp_ports)
        self.phone = _AgentVoIPPhone(self, host, port, self.extension, password, self.my_ip, self.sip_port,
                                     self.rtp_port)
        with self._cond:
            self._running = True
        try:
            self.phone.start()  # binds, registers (synchronously, in AsteriskSipClient.register), then receives
        except OSError as exc:
            self.stop()
            raise AgentPhoneError(f"agent phone {self.extension} cannot start on {self.my_ip}: {exc}") from None
        if self.phone.get_status() != PhoneStatus.REGISTERED:
            status = self.phone.sip.last_status or "no answer"
            self.stop()
            raise AgentPhoneError(
                f"SIP registration of extension {self.extension} at {host}:{port} failed ({status}): is Asterisk "
                f"up (`ivr status`), and is the extension in run/asterisk/generated/pjsip_users.conf (`ivr setup`)?")
        log.info("agent phone %s registered from %s:%d", self.extension, self.my_ip, self.sip_port)
        return self

    def stop(self) -> None:
        """End any call, deregister, and wait for every thread of the phone to end. Idempotent."""
        with self._cond:
            self._running = False
            line = self._line
        if line is not None:
            self._end(line, CallEnd.STOPPED)
        phone, self.phone = self.phone, None
        if phone is None:
            return
        # Not under self._cond: deregistering takes pyVoIP's receive lock, which the receive thread
        # holds while it waits for self._cond in _on_invite and friends.
        with contextlib.suppress(Exception):
            phone.stop()  # cancels the refresh, deregisters, closes the SIP socket (the receive loop ends)
        with self._cond:
            threads = list(self._threads)
            self._threads.clear()
        if phone.sip.recv_thread is not None:
            threads.append(phone.sip.recv_thread)
        if phone.sip.registerThread is not None:
            threads.append(phone.sip.registerThread)
        deadline = time.monotonic() + 5
        for thread in threads:
            if thread is not threading.current_thread() and thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        _release_port(self.sip_port)
        _release_port(self.rtp_port)
        log.info("agent phone %s stopped", self.extension)

    def __enter__(self) -> AgentPhone:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def registered(self) -> bool:
        return self.phone is not None and self.phone.get_status() == PhoneStatus.REGISTERED

    # --- what happened

    @property
    def rings(self) -> list[RingEvent]:
        """Every incoming call so far, oldest first (a copy of the list; the events update in place)."""
        with self._cond:
            return list(self._rings)

    def _wait_next(self, kind: str, ready: Callable[[RingEvent], bool], timeout: float) -> RingEvent | None:
        reported = self._reported[kind]

        def first() -> int | None:
            return next((i for i, ring in enumerate(self._rings) if i not in reported and ready(ring)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: first() is not None, timeout):
                return None
            index = first()
            assert index is not None
            reported.add(index)
            return self._rings[index]

    def wait_for_ring(self, timeout: float) -> RingEvent | None:
        """The next incoming call not yet returned by this method, waiting up to timeout seconds for it."""
        return self._wait_next("ring", lambda ring: True, timeout)

    def wait_for_answer(self, timeout: float) -> RingEvent | None:
        """The next answered call not yet returned by this method, waiting up to timeout seconds for it."""
        return self._wait_next("answer", lambda ring: ring.answered_at is not None, timeout)

    def wait_for_end(self, timeout: float) -> RingEvent | None:
        """The next ended call not yet returned by this method (in ring order), waiting up to timeout seconds."""
        return self._wait_next("end", lambda ring: ring.ended_at is not None, timeout)

    def hangup(self) -> bool:
        """End the current call from the agent's side: BYE if answered, 486 Busy Here if ringing.
        False if there was no call."""
        with self._cond:
            line = self._line
        if line is None:
            return False
        how = CallEnd.AGENT if line.call.state == CallState.ANSWERED else CallEnd.REJECTED
        return self._end(line, how)

    # --- SIP events (pyVoIP's receive thread)

    def _on_invite(self, request: SIPMessage) -> None:
        phone = self.phone
        if phone is None:
            return
        sip = phone.sip
        call_id = request.headers["Call-ID"]
        with self._cond:
            line = self._line
            if line is not None and line.ring.call_id == call_id:
                self._repeat(line, request)
                return
            if any(ring.call_id == call_id for ring in self._rings):
                return  # a late retransmission of a call that has ended
            number, name = parse_from_header(request.headers["From"]["raw"])
            ring = RingEvent(at=time.time(), call_id=call_id, caller_id=number, caller_name=name)
            self._rings.append(ring)
            log.info("agent phone %s: call %s from %s %r", self.extension, call_id, number, name)
            if line is not None or not self._running:
                sip.send(sip.gen_busy(request))  # one call at a time (see the module's docstring)
                self._ended(ring, CallEnd.BUSY)
                return
            sip.send(sip.gen_ringing(request))
            session_id = random.randint(1, 100000)
            call = AnsweringCall(phone, CallState.RINGING, request, session_id, self.my_ip, sendmode=phone.recvmode)
            if not call.RTPClients:
                sip.send(sip.response(request, "488 Not Acceptable Here", sip.dialog_tag(request)))
                self._ended(ring, CallEnd.FAILED)
                return
            phone.calls[call_id] = call
            self._line = line = _Line(ring, call)
            self._cond.notify_all()
            if self.answer != "never":
                line.worker = threading.Thread(target=self._work, args=(line,), daemon=True,
                                               name=f"AgentPhone {self.extension} call")
                self._threads.append(line.worker)
                line.worker.start()

    def _repeat(self, line: _Line, request: SIPMessage) -> None:
        """The INVITE again (a retransmission, or a re-INVITE once answered): the same answer, media unchanged.
        pyVoIP would start the call's RTP threads a second time on a re-INVITE."""
        assert self.phone is not None
        sip, call = self.phone.sip, line.call
        if call.state == CallState.RINGING:
            sip.send(sip.gen_ringing(request))
        elif call.state == CallState.ANSWERED:
            media = {client.inPort: client.assoc for client in call.RTPClients}
            sip.send(sip.gen_answer(request, call.session_id, media, call.sendmode))

    def _on_cancel(self, request: SIPMessage) -> None:
        phone = self.phone
        if phone is None:
            return
        sip = phone.sip
        with self._cond:
            line = self._line
            if line is None or line.ring.call_id != request.headers["Call-ID"]:
                sip.send(sip.response(request, "481 Call/Transaction Does Not Exist", sip.gen_tag()))
                return
            sip.send(sip.gen_ok(request))
            if line.call.state != CallState.RINGING:
                return  # answered already: Asterisk takes our 200 OK and ends the call with a BYE
            # The INVITE itself ends with 487 (RFC 3261 9.2); pyVoIP never sends it, and Asterisk's
            # transaction would then linger until its timer gives up.
            sip.send(sip.response(line.call.request, "487 Request Terminated", sip.dialog_tag(request),
                                  contact=True))
            self._close(line, CallEnd.CANCELLED)

    def _on_bye(self, request: SIPMessage) -> None:
        with self._cond:
            line = self._line
            if line is None or line.ring.call_id != request.headers["Call-ID"]:
                return
            line.call.bye()  # pyVoIP's: stops RTP, ENDED, forgets the call
            self._close(line, CallEnd.REMOTE)

    # --- the call's worker thread

    def _work(self, line: _Line) -> None:
        if line.done.wait(self.answer_after_s):
            return  # cancelled (or the phone stopped) while ringing
        if self.answer == "reject":
            self._end(line, CallEnd.REJECTED)
            return
        if not self._answer(line):
            return
        if line.done.wait(self.talk_s):  # None: until the far end hangs up or the phone stops
            return
        self._end(line, CallEnd.AGENT)

    def _answer(self, line: _Line) -> bool:
        with self._cond:
            if line.done.is_set() or line.call.state != CallState.RINGING:
                return False
            try:
                line.call.answer()  # starts RTP (our sender: paced silence) and sends 200 OK with SDP
            except OSError as exc:  # the RTP port was taken meanwhile
                log.error("agent phone %s cannot answer %s: %s", self.extension, line.ring.call_id, exc)
                assert self.phone is not None
                sip = self.phone.sip
                sip.send(sip.response(line.call.request, "500 Server Internal Error",
                                      sip.dialog_tag(line.call.request)))
                self._close(line, CallEnd.FAILED)
                return False
            line.ring.answered_at = time.time()
            self._threads.extend(line.call.threads)
            self._cond.notify_all()
            log.info("agent phone %s answered %s", self.extension, line.ring.call_id)
            return True

    # --- ending

    def _end(self, line: _Line, how: CallEnd) -> bool:
        """End the call from our side: BYE if answered, 486 if ringing. False if it had ended already."""
        with self._cond:
            if line.done.is_set() or self.phone is None:
                return False
            call, sip = line.call, self.phone.sip
            if call.state == CallState.ANSWERED:
                with contextlib.suppress(OSError):
                    call.hangup()  # stops RTP, sends BYE (AnsweringSipClient.gen_bye), forgets the call
            elif call.state == CallState.RINGING:
                # Not pyVoIP's deny(): it fails on the call's never-started RTP clients.
                with contextlib.suppress(OSError):
                    sip.send(sip.gen_busy(call.request))
            self._close(line, how)
            return True

    def _close(self, line: _Line, how: CallEnd) -> None:
        """The call is over, whoever ended it: forget it and record how."""
        with self._cond:
            line.call.state = CallState.ENDED
            line.call.stop_media()
            assert self.phone is not None
            self.phone.calls.pop(line.ring.call_id, None)
            # pyVoIP does not record an incoming call's RTP port on the call: give it back ourselves.
            with self.phone.portsLock:
                if self.rtp_port in self.phone.assignedPorts:
                    self.phone.assignedPorts.remove(self.rtp_port)
            if self._line is line:
                self._line = None
            line.done.set()
            self._ended(line.ring, how)

    def _ended(self, ring: RingEvent, how: CallEnd) -> None:
        with self._cond:
            ring.ended_at, ring.ended_by = time.time(), how
            self._cond.notify_all()
        log.info("agent phone %s: call %s ended (%s)", self.extension, ring.call_id, how)
