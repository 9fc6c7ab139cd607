"""IVR flows as data: the YAML files in dialplans/ that admins edit.

A flow is a graph of nodes:

- ``ask``: prompt, then listen for speech and keys at once; routes intents to nodes
- ``say``: a prompt, then the next node
- ``self_service``: look something up for the caller (e.g. a balance), say it, go on
- ``route``: hand the call to a queue of people (skills, priority)
- ``transfer``: hand the call to a named person or extension (e.g. a field manager)
- ``callback_offer``: offer to call back instead of waiting
- ``hangup``: say goodbye and end the call
- ``secure_digits``: collect a card number, expiry, PIN or one-time code by keys while the call recording is
  paused, and send it only to the card verifier (ivr.privacy); the record keeps verified yes/no and a card's last 4

The pydantic models below are the format; ``Flow.model_json_schema()`` is its JSON
Schema (``ivr dialplan schema`` prints it) for editors.

Each node type declares here, once, where it can send the call (``exit_fields``, read by ``exits()`` on a
model and by ``node_exits`` on a node as written), whether the call can end there (``ends_call``) and
whether it goes on without waiting for the caller (``advances_by_itself``). The validator's checks and the
editor's diagram read these instead of knowing each type's fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

QUEUE_NAME = r"^[a-z][a-z0-9_]*$"
NODE_ID = r"^[a-z][a-z0-9_]*$"

LanguageText = dict[str, str]
"""Text per language code, e.g. {"ko": "...", "en": "..."}."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Strict):
    """A dialect's way of saying an intent."""

    language: str
    dialect: str = Field(description="e.g. gyeongsang, jeolla, scottish")
    phrase: str


class Intent(_Strict):
    """Something a caller may want, with the ways they say it."""

    phrases: dict[str, list[str]] = Field(default_factory=dict, description="phrases and synonyms per language")
    variants: list[Variant] = Field(default_factory=list, description="dialect variants, each tagged")
    dtmf: str | None = Field(default=None, pattern=r"^[0-9*#]$", description="key that selects this intent")
    confirm: LanguageText = Field(default_factory=dict, description="question to confirm this intent (yes/no)")
    examples: LanguageText = Field(default_factory=dict, description="how to say it, for re-prompts")


class Listen(_Strict):
    """How an ask node listens."""

    no_input_s: float = Field(default=6.0, gt=0, le=30, description="silence after the prompt = no input")
    max_speech_s: float = Field(default=10.0, gt=0, le=60, description="longest utterance")
    barge_in: bool = Field(default=True, description="the caller may interrupt the prompt")
    barge_in_min_speech_ms: int = Field(
        default=220, ge=0, le=2000,
        description="speech this long (or a recognized word) cuts the prompt; a cough does not",
    )
    endpoint_silence_s: float = Field(default=0.6, ge=0.2, le=3.0, description="silence that ends an utterance")


class Exit(NamedTuple):
    """One way out of a node: the node it leads to, and what takes the call there."""

    field: str
    """The node's field that names the target: "routes", "next" or "on_unavailable"."""
    intent: str | None
    """The intent that takes an ask node's route; None for the other fields."""
    target: str
    """The node id it leads to (as written: it may name no node of a flow with errors)."""
    label: str
    """What takes the call along it, as the diagram writes it: the intent, "declined", "unavailable";
    "" when the node simply goes on."""

    @property
    def path(self) -> tuple[str, ...]:
        """Where the exit is written in the node: ("routes", "loan") or ("next",)."""
        return (self.field,) if self.intent is None else (self.field, self.intent)


class BaseNode(_Strict):
    """What every node type declares about the call's way through it (class constants, not fields)."""

    exit_fields: ClassVar[Mapping[str, str | None]] = {}
    """The fields naming the nodes this one can lead to -> what takes the call there ("": it goes on).
    None: the field maps intents to nodes (an ask node's routes), one exit per entry, taken by its intent."""
    ends_call: ClassVar[bool] = False
    """The call can end here: with a person, a callback or a goodbye."""
    advances_by_itself: ClassVar[bool] = False
    """The node goes on without waiting for the caller, so a loop of such nodes never ends."""

    def exits(self) -> tuple[Exit, ...]:
        """Every way out of this node, in the order of its fields (an ask node's routes as written)."""
        return _read_exits(self.exit_fields, lambda name: getattr(self, name))


