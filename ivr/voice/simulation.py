"""Simulated calls without Asterisk: walk a flow by typing what the caller says or presses.

The real engine (``ivr.voice.navigator.Navigator``) runs the flow; only the line is different. A ``TextLine``
stands for the caller's AudioSocket session: prompts are recorded as text instead of played, and each
typed answer arrives as the caller's turn — an utterance as voiced audio of a plausible length (so
barge-in, endpointing and the acoustic-support check see what they would on a phone), a key as a DTMF
event, silence as nothing at all. ``TextSpeech`` is the engine's speech: its recognizer "hears" exactly the
typed text (normalized as Vosk spells words), within the question's grammar as a real one is.

Time runs fast: a silent turn lasts ``wall_backstop(SIM_NO_INPUT_S)`` (0.1 s: the text line sends no audio, so
the listening loop's wall-clock backstop ends it) instead of the node's ``no_input_s``; every decision is the
flow's and the engine's.

Inputs: ``"잔액 조회"`` (an utterance), ``"key:3"`` or ``"3"`` (keys; several digits are several turns),
``"silence"`` or ``""`` (no answer), ``"hangup"``.

Saved cases (``dialplans/<flow>.cases.yaml``) are simulations with an expected result; the test suite and
``ivr dialplan validate --cases`` run them::

    customers: demo_customers.json      # caller data for the cases (relative to this file); optional
    cases:
      - name: balance by key for a known caller
        caller: "01012345678"
        inputs: ["key:1", "key:9"]
        expect: {outcome: self_service, path: [main_menu, balance, after_balance, goodbye]}

``expect`` may name: kind (queue, transfer, callback, hangup), queue, target, outcome (queued,
self_service, callback, abandoned), intent, node (the last node), path, language, self_served,
reason (a part of the decision's reason), says (texts some prompt must contain).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from yaml.nodes import MappingNode, SequenceNode

from asr import Alternative, Partial, Result
from asr.text import normalize_phrase
from ivr.privacy.verifier import demo_verify
from ivr.records.call import CallRecord, Outcome, Turn
from ivr.records.customer import Customer
from ivr.telephony.audiosocket import CallerAudio, CallerDtmf, CallerEvent, CallerGone, SessionEnd
from ivr.voice.flow import AskNode, Flow, Listen, SecureDigitsNode
from ivr.voice.navigator import Decision, DecisionKind, Navigator, Speech
from ivr.voice.understanding import SPEAKING_RATE, Hypothesis, IntentPhrases, score_intents, spoken_units

__all__ = ["Case", "CaseError", "CaseResult", "SimResult", "SimStep", "TextLine", "TextSpeech", "customers_from_file",
           "load_cases", "parse_inputs", "run_cases", "simulate"]

#: How long a silent turn lasts in a simulation (the flow's no_input_s would make a test wait seconds).
SIM_NO_INPUT_S = 0.05
#: Frames the engine feeds its recognizer at once (ivr.voice.navigator.FEED_BYTES / 320): utterances are whole feeds.
_FRAMES_PER_FEED = 5
_FRAME_BYTES = 320
_VOICE = (6000 * np.sin(2 * np.pi * 300 * np.arange(160) / 8000)).astype("<i2").tobytes()
_DTMF = frozenset("0123456789*#ABCD")
EXPECT_KEYS = ("kind", "queue", "target", "outcome", "intent", "node", "path", "language", "self_served", "reason",
               "says")

CustomerLookup = Callable[[str], Awaitable[Customer | None]]
AskInput = Callable[["SimStep"], Awaitable[str | None]]
"""Interactive input: shown the question (a step without an answer yet), returns the answer (None: hang up)."""


@dataclass
class SimStep:
    """One prompt of the simulated call and, when the engine listened after it, the caller's answer."""

    prompt: str
    """What the engine said ("" when it listened without a prompt)."""
    node: str
    """The flow node it happened at."""
    kind: str
    """"say" (no answer expected), "ask", "confirm" (yes/no on an intent) or "offer" (callback)."""
    heard: str = ""
    """The caller's answer as the engine took it: the transcript, "key:3", or "" (silence)."""
    scores: dict[str, float] = field(default_factory=dict)
    """Score of each intent for this answer, best first (keys: the intent's key scores 1)."""
    intent: str | None = None
    """What the engine chose from this answer (offers: "callback" or "hold")."""


