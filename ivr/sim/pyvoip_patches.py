"""pyVoIP, made to work against Asterisk: every workaround for pyVoIP's bugs and gaps, in one place.

The test phones (:mod:`ivr.sim.sip_caller`, :mod:`ivr.sim.agent_phone`) are built on the classes here. They
subclass pyVoIP's and override its internals, so they hold for exactly the pinned version, ``PYVOIP_VERSION``
(the ``[sim]`` extra in pyproject.toml pins it); another version is warned about on import. Each bug of
pyVoIP 1.6.8 worked around, and where:

Importing
  1. ``import pyVoIP.SIP`` alone fails on a circular import: ``pyVoIP.VoIP`` is imported first (below).

Sending media (:class:`PacedRtpClient`)
  2. pyVoIP can only send 8-bit linear audio, and cannot send DTMF at all: our sender paces 20 ms ulaw frames
     in real time, sends silence whenever nothing plays (AudioSocket drops a session after 2 s without
     frames) and sends keys as RFC 4733 telephone-events (``dtmf_mode = rfc4733``).

SIP (:class:`AsteriskSipClient`, :class:`AsteriskPhone`)
  3. OPTIONS cannot be parsed (Asterisk qualifies contacts with them): added to ``SIPCompatibleMethods``
     and answered 200 OK.
  4. REGISTER takes whatever datagram comes next as its answer (Asterisk's qualify OPTIONS often comes
     first: the registration "fails" and is retried): answers are matched by Call-ID.
  5. An INVITE refused with anything but 404 or 503 is ignored (the call dials forever): it is ACKed,
     the status kept (``rejected``) and the call ended.
  6. The ACK to a 200 OK carries a random To tag (``gen_ack_2xx``): Asterisk never sees the ACK,
     retransmits its 200 and drops the call after 32 s.
  7. Call-IDs are a hash of a per-phone counter: two phones at once send the same INVITE branch and
     Asterisk takes the second INVITE for a retransmission. Ours are random.
  8. ``stop()`` closes the socket under the receive loop (an OSError from a finished loop), other
     responses print "TODO", and each answer is awaited 30 s (5 s here: a test tool should fail fast).

Taking calls (:class:`AnsweringSipClient`, :class:`AnsweringCall`, :class:`AnsweringPhone`)
  9. CANCEL is answered 200 OK but otherwise ignored: the call stays RINGING forever and Asterisk never
     gets the 487 that ends its INVITE transaction. CANCEL goes to :meth:`AnsweringPhone.on_cancel`.
  10. ``VoIPCall.deny()`` stops RTP clients that were never started (AttributeError, after the 486 is
      sent but before the call is removed): clients not started are not stopped.
  11. 180 Ringing carries Asterisk's own Contact instead of the phone's; 200 OK to BYE and CANCEL
      carries a fresh random To tag instead of the dialog's; a BYE from the called phone copies the
      INVITE's Via (Asterisk's address and branch). Asterisk tolerates these; they are corrected anyway.
  12. The display name of a From header keeps a stray quote (``Name"``): :func:`parse_from_header`.
  13. The phone starts receiving 1 s after it registers (a call routed at once rings late): here at once.
  14. RTP threads have the same names for every phone: each client records its own, to be joined.

Left to the phone's own logic in :mod:`ivr.sim.agent_phone` (they concern its call state): an incoming
call's RTP port is not recorded on the call, so pyVoIP can hand it to the next call (one call at a time,
others 486 Busy Here, the port given back at the end); the user's call callback runs in a thread started
1 s after the INVITE (one worker per call instead); a re-INVITE would start the call's RTP threads twice.
"""

from __future__ import annotations

import collections
import logging
import re
import select
import socket
import struct
import threading
import time
import uuid
import warnings
from typing import Any

import pyVoIP
from pyVoIP import VoIP  # noqa: F401  (bug 1: first, importing pyVoIP.SIP alone fails on a circular import)
from pyVoIP.RTP import PayloadType, RTPClient, TransmitType
from pyVoIP.SIP import SIPClient, SIPMessage, SIPMessageType, SIPParseError, SIPStatus
from pyVoIP.VoIP import CallState, PhoneStatus, VoIPCall, VoIPPhone

