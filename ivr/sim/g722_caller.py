"""``ivr call --sip --codec g722``: the simulated caller as a wideband (G.722) SIP phone, with baresip.

pyVoIP (:mod:`ivr.sim.sip_caller`) speaks G.711 only, so an HD voice caller is Debian's baresip
(``baresip-core``, 1.0.0 in bookworm), run headless: registered as the simulator's extension
(``settings.sim_extension``), it dials ``<hotline>*<caller digits>`` like the pyVoIP phone, so Asterisk's
``[sim-phone]`` context presents the digits as the caller's number. Everything else (following the
controller, answering turns in order, deciding the outcome) is :class:`ivr.sim.simulator.CallDriver`.

How baresip is driven, and what baresip 1.0.0 really does (read in its v1.0.0 source and measured
against Asterisk 22, 2026-12-02); newer baresip differs on several points:

- It runs with ``-f <temporary folder>`` holding our own ``config`` and ``accounts``, loading only
  ``g722`` (``g711`` for a narrowband caller), ``aufile``, ``account``, ``menu`` (the commands) and
  ``ctrl_tcp``. No audio player module is loaded: baresip then plays nothing and needs no sound card.
- ``ctrl_tcp`` is the control interface: netstring-framed JSON, ``{"command", "params", "token"}`` in,
  responses (``"response": true``, ``"ok"``, ``"data"``, the token) and events (``"event": true``,
  ``"type"``: REGISTER_OK, CALL_ESTABLISHED, CALL_CLOSED...; ``"id"``: the SIP Call-ID) out. It
  accepts one connection and sends events only to a connected client: a registration that finished
  before we connected is seen with ``reginfo`` (``OK``/``ERR``; the reason only in baresip's log). A
  port already taken is only a warning and baresip carries on, so the log is checked before connecting.
- ``audio_codecs`` entries are ``name/srate/ch``; a bare ``G722`` means ``G722/8000/1`` and is not
  found (baresip's G.722 is ``G722/16000/1``), so the account would silently offer every codec.
- ``aufile`` is the audio source. It reads the whole WAV into memory when the source starts, wants
  exactly the source's rate and channels (``ausrc_srate 16000`` here, resampled by baresip for a G.711
  call), and at the end of the file it reports an audio error that **closes the call** (within a
  second). So each turn's file is the utterance followed by silence outlasting the call, and a turn is
  answered by switching the source to that file (the ``ausrc aufile,<path>`` command; device names are
  limited to 127 characters). The call starts on a silent file.
- DTMF: ``sndcode <digits>`` sends RFC 4733 telephone-events (the only DTMF baresip 1.0.0 sends),
  what ``dtmf_mode = rfc4733`` expects; one digit per command, then a pause.
- ``quit`` or a first SIGTERM only starts an orderly stop (it unregisters, then waits for its SIP
  transactions to end: we saw it linger well over 10 s); a second SIGTERM exits at once. ``-t`` bounds
  its life if we die without stopping it.
- Its Contact and SDP carry the address of ``net_interface`` (give an IP: ``lo`` is refused, "no such device").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from panoramisk.message import Message

from ivr.audio import write_wav
from ivr.config import Settings
from ivr.ops.provision import sip_password_key
from ivr.sim.simulator import SimulatedCall, SimulationError
from ivr.sim.sip_phone import SipPhoneDriver, local_ip_towards
from ivr.telephony.ami import AmiClient, AmiError

#: Asterisk's PJSIP UDP transport (asterisk_conf/pjsip.conf, [transport-udp]).
SIP_SERVER = ("127.0.0.1", 5060)
#: baresip's RTP ports: apart from Asterisk's (10000-10999, rtp.conf) and the pyVoIP phones' (11000-11100).
RTP_PORTS = (11200, 11399)
#: Where the ctrl_tcp port is picked from.
CONTROL_PORTS = range(11400, 11500)
#: Where Debian's baresip-core puts its modules.
MODULE_PATH = Path("/usr/lib/baresip/modules")
#: baresip's audio source rate: every turn file is 16 kHz (G.722's rate; baresip resamples for G.711).
SOURCE_RATE = 16000

#: Codec name -> (baresip's audio_codecs entry, module), and what the Debian package to install is.
CODECS = {
    "g722": ("G722/16000/1", "g722"),
    "pcmu": ("PCMU/8000/1", "g711"),
    "pcma": ("PCMA/8000/1", "g711"),
}
CODEC_ALIASES = {"ulaw": "pcmu", "alaw": "pcma"}
PACKAGE_HINT = "apt-get install baresip-core (scripts/setup.sh installs it)"


def codec_names(codecs: tuple[str, ...] | list[str]) -> list[str]:
    """Our codec names, aliases resolved; unknown names are a SimulationError."""
    names = [CODEC_ALIASES.get(c.lower(), c.lower()) for c in codecs]
    unknown = [c for c, n in zip(codecs, names, strict=True) if n not in CODECS]
    if unknown or not names:
        raise SimulationError(f"codec {', '.join(unknown) or '(none)'}: baresip calls with "
                              f"{', '.join(CODECS)} (in the order given)")
    return names


def _free_tcp_port(ip: str, candidates: range) -> int:
    ports = list(candidates)
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((ip, port))
            except OSError:
                continue
            return port
    raise SimulationError(f"no free TCP port on {ip} in {candidates.start}-{candidates.stop - 1} "
                          "for baresip's ctrl_tcp")


def netstring(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload).encode()
    return b"%d:%s," % (len(data), data)


class BaresipControl:
    """baresip's ctrl_tcp: commands with their responses, and the events it sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []
        self._tokens = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(), name="baresip-ctrl")

    @classmethod
    async def connect(cls, host: str, port: int) -> BaresipControl:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                length = await self.reader.readuntil(b":")
                body = await self.reader.readexactly(int(length[:-1]) + 1)
                message = json.loads(body[:-1])
                if message.get("response"):
                    future = self._pending.pop(str(message.get("token", "")), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("event"):
                    self.events.append(message)
                    self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(SimulationError("baresip closed its control connection"))
            self._changed.set()

    @property
    def closed(self) -> bool:
        return self._task.done()

    async def command(self, command: str, params: str | None = None, timeout: float = 5.0) -> str:
        """Run a baresip command; its printed answer. A command baresip reports failed is a SimulationError."""
        if self.closed:
            raise SimulationError(f"baresip's control connection is closed (command {command!r})")
        token = str(next(self._tokens))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        message: dict[str, Any] = {"command": command, "token": token}
        if params is not None:
            message["params"] = params
        self.writer.write(netstring(message))
        await self.writer.drain()
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise SimulationError(f"baresip did not answer the command {command!r} within {timeout:g} s") from None
        finally:
            self._pending.pop(token, None)
        data = str(reply.get("data", ""))
        if not reply.get("ok"):
            raise SimulationError(f"baresip command {command!r} failed: {data.strip()}")
        return data

    async def wait_event(self, types: set[str], start: int = 0, timeout: float = 10.0) -> dict[str, Any] | None:
        """The first event of one of ``types`` from index ``start`` on; None on timeout or a closed connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = start
        while True:
            for event in self.events[seen:]:
                if event.get("type") in types:
                    return event
            seen = len(self.events)
            if self.closed:
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class G722Caller(SipPhoneDriver):
    """A simulated call from a baresip phone registered as ``settings.sim_extension``, offering ``codecs``.

    ``codecs`` in offer order: ("g722",) is an HD voice phone; ("pcmu",) a narrowband one; ("pcmu", "g722")
    a phone preferring G.711 that also has G.722 (Asterisk answers in its own order). After a call,
    ``native_format`` is what Asterisk reported as the caller channel's CHANNEL(audionativeformat).
    """

    def __init__(self, settings: Settings, codecs: tuple[str, ...] = ("g722",), server: tuple[str, int] = SIP_SERVER,
                 rtp_ports: tuple[int, int] = RTP_PORTS, baresip: str = "baresip") -> None:
        super().__init__(settings)
        self.codecs = codec_names(codecs)
        self.server, self.rtp_ports, self.baresip = server, rtp_ports, baresip
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        """The process id of the last baresip started (gone once run() returns)."""
        self.control: BaresipControl | None = None
        self.work: Path | None = None
        self.sip_call_id = ""
        """The SIP Call-ID of the last call (baresip's call id)."""
        self.native_format = ""
        """The caller channel's CHANNEL(audionativeformat) in Asterisk, e.g. "(g722)"."""
        self._pad_s = 90.0  # seconds of silence after each utterance: longer than the call (set by run())

    # --- the audio of a turn

    def audio_turn(self, wav: Path) -> str:
        """A WAV for aufile: the turn's 16 kHz utterance, then silence outlasting the call (see the module doc)."""
        samples = np.frombuffer(wav.read_bytes(), dtype="<i2")  # prepare() wrote raw 16 kHz samples (.sln16)
        padded = np.concatenate([samples, np.zeros(int(self._pad_s * SOURCE_RATE), dtype="<i2")])
        target = wav.with_suffix(".wav")
        write_wav(target, padded.tobytes(), SOURCE_RATE)
        self._check_device(target)
        return str(target)

    @staticmethod
    def _check_device(path: Path) -> None:
        if len(f"aufile,{path}") > 127:
            raise SimulationError(f"{path}: baresip takes audio device names of at most 127 characters: "
                                  "set TMPDIR to a shorter folder")

    # --- running a call

    def run(
        self,
        caller: str,
        audio: list[Path],
        dtmf: list[str] | None = None,
        until: str = "queued",
        timeout: float = 60.0,
        barge_in: bool = False,
    ) -> dict[str, Any]:
        """Like Simulator.run, but synchronous (as SipCaller.run)."""
        sim = self.new_call(caller, until)
        sim.call_id = ""  # Asterisk's uniqueid of the PJSIP channel, learned in place()
        sim.rate = SOURCE_RATE if "g722" in self.codecs else 8000
        self._candidates, self.sip_call_id, self.native_format = [], "", ""
        binary = shutil.which(self.baresip)
        if binary is None:
            raise SimulationError(f"baresip is not installed (no {self.baresip!r} on PATH): {PACKAGE_HINT}")
        missing = [m for m in ("account", "menu", "ctrl_tcp", "aufile", *self._codec_modules())
                   if not (MODULE_PATH / f"{m}.so").exists()]
        if missing:
            raise SimulationError(f"baresip modules {', '.join(missing)} are missing from {MODULE_PATH}: "
                                  f"{PACKAGE_HINT}")
        password = self.password()
        self._pad_s = timeout + 30.0
        self.work = Path(tempfile.mkdtemp(prefix="ivr-baresip-"))
        try:
            sim.turns = self.prepare(audio, dtmf or [], self.work, rate=SOURCE_RATE)
            return asyncio.run(self._drive(sim, binary, password, until, timeout, barge_in))
        finally:
            self._stop_process()  # also when interrupted: never leave a registered baresip behind
            shutil.rmtree(self.work, ignore_errors=True)

    async def _drive(self, sim: SimulatedCall, binary: str, password: str, until: str, timeout: float,
                     barge_in: bool) -> dict[str, Any]:
        try:
            await self._start(binary, password, timeout)
            return await self.drive(sim, until, timeout, barge_in)
        finally:
            if self.control is not None:
                await self.control.close()
                self.control = None

    def _log_tail(self, lines: int = 8) -> str:
        """The last lines of baresip's log, without its status line and colours."""
        if self.work is None or not (self.work / "baresip.log").exists():
            return ""
        text = (self.work / "baresip.log").read_text(errors="replace")
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        kept = [line.strip() for line in re.split(r"[\r\n]+", text)
                if line.strip() and not line.lstrip().startswith("[0:")]
        return " | ".join(kept[-lines:])

    def _codec_modules(self) -> list[str]:
        return sorted({CODECS[c][1] for c in self.codecs})

    def _write_config(self, ip: str, control_port: int, password: str) -> None:
        assert self.work is not None
        silence = self.work / "silence.wav"
        write_wav(silence, bytes(int(self._pad_s * SOURCE_RATE) * 2), SOURCE_RATE)
        self._check_device(silence)
        host, port = self.server
        codecs = ",".join(CODECS[c][0] for c in self.codecs)
        # answermode=manual: the phone never answers a call; regint: no re-REGISTER within a simulated call.
        account = (f"<sip:{self.extension}@{host}:{port};transport=udp>;auth_pass={password};"
                   f"audio_codecs={codecs};regint=3600;answermode=manual;mwi=no\n")
        accounts = self.work / "accounts"
        accounts.touch(mode=0o600)
        accounts.write_text(account)
        lines = [
            "poll_method epoll",
            f"sip_listen {ip}:0",  # any free port
            f"net_interface {ip}",  # the address put in the SDP
            "call_max_calls 1",
            f"audio_source aufile,{silence}",
            f"ausrc_srate {SOURCE_RATE}",
            "ausrc_channels 1",
            f"rtp_ports {self.rtp_ports[0]}-{self.rtp_ports[1]}",
            f"module_path {MODULE_PATH}",
            *(f"module {m}.so" for m in ("aufile", *self._codec_modules())),
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {ip}:{control_port}",
        ]
        (self.work / "config").write_text("\n".join(lines) + "\n")

    async def _start(self, binary: str, password: str, timeout: float) -> None:
        assert self.work is not None
        host, port = self.server
        try:
            ip = local_ip_towards(host, port)
        except OSError as exc:
            raise SimulationError(f"no route to Asterisk's SIP at {host}:{port}: {exc}") from None
        for _attempt in range(3):  # another program may take the control port between our probe and baresip
            control_port = _free_tcp_port(ip, CONTROL_PORTS)
            await asyncio.to_thread(self._launch, binary, ip, control_port, password, timeout)
            ready = await self._wait_ready()
            if ready == "ready":
                break
            self._stop_process()
            if ready != "port taken":
                raise SimulationError(f"baresip did not start ({ready}): {self._log_tail()}")
        else:
            raise SimulationError(f"baresip could not listen for control on {ip}: {self._log_tail()}")
        try:
            self.control = await BaresipControl.connect(ip, control_port)
        except OSError as exc:
            raise SimulationError(f"cannot connect to baresip's ctrl_tcp on {ip}:{control_port}: {exc}") from None
        await self._wait_registered()

    def _launch(self, binary: str, ip: str, control_port: int, password: str, timeout: float) -> None:
        assert self.work is not None
        self._write_config(ip, control_port, password)
        with open(self.work / "baresip.log", "wb") as log:
            # -4: IPv4 only; -t: baresip stops by itself if we die without stopping it.
            self.process = subprocess.Popen(
                [binary, "-4", "-f", str(self.work), "-t", str(int(timeout + 60))],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.process.pid

    async def _wait_ready(self, timeout: float = 10.0) -> str:
        assert self.work is not None and self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = (self.work / "baresip.log").read_text(errors="replace")
            if "ctrl_tcp: failed to listen" in text:
                return "port taken"
            if "baresip is ready." in text:
                return "ready"
            if self.process.poll() is not None:
                return f"exited with status {self.process.returncode}"
            await asyncio.sleep(0.05)
        return f"not ready within {timeout:g} s"

    async def _wait_registered(self, timeout: float = 10.0) -> None:
        assert self.control is not None
        host, port = self.server
        deadline = time.monotonic() + timeout
        status = "no answer"
        while time.monotonic() < deadline:
            info = re.sub(r"\x1b\[[0-9;]*m", "", await self.control.command("reginfo"))
            if re.search(rf"sip:{re.escape(self.extension)}@\S+\s+OK\b", info):
                return
            if re.search(r"\sERR\s", info):
                reason = re.findall(r"reg: \S+: (\d{3} [^(|]*)", self._log_tail(40))
                status = reason[-1].strip() if reason else "refused"
                break
            await asyncio.sleep(0.1)
        raise SimulationError(
            f"SIP registration of extension {self.extension} at {host}:{port} failed ({status}): is Asterisk up "
            f"(`ivr status`), and does {sip_password_key(self.extension)} in run/secrets.env match "
            "run/asterisk/generated/pjsip_users.conf (`ivr setup`, then `pjsip reload`)?")

    def _stop_process(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # A first SIGTERM unregisters and waits for SIP transactions to end; a second one exits at once.
        for wait_s in (0.5, 2.0):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait_s)
                return
        process.kill()
        process.wait(5)

    # --- CallDriver

    async def place(self, sim: SimulatedCall, ami: AmiClient) -> None:
        control = self.control
        assert control is not None
        number = f"{self.settings.hotline_number}*{sim.caller}"
        start = len(control.events)
        await control.command("dial", number)
        event = await control.wait_event({"CALL_ESTABLISHED", "CALL_CLOSED"}, start, timeout=10)
        if event is None:
            raise SimulationError(f"Asterisk did not answer the INVITE to {number} within 10 s: {self._log_tail()}")
        if event["type"] == "CALL_CLOSED":
            raise SimulationError(f"Asterisk refused the SIP call to {number} from extension {self.extension}: "
                                  f"{event.get('param') or 'closed before answering'}")
        self.sip_call_id = str(event.get("id", ""))
        await self.find_channel(sim, ami, self.sip_call_id, number)
        with contextlib.suppress(AmiError):
            native = await ami.action({"Action": "Getvar", "Channel": sim.caller_channel,
                                       "Variable": "CHANNEL(audionativeformat)"})
            if isinstance(native, Message):
                self.native_format = str(native.get("Value") or "")

    async def answer(self, sim: SimulatedCall, ami: AmiClient, turn: tuple[str, str]) -> None:
        control = self.control
        if control is None or control.closed:
            raise SimulationError("baresip is gone: the turn cannot be answered")
        kind, value = turn
        if kind == "audio":
            reply = await control.command("ausrc", f"aufile,{value}")
            if "failed" in reply or "no such" in reply:
                raise SimulationError(f"baresip could not play {value}: {reply.strip()} ({self._log_tail()})")
        else:
            for digit in value:
                await control.command("sndcode", digit)
                await asyncio.sleep(0.25)

    async def release(self, sim: SimulatedCall, ami: AmiClient) -> None:
        control = self.control
        if control is not None and not control.closed and self.sip_call_id:
            start = len(control.events)
            with contextlib.suppress(SimulationError):
                await control.command("hangup")
                await control.wait_event({"CALL_CLOSED"}, start, timeout=2)
        await asyncio.to_thread(self._stop_process)
        if sim.caller_channel and not sim.hung_up:
            with contextlib.suppress(AmiError):
                await ami.hangup(sim.caller_channel)  # if our BYE got lost