@dataclass
class SimResult:
    """A finished simulated call."""

    steps: list[SimStep]
    decision: dict[str, Any]
    """Where the call ended: kind, queue, target, priority, skills, reason."""
    record: dict[str, Any]
    """The call record (``CallRecord.to_dict()``), as the controller would store it."""

    @property
    def prompts(self) -> list[str]:
        return [step.prompt for step in self.steps if step.prompt]


# --- inputs


@dataclass(frozen=True)
class Answer:
    kind: str
    """"say", "key", "silence" or "hangup"."""
    value: str = ""


def parse_inputs(inputs: Iterable[str]) -> list[Answer]:
    """Typed inputs as the caller's answers, one per turn; ValueError names an input that is none."""
    answers: list[Answer] = []
    for index, raw in enumerate(inputs, 1):
        if not isinstance(raw, str):
            raise ValueError(f"input {index}: {raw!r} is not text (quote numbers and yes/no in YAML)")
        text = raw.strip()
        lowered = text.lower()
        if lowered.startswith("key:") or (text and all(c in _DTMF - set("ABCD") for c in text)):
            digits = text[4:].strip().upper() if lowered.startswith("key:") else text
            if not digits or any(c not in _DTMF for c in digits):
                raise ValueError(f"input {index}: {raw!r}: keys are 0-9, *, #, A-D (e.g. key:3)")
            answers += [Answer("key", digit) for digit in digits]
        elif lowered in ("", "silence", "<silence>"):
            answers.append(Answer("silence"))
        elif lowered in ("hangup", "<hangup>"):
            answers.append(Answer("hangup"))
        elif not normalize_phrase(text):
            raise ValueError(f"input {index}: {raw!r} has no words (use silence for no answer)")
        else:
            answers.append(Answer("say", text))
    return answers


# --- the text line: the caller's side


