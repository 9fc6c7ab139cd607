"""The call simulator behind ``ivr call``: a caller through the real Asterisk.

It originates a Local channel pair: the hotline side runs the real dialplan (so
FastAGI, AudioSocket, queues and recording all run), the caller side plays the
given audio. Each audio file (then each DTMF string) answers the next question:
when the controller reports that a turn is listening, the simulator waits for
the prompt to finish (unless barging in) and sets SIM_PLAY / SIM_DTMF on the
caller side through AMI. It returns the controller's call record once the call
reaches a queue (or an agent, or ends).

What does not depend on how the caller is connected (following the controller's
events, answering turns in order, deciding the outcome, the record) is CallDriver;
``ivr.sim.sip_caller.SipCaller`` drives a SIP phone with it instead of a Local channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
import soxr
from panoramisk.message import Message

from ivr.audio import write_wav
from ivr.config import Settings, asterisk_path
from ivr.records.call import CallRecord, Outcome
from ivr.records.store import EVENTS_CHANNEL, call_key
from ivr.telephony.agi import normalize_number
from ivr.telephony.ami import AmiClient
from ivr.voice.flow import flow_queue_name

#: What "reaching a person" means for the simulator: the call's outcome it waits for.
UNTIL = ("queued", "answered", "end")


class SimulationError(RuntimeError):
    """The simulated call could not be placed; the message says what is missing."""


#: The rates a simulated caller can speak at: a telephone line, or a wideband (HD voice) leg.
CALLER_RATES = (8000, 16000)


def to_telephone_wav(source: Path, target: Path) -> float:
    """Convert a WAV (any rate, mono or stereo, 16-bit) to 8 kHz mono 16-bit; returns seconds."""
    return to_caller_audio(source, target, 8000)


def to_caller_audio(source: Path, target: Path, rate: int) -> float:
    """Convert a WAV (any rate, mono or stereo, 16-bit) to mono 16-bit at ``rate``; returns seconds.

    ``target`` ending in .sln16 gets raw 16 kHz samples (the file Asterisk plays to a wideband channel
    untranscoded); anything else a WAV.
    """
    if rate not in CALLER_RATES:
        raise SimulationError(f"--rate {rate}: a simulated caller speaks at {' or '.join(map(str, CALLER_RATES))} Hz")
    try:
        with wave.open(str(source), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise SimulationError(f"{source}: only 16-bit PCM WAV is supported (got {8 * wav.getsampwidth()}-bit)")
            source_rate, channels = wav.getframerate(), wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
        if len(raw) % (2 * channels):
            raise SimulationError(f"{source}: truncated WAV (its audio data ends inside a sample frame)")
        samples = np.frombuffer(raw, dtype="<i2")
    except (wave.Error, EOFError) as exc:
        raise SimulationError(f"{source}: not a readable WAV file ({exc})") from None
    except FileNotFoundError:
        raise SimulationError(f"{source}: no such file") from None
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    if source_rate != rate:
        samples = soxr.resample(samples, source_rate, rate).astype("<i2")
    if target.suffix == ".sln16":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(samples.tobytes())
    else:
        write_wav(target, samples.tobytes(), rate)
    return len(samples) / rate


@dataclass
class SimulatedCall:
    """One simulated call in progress."""

    caller: str
    """The number presented to the hotline."""
    turns: list[tuple[str, str]]
    """("audio", file to play) or ("dtmf", digits), in answer order."""
    call_id: str = field(default_factory=lambda: f"sim-{uuid.uuid4().hex[:16]}")
    """The hotline side's uniqueid, which the controller uses as the call id."""
    caller_channel: str = ""
    """The caller side's channel name (learned from AMI)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Controller events seen for this call."""
    joined_queue: str | None = None
    """Where Asterisk holds the caller: the ACD's waiting room (UserEvent IvrHold) or an Asterisk
    queue (QueueCallerJoin, e.g. when the controller is down)."""
    hung_up: bool = False
    rate: int = 8000
    """The rate the caller speaks at: 16000 is a wideband (HD voice) leg, a Local channel in slin16."""

    @property
    def caller_uid(self) -> str:
        # Not "<call_id>-caller": Asterisk rejects an id that extends another live one (prefix lookup).
        return "caller-" + self.call_id


