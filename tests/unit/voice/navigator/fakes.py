"""A fake line for the navigator: real flow, real AudioSession over a scripted caller, scripted recognizers.

The caller is a script of AudioSocket frames fed into the session's reader; the recognizer answers from a script
too, so each rule is tested exactly and fast. Prompts are short synthetic silence played at the real pace.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from asr import Alternative, ModelMissing, Partial, Result
from ivr.records.call import CallRecord, Turn
from ivr.records.customer import Customer
from ivr.telephony.audiosocket import HEADER, AudioSession, Kind
from ivr.voice.flow import load_flow
from ivr.voice.navigator import Navigator, Speech

FLOW = Path(__file__).resolve().parents[4] / "dialplans" / "hotline.yaml"
PROMPT_SECONDS = 0.4
RECORDINGS = Path(tempfile.gettempdir()) / "ivr-navigator-tests"
"""Where the navigator under test saves turn audio."""


class _Writer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


class ScriptedRecognizer:
    """Answers with the next scripted utterance once it has heard `speech_frames` of audio."""

    def __init__(self, answer: str | Exception | None, alternatives: list[tuple[str, float]] | None = None) -> None:
        self.answer = answer
        self.alternatives = alternatives
        self.fed = 0

    def _result(self) -> Result:
        if isinstance(self.answer, Exception):
            raise self.answer
        text = self.answer or ""
        alts = [Alternative(t, c) for t, c in (self.alternatives or [(text, 1.0)])]
        confidence = alts[0].confidence if alts else 0.0
        return Result(text=text, confidence=confidence, alternatives=alts, phrase=text or None,
                      phrase_confidence=confidence)

    #: Like Vosk's endpointer on long silence: an empty final after this much audio (None: never).
    empty_final_after: int | None = None

    def feed(self, pcm: bytes) -> Result | Partial | None:
        self.fed += len(pcm)
        if isinstance(self.answer, Exception):
            raise self.answer
        if not self.answer and self.empty_final_after is not None and self.fed >= self.empty_final_after:
            return Result(text="", confidence=0.0)
        return Partial(self.answer) if self.answer else None

    def finish(self) -> Result:
        return self._result()


class FakeSpeech(Speech):
    """Speech with scripted recognition and short synthetic prompts."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(registry=None, renderer=None)  # type: ignore[arg-type]
        self.answers = list(answers)
        self.grammars: list[list[str]] = []
        self.prompts_said: list[str] = []
        self.recognizers: list[Any] = []
        self.rates: list[int] = []
        """The sample rate each recognizer was made for, in order."""

    def recognizer(self, language: str, phrases: list[str], sample_rate: int = 8000) -> Any:
        self.grammars.append(phrases)
        self.rates.append(sample_rate)
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, ModelMissing):
            raise answer
        recognizer = ScriptedRecognizer(answer[0], answer[1]) if isinstance(answer, tuple) \
            else ScriptedRecognizer(answer)
        self.recognizers.append(recognizer)
        return recognizer

    async def prompt(self, text: str, language: str, sample_rate: int = 8000) -> bytes:
        self.prompts_said.append(text)
        return bytes(int(sample_rate * 2 * PROMPT_SECONDS))


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def speech(seconds: float, rate: int = 8000) -> bytes:
    """Voiced audio frames (a 300 Hz tone, well above the voicing threshold), 20 ms each at `rate`."""
    t = np.arange(int(rate * seconds)) / rate
    pcm = (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()
    size = rate // 50 * 2
    return b"".join(frame(Kind.for_rate(rate), pcm[i : i + size]) for i in range(0, len(pcm) - size + 1, size))


def silence(seconds: float, rate: int = 8000) -> bytes:
    return frame(Kind.for_rate(rate), bytes(rate // 50 * 2)) * int(seconds / 0.02)


def key(digit: str) -> bytes:
    return frame(Kind.DTMF, digit.encode())


class Caller:
    """Plays the caller's side: each turn's frames are fed when the engine starts listening.

    `after_prompt`: fed when the turn's prompt is over instead (the caller waits for the question).
    """

    def __init__(self, turns: list[bytes], hang_up_after: bool = False, call_id: str = "call-1",
                 after_prompt: bool = False) -> None:
        self.turns = list(turns)
        self.hang_up_after = hang_up_after
        self.after_prompt = after_prompt
        self.reader = asyncio.StreamReader()
        self.session = AudioSession(uuid.uuid4(), call_id, self.reader, _Writer())  # type: ignore[arg-type]
        self.session.start()
        self.events: list[tuple[str, str]] = []
        """The navigator's hooks as they came: ("listen" | "prompt_done" | "turn", node)."""

    def answer(self) -> None:
        """The next turn's frames go on the line."""
        if self.turns:
            self.reader.feed_data(self.turns.pop(0))
            if not self.turns and self.hang_up_after:
                self.reader.feed_eof()

    async def on_listen(self, call: CallRecord, node: str, prompt_s: float) -> None:
        self.events.append(("listen", node))
        if not self.after_prompt:
            self.answer()

    async def on_prompt_done(self, call: CallRecord, node: str) -> None:
        self.events.append(("prompt_done", node))
        if self.after_prompt:
            self.answer()

    async def on_turn(self, call: CallRecord, turn: Turn) -> None:
        self.events.append(("turn", turn.node))


def fast_flow(tweak: Callable[[Any], Any] | None = None) -> Any:
    flow = load_flow(FLOW)
    # Short timeouts keep the tests fast; the rules are the same.
    nodes = {k: (v.model_copy(update={"listen": v.listen.model_copy(update={"no_input_s": 0.3,
                                                                             "endpoint_silence_s": 0.3})})
                 if v.type == "ask" else v) for k, v in flow.nodes.items()}
    flow = flow.model_copy(update={"nodes": nodes})
    return tweak(flow) if tweak else flow


def make(answers: list[Any], turns: list[bytes], *, customer: Customer | None = None,
         hang_up_after: bool = False, tweak: Callable[[Any], Any] | None = None,
         speech_engine: Speech | None = None, after_prompt: bool = False) -> tuple[Navigator, Caller]:
    caller = Caller(turns, hang_up_after, after_prompt=after_prompt)

    async def lookup(number: str) -> Customer | None:
        return customer

    nav = Navigator(fast_flow(tweak), speech_engine or FakeSpeech(answers), RECORDINGS,
                    customers=lookup, on_listen=caller.on_listen, on_turn=caller.on_turn)
    nav.on_prompt_done = caller.on_prompt_done
    return nav, caller


async def walk(nav: Navigator, caller: Caller, number: str = "01012345678") -> tuple[Any, CallRecord]:
    call = CallRecord(call_id=caller.session.call_id, caller=number)
    decision = await asyncio.wait_for(nav.run(call, caller.session), 20)
    await caller.session.close()
    return decision, call