class AskNode(BaseNode):
    exit_fields: ClassVar[Mapping[str, str | None]] = {"routes": None}

    type: Literal["ask"]
    prompt: LanguageText
    reprompt: LanguageText | None = Field(default=None, description="after a miss; defaults to examples")
    routes: dict[str, str] = Field(description="intent id -> next node id")
    listen: Listen = Field(default_factory=Listen)


class SayNode(BaseNode):
    exit_fields: ClassVar[Mapping[str, str | None]] = {"next": ""}
    advances_by_itself: ClassVar[bool] = True

    type: Literal["say"]
    prompt: LanguageText
    next: str


class SelfServiceNode(BaseNode):
    exit_fields: ClassVar[Mapping[str, str | None]] = {"next": "", "on_unavailable": "unavailable"}
    advances_by_itself: ClassVar[bool] = True

    type: Literal["self_service"]
    action: Literal["balance"] = Field(description="what to look up")
    prompt: LanguageText = Field(description="spoken result; {placeholders} from the lookup")
    unavailable: LanguageText = Field(description="said when the caller is unknown or the lookup fails")
    next: str
    on_unavailable: str = Field(description="node when the lookup gives nothing (usually a person)")


class RouteNode(BaseNode):
    ends_call: ClassVar[bool] = True

    type: Literal["route"]
    queue: str = Field(pattern=QUEUE_NAME)
    skills: list[str] = Field(default_factory=list)
    priority: int = Field(default=0, ge=0, le=100)
    prompt: LanguageText | None = None


class TransferNode(BaseNode):
    ends_call: ClassVar[bool] = True

    type: Literal["transfer"]
    target: str = Field(pattern=r"^[0-9]{2,15}$", description="extension of a person (desk or field mobile)")
    prompt: LanguageText | None = None
    fallback_queue: str = Field(default="general", pattern=QUEUE_NAME, description="when nobody answers")


class CallbackOfferNode(BaseNode):
    # Declining the offer goes on in the flow; accepting ends the call with a place kept in the queue.
    exit_fields: ClassVar[Mapping[str, str | None]] = {"next": "declined"}
    ends_call: ClassVar[bool] = True

    type: Literal["callback_offer"]
    prompt: LanguageText = Field(description="the offer: 1 / yes for a callback")
    accepted: LanguageText = Field(description="said when the caller accepts")
    queue: str = Field(pattern=QUEUE_NAME, description="queue the callback keeps a place in")
    next: str = Field(description="node when the caller declines")


class HangupNode(BaseNode):
    ends_call: ClassVar[bool] = True

    type: Literal["hangup"]
    prompt: LanguageText | None = None


class SecureDigitsNode(BaseNode):
    """Card data by keys, with the call recording paused for exactly this node (PCI DSS).

    The entry's length follows ``what``: card 13–19 digits (Luhn-checked), expiry 4 (MMYY), PIN 4–6, one-time code
    6; ``#`` ends a shorter entry, the entry also ends ``inter_digit_s`` after the last key. ``*`` asks for a person
    (``0`` is a digit here). The digits go only to the configured verifier; nothing keeps them.
    """

    # Verified goes on; a refused entry (after the attempts), no keys at all, or no verdict (the verifier timed out
    # or answered garbage, or the recording could not be paused) each have their own way out.
    exit_fields: ClassVar[Mapping[str, str | None]] = {
        "next": "verified", "on_unavailable": "unavailable", "on_failed": "failed", "on_no_input": "no_input"}

    type: Literal["secure_digits"]
    what: Literal["card", "expiry", "pin", "otp"] = Field(description="what the caller keys")
    prompt: LanguageText = Field(description="asks for the keys (ending with # for a card or a PIN)")
    invalid: LanguageText = Field(description="said before another try when the entry was wrong or refused")
    unavailable: LanguageText = Field(
        description="said when it cannot be checked now (verifier down, recording not paused): offer a person")
    attempts: int = Field(default=2, ge=1, le=3, description="entries the caller may try")
    first_digit_s: float = Field(default=10.0, gt=0, le=30, description="no key this long after the prompt: no input")
    inter_digit_s: float = Field(default=5.0, gt=0, le=20, description="no key this long ends the entry")
    next: str = Field(description="node when the verifier accepted the entry")
    on_failed: str = Field(description="node when every try was wrong or refused")
    on_no_input: str = Field(description="node when the caller keyed nothing")
    on_unavailable: str = Field(description="node when there was no verdict (usually a person)")


Node = Annotated[
    AskNode | SayNode | SelfServiceNode | RouteNode | TransferNode | CallbackOfferNode | HangupNode
    | SecureDigitsNode,
    Field(discriminator="type"),
]