class _Played:
    """A prompt 'played' on a text line: over at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.done.set_result(True)


class TextLine:
    """The caller's side of a simulated call, in place of an AudioSession (the engine uses the same members)."""

    def __init__(self, answers: list[Answer], call: CallRecord, flow: Flow, ask: AskInput | None = None,
                 on_step: Callable[[SimStep], Any] | None = None) -> None:
        self.call_id = call.call_id
        self.call = call
        self.flow = flow
        self.answers = list(answers)
        self.ask = ask
        self.on_step = on_step
        self.closed = asyncio.Event()
        self.rate = 8000
        """The line's rate, as an AudioSession has one (the text line sends no audio)."""
        self.rate_known = asyncio.Event()
        self.rate_known.set()
        self.close_reason = ""
        self.end: SessionEnd | None = None
        self.steps: list[SimStep] = []
        self.utterance = ""
        """What the caller says in the current turn (the recognizer's answer)."""
        self.utterance_bytes = 0
        self._events: asyncio.Queue[CallerEvent] = asyncio.Queue()
        self._unclaimed: list[SimStep] = []
        self._turns: list[SimStep] = []

    # what the engine calls on a session

    @property
    def playing(self) -> bool:
        return False

    def play(self, pcm: bytes, rate: int = 8000) -> _Played:
        return _Played(len(pcm) / 16000)

    def stop_playback(self) -> None:
        return None

    async def next_event(self, timeout: float | None = None) -> CallerEvent | None:
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        self._finish("simulation over", SessionEnd.BY_CONTROLLER)

    def _finish(self, reason: str, end: SessionEnd) -> None:
        if not self.closed.is_set():
            self.close_reason, self.end = reason, end
            self.closed.set()

    # what the engine says, and the caller's answers

    def said(self, text: str) -> None:
        step = SimStep(prompt=text, node=self.call.path[-1] if self.call.path else "", kind="say")
        self._unclaimed.append(step)

    async def on_listen(self, call: CallRecord, node: str, prompt_s: float) -> None:
        """The engine listens (after its prompt, if it had one): the caller's next answer arrives."""
        prompt = self._unclaimed.pop() if prompt_s > 0 and self._unclaimed else None
        self._flush_says()
        turn = SimStep(prompt=prompt.prompt if prompt else "", node=node, kind="ask")
        self._turns.append(turn)
        while not self._events.empty():  # nothing from an earlier turn may leak into this one
            self._events.get_nowait()
        answer = self.answers.pop(0) if self.answers else None
        if answer is None and self.ask is not None:
            typed = await self.ask(turn)
            if typed is not None:
                try:
                    answers = parse_inputs([typed])
                except ValueError as exc:
                    call.note(f"simulation: {exc}; taken as silence")
                    answers = [Answer("silence")]
                answer, self.answers = answers[0], answers[1:]
        if answer is None:
            call.note(f"simulation: no input left at {node}: the caller hangs up")
            answer = Answer("hangup")
        self.utterance, self.utterance_bytes = "", 0
        if answer.kind == "key" and isinstance(self.flow.nodes.get(node), SecureDigitsNode):
            # A secure entry is one answer of many keys ("key:4111111111111111#"): up to # or the next non-key.
            self._events.put_nowait(CallerDtmf(answer.value))
            while answer.value != "#" and self.answers and self.answers[0].kind == "key":
                answer = self.answers.pop(0)
                self._events.put_nowait(CallerDtmf(answer.value))
        elif answer.kind == "key":
            self._events.put_nowait(CallerDtmf(answer.value))
        elif answer.kind == "hangup":
            self._events.put_nowait(CallerGone("the simulated caller hung up", SessionEnd.HANGUP))
            self._finish("hangup (simulated)", SessionEnd.HANGUP)
        elif answer.kind == "say":
            self.utterance = normalize_phrase(answer.value)
            frames = self._frames_for(self.utterance, call.language)
            self.utterance_bytes = frames * _FRAME_BYTES
            for _ in range(frames):
                self._events.put_nowait(CallerAudio(_VOICE))

    @staticmethod
    def _frames_for(text: str, language: str) -> int:
        """Voiced 20 ms frames for saying ``text`` at a typical rate, in whole recognizer feeds."""
        seconds = max(0.3, spoken_units(text) / SPEAKING_RATE.get(language, 4.5))
        return math.ceil(seconds / 0.02 / _FRAMES_PER_FEED) * _FRAMES_PER_FEED

    async def on_turn(self, call: CallRecord, turn: Turn) -> None:
        """The engine decided on a turn: what it heard, the intent scores, its choice."""
        step = self._turns.pop(0) if self._turns else SimStep(prompt="", node=turn.node, kind=turn.kind)
        step.kind = turn.kind
        step.heard = f"key:{turn.dtmf}" if turn.dtmf else turn.transcript
        if turn.kind == "secure":
            step.heard = f"(secure entry: {turn.intent})"  # the keys are never shown
        step.intent = turn.intent
        node = self.flow.nodes.get(turn.node)
        if turn.dtmf and turn.intent and turn.kind == "ask":
            step.scores = {turn.intent: 1.0}
        elif turn.transcript and isinstance(node, AskNode) and turn.kind in ("ask", "confirm"):
            step.scores = _scores(self.flow, node, turn.transcript, turn.language or call.language)
            if turn.intent and turn.score:
                step.scores[turn.intent] = turn.score  # with the caller's earlier words, as the engine scored it
            step.scores = dict(sorted(step.scores.items(), key=lambda item: -item[1]))
        self._emit(step)

    def finish(self) -> None:
        self._flush_says()
        for step in self._unclaimed:
            self._emit(step)
        self._unclaimed.clear()
        for step in self._turns:  # listened, but the call ended before a decision (hung up)
            self._emit(step)
        self._turns.clear()

    def _flush_says(self) -> None:
        for step in self._unclaimed:
            self._emit(step)
        self._unclaimed.clear()

    def _emit(self, step: SimStep) -> None:
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)


def _scores(flow: Flow, node: AskNode, transcript: str, language: str) -> dict[str, float]:
    entries = []
    for intent_id in flow.intent_ids(node):
        intent = flow.intents.get(intent_id)
        if intent is not None:
            entries.append(IntentPhrases(intent_id, tuple(intent.phrases.get(language, [])),
                                         tuple((v.dialect, v.phrase) for v in intent.variants
                                               if v.language == language)))
    return {s.intent: s.score for s in score_intents([Hypothesis(transcript, 1.0)], entries)}


# --- the engine's speech for a text line


