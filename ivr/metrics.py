"""The controller's metrics in Prometheus' terms (prometheus-client), served at ``/metrics`` (ivr/web/health.py).

At the bottom of the house: every layer that counts something imports this module, and it imports nothing of
the project. What it defines is what a dashboard (docs/grafana/ivr-dashboard.json) plots:

- calls: ``ivr_calls_total`` (taken from Asterisk), ``ivr_calls_in_ivr{node}`` (where they are in the flow now);
- turns: ``ivr_turns_total{kind,outcome}`` and ``ivr_asr_latency_seconds`` (past the caller's endpoint);
- the ACD: ``ivr_acd_waiting_calls{queue}`` and ``ivr_acd_agents{state}``, read from the live ACD at each scrape;
- the lines: ``ivr_ami_reconnects_total``, ``ivr_audiosocket_sessions``, ``ivr_web_sockets``, ``ivr_up{component}``;
- trouble: ``ivr_errors_total{kind}`` at the places a call meets it, ``ivr_log_records_total{level,logger}`` for
  every warning and error logged anywhere;
- the process: prometheus-client's default collectors (CPU, memory, open files, GC).

Label values are bounded sets (flow nodes, queues, the kinds below): never a caller's number or a call id.

``ivr_up`` doubles as the readiness state ``/readyz`` reads (``set_up``, ``is_up``): each part reports itself
where it comes up or goes down (AMI login and loss, a listener's start and stop, the model loaded).
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class ErrorKind(enum.StrEnum):
    """What went wrong, for ``ivr_errors_total{kind}``: each is a place a call (or a page) meets trouble."""

    NAVIGATION = "navigation"
    """The controller's walk through the flow raised: the caller went to a person."""
    AUDIOSOCKET_CONNECT = "audiosocket_connect"
    """Asterisk did not connect the call's AudioSocket in time: the caller went to a person."""
    AUDIO_LINE = "audio_line"
    """The audio line broke with the caller still on it: they went to a person."""
    AUDIOSOCKET_REJECTED = "audiosocket_rejected"
    """An AudioSocket connection without a session UUID the controller issued (refused)."""
    AUDIOSOCKET_PROTOCOL = "audiosocket_protocol"
    """A call's AudioSocket broke the protocol (malformed frames)."""
    AGI_REQUEST = "agi_request"
    """A FastAGI request the controller does not serve (an unknown script, a malformed environment)."""
    AGI_HANDLER = "agi_handler"
    """A FastAGI handler failed; the dialplan took the call over."""
    AMI_LOGIN = "ami_login"
    """Asterisk refused the AMI login (a wrong secret)."""
    ASR = "asr"
    """Speech recognition failed in a turn; the call went on with keys."""
    WEB = "web"
    """A web request ended in an internal error (500)."""


class Component(enum.StrEnum):
    """The parts ``/readyz`` needs up (besides Redis, which it pings): ``ivr_up{component}``."""

    AMI = "ami"
    """Logged in to Asterisk's manager interface."""
    FASTAGI = "fastagi"
    """The FastAGI listener Asterisk hands calls to."""
    AUDIOSOCKET = "audiosocket"
    """The AudioSocket listener the calls' audio arrives on."""
    ASR = "asr"
    """A speech model loaded."""


TURN_KINDS = ("ask", "confirm", "offer", "secure")
"""The turn kinds the navigator records (ivr.records.call.Turn.kind)."""

AGENT_STATES = ("offline", "ready", "not_ready", "wrap_up", "ringing", "on_call")
"""An agent as ``ivr_acd_agents{state}`` counts them: their presence, or what a call is doing to them."""

# --- calls and turns

CALLS = Counter("ivr_calls", "Calls the controller took from Asterisk (FastAGI hotline requests)")
CALLS_IN_NODE = Gauge("ivr_calls_in_ivr", "Calls in the IVR now, by the flow node they are at", ["node"])
TURNS = Counter("ivr_turns", "Turns decided (a question and the caller's answer), by kind and outcome",
                ["kind", "outcome"])
ASR_LATENCY = Histogram(
    "ivr_asr_latency_seconds",
    "Recognition latency past the caller's endpoint: from the last voiced audio plus the node's endpoint "
    "silence to the turn's result (what the machine adds to the caller's wait)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
)

# --- the lines to Asterisk and the pages

AMI_RECONNECTS = Counter("ivr_ami_reconnects", "AMI logins after the first (Asterisk restarted, the link dropped)")
AUDIOSOCKET_SESSIONS = Gauge("ivr_audiosocket_sessions", "AudioSocket sessions open (calls' audio to and from us)")
WEB_SOCKETS = Gauge("ivr_web_sockets", "The pages' web sockets open (agents, field managers, supervisors)")
UP = Gauge("ivr_up", "A part the controller needs: up (1) or not (0)", ["component"])

# --- trouble

ERRORS = Counter("ivr_errors", "Errors by kind (ivr.metrics.ErrorKind)", ["kind"])
LOG_RECORDS = Counter("ivr_log_records", "Warnings and errors logged, by level and logger", ["level", "logger"])