class CallDriver:
    """What every simulated call shares, whatever carries it.

    Subclasses say how the call is placed (``place``, which must learn ``sim.call_id``),
    how a turn is answered (``answer``) and how the call is let go (``release``). This
    class follows the controller's events, answers each listening turn in order,
    decides when the wanted outcome is reached and returns the controller's record.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.last_call: SimulatedCall | None = None
        """The call the last drive() placed (its caller channel, for a test that keeps it)."""

    # --- what subclasses provide

    def audio_turn(self, wav: Path) -> str:
        """The value of an ("audio", ...) turn for a converted 8 kHz WAV."""
        return str(wav)

    async def place(self, sim: SimulatedCall, ami: AmiClient) -> None:
        raise NotImplementedError

    async def answer(self, sim: SimulatedCall, ami: AmiClient, turn: tuple[str, str]) -> None:
        raise NotImplementedError

    async def release(self, sim: SimulatedCall, ami: AmiClient) -> None:
        """Hang up the caller's side if it is still up (after the outcome, or on failure)."""

    def on_ami(self, sim: SimulatedCall, event: Message) -> None:
        """Every AMI event, for subclasses that learn their call from it."""

    # --- shared

    def new_call(self, caller: str, until: str) -> SimulatedCall:
        if until not in UNTIL:
            raise SimulationError(f"--until must be one of {', '.join(UNTIL)}")
        number = normalize_number(caller)
        if not number:
            raise SimulationError(f"--caller {caller!r}: not a phone number")
        return SimulatedCall(caller=number, turns=[])

    def prepare(self, audio: list[Path], dtmf: list[str], work: Path, rate: int = 8000) -> list[tuple[str, str]]:
        turns: list[tuple[str, str]] = []
        for index, source in enumerate(audio, 1):
            target = work / (f"turn{index}.sln16" if rate == 16000 else f"turn{index}.wav")
            to_caller_audio(source, target, rate)
            turns.append(("audio", self.audio_turn(target)))
        for digits in dtmf:
            if not digits or any(c not in "0123456789*#ABCD" for c in digits):
                raise SimulationError(f"--dtmf {digits!r}: only 0-9, *, #, A-D")
            turns.append(("dtmf", digits))
        return turns

    async def drive(self, sim: SimulatedCall, until: str, timeout: float, barge_in: bool,
                    keep: bool = False) -> dict[str, Any]:
        """Place the call, answer its turns, and return the record once ``until`` is reached.

        ``keep`` leaves the caller on the line afterwards (a test then acts as the caller, e.g.
        presses 1 for a callback while holding); otherwise the caller hangs up.
        """
        self.last_call = sim
        ami = AmiClient(self.settings.ami_host, self.settings.ami_port, self.settings.ami_username,
                        self.settings.ami_secret.get_secret_value())
        ami.on("*", lambda event: self._on_ami(sim, event))
        ami.start()
        redis = aioredis.from_url(self.settings.redis_url, decode_responses=True)
        pubsub = redis.pubsub()
        try:
            if not await ami.wait_ready(10):
                raise SimulationError(
                    f"cannot log in to Asterisk's AMI at {self.settings.ami_host}:{self.settings.ami_port}"
                    f" ({ami.last_error or 'not answering'}): is `ivr up` done?")
            # Subscribed before placing: events published before the call id is known stay queued.
            await pubsub.subscribe(EVENTS_CHANNEL)
            await self.place(sim, ami)
            record = await asyncio.wait_for(self._follow(sim, ami, redis, pubsub, until, barge_in), timeout)
        except TimeoutError:
            record = await self._record(redis, sim) or self._bare_record(sim)
            record["outcome"] = record.get("outcome") or Outcome.ERROR.value
            record.setdefault("notes", []).append(f"simulator: no outcome within {timeout:g} s")
        finally:
            if not keep:
                with contextlib.suppress(Exception):
                    await self.release(sim, ami)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await redis.aclose()
            ami.close()
        return record

    def _on_ami(self, sim: SimulatedCall, event: Message) -> None:
        uid, name = event.get("Uniqueid", ""), event.get("Event", "")
        if uid == sim.caller_uid and name == "Newchannel":
            sim.caller_channel = event.get("Channel", "")
        elif uid == sim.call_id and name == "QueueCallerJoin":
            sim.joined_queue = flow_queue_name(event.get("Queue", ""))
        elif uid == sim.call_id and name == "UserEvent" and event.get("UserEvent") == "IvrHold":
            sim.joined_queue = event.get("Queue", "")  # holding for the controller's ACD
        elif uid and uid in (sim.call_id, sim.caller_uid) and name == "Hangup":
            sim.hung_up = True
        self.on_ami(sim, event)

    async def _follow(self, sim: SimulatedCall, ami: AmiClient, redis: Any, pubsub: Any, until: str,
                      barge_in: bool) -> dict[str, Any]:
        pending = list(sim.turns)
        answers: list[asyncio.Task[None]] = []  # held so they are not garbage-collected mid-flight
        prompt_over: asyncio.Event | None = None  # set when the turn's prompt has really finished
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                event = json.loads(message["data"])
                if event.get("call_id") != sim.call_id:
                    continue
                sim.events.append(event)
                if event["type"] == "call.listening" and pending:
                    prompt_over = asyncio.Event()
                    answers.append(asyncio.create_task(self.answer_when_asked(
                        ami, sim, pending.pop(0), prompt_over, float(event.get("prompt_s", 0)), barge_in)))
                elif event["type"] == "call.prompt_done" and prompt_over is not None:
                    prompt_over.set()
            record = await self._record(redis, sim)
            if self._reached(record, sim, until):
                return record or self._bare_record(sim)
            if sim.hung_up and (record is None or record.get("ended_at") or not record.get("outcome")):
                # The controller may be down: what Asterisk said is all we have.
                await asyncio.sleep(0.3)
                return await self._record(redis, sim) or self._bare_record(sim)

    async def answer_when_asked(self, ami: AmiClient, sim: SimulatedCall, turn: tuple[str, str],
                                prompt_over: asyncio.Event, prompt_s: float, barge_in: bool) -> None:
        """Answer a turn as a caller would: over the prompt (barge-in), or once it has been heard out.

        Called once per question the controller asks, with the next prepared turn. The one place to
        override for a caller that picks its answer or its moment (a benchmark's caller, a test's gate).

        The prompt's end comes from the controller ("call.prompt_done"), not from its nominal length:
        on a loaded machine the paced playback runs longer, and an answer timed by the nominal
        length would start while the prompt still plays and lose its first syllables.
        """
        if barge_in:
            await asyncio.sleep(0.3)
        else:
            with contextlib.suppress(TimeoutError):  # the event lost: fall back on the nominal length
                await asyncio.wait_for(prompt_over.wait(), prompt_s + 5.0)
            await asyncio.sleep(0.4)
        await self.answer(sim, ami, turn)

    async def _record(self, redis: Any, sim: SimulatedCall) -> dict[str, Any] | None:
        raw = await redis.get(call_key(sim.call_id))
        return json.loads(raw) if raw else None

    def _reached(self, record: dict[str, Any] | None, sim: SimulatedCall, until: str) -> bool:
        if record is None:
            return sim.joined_queue is not None and until == "queued"
        outcome = record.get("outcome")
        if until == "end" or record.get("ended_at"):
            return bool(record.get("ended_at"))
        if outcome in ("self_service", "callback", "abandoned", "error", "answered"):
            return True
        # "queued" means Asterisk has the caller in the queue, not only that the controller decided so.
        return until == "queued" and outcome == "queued" and sim.joined_queue is not None

    def _bare_record(self, sim: SimulatedCall) -> dict[str, Any]:
        """A record from AMI alone, for calls the controller never saw (it was down)."""
        call = CallRecord(call_id=sim.call_id, caller=sim.caller, queue=sim.joined_queue,
                          outcome=Outcome.QUEUED if sim.joined_queue else Outcome.ERROR)
        call.note("controller did not handle the call; Asterisk's dialplan fallback took it"
                  if sim.joined_queue else "call never reached the controller or a queue")
        call.ended_at = time.time() if sim.hung_up else None
        return call.to_dict()