class TextRecognizer:
    """'Recognizes' exactly what the caller typed, once the engine has fed it the turn's audio."""

    def __init__(self, line: TextLine, phrases: list[str]) -> None:
        self.line = line
        self.fed = 0
        self.grammar_phrases = frozenset(p for p in (normalize_phrase(p) for p in phrases) if p)
        """The phrases a grammar recognizer could return exactly (the engine acts only on one of them)."""

    def feed(self, pcm: bytes) -> Result | Partial | None:
        self.fed += len(pcm)
        if not self.line.utterance:
            return None
        if self.fed >= self.line.utterance_bytes:
            return self.finish()
        return Partial(self.line.utterance)

    def finish(self) -> Result:
        text = self.line.utterance if self.fed else ""
        phrase = text if text in self.grammar_phrases else None
        return Result(text=text, confidence=1.0 if text else 0.0, alternatives=[Alternative(text, 1.0)] if text else [],
                      phrase=phrase, phrase_confidence=1.0 if phrase else 0.0)


class TextSpeech(Speech):
    """The engine's speech on a text line: typed answers recognized as typed, prompts recorded as text."""

    def __init__(self, line: TextLine, language: str) -> None:
        super().__init__(registry=None, renderer=None, threads=1)  # type: ignore[arg-type]
        self.line = line
        self.language = language

    def languages_with_packs(self, languages: list[str]) -> list[str]:
        return [self.language]

    def recognizer(self, language: str, phrases: list[str], sample_rate: int = 8000) -> Any:
        return TextRecognizer(self.line, phrases)

    async def prompt(self, text: str, language: str, sample_rate: int = 8000) -> bytes:
        self.line.said(text)
        return bytes(2 * max(1, len(text)))  # its length only tells the engine that a prompt played


# --- one simulated call


def _lookup(customers: Any) -> CustomerLookup | None:
    if customers is None:
        return None
    if isinstance(customers, Mapping):
        table = dict(customers)

        async def from_table(number: str) -> Customer | None:
            return table.get(number)

        return from_table
    by_phone = getattr(customers, "by_phone", None)
    if by_phone is not None:
        return by_phone  # type: ignore[no-any-return]
    if callable(customers):
        return customers  # type: ignore[no-any-return]
    raise TypeError(f"customers: a lookup, a CustomerStore or a {{number: Customer}} mapping, not {customers!r}")


def _fast(flow: Flow) -> Flow:
    """The flow with silent turns lasting SIM_NO_INPUT_S (what is decided does not depend on it)."""
    nodes = {}
    for node_id, node in flow.nodes.items():
        if isinstance(node, AskNode):
            listen = node.listen.model_copy(update={"no_input_s": SIM_NO_INPUT_S,
                                                    "endpoint_silence_s": SIM_NO_INPUT_S})
            node = node.model_copy(update={"listen": listen})
        elif isinstance(node, SecureDigitsNode):
            node = node.model_copy(update={"first_digit_s": SIM_NO_INPUT_S, "inter_digit_s": SIM_NO_INPUT_S})
        nodes[node_id] = node
    return flow.model_copy(update={"nodes": nodes})


def outcome_of(decision: Decision, call: CallRecord) -> Outcome:
    """How the controller would file the call (ivr.controller: _hand_over)."""
    if decision.kind in (DecisionKind.QUEUE, DecisionKind.TRANSFER):
        return Outcome.QUEUED
    if decision.kind is DecisionKind.CALLBACK:
        return Outcome.CALLBACK
    if not decision.caller_left and call.self_served:
        return Outcome.SELF_SERVICE
    return Outcome.ABANDONED