log = logging.getLogger(__name__)

#: The pyVoIP these workarounds were written against (pyproject.toml's ``[sim]`` extra pins it).
PYVOIP_VERSION = "1.6.8"
if pyVoIP.__version__ != PYVOIP_VERSION:
    warnings.warn(f"pyVoIP {pyVoIP.__version__} installed; ivr.sim's test phones are made for {PYVOIP_VERSION} "
                  "(pip install 'ivr[sim]')", RuntimeWarning, stacklevel=2)

FRAME_S = 0.02
FRAME = 160  # samples (and ulaw bytes) per 20 ms frame at 8 kHz
SILENCE = b"\xff" * FRAME  # ulaw zero
DTMF_EVENTS = "0123456789*#ABCD"  # RFC 4733 event codes 0-15
DTMF_TICKS = 6  # each key is held 120 ms ...
DTMF_GAP_TICKS = 5  # ... then 100 ms of silence before the next
DTMF_VOLUME = 10  # -10 dBm0


# --- placing calls ---------------------------------------------------------------------------


class PacedRtpClient(RTPClient):  # type: ignore[misc]
    """pyVoIP's RTP client with our sender: ulaw frames and RFC 4733 DTMF, paced, never silent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._queue: collections.deque[bytes | str] = collections.deque()  # 160-byte frames and DTMF keys
        self.event_pt = next((pt for pt, kind in self.assoc.items() if kind is PayloadType.EVENT), None)

    def queue_audio(self, ulaw: bytes) -> None:
        frames = [ulaw[i:i + FRAME].ljust(FRAME, SILENCE[:1]) for i in range(0, len(ulaw), FRAME)]
        with self._lock:
            self._queue.extend(frames)

    def queue_dtmf(self, digits: str) -> None:
        with self._lock:
            for digit in digits:
                self._queue.append(digit)
                self._queue.extend([SILENCE] * DTMF_GAP_TICKS)

    @property
    def sending(self) -> bool:
        """Audio or keys still queued."""
        return bool(self._queue)

    def parse_packet(self, packet: bytes) -> None:
        """The caller does not listen: what Asterisk sends is dropped."""

    def _packets(self):  # type: ignore[no-untyped-def]
        """One (payload type, marker, timestamp, payload) per 20 ms tick, forever."""
        ts = self.outTimestamp
        audio_pt = int(self.preference)
        while True:
            with self._lock:
                item = self._queue.popleft() if self._queue else SILENCE
            if isinstance(item, str):
                event, start = DTMF_EVENTS.index(item), ts
                for tick in range(1, DTMF_TICKS + 1):
                    yield self.event_pt, tick == 1, start, struct.pack("!BBH", event, DTMF_VOLUME, tick * FRAME)
                    ts += FRAME
                for _ in range(3):  # the end packet, three times (RFC 4733 2.5.1.4)
                    yield self.event_pt, False, start, struct.pack("!BBH", event, 0x80 | DTMF_VOLUME,
                                                                   DTMF_TICKS * FRAME)
                    ts += FRAME
            else:
                yield audio_pt, False, ts, item
                ts += FRAME

    def trans(self) -> None:
        packets = self._packets()
        seq = self.outSequence
        next_at = time.monotonic()
        while self.NSD:
            pt, marker, ts, payload = next(packets)
            header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                                 ts & 0xFFFFFFFF, self.outSSRC)
            try:
                self.sout.sendto(header + payload, (self.outIP, self.outPort))
            except OSError:
                if not self.NSD:
                    break  # stopped: the socket is closed
            seq += 1
            next_at += FRAME_S
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.2:  # fell far behind (a stalled machine): resume, do not burst
                next_at = time.monotonic()


class PacedCall(VoIPCall):  # type: ignore[misc]
    """pyVoIP's call, with our RTP sender (bug 2)."""

    def create_rtp_clients(self, codecs: dict[int, PayloadType], ip: str, port: int, request: SIPMessage,
                           baseport: int) -> None:
        for index, connection in enumerate(request.body["c"]):
            self.RTPClients.append(PacedRtpClient(codecs, ip, port, connection["address"], baseport + index,
                                                  self.sendmode, dtmf=self.dtmf_callback))

    @property
    def rtp(self) -> PacedRtpClient | None:
        rtp = self.RTPClients[0] if self.RTPClients else None
        return rtp if isinstance(rtp, PacedRtpClient) else None