NODE_MODELS: dict[str, type[BaseNode]] = {
    "ask": AskNode, "say": SayNode, "self_service": SelfServiceNode, "route": RouteNode,
    "transfer": TransferNode, "callback_offer": CallbackOfferNode, "hangup": HangupNode,
    "secure_digits": SecureDigitsNode,
}
"""Each node type's model, by the ``type:`` that names it."""


def _any_exit_fields() -> dict[str, str | None]:
    # A node of no known type may be meant as any of them: read every field some type leads through. The
    # first type declaring a field gives its label (a plain "next" goes on; only the offer's is "declined").
    fields: dict[str, str | None] = {}
    for model in NODE_MODELS.values():
        for name, label in model.exit_fields.items():
            fields.setdefault(name, label)
    return fields


_ANY_EXIT_FIELDS = _any_exit_fields()


def node_exits(node: Mapping[str, object]) -> tuple[Exit, ...]:
    """The exits of a node as written (YAML not yet validated), for drawing a flow that has errors.

    Every field some node type leads through is read, labelled as this node's type labels it, so a stray
    ``next`` or a misspelt type still shows what the text says. Targets that are not text are left out (an
    empty one is kept: it names no node); an ask node's routes give one exit per entry.
    """
    kind = NODE_MODELS.get(str(node.get("type")))
    fields = {**_ANY_EXIT_FIELDS, **(kind.exit_fields if kind is not None else {})}
    return _read_exits(fields, node.get)


def _read_exits(fields: Mapping[str, str | None], value_of: Callable[[str], object]) -> tuple[Exit, ...]:
    exits: list[Exit] = []
    for name, label in fields.items():
        value = value_of(name)
        if label is None:
            if isinstance(value, Mapping):
                exits += [Exit(name, str(key), target, str(key)) for key, target in value.items()
                          if isinstance(target, str)]
        elif isinstance(value, str):
            exits.append(Exit(name, None, value, label))
    return tuple(exits)


class Confirmation(_Strict):
    """Yes and no, per language (keys 1 and 2 always work)."""

    yes: dict[str, list[str]]
    no: dict[str, list[str]]


class Messages(_Strict):
    """What the engine itself says."""

    not_understood: LanguageText = Field(description="before a re-prompt")
    to_person: LanguageText = Field(description="before handing the call to a person")
    keys_only: LanguageText = Field(description="when speech recognition is unavailable")


class Hold(_Strict):
    """What waiting callers hear while the ACD finds them a person (asterisk_conf: [ivr-hold])."""

    position: LanguageText = Field(
        default_factory=lambda: {
            "ko": "고객님의 대기 순서는 {position}번째이며, 예상 대기 시간은 약 {minutes}분입니다.",
            "en": "You are number {position} in line; the expected wait is about {minutes} minutes."},
        description="position and estimated wait; {position} and {minutes} are filled in")
    callback_offer: LanguageText = Field(
        default_factory=lambda: {"ko": "기다리시는 순서를 유지한 채 전화를 다시 받으시려면 1번을 눌러 주십시오.",
                                 "en": "To be called back keeping your place in line, press 1."},
        description="offered before the caller's patience runs out; 1 accepts (at any time while holding)")
    callback_accepted: LanguageText = Field(
        default_factory=lambda: {"ko": "순서대로 다시 전화드리겠습니다. 감사합니다.",
                                 "en": "We will call you back in turn. Thank you."},
        description="after the caller pressed 1")
    patience_s: int = Field(default=90, ge=10, description="patience of callers with none stored or learned")
    offer_before_s: int = Field(default=10, ge=0, description="offer the callback this long before patience ends")
    announce_every_s: int = Field(default=45, ge=15, description="how often position and wait are announced")


class Thresholds(_Strict):
    act: float = Field(default=0.6, ge=0, le=1, description="act on an intent scored at least this")
    confirm: float = Field(default=0.3, ge=0, le=1, description="confirm an intent scored at least this")