async def simulate(flow: Flow, inputs: list[str], caller: str = "", customers: Any = None,
                   language: str | None = None, ask: AskInput | None = None,
                   on_step: Callable[[SimStep], Any] | None = None) -> SimResult:
    """Walk ``flow`` with the real engine, the caller typing ``inputs`` (see the module's doc).

    ``customers``: a lookup by number (``CustomerStore.by_phone``), a CustomerStore, or {number: Customer};
    the caller's customer applies as on a real call (self-service data, preferred language). ``ask`` is
    called for each answer once ``inputs`` are used up (interactive); without it the caller hangs up.
    ``on_step`` sees each step as it happens. ValueError: an input or a language the flow cannot take.
    """
    answers = parse_inputs(inputs)
    if language is not None and language not in flow.languages:
        raise ValueError(f"language {language!r} is not one of the flow's languages {flow.languages}")
    lookup = _lookup(customers)
    call = CallRecord(call_id=f"sim-{uuid.uuid4().hex[:12]}", caller=caller, language=flow.languages[0])
    customer = await lookup(caller) if lookup and caller else None
    call.apply_customer(customer, flow.languages)
    if language is not None:
        call.language, call.language_source = language, "customer"
    line = TextLine(answers, call, flow, ask=ask, on_step=on_step)
    speech = TextSpeech(line, call.language)
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-sim-") as recordings:
            navigator = Navigator(_fast(flow), speech, Path(recordings), customers=lookup,
                                  on_listen=line.on_listen, on_turn=line.on_turn, verify=demo_verify)
            navigator.offer_listen = Listen(no_input_s=SIM_NO_INPUT_S)
            decision = await navigator.run(call, line)  # type: ignore[arg-type]
    finally:
        speech.executor.shutdown(wait=False)
        await line.close()
    line.finish()
    call.outcome = outcome_of(decision, call)
    if decision.kind in (DecisionKind.QUEUE, DecisionKind.CALLBACK):
        call.queue = decision.queue
    elif decision.kind is DecisionKind.TRANSFER:
        call.transfer_to, call.queue = decision.target, decision.queue
    call.note(f"decision: {decision.reason}")
    return SimResult(steps=line.steps, decision={"kind": decision.kind, "queue": decision.queue,
                                                 "target": decision.target, "priority": decision.priority,
                                                 "skills": list(decision.skills), "reason": decision.reason},
                     record=call.to_dict())


# --- saved cases


class CaseError(ValueError):
    """A cases file that cannot be used; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Case:
    """A simulated call with what it must end in."""

    name: str
    inputs: list[str]
    expect: dict[str, Any]
    caller: str = ""
    language: str | None = None
    line: int | None = None
    """Where the case starts in its file."""
    customers_file: Path | None = None
    """Caller data of the case's file (``customers:``), used when run_cases is given none."""


@dataclass
class CaseResult:
    name: str
    ok: bool
    expected: dict[str, Any]
    got: dict[str, Any]
    message: str = ""
    """Why it failed: each expectation that did not hold, and what the call did."""
    result: SimResult | None = None


