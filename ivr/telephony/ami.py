"""AMI: the Asterisk Manager Interface, over panoramisk, supervised.

panoramisk reconnects a lost connection by itself; what it does not do is tell
anyone that a login failed (it stays connected and unauthenticated), refuse
values that would inject extra AMI headers, or notice a link that went silent
(a firewall dropping packets, a hung Asterisk: TCP retransmits for minutes, its
pings expect no reply, and its reconnect waits as long for a SYN that is dropped).
All three are handled here: a Ping that must be answered, and a connect timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from panoramisk import Manager
from panoramisk.message import Message

from ivr import metrics

log = logging.getLogger(__name__)

EventCallback = Callable[[Message], Any]


class AmiError(Exception):
    """An AMI action failed; ``status`` is Asterisk's Response value, ``action_id`` its id."""

    def __init__(self, message: str, status: str = "", action_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.action_id = action_id


class AmiNotConnected(AmiError):
    """No logged-in AMI connection right now."""


def check_action(action: Mapping[str, Any]) -> dict[str, Any]:
    """Copy an action, refusing CR/LF in any value: a line break would start a new AMI header."""
    clean: dict[str, Any] = {}
    for key, value in action.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            text = str(item)
            if "\r" in text or "\n" in text:
                raise ValueError(f"AMI {action.get('Action', '?')} field {key!r} contains a line break")
        clean[key] = value
    return clean


class _SupervisedManager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, reporting login results instead of staying silently unauthenticated."""

    client: AmiClient

    def login(self, future: asyncio.Future[Any]) -> bool:
        ok = bool(super().login(future))
        self.client._login_result(ok, future)
        return ok

    def connect(self, run_forever: bool = False, on_startup: Any = None, on_shutdown: Any = None) -> Any:
        """panoramisk's connect, with a timeout: a dropped SYN fails in seconds, not after the kernel's two minutes
        of retries, so the link comes back within ``reconnect_timeout`` of the network coming back."""
        async def attempt() -> Any:
            return await asyncio.wait_for(
                self.loop.create_connection(self.config["protocol_factory"], self.config["host"], self.config["port"],
                                            ssl=self.config["ssl"]), self.client.connect_timeout_s)

        task = self.loop.create_task(attempt())
        task.add_done_callback(self.connection_made)  # a TimeoutError is an OSError: panoramisk retries
        return task


class AmiClient:
    """One logged-in AMI connection for the controller, reconnecting when Asterisk restarts."""

    def __init__(self, host: str, port: int, username: str, secret: str, reconnect_s: float = 2.0,
                 ping_s: float = 5.0, ping_timeout_s: float = 3.0, connect_timeout_s: float = 3.0) -> None:
        self.host, self.port, self.username = host, port, username
        self.ping_s, self.ping_timeout_s, self.connect_timeout_s = ping_s, ping_timeout_s, connect_timeout_s
        """A Ping every ``ping_s`` must be answered within ``ping_timeout_s``, or the link is dropped and made
        again; a connection attempt gives up after ``connect_timeout_s`` (and is retried)."""
        self._manager = _SupervisedManager(
            host=host,
            port=port,
            username=username,
            secret=secret,
            events="on",
            reconnect_timeout=reconnect_s,
            ping_delay=5,
            ping_interval=5,
            on_disconnect=self._on_disconnect,
        )
        self._manager.client = self
        self._ready = asyncio.Event()
        self.logins = 0
        """Successful logins since start (a reconnect after an Asterisk restart adds one)."""
        self.last_error = ""
        """Why the last login or connection failed, for ivr status/doctor."""
        self._retry: asyncio.TimerHandle | None = None
        self.on_connected: Callable[[], Awaitable[None]] | None = None
        """Run after every successful login (the ACD reads device states and holding callers)."""
        self._pending: set[asyncio.Future[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.dropped = 0
        """Connections dropped because Asterisk stopped answering (a silent link, not a clean close)."""

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def on(self, pattern: str, callback: EventCallback) -> None:
        """Register for events by name pattern ('*' for all)."""
        self._manager.register_event(pattern, lambda _manager, event: callback(event))

    def start(self) -> None:
        self._manager.loop = asyncio.get_running_loop()
        self._manager.connect()
        self._watchdog = asyncio.create_task(self._watch(), name="ami-watchdog")

    async def _watch(self) -> None:
        """Ask Asterisk for a Pong every ``ping_s``; no answer in ``ping_timeout_s``: the link is dead, drop it.
        A Login left unanswered as long (connected just as the link went silent) is dropped the same way:
        panoramisk would wait for its answer for ever."""
        login: tuple[Any, float] | None = None
        while True:
            await asyncio.sleep(self.ping_s)
            if not self.ready:
                pending = getattr(self._manager, "authenticated_future", None)
                now = asyncio.get_running_loop().time()
                if pending is None or pending.done():
                    login = None
                elif login is None or login[0] is not pending:
                    login = (pending, now)
                elif now - login[1] > self.ping_timeout_s:
                    login = None
                    self.last_error = f"AMI at {self.host}:{self.port} did not answer the Login"
                    log.warning("%s in %g s; connecting again", self.last_error, self.ping_timeout_s)
                    self._drop()
                continue
            try:
                await self.action({"Action": "Ping"}, timeout=self.ping_timeout_s)
            except AmiError as exc:
                if exc.status != "Timeout" or not self.ready:
                    continue  # not connected (panoramisk is on it), or an answer that is no Pong: alive
                self.dropped += 1
                self.last_error = f"AMI at {self.host}:{self.port} did not answer a Ping in {self.ping_timeout_s:g} s"
                log.warning("%s: the link is presumed dead; dropping it and reconnecting", self.last_error)
                self._drop()

    def _drop(self) -> None:
        """Abort the connection (no FIN handshake over a dead link): panoramisk sees it lost and reconnects."""
        self._ready.clear()
        metrics.set_up(metrics.Component.AMI, False)
        protocol = getattr(self._manager, "protocol", None)
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.abort()

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._retry:
            self._retry.cancel()
        self._manager.close()
        self._ready.clear()
        metrics.set_up(metrics.Component.AMI, False)

    def _login_result(self, ok: bool, future: asyncio.Future[Any]) -> None:
        if ok:
            self.logins += 1
            self.last_error = ""
            self._ready.set()
            metrics.set_up(metrics.Component.AMI, True)
            if self.logins > 1:
                metrics.AMI_RECONNECTS.inc()
            log.info("AMI logged in as %r at %s:%d (login #%d)", self.username, self.host, self.port, self.logins)
            if self.on_connected is not None:
                # After every (re)login: whoever follows Asterisk's state reads it afresh.
                task = asyncio.ensure_future(self.on_connected())
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            return
        reply = future.result()
        self.last_error = f"AMI login as {self.username!r} refused: {reply.get('Message', reply)}"
        metrics.error(metrics.ErrorKind.AMI_LOGIN)
        log.error("%s; check IVR_AMI_SECRET in run/secrets.env against asterisk_conf/manager.conf "
                  "(regenerate with `ivr setup`). Retrying in 10 s.", self.last_error)
        # Drop this unauthenticated connection; panoramisk's reconnect logic tries again.
        self._retry = asyncio.get_running_loop().call_later(10, self._manager.protocol.close)

    def _on_disconnect(self, _manager: Manager, exc: Exception | None) -> None:
        if self._ready.is_set():
            log.warning("AMI connection to %s:%d lost (%s); reconnecting", self.host, self.port, exc or "closed")
        self._ready.clear()
        metrics.set_up(metrics.Component.AMI, False)

    async def action(self, action: Mapping[str, Any], timeout: float = 10.0) -> Message | list[Message]:
        """Send an action and return its response; raise AmiError on Response: Error."""
        if not self.ready:
            raise AmiNotConnected(f"AMI not logged in ({self.last_error or 'connecting'})")
        clean = check_action(action)
        try:
            reply = await asyncio.wait_for(self._manager.send_action(clean), timeout)
        except TimeoutError:
            raise AmiError(f"AMI {clean.get('Action')} got no reply in {timeout:g} s", "Timeout") from None
        first = reply[0] if isinstance(reply, list) else reply
        if first.get("Response") == "Error":
            raise AmiError(
                f"AMI {clean.get('Action')} failed: {first.get('Message', 'error')}",
                "Error",
                first.get("ActionID", ""),
            )
        return reply

    # --- the actions the controller uses

    async def setvar(self, channel: str | None, name: str, value: str) -> None:
        """Set a channel variable, or a global one when ``channel`` is None."""
        action = {"Action": "Setvar", "Variable": name, "Value": value}
        if channel is not None:
            action["Channel"] = channel
        await self.action(action)

    async def redirect(self, channel: str, context: str, exten: str = "s", priority: int = 1) -> None:
        """Move a channel to another place in the dialplan, whatever it is doing there now."""
        await self.action({"Action": "Redirect", "Channel": channel, "Context": context, "Exten": exten,
                           "Priority": str(priority)})

    async def hangup(self, channel: str, cause: int = 16) -> None:
        await self.action({"Action": "Hangup", "Channel": channel, "Cause": str(cause)})

    async def originate(
        self,
        channel: str,
        *,
        context: str,
        exten: str = "s",
        priority: int = 1,
        caller_id: str = "",
        variables: Mapping[str, str] | None = None,
        channel_id: str = "",
        other_channel_id: str = "",
        timeout_ms: int = 30_000,
        codecs: str = "",
    ) -> None:
        """Originate without waiting for the answer (Async: the result arrives as an event).

        ``codecs``: the new channel's formats (e.g. "slin16" for a wideband Local channel); Asterisk's
        default when empty is slin, 8 kHz.
        """
        action: dict[str, Any] = {
            "Action": "Originate",
            "Channel": channel,
            "Context": context,
            "Exten": exten,
            "Priority": str(priority),
            "Timeout": str(timeout_ms),
            "Async": "true",
        }
        if caller_id:
            action["CallerID"] = caller_id
        if channel_id:
            action["ChannelId"] = channel_id
        if other_channel_id:
            action["OtherChannelId"] = other_channel_id
        if codecs:
            action["Codecs"] = codecs
        if variables:
            action["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        # Only the immediate "queued" reply is awaited: waiting for OriginateResponse here
        # would serialize originates (panoramisk #88).
        if not self.ready:
            raise AmiNotConnected(f"AMI not logged in ({self.last_error or 'connecting'})")
        future = self._manager.send_action(check_action(action), as_list=False)
        reply = await asyncio.wait_for(future, 10)
        if reply.get("Response") == "Error":
            raise AmiError(f"AMI Originate of {channel} failed: {reply.get('Message')}", "Error",
                           reply.get("ActionID", ""))