class Flow(_Strict):
    """One IVR flow."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    languages: list[str] = Field(min_length=1)
    start: str
    fallback_queue: str = Field(default="general", pattern=QUEUE_NAME)
    agent_intent: str = Field(default="agent", description="the intent that reaches a person from any node")
    max_failures: int = Field(default=2, ge=1, le=2, description="misses in a row before a person (at most 2)")
    language: str | None = Field(
        default=None,
        description="speak this language to every caller; unset: the caller's stored preference, else "
        "the first utterance decides among the loaded model packs, else the first of `languages`",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    confirmation: Confirmation
    messages: Messages
    hold: Hold = Field(default_factory=Hold)
    intents: dict[str, Intent]
    nodes: dict[str, Node]

    @model_validator(mode="after")
    def _references_exist(self, info: ValidationInfo) -> Flow:
        # ivr.voice.validation asks to defer these (context {"references": "defer"}) to report each one at its line.
        if isinstance(info.context, dict) and info.context.get("references") == "defer":
            return self
        problems = [message for _, message in self.reference_problems()]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def reference_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Names in the flow that point nowhere: (where, as a path of keys; what is wrong)."""
        problems: list[tuple[tuple[str, ...], str]] = []
        if self.start not in self.nodes:
            problems.append((("start",), f"start node {self.start!r} is not defined"))
        if self.language is not None and self.language not in self.languages:
            problems.append((("language",), f"language {self.language!r} is not one of languages {self.languages}"))
        if self.agent_intent not in self.intents:
            problems.append((("agent_intent",), f"agent_intent {self.agent_intent!r} is not an intent"))
        for node_id, node in self.nodes.items():
            for way in node.exits():
                where = ("nodes", node_id, *way.path)
                if way.intent is None:
                    if way.target not in self.nodes:
                        problems.append((where, f"node {node_id!r}: {way.field} {way.target!r} is not a node"))
                    continue
                if way.intent not in self.intents:
                    problems.append((where, f"node {node_id!r} routes unknown intent {way.intent!r}"))
                if way.target not in self.nodes:
                    problems.append((where, f"node {node_id!r} routes {way.intent!r} to unknown node "
                                     f"{way.target!r}"))
        return problems

    def static_prompts(self) -> list[tuple[str, str]]:
        """Every prompt of the flow that is the same for every caller, as (text, language), for pre-rendering.

        Texts with {placeholders} are filled in per call (a balance, a position in line) and left out.
        """
        texts: list[LanguageText] = [self.messages.not_understood, self.messages.to_person, self.messages.keys_only,
                                     self.hold.callback_offer, self.hold.callback_accepted]
        for node in self.nodes.values():
            for name in ("prompt", "reprompt", "unavailable", "accepted", "invalid"):
                value = getattr(node, name, None)
                if value:
                    texts.append(value)
        for intent in self.intents.values():
            texts.append(intent.confirm)
        out: list[tuple[str, str]] = []
        for text in texts:
            for language, value in text.items():
                if value and "{" not in value and (value, language) not in out:
                    out.append((value, language))
        return out

    def intent_ids(self, node: AskNode) -> list[str]:
        """The intents an ask node listens for: its routes plus the way to a person."""
        ids = list(node.routes)
        return ids if self.agent_intent in ids else [*ids, self.agent_intent]

    def phrases(self, intent_ids: list[str], language: str) -> dict[str, list[str]]:
        return {i: self.intents[i].phrases.get(language, []) for i in intent_ids}

    def grammar_phrases(self, node: AskNode, language: str, corrections: bool = False) -> list[str]:
        """Everything the recognizer should expect at this node, for the language.

        The no-words ("아니요, 대출이요") are offered only when there is something to correct:
        in a grammar they also attract noise, and a first question has nothing to correct.
        """
        out: list[str] = []
        for intent_id in self.intent_ids(node):
            intent = self.intents[intent_id]
            out += intent.phrases.get(language, [])
            out += [v.phrase for v in intent.variants if v.language == language]
        if corrections:
            out += self.confirmation.no.get(language, [])
        return out


class FlowError(ValueError):
    """A flow file that cannot be used; the message names the file and the problem."""


MAX_FLOW_BYTES = 1_000_000


def parse_flow(text: str, source: str = "<flow>") -> Flow:
    if len(text.encode()) > MAX_FLOW_BYTES:
        raise FlowError(f"{source}: {len(text.encode())} bytes, over the {MAX_FLOW_BYTES}-byte limit for a flow")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowError(f"{source}: YAML syntax error: {exc}") from None
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise FlowError(f"{source}: {problems}") from None


def load_flow(path: Path) -> Flow:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError(f"{path}: {exc}") from None
    return parse_flow(text, str(path))


def flow_queue_name(asterisk_queue: str) -> str:
    """Asterisk's queue 'q_cards' is the flow's queue 'cards' (see asterisk_conf/queues.conf)."""
    return asterisk_queue.removeprefix("q_")
