"""The call record: what happened on one call, as ``ivr call --json`` prints it."""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ivr.privacy.redaction import redact, redact_texts, redact_words

if TYPE_CHECKING:
    from ivr.records.customer import Customer


class Outcome(enum.StrEnum):
    """How a call ended up (None while it is still in the IVR)."""

    SELF_SERVICE = "self_service"
    QUEUED = "queued"
    ANSWERED = "answered"
    CALLBACK = "callback"
    ABANDONED = "abandoned"
    ERROR = "error"


@dataclass(slots=True)
class Turn:
    """One question and the caller's answer to it."""

    node: str
    """The flow node that asked."""
    transcript: str = ""
    """What the recognizer heard (best alternative)."""
    confidence: float = 0.0
    """Recognizer confidence of the transcript, 0..1."""
    intent: str | None = None
    """The intent chosen from this turn, if any."""
    score: float = 0.0
    """Score of that intent, 0..1."""
    dtmf: str = ""
    """Keys pressed during the turn."""
    kind: str = "ask"
    """"ask" (a question of the flow), "confirm" (yes/no on an intent) or "offer" (callback)."""
    language: str = ""
    """Language the turn was recognized in."""
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    """n-best hypotheses: [{text, confidence}], best first."""
    words: list[dict[str, Any]] = field(default_factory=list)
    """Words of the best hypothesis: [{word, start, end, conf}]."""
    dialect: str | None = None
    """Dialect of the variant that matched, when one did."""
    used_context: bool = False
    """The intent needed the caller's earlier words at this question."""
    correction: bool = False
    """The caller corrected an earlier understanding ("no, ...")."""
    barged_in: bool = False
    """The caller interrupted the prompt."""
    started_at: float = field(default_factory=time.time)
    """When the prompt started (epoch seconds)."""
    speech_started_at: float | None = None
    """When the caller's speech began."""
    speech_ended_at: float | None = None
    """When the caller's speech ended (last voiced audio)."""
    decided_at: float | None = None
    """When the engine decided on this turn."""
    audio: str | None = None
    """Recording of the caller's side of this turn, relative to recordings/."""
    error: str | None = None
    """Why recognition failed, when it did."""

    def redact(self) -> Turn:
        """Personal data in what was heard replaced by tags (ivr.privacy.redaction), in place; returns the turn.

        Run where the turn is filled and again at every write point (cheap: texts are cached)."""
        self.transcript = redact(self.transcript)
        self.alternatives = redact_texts(self.alternatives)
        self.words = redact_words(self.words)
        return self


@dataclass(slots=True)
class CallRecord:
    """Everything the controller knows about one call."""

    call_id: str
    """Asterisk's unique id of the inbound channel."""
    caller: str
    """Caller number (digits and +), empty when withheld."""
    channel: str = ""
    """Asterisk channel name."""
    customer: str | None = None
    """Customer id, when the caller's number is known."""
    customer_name: str | None = None
    """Customer's name, for the agent's screen."""
    tier: str | None = None
    """Customer tier (standard, gold, vip)."""
    language: str = "ko"
    """Language the IVR speaks with this caller."""
    language_source: str = "default"
    """Why that language: "customer" (stored preference), "flow" (the flow's choice),
    "detected" (first utterance, most confident pack) or "default"."""
    dialect: str | None = None
    """The caller's dialect: stored, or the dialect of the phrase variant they used."""
    path: list[str] = field(default_factory=list)
    """Flow nodes visited, in order."""
    turns: list[Turn] = field(default_factory=list)
    """Questions asked and answers heard."""
    intent: str | None = None
    """Final intent."""
    queue: str | None = None
    """Queue the call was sent to."""
    transfer_to: str | None = None
    """Extension the call was transferred to (a named person)."""
    self_served: bool = False
    """The caller was served by the IVR itself (e.g. heard their balance)."""
    agent: str | None = None
    """Who answered (the agent's id, or the queue member name when Asterisk's own queue answered)."""
    queued_at: float | None = None
    """When the call joined the line for a person (a callback keeps this time: its place)."""
    answered_at: float | None = None
    """When a person answered."""
    routing: list[dict[str, Any]] = field(default_factory=list)
    """The router's decisions, in order: {at, agent, rule, level, why, result}."""
    outcome: Outcome | None = None
    """How the call ended up; None while in the IVR."""
    notes: list[str] = field(default_factory=list)
    """Decisions and problems worth explaining (fallbacks, errors), in order."""
    started_at: float = field(default_factory=time.time)
    """When the controller took the call."""
    ended_at: float | None = None
    """When the channel hung up."""
    heard_at_hz: int | None = None
    """The rate the controller heard the caller at: 16000 for a wideband leg (G.722, Opus), 8000 for a
    telephone-band one; None when the audio never connected. The last rate if it changed mid-call."""
    flow_version: int | None = None
    """The version of the flow the call walked (ivr.voice.versions; a publish mid-call does not change it), None
    when the controller runs the flow from its file (Redis was unavailable when it loaded)."""
    via: str = "phone"
    """How the caller came: "phone" (the hotline; known by caller ID at best) or "app" (the bank's app over WebRTC,
    ivr/webrtc/: the customer is the one its signed token names, "authenticated in app")."""
    app_customer: str | None = None
    """App calls: the customer id the app's token named (also ``customer`` when the directory knows them)."""
    app_screen: str | None = None
    """App calls: the app screen the customer called from (e.g. "card"), when the app said."""
    app_intent: str | None = None
    """App calls: the intent that screen suggests; the flow confirms it before the menu."""
    app_end: str | None = None
    """App calls: whose side ended the app's leg and why ("network: no audio from the app for 4 s ...")."""

    secure_spans: list[dict[str, Any]] = field(default_factory=list)
    """Spans where the call recording was muted while the caller keyed card data (a ``secure_digits`` node), in
    order: {"node": str, "started_at": epoch float, "ended_at": epoch float, "what": "card"|"expiry"|"pin"|"otp",
    "verified": bool, or None when the verifier gave no answer or nothing was keyed, "last4": the card's last four
    digits (card only, when verified) else None}. Never the digits themselves."""

    def note(self, text: str) -> None:
        self.notes.append(redact(text))

    def redact(self) -> CallRecord:
        """Personal data in the record's text (turns, notes) replaced by tags, in place; returns the record."""
        for turn in self.turns:
            turn.redact()
        self.notes = [redact(n) for n in self.notes]
        return self

    def apply_customer(self, customer: Customer | None, languages: list[str]) -> None:
        """What the IVR knows of a recognized caller: who, tier, dialect, and their language if the flow has it."""
        if customer is None:
            return
        self.customer, self.customer_name, self.tier = customer.id, customer.name, customer.tier
        self.dialect = customer.dialect
        if customer.language in languages:
            self.language, self.language_source = customer.language, "customer"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value if self.outcome else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        data = dict(data)
        data["turns"] = [Turn(**t) for t in data.get("turns", [])]
        data["outcome"] = Outcome(data["outcome"]) if data.get("outcome") else None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