class AsteriskSipClient(SIPClient):  # type: ignore[misc]
    """pyVoIP's SIP client, made dependable against Asterisk (bugs 3-8).

    pyVoIP 1.6.8 cannot parse OPTIONS (Asterisk qualifies contacts with them), takes
    whatever datagram comes next as the answer to its REGISTER (Asterisk's qualify
    OPTIONS often comes first: the registration then "fails" and is retried), ignores
    an INVITE refused with anything but 404 or 503, and acknowledges a 200 with a
    wrong To tag (gen_ack_2xx).
    """

    rejected: dict[str, str]
    """SIP Call-ID -> the final status that refused our INVITE."""
    last_status: str
    """How the last REGISTER went, for the error message."""

    def parse_message(self, message: SIPMessage) -> None:
        if message.type == SIPMessageType.MESSAGE:
            if message.method == "OPTIONS":
                self.out.sendto(self.gen_ok(message).encode("utf8"), (self.server, self.port))
                return
            super().parse_message(message)
            return
        status, method = int(message.status), message.headers["CSeq"]["method"]
        if method == "INVITE" and status >= 300 and status not in (401, 407):
            self.out.sendto(self.gen_ack(message).encode("utf8"), (self.server, self.port))
            self.rejected[message.headers["Call-ID"]] = str(message.status)
            call = self.phone.calls.pop(message.headers["Call-ID"], None)
            if call is not None:
                call.state = CallState.ENDED
            return
        if status == 200:
            super().parse_message(message)
        # Anything else (a late 401, a 183) needs nothing from us; pyVoIP would print "TODO".

    def gen_call_id(self) -> str:
        # pyVoIP's are a hash of a per-phone counter: two phones at once send the same INVITE
        # branch (it is cut from a Call-ID), and Asterisk takes the second INVITE for a retransmission.
        return f"{uuid.uuid4().hex}@{self.myIP}:{self.myPort}"

    def recv_loop(self) -> None:
        try:
            super().recv_loop()
        except OSError:
            if self.NSD:
                raise  # otherwise stop() closed the socket under the loop: the loop is done anyway

    def _exchange(self, request: str) -> SIPMessage:
        """Send a request and return the final response with its Call-ID, serving requests meanwhile."""
        call_id = request.split("\r\nCall-ID: ", 1)[1].split("\r\n", 1)[0]
        self.out.sendto(request.encode("utf8"), (self.server, self.port))
        deadline = time.monotonic() + self.register_timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.s], [], [], left)[0]:
                break
            try:
                message = SIPMessage(self.s.recv(8192))
            except (SIPParseError, ValueError, KeyError, IndexError):  # not SIP, or not SIP pyVoIP knows
                continue
            if message.type == SIPMessageType.MESSAGE:
                self.parse_message(message)
            elif message.headers.get("Call-ID") == call_id and int(message.status) >= 200:
                return message
        raise TimeoutError(f"no answer from SIP server {self.server}:{self.port} in {self.register_timeout} s")

    def _register(self, expires: bool) -> bool:
        response = self._exchange(self.gen_first_response(deregister=not expires))
        if response.status == SIPStatus.UNAUTHORIZED:
            response = self._exchange(self.gen_register(response, deregister=not expires))
        self.last_status = str(response.status)
        return bool(response.status == SIPStatus.OK)

    def register(self) -> bool:
        try:
            with self.recvLock:
                registered = self._register(expires=True)
        except (OSError, TimeoutError) as exc:
            self.last_status, registered = str(exc), False
        self.phone._status = PhoneStatus.REGISTERED if registered else PhoneStatus.FAILED
        if registered and self.NSD:  # refresh before it expires (stop() cancels this)
            self.registerThread = threading.Timer(self.default_expires - 5, self.register)
            self.registerThread.daemon = True
            self.registerThread.start()
        return registered

    def deregister(self) -> bool:
        try:
            with self.recvLock:
                return self._register(expires=False)
        except (OSError, TimeoutError):
            return False

    def gen_ack_2xx(self, ok: SIPMessage) -> str:
        """The ACK for a 200 to INVITE. pyVoIP's puts a random To tag in it, so Asterisk never sees
        the ACK, retransmits its 200 and drops the call after 32 s."""
        headers = ok.headers
        target = str(headers.get("Contact") or f"<sip:{self.server}:{self.port}>").split(">")[0].lstrip("<")
        return (
            f"ACK {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.myIP}:{self.myPort};branch={self.gen_branch()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {headers['From']['raw']};tag={headers['From']['tag']}\r\n"
            f"To: {headers['To']['raw']};tag={headers['To']['tag']}\r\n"
            f"Call-ID: {headers['Call-ID']}\r\n"
            f"CSeq: {headers['CSeq']['check']} ACK\r\n"
            f"User-Agent: pyVoIP {pyVoIP.__version__}\r\n"
            "Content-Length: 0\r\n\r\n"
        )