class Simulator(CallDriver):
    """The caller is a Local channel pair in the dialplan, driven through AMI."""

    def audio_turn(self, wav: Path) -> str:
        return asterisk_path(wav.with_suffix(""))  # Asterisk's Playback() takes no extension

    async def run(
        self,
        caller: str,
        audio: list[Path],
        dtmf: list[str] | None = None,
        until: str = "queued",
        timeout: float = 60.0,
        barge_in: bool = False,
        keep: bool = False,
        rate: int = 8000,
    ) -> dict[str, Any]:
        """``rate`` 16000: the caller is a wideband leg (as a G.722 phone or an app call is)."""
        sim = self.new_call(caller, until)
        sim.rate = rate
        sim.turns = self.prepare(audio, dtmf or [], self.settings.run_dir / "sim" / sim.call_id, rate)
        return await self.drive(sim, until, timeout, barge_in, keep)

    async def place(self, sim: SimulatedCall, ami: AmiClient) -> None:
        await ami.originate(
            "Local/s@sim-inbound/n", context="sim-caller", exten="s",
            caller_id=f'"simulated" <{sim.caller}>', variables={"SIM_CALLER": sim.caller},
            channel_id=sim.caller_uid, other_channel_id=sim.call_id, timeout_ms=15_000,
            codecs="slin16" if sim.rate == 16000 else "",
        )

    async def answer(self, sim: SimulatedCall, ami: AmiClient, turn: tuple[str, str]) -> None:
        kind, value = turn
        for _ in range(50):  # the caller channel's name arrives with its Newchannel event
            if sim.caller_channel:
                break
            await asyncio.sleep(0.05)
        await ami.setvar(sim.caller_channel, "SIM_PLAY" if kind == "audio" else "SIM_DTMF", value)

    async def release(self, sim: SimulatedCall, ami: AmiClient) -> None:
        if sim.caller_channel and not sim.hung_up:
            await ami.hangup(sim.caller_channel)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The stable keys scripts rely on (`ivr call --json`)."""
    keys = ("call_id", "caller", "customer", "path", "turns", "intent", "queue", "agent", "outcome", "heard_at_hz")
    out = {k: record.get(k) for k in keys}
    out["turns"] = [
        {k: t.get(k) for k in ("node", "transcript", "confidence", "intent", "score", "dtmf", "audio", "error")}
        for t in record.get("turns") or []
    ]
    out["routing"] = record.get("routing", [])
    out["notes"] = record.get("notes", [])
    return out
