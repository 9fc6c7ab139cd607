"""The app-call gateway: the bank's app calls the hotline over WebRTC (aiortc), as the customer its token names.

A call's life:

1. **Offer** (``POST /api/app-calls``, WHIP-style): the token is verified first, then the customer's and the
   gateway's bounds, then the SDP (``ivr.webrtc.sdp``). Only then is a peer connection made: nothing of the media
   path exists for a caller without a valid token. aiortc answers with every candidate gathered (no trickle ICE:
   aioice#4), on the configured interfaces only (``ivr.webrtc.ice``).
2. **Connected** (ICE and DTLS up): the gateway originates ``AudioSocket/<bridge>/<uuid>/c(slin16)`` over AMI into
   ``[app-call]`` with the app call's id as the channel's uniqueid. The dialplan goes to ``[hotline]``: the same
   IVR, routing and screen pop as a phone call. The controller asks ``identify`` who the customer is: the token's,
   never a caller ID or a channel variable (those are set for the dialplan's log only, filtered).
3. **Bridged**: audio both ways (``ivr.webrtc.bridge``); keys from the app (data channel or HTTP) go in through
   AMI ``PlayDTMF`` with ``Receive`` (Asterisk 22.10's AudioSocket channel hangs up on a DTMF frame from us).
4. **End**, whichever comes first, each with the reason in the app call's record (``ivr:app-call:<id>``) and in the
   hotline call's record: the app hangs up (``DELETE``, a data-channel ``hangup``, closing the connection); the
   hotline ends the call (the IVR's goodbye, the agent hangs up); ICE never connects; the app's audio stops (its
   network or the app is gone: the watchdog, long before ICE consent would fail); the gateway stops. The peer
   connection is closed, the AudioSocket closed (Asterisk hangs up the channel) or the channel hung up over AMI
   if it never connected: nothing stays behind.

One call's failure ends only that call; the others' tasks never see it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import av
import redis.asyncio as aioredis
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from redis.exceptions import RedisError

from ivr.config import Settings
from ivr.telephony.ami import AmiClient, AmiError
from ivr.webrtc.bridge import AppAudio, AsteriskTrack, Bridge, BridgeServer, answered_codec, set_jitter_frames
from ivr.webrtc.coding import inline_audio_coding
from ivr.webrtc.ice import ice_servers, link_headers, restrict_host_addresses
from ivr.webrtc.sdp import OfferRefused, check_offer
from ivr.webrtc.tokens import AppClaims, TokenRefused, TokenVerifier, valid_screen, verifier_key

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

    from ivr.records.call import CallRecord

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"^[0-9*#A-D]{1,20}$")
#: Seconds between the keys of one DTMF request (each is a PlayDTMF of DTMF_DURATION_MS).
DTMF_GAP_S = 0.15
DTMF_DURATION_MS = 100
#: Key requests of one call in flight at once (each up to 20 keys, sent in order); more are refused with 429.
MAX_KEY_REQUESTS = 3
#: How often the watchdog looks at every call (connect timeout, media loss).
WATCH_INTERVAL_S = 0.25


class AppCallRefused(Exception):
    """The request cannot be served; ``status`` is the HTTP status, ``str()`` the reason, ``headers`` extra ones."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class State(enum.StrEnum):
    """Where an app call is."""

    OFFERED = "offered"
    """Answered; ICE and DTLS not connected yet."""
    CONNECTED = "connected"
    """The app's media path is up; the hotline is being reached."""
    IN_HOTLINE = "in_hotline"
    """Bridged into Asterisk: the IVR (then a person) has the call."""
    ENDED = "ended"


class EndedBy(enum.StrEnum):
    """Whose side ended an app call."""

    APP = "app"
    """The app hung up (DELETE, a data-channel hangup, or it closed the connection)."""
    HOTLINE = "hotline"
    """The hotline's side: the IVR's goodbye, an agent's hang-up, Asterisk."""
    NETWORK = "network"
    """ICE never connected, failed, or the app's audio stopped."""
    GATEWAY = "gateway"
    """The gateway could not go on (AMI unreachable, stopping)."""