if "OPTIONS" not in pyVoIP.SIPCompatibleMethods:
    pyVoIP.SIPCompatibleMethods.append("OPTIONS")  # so SIPMessage parses them (for AsteriskSipClient)


class AsteriskPhone(VoIPPhone):  # type: ignore[misc]
    """pyVoIP's phone with AsteriskSipClient, PacedCall, a short answer timeout, and each 200 OK to an INVITE
    acknowledged once with a correct ACK (bug 6)."""

    sip: AsteriskSipClient
    sip_class: type[AsteriskSipClient] = AsteriskSipClient
    """The SIP client to build (AnsweringPhone builds AnsweringSipClient)."""

    def __init__(self, server: str, port: int, username: str, password: str, my_ip: str, sip_port: int,
                 rtp_port: int) -> None:
        super().__init__(server, port, username, password, myIP=my_ip, sipPort=sip_port,
                         rtpPortLow=rtp_port, rtpPortHigh=rtp_port)
        self.sip = self.sip_class(server, port, username, password, phone=self, myIP=my_ip, myPort=sip_port,
                                  callCallback=self.callback, fatalCallback=self.fatal)
        self.sip.register_timeout = 5  # seconds to wait for each answer (pyVoIP's 30 is long for a test tool)
        self.sip.last_status = ""
        self.sip.rejected = {}

    def call(self, number: str) -> PacedCall:
        port = self.request_port()
        medias = {port: {0: PayloadType.PCMU, 101: PayloadType.EVENT}}
        # (pyVoIP's own annotations of medias are wrong.)
        request, call_id, sess_id = self.sip.invite(number, medias, TransmitType.SENDRECV)  # type: ignore[arg-type]
        call = PacedCall(self, CallState.DIALING, request, sess_id, self.myIP, ms=medias,  # type: ignore[arg-type]
                         sendmode=self.sendmode)
        self.calls[call_id] = call
        return call

    def _callback_RESP_OK(self, request: SIPMessage) -> None:
        call = self.calls.get(request.headers["Call-ID"])
        if call is None or request.headers["CSeq"]["method"] != "INVITE":
            return  # e.g. the 200 to our BYE
        call.answered(request)  # once; a retransmitted 200 only gets its ACK again
        self.sip.out.sendto(self.sip.gen_ack_2xx(request).encode("utf8"), (self.server, self.port))


# --- taking calls ----------------------------------------------------------------------------

USER_AGENT = f"ivr agent phone (pyVoIP {pyVoIP.__version__})"
#: Seconds between registration attempts after a refresh failed (Asterisk restarting, say).
REGISTER_RETRY_S = 5.0