def load_cases(path: Path) -> list[Case]:
    """The cases of a ``<flow>.cases.yaml`` file (a list of cases, or ``{customers: FILE, cases: [...]}``)."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise CaseError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise CaseError(f"{path}: YAML syntax error: {exc}") from None
    customers_file: Path | None = None
    items_node = root
    if isinstance(data, dict):
        unknown = set(data) - {"customers", "cases"}
        if unknown:
            raise CaseError(f"{path}: unknown key(s) {', '.join(map(str, sorted(unknown)))}: a cases file has "
                            "customers: and cases:")
        if data.get("customers"):
            customers_file = (path.parent / str(data["customers"])).resolve()
        items_node = _value_node(root, "cases")
        data = data.get("cases")
    if not isinstance(data, list):
        raise CaseError(f"{path}: expected a list of cases (name, caller, inputs, expect)")
    cases: list[Case] = []
    names: set[str] = set()
    for index, item in enumerate(data):
        line = (items_node.value[index].start_mark.line + 1 if isinstance(items_node, SequenceNode)
                and index < len(items_node.value) else None)
        where = f"{path}:{line}" if line else f"{path}: case {index + 1}"
        if not isinstance(item, dict):
            raise CaseError(f"{where}: a case is a mapping with name, caller, inputs, expect")
        unknown = set(item) - {"name", "caller", "inputs", "expect", "language"}
        if unknown:
            raise CaseError(f"{where}: unknown key(s) {', '.join(map(str, sorted(unknown)))}")
        name = str(item.get("name") or f"case {index + 1}")
        if name in names:
            raise CaseError(f"{where}: a second case named {name!r}")
        names.add(name)
        inputs = item.get("inputs") or []
        if not isinstance(inputs, list):
            raise CaseError(f"{where}: inputs is a list (e.g. [\"key:2\", \"상담원 연결\", silence])")
        try:
            parse_inputs(inputs)
        except ValueError as exc:
            raise CaseError(f"{where}: {name}: {exc}") from None
        expect = item.get("expect")
        if not isinstance(expect, dict) or not expect:
            raise CaseError(f"{where}: {name}: expect is a mapping, e.g. {{queue: cards}}")
        wrong = set(expect) - set(EXPECT_KEYS)
        if wrong:
            raise CaseError(f"{where}: {name}: expect cannot check {', '.join(map(str, sorted(wrong)))} "
                            f"(it can: {', '.join(EXPECT_KEYS)})")
        caller = item.get("caller") or ""
        if not isinstance(caller, str):
            raise CaseError(f"{where}: {name}: caller is text: quote the number (\"01012345678\")")
        cases.append(Case(name=name, inputs=list(inputs), expect=dict(expect), caller=caller,
                          language=item.get("language"), line=line, customers_file=customers_file))
    return cases


def _value_node(root: Any, key: str) -> Any:
    if isinstance(root, MappingNode):
        for k, v in root.value:
            if getattr(k, "value", None) == key:
                return v
    return None


def customers_from_file(path: Path) -> dict[str, Customer]:
    """{number: Customer} from a customers file (CSV or JSON, as ``ivr customers import`` reads it)."""
    from ivr.records.customer import CUSTOMERS
    from ivr.records.importing import read_rows

    result = CUSTOMERS.validate(read_rows(path))
    if result.errors:
        raise CaseError(f"{path}: {result.errors[0]}")
    return {phone: customer for _, customer in result.good for phone in customer.phones}


def observed(result: SimResult) -> dict[str, Any]:
    """What a case can check, from a simulated call."""
    record, decision = result.record, result.decision
    return {"kind": decision["kind"], "queue": decision["queue"], "target": decision["target"],
            "outcome": record["outcome"], "intent": record["intent"],
            "node": record["path"][-1] if record["path"] else None, "path": record["path"],
            "language": record["language"], "self_served": record["self_served"], "reason": decision["reason"]}


def check_case(case: Case, result: SimResult) -> CaseResult:
    got = observed(result)
    misses: list[str] = []
    for key, wanted in case.expect.items():
        if key == "says":
            for text in [wanted] if isinstance(wanted, str) else list(wanted):
                if not any(str(text) in prompt for prompt in result.prompts):
                    misses.append(f"no prompt said {text!r}")
            continue
        actual = got.get(key)
        if key == "reason":
            if str(wanted) not in str(actual):
                misses.append(f"reason {actual!r} does not contain {wanted!r}")
        elif actual != wanted:
            misses.append(f"expected {key} {wanted!r}, got {actual!r}")
    shown = {k: got.get(k) for k in case.expect if k != "says"}
    message = ""
    if misses:
        turns = "; ".join(f"{s.node}: {s.heard or 'silence'!s} -> {s.intent or '-'}" for s in result.steps
                          if s.kind != "say")
        message = (f"case {case.name!r}{f' (line {case.line})' if case.line else ''}: " + "; ".join(misses)
                   + f" — the call went {' > '.join(got['path'])} and ended {got['kind']}"
                   + (f" in {got['queue']}" if got["queue"] else "") + f" ({got['reason']}); turns: {turns or 'none'}")
    return CaseResult(case.name, not misses, dict(case.expect), shown, message, result)


async def run_cases(flow: Flow, cases: list[Case], customers: Any = None) -> list[CaseResult]:
    """Run each case through ``simulate`` and compare; customers: as simulate's, else each case file's."""
    loaded: dict[Path, dict[str, Customer]] = {}
    results = []
    for case in cases:
        lookup = customers
        if lookup is None and case.customers_file is not None:
            if case.customers_file not in loaded:
                loaded[case.customers_file] = await asyncio.to_thread(customers_from_file, case.customers_file)
            lookup = loaded[case.customers_file]
        try:
            result = await simulate(flow, case.inputs, caller=case.caller, customers=lookup, language=case.language)
        except ValueError as exc:
            results.append(CaseResult(case.name, False, dict(case.expect), {}, f"case {case.name!r}: {exc}"))
            continue
        results.append(check_case(case, result))
    return results


def cases_path(flow_path: Path) -> Path:
    """Where a flow file's cases are: dialplans/hotline.yaml -> dialplans/hotline.cases.yaml."""
    return flow_path.with_name(flow_path.stem + ".cases.yaml")