@dataclass(slots=True)
class AppCallRecord:
    """What the gateway keeps of an app call (Redis ``ivr:app-call:<id>``, ``GET /api/app-calls/<id>``)."""

    call_id: str
    """The app call's id: also the hotline channel's uniqueid, so the call record and the pop share it."""
    customer_id: str
    """The customer the app's token named."""
    screen: str | None = None
    """The app screen the customer called from (the intent hint), if any."""
    state: State = State.OFFERED
    """Where the call is."""
    codecs: list[str] = field(default_factory=list)
    """Supported audio codecs the app offered, its preference first."""
    created_at: float = field(default_factory=time.time)
    """When the offer was answered."""
    connected_at: float | None = None
    """When ICE and DTLS connected."""
    in_hotline_at: float | None = None
    """When Asterisk's channel connected its audio (the IVR starts)."""
    ended_at: float | None = None
    """When the call ended."""
    ended_by: EndedBy | None = None
    """Whose side ended it."""
    end_reason: str | None = None
    """Why, in words."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Answer:
    """The gateway's answer to an offer."""

    call_id: str
    """The new app call's id (its resource is ``/api/app-calls/<id>``)."""
    sdp: str
    """The SDP answer, every candidate included."""
    links: list[str]
    """WHIP ``Link`` header values: the ICE servers the app may use."""


@dataclass(eq=False)
class AppCall:
    """One live app call."""

    record: AppCallRecord
    session_id: uuid.UUID
    """The AudioSocket UUID Asterisk's channel presents to the bridge server."""
    pc: RTCPeerConnection | None = None
    outbound: AsteriskTrack = field(default_factory=AsteriskTrack)
    """What the app hears."""
    bridge: Bridge | None = None
    channel: RTCDataChannel | None = None
    """The app's control data channel, when it opened one."""
    hotline: CallRecord | None = None
    """The hotline call's record, once the controller took the call (``identify``)."""
    originated: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    last_audio: float = 0.0
    """When the app's audio last arrived (loop time); the watchdog's clock."""
    frames_in: int = 0
    """Audio frames received from the app."""
    keys_waiting: int = 0
    """Key requests sent or waiting to be sent (one at a time, in order; a flood is refused)."""
    keys_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False

    @property
    def call_id(self) -> str:
        return self.record.call_id


OnEnd = Callable[[AppCallRecord, "CallRecord | None"], Awaitable[None]]