class AnsweringRtpClient(PacedRtpClient):
    """Our RTP client, remembering its threads so the phone can wait for them when it stops
    (pyVoIP's thread names are the same for every phone in the process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: list[threading.Thread] = []
        self.started = False

    def start(self) -> None:
        self.started = True
        super().start()

    def stop(self) -> None:
        if self.started:  # pyVoIP's stop() of a client never started fails: it has no sockets yet
            super().stop()

    def recv(self) -> None:
        self.threads.append(threading.current_thread())
        super().recv()

    def trans(self) -> None:
        self.threads.append(threading.current_thread())
        super().trans()


class AnsweringCall(PacedCall):
    """An incoming call: answered with G.711 ulaw (and telephone-event) only."""

    def create_rtp_clients(self, codecs: dict[int, PayloadType], ip: str, port: int, request: SIPMessage,
                           baseport: int) -> None:
        # Our sender's silence and audio are ulaw, and pyVoIP sends with the first codec of the
        # answer: offering alaw back too could make Asterisk expect alaw.
        ulaw = {pt: kind for pt, kind in codecs.items() if kind in (PayloadType.PCMU, PayloadType.EVENT)}
        if PayloadType.PCMU not in ulaw.values():
            return  # no RTP client: the phone refuses the call (488)
        for index, connection in enumerate(request.body["c"]):
            self.RTPClients.append(AnsweringRtpClient(ulaw, ip, port, connection["address"], baseport + index,
                                                      self.sendmode, dtmf=self.dtmf_callback))

    def stop_media(self) -> None:
        for client in self.RTPClients:
            client.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        return [t for client in self.RTPClients if isinstance(client, AnsweringRtpClient) for t in client.threads]


class AnsweringSipClient(AsteriskSipClient):
    """AsteriskSipClient with the responses a called phone sends, and CANCEL handled (bugs 9, 11, 13)."""

    phone: AnsweringPhone
    recv_thread: threading.Thread | None = None

    def send(self, message: str) -> None:
        log.debug("agent %s SIP >> %s", self.username, message.split("\r\n", 1)[0])
        self.out.sendto(message.encode("utf8"), (self.server, self.port))

    def start(self) -> None:
        # pyVoIP's start() begins receiving 1 s after registering: a call routed to the agent right away
        # would wait in the socket, and its RingEvent.at be late. Also: the thread is ours to join.
        if self.NSD:
            raise RuntimeError("SIP client already started")
        self.NSD = True
        self.s = self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((self.myIP, self.myPort))
        self.register()
        self.recv_thread = threading.Thread(target=self.recv_loop, name=f"SIP Recieve {self.username}", daemon=True)
        self.recv_thread.start()

    def parse_message(self, message: SIPMessage) -> None:
        if message.type != SIPMessageType.MESSAGE:
            log.debug("agent %s SIP << %s (%s)", self.username, message.status, message.headers["CSeq"]["method"])
        else:
            log.debug("agent %s SIP << %s %s", self.username, message.method, message.headers.get("Call-ID"))
            if message.method == "CANCEL":
                # pyVoIP hands CANCEL to VoIPPhone.callback, which ignores it: the call would ring forever.
                self.phone.on_cancel(message)
                return
        super().parse_message(message)

    def register(self) -> bool:
        registered = bool(super().register())
        if not registered and self.NSD:
            # AsteriskSipClient stops refreshing after a failure: an agent's phone keeps trying, as a real one does
            # (stop() cancels this like the refresh).
            self.registerThread = threading.Timer(REGISTER_RETRY_S, self.register)
            self.registerThread.daemon = True
            self.registerThread.start()
        if self.registerThread is not None:
            # Named like pyVoIP's own, so checks for leftover pyVoIP threads see it.
            self.registerThread.name = f"SIP Register {self.username}"
        return registered

    def dialog_tag(self, request: SIPMessage) -> str:
        """Our tag in the dialog an INVITE creates: the same on 180, 200, 486 and 487 (pyVoIP's gen_busy
        and gen_ok draw a new one each time)."""
        call_id = request.headers["Call-ID"]
        if call_id not in self.tagLibrary:
            self.tagLibrary[call_id] = self.gen_tag()
        return str(self.tagLibrary[call_id])

    def response(self, request: SIPMessage, status: str, to_tag: str, *, contact: bool = False) -> str:
        """A response without a body."""
        headers = request.headers
        lines = [
            f"SIP/2.0 {status}\r\n",
            self._gen_response_via_header(request),
            f"From: {headers['From']['raw']};tag={headers['From']['tag']}\r\n",
            f"To: {headers['To']['raw']};tag={to_tag}\r\n",
            f"Call-ID: {headers['Call-ID']}\r\n",
            f"CSeq: {headers['CSeq']['check']} {headers['CSeq']['method']}\r\n",
            f"Contact: <sip:{self.username}@{self.myIP}:{self.myPort}>\r\n" if contact else "",
            f"User-Agent: {USER_AGENT}\r\n",
            "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n",
            "Content-Length: 0\r\n\r\n",
        ]
        return "".join(lines)

    def gen_ringing(self, request: SIPMessage) -> str:
        # pyVoIP's puts Asterisk's Contact in it: the early dialog's remote target would be Asterisk itself.
        return self.response(request, "180 Ringing", self.dialog_tag(request), contact=True)

    def gen_busy(self, request: SIPMessage) -> str:
        return self.response(request, "486 Busy Here", self.dialog_tag(request), contact=True)

    def gen_ok(self, request: SIPMessage) -> str:
        # In a dialog (BYE) the To tag is ours already; a CANCEL's To is the INVITE's, so its tag is the
        # one we gave the INVITE; out of dialog (OPTIONS) any fresh tag will do.
        tag = request.headers["To"]["tag"] or self.tagLibrary.get(request.headers["Call-ID"]) or self.gen_tag()
        return self.response(request, "200 OK", tag)

    def gen_bye(self, request: SIPMessage) -> str:
        """BYE from the called side: our own Via, From/To swapped from the INVITE, sent to Asterisk's Contact."""
        headers = request.headers
        tag = self.tagLibrary[headers["Call-ID"]]
        if headers["From"]["tag"] == tag:  # we placed this call: pyVoIP's own is right for that side
            return str(super().gen_bye(request))
        contact = str(headers.get("Contact") or f"<sip:{self.server}:{self.port}>")
        target = contact.split("<", 1)[-1].split(">", 1)[0]
        return (
            f"BYE {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.myIP}:{self.myPort};branch={self.gen_branch()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {headers['To']['raw']};tag={tag}\r\n"
            f"To: {headers['From']['raw']};tag={headers['From']['tag']}\r\n"
            f"Call-ID: {headers['Call-ID']}\r\n"
            f"CSeq: {self.byeCounter.next()} BYE\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "Content-Length: 0\r\n\r\n"
        )