# Every series a dashboard expects exists from the start (at 0), not only after its first event.
for _kind in ErrorKind:
    ERRORS.labels(_kind.value)
for _component in Component:
    UP.labels(_component.value).set(0)

_up: dict[str, bool] = {}


def component_name(name: str) -> str:
    """A part's label value: "FastAGI" -> "fastagi", "AudioSocket (app calls)" -> "audiosocket_app_calls"."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def set_up(component: Component | str, up: bool) -> None:
    """A part reports itself up or down: ``ivr_up`` and what ``/readyz`` reads."""
    name = component_name(component)
    _up[name] = up
    UP.labels(name).set(1 if up else 0)


def is_up(component: Component | str) -> bool:
    return _up.get(component_name(component), False)


def error(kind: ErrorKind) -> None:
    """Count one error of `kind` (the log line saying what happened is the caller's)."""
    ERRORS.labels(kind.value).inc()


def turn_outcome(kind: str, intent: str | None, transcript: str, dtmf: str, error: str | None) -> str:
    """What a decided turn came to, from its record's fields (a small fixed set of label values).

    ``matched``: the engine found an intent in the words heard (an ask turn may still be confirmed: that is a
    ``confirm`` turn of its own); ``unmatched``: words, no intent; ``keys``/``wrong_key``: a key that chose an
    intent or none; ``no_input``: nothing heard (silence, or a hang-up before a word); ``error``: recognition
    failed. A secure turn's outcome is its entry's result (verified, failed, no_input, unavailable, person,
    hung_up); its digits are never on the record.
    """
    if kind == "secure":
        return intent or "no_input"
    if error:
        return "error"
    if dtmf:
        return "keys" if intent else "wrong_key"
    if transcript:
        return "matched" if intent else "unmatched"
    return "no_input"


def count_turn(kind: str, intent: str | None, transcript: str, dtmf: str, error: str | None) -> None:
    """Count one decided turn (``ivr_turns_total``)."""
    TURNS.labels(kind if kind in TURN_KINDS else "other", turn_outcome(kind, intent, transcript, dtmf, error)).inc()


def observe_asr_latency(seconds: float) -> None:
    """One turn's recognition latency past the endpoint (negative: Vosk's own endpoint came first: 0)."""
    ASR_LATENCY.observe(max(0.0, seconds))


# --- the ACD, read at each scrape


@dataclass(frozen=True, slots=True)
class AcdCounts:
    """What the ACD holds right now, as ``ivr_acd_*`` reports it."""

    waiting: Mapping[str, int] = field(default_factory=dict)
    """Calls (and callbacks keeping their place) waiting for a person, not yet ringing one, by queue."""
    agents: Mapping[str, int] = field(default_factory=dict)
    """Agents by state (AGENT_STATES)."""


class AcdCollector(Collector):
    """``ivr_acd_waiting_calls{queue}`` and ``ivr_acd_agents{state}``, read from the live ACD when scraped.

    Read, not counted: nothing to keep in step with the ACD's own bookkeeping (a restart re-adopting calls,
    a presence change from another page). The web app points ``source`` at its process's ACD.
    """

    def __init__(self) -> None:
        self.source: Callable[[], AcdCounts] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families(AcdCounts())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = AcdCounts()
        if self.source is not None:
            try:
                counts = self.source()
            except Exception as exc:  # a scrape must not fail on it: the ACD's series read 0 this time
                log.warning("metrics: the ACD could not be read (%s)", exc)
        yield from self._families(counts)

    @staticmethod
    def _families(counts: AcdCounts) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily("ivr_acd_waiting_calls", "Calls waiting in the ACD for a person (not yet "
                                    "ringing one), callbacks keeping their place included, by queue",
                                    labels=["queue"])
        for queue, n in sorted(counts.waiting.items()):
            waiting.add_metric([queue], n)
        agents = GaugeMetricFamily("ivr_acd_agents", "Agents in the ACD by state", labels=["state"])
        for state in (*AGENT_STATES, *sorted(set(counts.agents) - set(AGENT_STATES))):
            agents.add_metric([state], counts.agents.get(state, 0))
        yield waiting
        yield agents


ACD = AcdCollector()
REGISTRY.register(ACD)


def watch_acd(source: Callable[[], AcdCounts] | None) -> None:
    """Read the ACD's series from `source` from now on (None: no ACD in this process)."""
    ACD.source = source


# --- every warning and error logged


class LogCounter(logging.Handler):
    """Counts warnings and errors by logger (``ivr_log_records_total``): trouble nobody instrumented shows too."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        LOG_RECORDS.labels(level, record.name).inc()


def count_logs(logger: logging.Logger | None = None) -> None:
    """Install the LogCounter on `logger` (the root logger by default), once."""
    target = logger or logging.getLogger()
    if not any(isinstance(h, LogCounter) for h in target.handlers):
        target.addHandler(LogCounter())