class AppCallGateway:
    """Answers app calls and carries them into the hotline (one per controller process)."""

    def __init__(self, settings: Settings, ami: AmiClient, redis: aioredis.Redis | None = None,
                 on_end: OnEnd | None = None) -> None:
        self.settings = settings
        self.ami = ami
        self.redis = redis
        self.on_end = on_end
        """Told of every ended call (the controller saves the hotline call's record with the reason)."""
        self.bridges = BridgeServer(settings.app_call_bridge_host, settings.app_call_bridge_port)
        self.calls: dict[str, AppCall] = {}
        """Live app calls by id (offered, connected or in the hotline)."""
        self._by_customer: dict[str, set[str]] = collections.defaultdict(set)
        self._offers: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._servers = ice_servers(settings.stun_urls, settings.turn_urls, settings.turn_username,
                                    settings.turn_password.get_secret_value())
        self._verifier: TokenVerifier | None = None
        self._config_error = ""
        self._watch: asyncio.Task[None] | None = None
        self.started = False
        self.ended_total: collections.Counter[EndedBy] = collections.Counter()
        """Calls ended, by whose side."""

    # --- lifecycle

    async def start(self) -> None:
        """Listen for Asterisk's app-call channels and check the token configuration (a problem is logged, and
        offers are refused with a 503 naming it: the phone calls go on)."""
        if not self.settings.app_calls_enabled:
            self._config_error = "app calls are switched off on this server (IVR_APP_CALLS_ENABLED=false)"
            return
        try:
            key = verifier_key(self.settings.app_token_algorithm, self.settings.app_token_secret.get_secret_value(),
                               self.settings.app_token_public_key_path)
            self._verifier = TokenVerifier(self.settings.app_token_algorithm, key, self.settings.app_token_issuer,
                                           self.settings.app_token_audience, self.settings.app_token_max_lifetime_s)
        except ValueError as exc:
            self._config_error = f"app calls are not configured: {exc}"
            log.error("%s", self._config_error)
        addresses = restrict_host_addresses(self.settings.webrtc_ice_interfaces)
        log.info("app calls: ICE host candidates on %s", ", ".join(addresses) or "no address (check the setting)")
        try:
            await self.bridges.start()
        except OSError as exc:
            self._config_error = (f"app calls are not served: the bridge port {self.settings.app_call_bridge_host}:"
                                  f"{self.settings.app_call_bridge_port} cannot be opened ({exc.strerror})")
            log.error("%s", self._config_error)
            return
        self._watch = asyncio.create_task(self._watchdog(), name="app-calls-watchdog")
        self.started = True

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.gather(*(self._end(call, "the gateway is stopping", EndedBy.GATEWAY)
                               for call in list(self.calls.values())), return_exceptions=True)
        await self.bridges.stop()
        self.started = False

    # --- requests from the app (ivr/web/app_calls.py)

    def authenticate(self, token: str) -> AppClaims:
        """The token's claims, or AppCallRefused: 401 (bad token), 503 (app calls not available here)."""
        if not self.started or self._verifier is None:
            raise AppCallRefused(503, self._config_error or "app calls are not available: the gateway is starting",
                                 {"Retry-After": "5"})
        try:
            return self._verifier.verify(token)
        except TokenRefused as exc:
            raise AppCallRefused(401, str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None

    async def offer(self, token: str, sdp: str | bytes, screen: str | None = None) -> Answer:
        """Answer an app's offer: token, bounds, SDP, then (only then) a peer connection."""
        claims = self.authenticate(token)
        customer = claims.customer_id
        self._admit(customer)
        try:
            summary = check_offer(sdp, self.settings.app_call_max_sdp_bytes)
            screen = valid_screen(screen) or claims.screen
        except OfferRefused as exc:
            raise AppCallRefused(exc.status, str(exc)) from None
        except ValueError as exc:
            raise AppCallRefused(422, str(exc)) from None
        session_id = uuid.uuid4()
        record = AppCallRecord(call_id=f"app-{session_id.hex}", customer_id=customer, screen=screen,
                               codecs=list(summary.codecs))
        call = AppCall(record=record, session_id=session_id)
        # The call holds its places from here (no await before): a burst of offers cannot overrun the bounds.
        self.calls[call.call_id] = call
        self._by_customer[customer].add(call.call_id)
        call.last_audio = asyncio.get_running_loop().time()
        try:
            answer = await self._answer(call, sdp if isinstance(sdp, str) else sdp.decode("utf-8"))
        except Exception as exc:
            reason = f"the offer could not be answered ({type(exc).__name__}: {exc})"
            await self._end(call, reason, EndedBy.GATEWAY)
            if isinstance(exc, ValueError | TypeError | KeyError | IndexError):
                raise AppCallRefused(422, f"the SDP offer cannot be used: {exc}") from None
            raise
        log.info("app call %s: customer %s%s, %s; answered, waiting for ICE", call.call_id, customer,
                 f" from screen {screen}" if screen else "", "/".join(summary.codecs))
        await self._save(call)
        return Answer(call.call_id, answer, link_headers(self._servers))

    async def hang_up(self, token: str, call_id: str) -> AppCallRecord:
        call = self._own(token, call_id)
        await self._end(call, "the app hung up", EndedBy.APP)
        return call.record

    async def dtmf(self, token: str, call_id: str, digits: str) -> None:
        call = self._own(token, call_id)
        await self._send_dtmf(call, digits)

    async def status(self, token: str, call_id: str) -> AppCallRecord:
        """The app call's record (live, or as kept in Redis after it ended)."""
        claims = self.authenticate(token)
        call = self.calls.get(call_id)
        if call is not None and call.record.customer_id == claims.customer_id:
            return call.record
        stored = await self._load(call_id)
        if stored is None or stored.customer_id != claims.customer_id:
            raise AppCallRefused(404, f"no app call {call_id} of this customer")
        return stored

    # --- the controller's side

    def identify(self, call: CallRecord) -> str | None:
        """If ``call`` is one of our app calls, fill in what the app says and return the token's customer id.

        The customer comes from the gateway's own verified call, keyed by the channel's uniqueid (which the
        gateway chose at originate), never from caller ID or a channel variable."""
        app = self.calls.get(call.call_id)
        if app is None or app.ended:
            return None
        app.hotline = call
        call.via = "app"
        call.app_customer = app.record.customer_id
        call.app_screen = app.record.screen
        intent = self.settings.app_screen_intents.get(app.record.screen or "")
        call.app_intent = intent
        call.note(f"app call: customer {app.record.customer_id} authenticated in the app"
                  + (f", called from screen {app.record.screen}" + (f" (hint: {intent})" if intent else "")
                     if app.record.screen else ""))
        return app.record.customer_id

    def health(self) -> dict[str, int]:
        return {"app_calls_live": len(self.calls), "app_calls_bridge_rejected": self.bridges.rejected}

    # --- bounds

    def _admit(self, customer: str) -> None:
        """429 for a customer over their bound (calls at once, offers a minute), 503 when the gateway is full."""
        now = time.monotonic()
        offers = self._offers[customer]
        while offers and now - offers[0] > 60:
            offers.popleft()
        offers.append(now)  # every attempt counts, refused ones too: a retry storm is refused, not served
        live = len(self._by_customer.get(customer, ()))
        if live >= self.settings.app_calls_per_customer:
            raise AppCallRefused(429, f"customer {customer} already has {live} app calls (the most at once is "
                                      f"{self.settings.app_calls_per_customer})", {"Retry-After": "5"})
        if len(offers) > self.settings.app_call_offers_per_minute:
            retry = max(1, int(60 - (now - offers[0])) + 1)
            raise AppCallRefused(429, f"customer {customer} made {len(offers) - 1} app-call offers in the last minute "
                                      f"(the most is {self.settings.app_call_offers_per_minute})",
                                 {"Retry-After": str(retry)})
        if len(self.calls) >= self.settings.app_calls_max:
            raise AppCallRefused(503, f"the gateway carries its most app calls ({self.settings.app_calls_max}); "
                                      "try again shortly or dial the hotline", {"Retry-After": "10"})

    def _own(self, token: str, call_id: str) -> AppCall:
        claims = self.authenticate(token)
        call = self.calls.get(call_id)
        if call is None or call.record.customer_id != claims.customer_id:
            raise AppCallRefused(404, f"no live app call {call_id} of this customer")
        return call

    # --- the peer connection

    async def _answer(self, call: AppCall, sdp: str) -> str:
        pc = call.pc = RTCPeerConnection(RTCConfiguration(iceServers=self._servers or None))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(call, self._from_app(call, track), "from-app")

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            call.channel = channel

            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                self._spawn(call, self._control(call, message), "control")

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if call.ended:
                return
            if state == "connected" and call.record.state is State.OFFERED:
                call.record.state, call.record.connected_at = State.CONNECTED, time.time()
                call.last_audio = asyncio.get_running_loop().time()
                self._spawn(call, self._to_hotline(call), "to-hotline")
            elif state == "failed":
                self._spawn(call, self._end(call, "the app's network failed (ICE/DTLS connection failed)",
                                            EndedBy.NETWORK), "end")
            elif state == "closed":
                self._spawn(call, self._end(call, "the app closed the connection", EndedBy.APP), "end")

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        set_jitter_frames(pc.getReceivers(), self.settings.app_call_jitter_frames)
        inline_audio_coding(pc.getSenders(), pc.getReceivers())  # no thread hand-off per frame (see ivr.webrtc.coding)
        pc.addTrack(call.outbound)
        await pc.setLocalDescription(await pc.createAnswer())
        answer = str(pc.localDescription.sdp)
        if answered_codec(answer) == "opus":
            call.outbound.encode_opus()
        return answer

    async def _from_app(self, call: AppCall, track: MediaStreamTrack) -> None:
        """The app's audio to Asterisk as it comes (dropped until the bridge is up); its arrival feeds the watchdog."""
        audio = AppAudio()
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return  # the connection is closing: its state change ends the call
            call.last_audio = loop.time()
            call.frames_in += 1
            bridge = call.bridge
            if bridge is None or not isinstance(frame, av.AudioFrame):
                continue
            try:
                for pcm in audio.frames(frame):
                    bridge.send(pcm)
            except ConnectionError as exc:
                await self._end(call, str(exc), EndedBy.HOTLINE)
                return

    async def _to_hotline(self, call: AppCall) -> None:
        """Originate the call's AudioSocket channel into the hotline and relay Asterisk's audio until it ends."""
        s = self.settings
        connected = self.bridges.expect(call.session_id, call.call_id)
        screen = call.record.screen or ""
        call.originated = True  # from here a channel may exist (even if the reply never comes): hung up at the end
        try:
            await self.ami.originate(
                f"AudioSocket/{s.app_call_bridge_host}:{self.bridges.port}/{call.session_id}/c(slin16)",
                context=s.app_call_context, exten=s.app_call_exten, channel_id=call.call_id,
                caller_id='"app" <>',
                # For the dialplan's log only (filtered there too); the controller asks the gateway, not these.
                variables={"IVR_APP_CALL": call.call_id, "IVR_APP_CUSTOMER": call.record.customer_id,
                           "IVR_APP_SCREEN": screen},
                timeout_ms=int(s.app_call_connect_timeout_s * 1000))
            bridge = await asyncio.wait_for(connected, s.app_call_connect_timeout_s)
        except (AmiError, TimeoutError, OSError) as exc:
            self.bridges.forget(call.session_id)
            reason = f"the hotline could not be reached ({exc or 'Asterisk did not connect the call in time'})"
            await self._end(call, reason, EndedBy.GATEWAY)
            return
        if call.ended:  # ended while Asterisk connected: it must not stay up
            await bridge.close()
            return
        call.bridge = bridge
        call.record.state, call.record.in_hotline_at = State.IN_HOTLINE, time.time()
        log.info("app call %s: in the hotline (%.0f ms after ICE connected)", call.call_id,
                 1000 * (call.record.in_hotline_at - (call.record.connected_at or call.record.in_hotline_at)))
        self._notify(call, {"type": "state", "state": State.IN_HOTLINE.value})
        await self._save(call)
        reason = await bridge.relay_to(call.outbound)
        await self._end(call, reason, EndedBy.HOTLINE)

    async def _control(self, call: AppCall, message: str | bytes) -> None:
        """The app's data-channel messages: ``{"type": "dtmf", "digits": "1"}``, ``{"type": "hangup"}``."""
        try:
            data = json.loads(message)
            kind = data.get("type") if isinstance(data, dict) else None
        except (ValueError, UnicodeDecodeError):
            kind, data = None, {}
        if kind == "hangup":
            await self._end(call, "the app hung up", EndedBy.APP)
        elif kind == "dtmf":
            try:
                await self._send_dtmf(call, str(data.get("digits", "")))
            except AppCallRefused as exc:
                self._notify(call, {"type": "error", "status": exc.status, "detail": str(exc)})
        else:
            self._notify(call, {"type": "error", "status": 422,
                                "detail": 'unknown message: send {"type": "dtmf", "digits": "1"} or '
                                          '{"type": "hangup"}'})

    async def _send_dtmf(self, call: AppCall, digits: str) -> None:
        if not _DIGITS.match(digits):
            raise AppCallRefused(422, "digits must be 1 to 20 of 0-9, *, #, A-D")
        if call.record.state is not State.IN_HOTLINE:
            raise AppCallRefused(409, f"the app call is {call.record.state.value}, not in the hotline: no keys yet")
        if call.keys_waiting >= MAX_KEY_REQUESTS:
            raise AppCallRefused(429, f"{call.keys_waiting} key requests are still being sent: wait for them")
        call.keys_waiting += 1
        try:
            async with call.keys_lock:
                await self._play_keys(call, digits)
        finally:
            call.keys_waiting -= 1

    async def _play_keys(self, call: AppCall, digits: str) -> None:
        for index, digit in enumerate(digits):
            if index:
                await asyncio.sleep(DTMF_GAP_S)
            try:
                # As if the channel had received the key; "Async: false" keeps panoramisk from reading the
                # "DTMF successfully queued" reply as an async action's (it drops the connection on that).
                await self.ami.action({"Action": "PlayDTMF", "Channel": call.call_id, "Digit": digit,
                                       "Duration": str(DTMF_DURATION_MS), "Receive": "true", "Async": "false"},
                                      timeout=2.0)
            except AmiError as exc:
                raise AppCallRefused(503, f"the key could not be passed to the hotline ({exc})") from None

    # --- the end

    async def _watchdog(self) -> None:
        """ICE that never connects, and an app whose audio stopped (network gone, app killed): ended here, in
        seconds, rather than when ICE consent fails (about 30 s)."""
        loop = asyncio.get_running_loop()
        s = self.settings
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            now, wall = loop.time(), time.time()
            for call in list(self.calls.values()):
                if call.ended:
                    continue
                if call.record.state is State.OFFERED and wall - call.record.created_at > s.app_call_connect_timeout_s:
                    self._spawn(call, self._end(call, f"ICE did not connect within {s.app_call_connect_timeout_s:g} s",
                                                EndedBy.NETWORK), "end")
                elif call.record.state is not State.OFFERED and now - call.last_audio > s.app_call_media_timeout_s:
                    self._spawn(call, self._end(call, f"no audio from the app for {s.app_call_media_timeout_s:g} s "
                                                      "(its network or the app is gone)", EndedBy.NETWORK), "end")

    async def _end(self, call: AppCall, reason: str, by: EndedBy) -> None:
        """End the call everywhere, once: the record says why; nothing of it stays (peer connection, socket,
        Asterisk channel, places in the bounds)."""
        if call.ended:
            return
        call.ended = True
        record = call.record
        record.state, record.ended_at, record.ended_by, record.end_reason = State.ENDED, time.time(), by, reason
        self.calls.pop(call.call_id, None)
        places = self._by_customer.get(record.customer_id)
        if places is not None:
            places.discard(call.call_id)
            if not places:
                self._by_customer.pop(record.customer_id, None)
        self.ended_total[by] += 1
        if call.hotline is not None:  # in memory first: whatever the controller saves next carries it
            call.hotline.app_end = f"{by.value}: {reason}"
            call.hotline.note(f"app call ended by the {by.value}: {reason}")
        self._notify(call, {"type": "ended", "by": by.value, "reason": reason})
        current = asyncio.current_task()
        for task in list(call.tasks):
            if task is not current:
                task.cancel()
        if call.bridge is not None:
            await call.bridge.close()
        elif call.originated:
            self.bridges.forget(call.session_id)
            with contextlib.suppress(AmiError, OSError):  # never connected, or already gone: both are fine
                await self.ami.hangup(call.call_id)
        call.outbound.stop()
        if call.pc is not None:
            with contextlib.suppress(Exception):  # a half-made connection may fail to close; it is dropped anyway
                await asyncio.wait_for(call.pc.close(), 5)
        log.info("app call %s ended by the %s: %s", call.call_id, by.value, reason)
        await self._save(call)
        if self.on_end is not None:
            try:
                await self.on_end(record, call.hotline)
            except Exception:
                log.exception("app call %s: the end was not passed on", call.call_id)

    # --- helpers

    def _notify(self, call: AppCall, message: dict[str, Any]) -> None:
        channel = call.channel
        if channel is not None and channel.readyState == "open":
            with contextlib.suppress(Exception):
                channel.send(json.dumps(message))

    def _spawn(self, call: AppCall, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"app-call-{name}-{call.call_id}")
        call.tasks.add(task)
        task.add_done_callback(call.tasks.discard)
        task.add_done_callback(_log_failure)

    async def _save(self, call: AppCall) -> None:
        if self.redis is None:
            return
        try:
            async with asyncio.timeout(1.0):
                await self.redis.set(f"ivr:app-call:{call.call_id}", json.dumps(call.record.to_dict()),
                                     ex=self.settings.call_record_ttl_s)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("app call %s: record not saved (%s); the call goes on", call.call_id, exc or "timeout")

    async def _load(self, call_id: str) -> AppCallRecord | None:
        if self.redis is None or not re.match(r"^app-[0-9a-f]{32}$", call_id):
            return None
        try:
            async with asyncio.timeout(1.0):
                raw = await self.redis.get(f"ivr:app-call:{call_id}")
        except (TimeoutError, RedisError, OSError):
            raise AppCallRefused(503, "the app call's record cannot be read right now", {"Retry-After": "2"}) \
                from None
        if not raw:
            return None
        data = json.loads(raw)
        data["state"] = State(data["state"])
        data["ended_by"] = EndedBy(data["ended_by"]) if data.get("ended_by") else None
        known = set(AppCallRecord.__dataclass_fields__)
        return AppCallRecord(**{k: v for k, v in data.items() if k in known})


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