class AnsweringPhone(AsteriskPhone):
    """A phone that takes calls: INVITE, CANCEL and BYE go to :meth:`on_invite`, :meth:`on_cancel` and
    :meth:`on_bye`, which a subclass implements."""

    sip: AnsweringSipClient
    sip_class = AnsweringSipClient

    def on_invite(self, request: SIPMessage) -> None:
        raise NotImplementedError

    def on_cancel(self, request: SIPMessage) -> None:
        raise NotImplementedError

    def on_bye(self, request: SIPMessage) -> None:
        """The 200 OK follows, from SIPClient.parse_message."""
        raise NotImplementedError

    def _callback_MSG_Invite(self, request: SIPMessage) -> None:
        self.on_invite(request)

    def _callback_MSG_Bye(self, request: SIPMessage) -> None:
        self.on_bye(request)


def parse_from_header(from_raw: str) -> tuple[str, str]:
    """(number, display name) of a From header without its tag: ``"Agent 1002" <sip:1002@127.0.0.1>``.
    pyVoIP's own parse keeps a stray quote in the name (bug 12)."""
    match = re.search(r"sips?:([^@;>]*)@", from_raw)
    number = match.group(1) if match else ""
    name = from_raw.split("<", 1)[0].strip() if "<" in from_raw else ""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])  # a quoted-string's escapes (RFC 3261 25.1)
    return number, name
