"""FastAGI: the call-control socket Asterisk opens to the controller for each call.

Asterisk sends ``agi_*: value`` lines and a blank line, then the controller sends
one command per line and reads one ``200 result=...`` reply per command.

panoramisk's ``fast_agi.Application`` spins forever if a peer closes before the
blank line and fails on an empty reply at hang-up, so the session framing lives
here (bounded, with timeouts); panoramisk's reply parser is reused as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from panoramisk.utils import parse_agi_result

from ivr import metrics
from ivr.telephony.tcp import TcpListener

log = logging.getLogger(__name__)

#: An AGI environment is a few dozen short lines; anything larger is not Asterisk.
MAX_ENVIRONMENT_BYTES = 16_384
REQUIRED_KEYS = ("agi_network_script", "agi_channel", "agi_uniqueid")
_UNSAFE_ARG = re.compile(r'[\r\n"\\]')
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_()]*$")


class AgiError(Exception):
    """An AGI session failed; ``status`` is the AGI status code (0 when none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class MalformedEnvironment(AgiError):
    """Asterisk's greeting was incomplete, oversized or missing required keys."""

    def __init__(self, message: str, received: int | None = None) -> None:
        super().__init__(message)
        self.received = received
        """Bytes the peer sent before closing, when it closed early; None for the other failures."""

    @property
    def is_probe(self) -> bool:
        """The peer connected and closed without a byte: a port probe (`ivr doctor`, a monitor), no call."""
        return self.received == 0


class CallHungUp(AgiError):
    """The channel is gone: HANGUP, 511 (dead channel) or result=-1."""


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The facts Asterisk sends at the start of a FastAGI session."""

    script: str
    """The route asked for (``agi_network_script``), e.g. ``hotline``."""
    channel: str
    """Asterisk channel name, e.g. ``PJSIP/trunk-00000001``."""
    uniqueid: str
    """The channel's unique id; the controller's call id."""
    caller: str
    """Caller number, reduced to digits and a leading +; empty when withheld."""
    caller_name: str
    """Caller name as presented (display only)."""
    dialed: str
    """The number dialed (``agi_dnid``), digits only."""
    context: str
    """Dialplan context the AGI ran from."""
    language: str
    """Channel language (``agi_language``)."""
    raw: Mapping[str, str]
    """All agi_* keys as received."""

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> AgiEnvironment:
        missing = [k for k in REQUIRED_KEYS if not headers.get(k)]
        if missing:
            raise MalformedEnvironment(f"AGI environment lacks {', '.join(missing)}")
        return cls(
            script=headers["agi_network_script"].strip("/"),
            channel=headers["agi_channel"],
            uniqueid=headers["agi_uniqueid"],
            caller=normalize_number(headers.get("agi_callerid", "")),
            caller_name=headers.get("agi_calleridname", "")[:80],
            dialed=re.sub(r"\D", "", headers.get("agi_dnid", "")),
            context=headers.get("agi_context", ""),
            language=headers.get("agi_language", "en"),
            raw=dict(headers),
        )


def normalize_number(value: str) -> str:
    """Digits only, keeping one leading '+'; 'unknown'/'anonymous' become ''."""
    value = value.strip()
    plus = value.startswith("+")
    digits = re.sub(r"\D", "", value)
    return ("+" if plus and digits else "") + digits


def parse_environment(blob: bytes) -> dict[str, str]:
    """Parse the ``key: value`` lines of an AGI greeting (tolerates CRLF and junk lines)."""
    headers: dict[str, str] = {}
    for line in blob.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("agi_"):
            headers[key.strip()] = value.strip()
    return headers


async def read_environment(reader: asyncio.StreamReader, timeout: float) -> dict[str, str]:
    """Read the greeting up to its blank line, bounded in time and size."""
    try:
        blob = await asyncio.wait_for(reader.readuntil(b"\n\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        raise MalformedEnvironment(f"peer closed after {len(exc.partial)} bytes, before the blank line",
                                   received=len(exc.partial)) from None
    except asyncio.LimitOverrunError:
        raise MalformedEnvironment(f"AGI environment over {MAX_ENVIRONMENT_BYTES} bytes") from None
    except TimeoutError:
        raise MalformedEnvironment(f"no complete AGI environment within {timeout:g} s") from None
    return parse_environment(blob)


def quote_arg(value: str) -> str:
    """Quote one AGI argument; refuses characters that would break out of the quotes."""
    if _UNSAFE_ARG.search(value):
        raise ValueError(f"AGI argument contains a quote, backslash or line break: {value!r}")
    return f'"{value}"'


@dataclass(frozen=True, slots=True)
class AgiReply:
    """A parsed reply to one AGI command."""

    status: int
    """AGI status code (200 on success)."""
    result: str
    """The ``result=`` value."""
    data: str
    """The parenthesised data after the result, if any."""


class AgiSession:
    """One FastAGI request: send commands to the call's channel."""

    def __init__(self, env: AgiEnvironment, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.env = env
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self.hung_up = False

    async def command(self, line: str) -> AgiReply:
        if "\n" in line or "\r" in line:
            raise ValueError(f"AGI command contains a line break: {line!r}")
        if self.hung_up:
            raise CallHungUp("channel already hung up", 511)
        async with self._lock:  # one command in flight per channel, replies come in order
            try:
                self._writer.write(line.encode() + b"\n")
                await self._writer.drain()
                while True:
                    raw = await self._reader.readline()
                    if not raw:
                        self.hung_up = True
                        raise CallHungUp("AGI socket closed by Asterisk")
                    text = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if text == "HANGUP":  # async notice (AGISIGHUP=yes); the reply follows
                        self.hung_up = True
                        continue
                    if text.startswith("520-"):
                        # A usage error spans lines up to "520 End of proper usage."; read them all
                        # or the next command would get this reply's tail.
                        usage = [text]
                        while not usage[-1].startswith("520 "):
                            more = await self._reader.readline()
                            if not more:
                                break
                            usage.append(more.decode("utf-8", "replace").rstrip("\r\n"))
                        raise AgiError(f"AGI {line!r} rejected: " + " ".join(usage), 520)
                    reply: dict[str, Any] = (parse_agi_result(text) if text[:3].isdigit()
                                             else {"error": "unparsable", "msg": text})
                    if reply.get("status_code") == 100:  # "100 Trying..." precedes the real reply
                        continue
                    break
            except (ConnectionError, OSError) as exc:
                self.hung_up = True
                raise CallHungUp(f"AGI socket error: {exc}") from None
        if text.startswith("511"):
            self.hung_up = True
            raise CallHungUp("command on a dead channel", 511)
        error = reply.get("error")
        if error in ("AGIResultHangup", "AGIAppError"):
            self.hung_up = True
            raise CallHungUp(f"{line.split(' ', 2)[:2]} ended by hangup", 200)
        if error:
            raise AgiError(f"AGI {line!r} failed: {error} {reply.get('msg', '')}".strip(), reply.get("status_code", 0))
        value, data = reply.get("result", ("", ""))
        return AgiReply(status=reply["status_code"], result=value, data=data)

    async def exec(self, application: str, *args: str) -> AgiReply:
        if not application.isalnum():
            raise ValueError(f"not an application name: {application!r}")
        joined = ",".join(args)
        return await self.command(f"EXEC {application} {quote_arg(joined)}" if args else f"EXEC {application}")

    async def set_variable(self, name: str, value: str) -> None:
        if not _VARIABLE_NAME.match(name):
            raise ValueError(f"not a channel variable name: {name!r}")
        await self.command(f"SET VARIABLE {name} {quote_arg(value)}")

    async def get_variable(self, name: str) -> str | None:
        if not _VARIABLE_NAME.match(name):
            raise ValueError(f"not a channel variable name: {name!r}")
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.result == "1" else None


AgiHandler = Callable[[AgiSession], Awaitable[None]]


class FastAgiServer(TcpListener):
    """Routes FastAGI requests by script name; one failing call never disturbs another."""

    protocol = "FastAGI"
    read_limit = MAX_ENVIRONMENT_BYTES
    while_busy = "new calls do not reach this controller: the dialplan's fallback queues them for a person"

    def __init__(self, host: str, port: int, environment_timeout: float = 5.0) -> None:
        super().__init__(host, port)
        self.environment_timeout = environment_timeout
        self._routes: dict[str, AgiHandler] = {}
        self.active: set[asyncio.Task[None]] = set()

    def route(self, script: str, handler: AgiHandler) -> None:
        if script in self._routes:
            raise ValueError(f"AGI route {script!r} already registered")
        self._routes[script] = handler

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.active.add(task)
        peer = writer.get_extra_info("peername")
        script = "?"
        try:
            env = AgiEnvironment.from_headers(await read_environment(reader, self.environment_timeout))
            script = env.script
            handler = self._routes.get(env.script)
            if handler is None:
                metrics.error(metrics.ErrorKind.AGI_REQUEST)
                log.error("FastAGI from %s asked for unknown route %r (known: %s)", peer, env.script,
                          ", ".join(sorted(self._routes)))
                return
            await handler(AgiSession(env, reader, writer))
        except MalformedEnvironment as exc:
            if exc.is_probe:
                log.debug("FastAGI connection from %s closed without a request (a port probe)", peer)
            else:
                metrics.error(metrics.ErrorKind.AGI_REQUEST)
                log.error("FastAGI from %s rejected: %s", peer, exc)
        except CallHungUp:
            log.info("FastAGI %s: caller hung up", script)
        except Exception:
            # The dialplan continues after AGI() returns: the caller still reaches a person.
            metrics.error(metrics.ErrorKind.AGI_HANDLER)
            log.exception("FastAGI %s from %s failed; Asterisk's dialplan takes over", script, peer)
        finally:
            self.active.discard(task)
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
                await writer.wait_closed()
