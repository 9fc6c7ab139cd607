"""make loadtest: real SIP calls into the hotline, ramped in steps, until the IVR stops keeping up (issue #14, item 1).

Callers are SIPp (Debian's ``sip-tester``) on the simulator's trunk (ivr/ops/provision.py ``sim-trunk``: calls from
127.0.0.10 are carrier calls, identified by address): an INVITE offering G.711 and RFC 4733 events, then the
caller's whole side of the IVR as one pcap (bench/sipp/media.py): silence while the greeting plays, what it says
or keys, silence, "네" in case the IVR asks "..., right?", silence. Then it holds in the queue (no agent answers:
answering is not part of the IVR's capacity) and hangs up. Three kinds of caller, each its own SIPp process:

- "계좌 이체" in espeak-ng's ko+f1 voice (140 wpm), G.711 mu-law: the payments queue, intent transfer;
- "상담원 연결" in the default voice, G.711 A-law: the general queue, intent agent;
- key 2 as RFC 4733 events, mu-law: the cards queue, intent lost_card.

Before the first call, each spoken phrase's recognition margin is measured offline through the G.711 round trip
(same model, same grammar; several lead-ins and frame offsets): the phrase must be the top hypothesis with at
least RECOGNITION_MARGIN of the n-best, or the run stops and says so.

Each step places its N calls within RAMP_S seconds (so they are in the IVR at once), waits for them to hang up
and for Asterisk to have no channel left, and reads what happened:

- attempted / completed / failed calls: SIPp's own result per call, plus the controller's record (none, no queue,
  an error, audio that never connected, a line that failed): a call fails if either says so;
- SIP errors: SIPp's failed calls and unexpected messages; retransmissions (Asterisk slow to answer);
- turn latency past the endpoint: the controller's decision (``decided_at`` in the call's record) minus the moment
  the caller's endpoint came: when the pcap started (SIPp's log) + the end of its last voiced frame (the
  controller's own voiced threshold) + the node's endpoint silence. Both clocks are this machine's;
- recognition right: spoken calls that reached their intent's queue with that intent;
- CPU of Asterisk, the controller (with its children) and Redis, sampled every 0.5 s (psutil): mean over the
  step, the busiest second, and per call: CPU-seconds of all three per second a call spent in the IVR;
- memory per call: the growth of Asterisk's and the controller's RSS at the step's peak, divided by N.

``max_concurrent_zero_fail`` is the largest step with no failed call and turn latency p95 < 300 ms. The run stops
after two steps in a row miss that. Writes bench/out/loadtest.json and bench/out/loadtest.png.

    flock /tmp/ivr-integration.lock .venv/bin/python -m bench.loadtest              # 10..100 calls, ~5 min
    flock /tmp/ivr-integration.lock .venv/bin/python -m bench.loadtest --steps 10,20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import OUT, percentile, spoken_8k
from bench.sipp import media
from ivr.config import Settings

SCENARIO = Path(__file__).resolve().parent / "sipp" / "caller.xml"
STEPS = (10, 20, 40, 60, 80, 100)
TARGET = 60
"""Concurrent calls in the IVR with recognition that the issue asks of 2 cores."""
P95_BUDGET_S = 0.300
"""Turn latency past the endpoint, p95, a step must stay under."""
RAMP_S = 3.0
"""A step's calls are placed within this many seconds."""
HOLD_S = 6.0
"""Seconds a caller holds in the queue after its IVR part, before hanging up."""
RECOGNITION_MARGIN = 0.6
"""The share of the n-best a synthetic phrase must have offline, through G.711, before the run relies on it
(the integration tests' own margin: tests/integration/conftest.py)."""
SAMPLE_S = 0.5
SIP_PORT = 5070
MEDIA_PORT = 6000
HOTLINE = "1588"
ASTERISK_SIP = "127.0.0.1:5060"
"""Where Asterisk takes SIP (asterisk_conf/pjsip.conf [transport-udp])."""


@dataclass(frozen=True, slots=True)
class CallerKind:
    """One kind of caller: what it says or keys, its codec, and where it should end."""

    name: str
    codec: str
    """PCMU or PCMA."""
    intent: str
    queue: str
    share: float
    """Its share of a step's calls."""
    said: str = ""
    """The phrase it says (empty: it keys instead)."""
    voice: str = "ko"
    words_per_minute: int = 140
    keys: str = ""
    key_ms: int = 120
    """How long each key is held (RFC 4733 events)."""
    gap_ms: int = 100
    """Silence between keys."""

    @property
    def spoken(self) -> bool:
        return bool(self.said)


KINDS = (
    # Voices and paces swept through the G.711 round trip (5 voices x 3 paces x both codecs, 16 lead-ins and
    # frame offsets each): these two were the top hypothesis with full confidence in every variation, in both
    # codecs. ko+f1 at 140 wpm is also the integration tests' transfer voice; "상담원 연결" at 140 wpm in A-law
    # sometimes comes back as "항의 상담원 연결", at 150 never.
    CallerKind("transfer", "PCMU", "transfer", "payments", 0.4, said="계좌 이체", voice="ko+f1"),
    CallerKind("agent", "PCMA", "agent", "general", 0.4, said="상담원 연결", words_per_minute=150),
    CallerKind("cards-key", "PCMU", "lost_card", "cards", 0.2, keys="2"),
)


@dataclass(slots=True)
class CallerPlan:
    """A kind of caller made ready: its pcap, its timeline and its measured margin."""

    kind: CallerKind
    pcap: Path
    timeline: media.Timeline
    margin: float | None = None
    """The lowest n-best share of its phrase offline (None for keys)."""
    margin_yes: float | None = None
    """The same for its "네" at the confirmation."""


# --- pure: what one call did, what one step did -------------------------------------------------


@dataclass(slots=True)
class CallResult:
    """One SIPp call matched with the controller's record."""

    kind: str
    caller: str
    sipp_ok: bool
    started: float | None = None
    """Wall time the call's pcap started (SIPp's log); None if it never got that far."""
    record: dict[str, Any] | None = None
    left_ivr: float | None = None
    """Wall time the controller routed it (its call.routed event), else its last decision."""


@dataclass(slots=True)
class CallVerdict:
    failed: list[str] = field(default_factory=list)
    """Why the call failed; empty when it did not."""
    recognized: bool | None = None
    """A spoken call reached its intent's queue with that intent (None: not a spoken call)."""
    speech_latency_s: list[float] = field(default_factory=list)
    """Per spoken turn: decision - (pcap start + end of the caller's voice + endpoint silence)."""
    engine_latency_s: list[float] = field(default_factory=list)
    """Per spoken turn, by the controller's own clock: decided_at - speech_ended_at - endpoint silence."""
    key_latency_s: list[float] = field(default_factory=list)
    """Per keyed turn: decision - when the key's first event packet went."""
    lag_s: list[float] = field(default_factory=list)
    """Per spoken turn: the controller's stamp of the end of the caller's voice - when it really ended: how far
    behind the caller's audio the controller processed it (recognition queued behind other calls' shows here)."""
    ivr_interval: tuple[float, float] | None = None


FAILING_NOTES = ("AudioSocket did not connect", "the AudioSocket dial ended", "controller error",
                 "the audio line failed", "navigation failed")


def judge(result: CallResult, plan: CallerPlan, endpoint_s: float) -> CallVerdict:
    """What one call tells: failed or not (and why), recognized or not, its turn latencies."""
    verdict = CallVerdict()
    record = result.record
    if not result.sipp_ok:
        verdict.failed.append("SIPp: the call failed (see the step's errors.log)")
    if record is None:
        verdict.failed.append("no record: the controller never took the call")
        return verdict
    if record.get("outcome") == "error":
        verdict.failed.append("outcome error")
    if not record.get("queue"):
        verdict.failed.append(f"not routed (outcome {record.get('outcome')})")
    if record.get("heard_at_hz") is None:
        verdict.failed.append("the controller never heard the caller's audio")
    for note in record.get("notes") or []:
        if any(marker in note for marker in FAILING_NOTES):
            verdict.failed.append(f"note: {note}")
    if plan.kind.spoken:
        verdict.recognized = record.get("queue") == plan.kind.queue and record.get("intent") == plan.kind.intent
    turns = record.get("turns") or []
    if result.started is not None:
        voice_ends = [result.started + end for _label, _start, end in plan.timeline.speech]
        key_times = [result.started + at for _digit, at in plan.timeline.keys]
        for turn in turns:
            decided = turn.get("decided_at")
            if decided is None:
                continue
            if turn.get("dtmf"):
                before = [t for t in key_times if t <= decided]
                if before:
                    verdict.key_latency_s.append(decided - before[-1])
                continue
            heard_end = turn.get("speech_ended_at")
            if heard_end is None:
                continue
            # The caller's utterance this turn heard: the last one whose voice ended before the controller's
            # stamp of it (plus slack for the RMS edge), and not one the turn's own start came after.
            candidates = [end for end in voice_ends
                          if end <= heard_end + 0.3 and end >= float(turn.get("started_at") or 0.0)]
            if candidates:
                verdict.speech_latency_s.append(decided - (candidates[-1] + endpoint_s))
                verdict.lag_s.append(heard_end - candidates[-1])
            verdict.engine_latency_s.append(decided - heard_end - endpoint_s)
    start = record.get("started_at")
    end = result.left_ivr or max((t.get("decided_at") or 0.0 for t in turns), default=0.0) or None
    if start is not None and end is not None and end >= start:
        verdict.ivr_interval = (float(start), float(end))
    return verdict


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an interval ending as another starts does not overlap it)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda edge: (edge[0], edge[1]))
    peak = current = 0
    for _at, change in edges:
        current += change
        peak = max(peak, current)
    return peak


def ms(values: Sequence[float], q: float) -> float | None:
    return None if not values else round(1000 * percentile(list(values), q), 1)


@dataclass(slots=True)
class StepRow:
    """One step of the ramp, as the table prints it and the JSON keeps it."""

    concurrent: int
    attempted: int
    completed: int
    failed: int
    sip_errors: int
    retransmissions: int
    peak_in_ivr: int
    turn_latency_p50_ms: float | None
    """Spoken turns: the decision past the caller's endpoint (end of voice + the node's endpoint silence), ms.
    Below zero when Vosk's own endpointer (0.5 s of trailing silence in the model's conf) decided first."""
    turn_latency_p95_ms: float | None
    turn_latency_max_ms: float | None
    voice_end_to_decision_p50_ms: float | None
    """The same turns from the end of the caller's voice (the endpoint silence included)."""
    voice_end_to_decision_p95_ms: float | None
    engine_latency_p95_ms: float | None
    """Past the endpoint by the controller's own stamps (speech_ended_at): blind to a lag before it."""
    audio_lag_p95_ms: float | None
    """How late the controller processed the end of the caller's voice (CallVerdict.lag_s), p95."""
    key_latency_p95_ms: float | None
    recognition_right: int
    recognition_calls: int
    cpu_pct: dict[str, float]
    """Mean CPU while calls were in the IVR (first taken to last routed), % of one core, per process (asterisk,
    controller, redis), the load generator (sipp) and "others": everything else on the machine meanwhile."""
    cpu_peak_pct: dict[str, float]
    """The busiest second in that window, % of one core, per process."""
    cpu_idle_pct: dict[str, float]
    """The same processes idle, just before the step's first call."""
    cpu_core_pct_per_call: float | None
    """CPU of the three in the IVR window above idle, per second a call spent in the IVR: % of one core per
    call in the IVR."""
    memory_mb_per_call: dict[str, float]
    ok: bool
    """No failed call and turn latency p95 within the budget."""
    failures: dict[str, int] = field(default_factory=dict)
    """Why calls failed, counted."""

    @property
    def recognition_share(self) -> float | None:
        return None if not self.recognition_calls else self.recognition_right / self.recognition_calls


def step_row(concurrent: int, results: Sequence[CallResult], plans: dict[str, CallerPlan], endpoint_s: float,
             sipp: dict[str, int], cpu: CpuWindow) -> StepRow:
    verdicts = [judge(r, plans[r.kind], endpoint_s) for r in results]
    failures: dict[str, int] = {}
    for verdict in verdicts:
        for why in verdict.failed:
            key = why.split(":")[0] if why.startswith("note") else why
            failures[key] = failures.get(key, 0) + 1
    speech = [x for v in verdicts for x in v.speech_latency_s]
    engine = [x for v in verdicts for x in v.engine_latency_s]
    keys = [x for v in verdicts for x in v.key_latency_s]
    recognized = [v.recognized for v in verdicts if v.recognized is not None]
    intervals = [v.ivr_interval for v in verdicts if v.ivr_interval]
    ivr_seconds = sum(end - start for start, end in intervals)
    failed = sum(1 for v in verdicts if v.failed)
    p95 = ms(speech, 95)
    # The IVR window: from the first call the controller took to the last one leaving the IVR. CPU per call: the
    # three processes' CPU in that window above their idle baseline, per second a call spent in the IVR.
    window = (min(s for s, _ in intervals), max(e for _, e in intervals)) if intervals else (0.0, 0.0)
    rates, idle = cpu.rate(*window), cpu.baseline()
    for usage in (rates, idle):
        if MACHINE in usage:
            usage["others"] = max(0.0, usage.pop(MACHINE) - sum(usage.get(n, 0.0) for n in (*STACK, SIPP)))
    busy_s = sum(rates.get(n, 0.0) - idle.get(n, 0.0) for n in STACK) * (window[1] - window[0])
    return StepRow(
        concurrent=concurrent, attempted=len(results), completed=sum(1 for r in results if r.sipp_ok),
        failed=failed, sip_errors=sipp.get("failed", 0) + sipp.get("unexpected", 0),
        retransmissions=sipp.get("retransmissions", 0), peak_in_ivr=peak_overlap(intervals),
        turn_latency_p50_ms=ms(speech, 50), turn_latency_p95_ms=p95,
        turn_latency_max_ms=ms(speech, 100),
        voice_end_to_decision_p50_ms=ms([x + endpoint_s for x in speech], 50),
        voice_end_to_decision_p95_ms=ms([x + endpoint_s for x in speech], 95),
        engine_latency_p95_ms=ms(engine, 95), key_latency_p95_ms=ms(keys, 95),
        audio_lag_p95_ms=ms([x for v in verdicts for x in v.lag_s], 95),
        recognition_right=sum(1 for r in recognized if r), recognition_calls=len(recognized),
        cpu_pct={name: round(100 * value, 1) for name, value in rates.items()},
        cpu_peak_pct={n: v for n, v in cpu.peak_pct(*window).items() if n in STACK},
        cpu_idle_pct={name: round(100 * value, 1) for name, value in idle.items()},
        cpu_core_pct_per_call=round(100 * busy_s / ivr_seconds, 2) if ivr_seconds else None,
        memory_mb_per_call={name: round(grown / 2**20 / max(1, concurrent), 2)
                            for name, grown in cpu.rss_growth().items()},
        ok=failed == 0 and p95 is not None and p95 < P95_BUDGET_S * 1000,
        failures=failures,
    )


def max_concurrent_zero_fail(rows: Sequence[StepRow]) -> int:
    """The largest step with no failed call and turn latency p95 under the budget (0: none)."""
    return max((row.concurrent for row in rows if row.ok), default=0)


def split_calls(total: int, kinds: Sequence[CallerKind]) -> dict[str, int]:
    """`total` calls shared among the kinds by their shares, each at least one, summing to `total`."""
    if total < len(kinds):
        raise ValueError(f"a step needs at least {len(kinds)} calls (one of each kind), not {total}")
    counts = {k.name: max(1, math.floor(total * k.share)) for k in kinds}
    order = sorted(kinds, key=lambda k: -k.share)
    i = 0
    while sum(counts.values()) < total:
        counts[order[i % len(order)].name] += 1
        i += 1
    while sum(counts.values()) > total:
        name = order[i % len(order)].name
        if counts[name] > 1:
            counts[name] -= 1
        i += 1
    return counts


# --- SIPp's files --------------------------------------------------------------------------------

_LOG_LINE = re.compile(r"^pcap (\d+) (\S+) .*\t(\d+\.\d+)\s*$")
_ERROR_CALL = re.compile(r"Call-Id '(\d+)-")


def read_call_log(text: str) -> dict[int, float]:
    """SIPp's -trace_logs lines ``pcap <call number> <Call-ID> <timestamp>``: call number -> pcap start (epoch s)."""
    starts: dict[int, float] = {}
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if match:
            starts[int(match.group(1))] = float(match.group(3))
    return starts


def read_failed_calls(text: str) -> set[int]:
    """Call numbers SIPp aborted (its -trace_err file names each by Call-ID ``<number>-<pid>@<ip>``)."""
    return {int(m.group(1)) for m in _ERROR_CALL.finditer(text)}


def read_stats(text: str) -> dict[str, int]:
    """The cumulative counters of SIPp's last -trace_stat row: failed calls, unexpected messages, retransmissions."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].rstrip(";").split(";")
    row = dict(zip(header, lines[-1].rstrip(";").split(";"), strict=False))

    def count(name: str) -> int:
        with contextlib.suppress(ValueError, KeyError):
            return int(row[name])
        return 0

    return {
        "successful": count("SuccessfulCall(C)"),
        "failed": count("FailedCall(C)"),
        "unexpected": count("FailedUnexpectedMessage(C)"),
        "retransmissions": count("Retransmissions(C)"),
        "created": count("TotalCallCreated"),
    }


# --- CPU and memory -------------------------------------------------------------------------------


@dataclass(slots=True)
class CpuWindow:
    """CPU-seconds and RSS of the stack's processes over one step, sampled every SAMPLE_S (psutil)."""

    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    """(wall time, CPU-seconds used since the first sample) per process."""
    calls_from: float = 0.0
    """Wall time the first call was placed: samples before it are the idle baseline."""
    rss_before: dict[str, int] = field(default_factory=dict)
    rss_peak: dict[str, int] = field(default_factory=dict)

    def used(self, at: float) -> dict[str, float]:
        """CPU-seconds used per process from the first sample to `at` (interpolated between samples)."""
        if not self.samples:
            return {}
        times = [t for t, _ in self.samples]
        names = self.samples[0][1].keys()
        return {name: float(np.interp(at, times, [u.get(name, 0.0) for _, u in self.samples])) for name in names}

    def rate(self, start: float, end: float) -> dict[str, float]:
        """CPU-seconds per second per process between two wall times."""
        if end <= start:
            return {}
        a, b = self.used(start), self.used(end)
        return {name: (b[name] - a[name]) / (end - start) for name in a}

    def baseline(self) -> dict[str, float]:
        """CPU-seconds per second per process while idle, before the first call."""
        return self.rate(self.samples[0][0], self.calls_from) if self.samples else {}

    def peak_pct(self, start: float, end: float) -> dict[str, float]:
        """The busiest second between `start` and `end`, % of one core, per process."""
        peaks: dict[str, float] = {}
        at = start
        while at + 1.0 <= end + 1e-9:
            for name, value in self.rate(at, at + 1.0).items():
                peaks[name] = round(max(peaks.get(name, 0.0), 100 * value), 1)
            at += SAMPLE_S
        return peaks

    def rss_growth(self) -> dict[str, int]:
        return {name: max(0, self.rss_peak.get(name, 0) - before) for name, before in self.rss_before.items()
                if name in ("asterisk", "controller")}


MACHINE = "machine"
SIPP = "sipp"
"""CPU of all cores, in CpuWindow next to the stack's processes."""
STACK = ("asterisk", "controller", "redis")


class StackProcesses:
    """Asterisk, the controller (its own process: the event loop and the recognition threads) and Redis, by their
    pid files; the SIPp processes placing the calls (the load generator shares the machine); the QA worker, the
    standby controller and anything else on the machine count as others."""

    def __init__(self, settings: Settings) -> None:
        import psutil

        from ivr.ops import stack

        self.processes: dict[str, psutil.Process] = {}
        for name in ("asterisk", "controller", "redis"):
            pid = stack.running_pid(settings, name)
            if pid is not None:
                self.processes[name] = psutil.Process(pid)
        self.sipp: dict[int, float] = {}
        """SIPp's pids and the CPU-seconds each had used when last read (kept once it has exited)."""

    def add_sipp(self, pid: int) -> None:
        self.sipp[pid] = 0.0

    def cpu_seconds(self) -> dict[str, float]:
        import psutil

        out: dict[str, float] = {}
        for name, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                out[name] = times.user + times.system
        for pid in self.sipp:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                self.sipp[pid] = times.user + times.system
        out[SIPP] = sum(self.sipp.values())
        # The whole machine too: what else ran meanwhile (other work on the box, the controller's niced QA worker,
        # the kernel's share of the loopback traffic) is the machine less the stack and SIPp.
        machine = psutil.cpu_times()
        out[MACHINE] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
        return out

    def rss(self) -> dict[str, int]:
        import psutil

        out: dict[str, int] = {}
        for name, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                out[name] = process.memory_info().rss
        return out

    async def watch(self, window: CpuWindow, stop: asyncio.Event) -> None:
        window.rss_before = self.rss()
        first = self.cpu_seconds()
        window.samples.append((time.time(), {name: 0.0 for name in first}))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_S)
            used = self.cpu_seconds()
            window.samples.append((time.time(), {name: used[name] - first.get(name, used[name]) for name in used}))
            for name, rss in self.rss().items():
                window.rss_peak[name] = max(window.rss_peak.get(name, 0), rss)


# --- the callers' audio ---------------------------------------------------------------------------


def _prompt_seconds(settings: Settings, text: str) -> float:
    from tts import PromptRenderer

    return len(PromptRenderer(settings.prompts_dir).render_pcm(text, "ko", 8000)) / (2 * 8000)


def prepare(settings: Settings, work: Path, kinds: Sequence[CallerKind] = KINDS, tail_s: float = 2.0
            ) -> tuple[dict[str, CallerPlan], float]:
    """Every kind's pcap, timed on the flow's own prompts, and the main menu's endpoint silence.

    `tail_s`: silence the caller goes on sending after its IVR part (a phone sends its frames while it holds)."""
    from ivr.voice.flow import AskNode, load_flow

    flow = load_flow(settings.dialplans_dir / "hotline.yaml")
    menu = flow.nodes[flow.start]
    if not isinstance(menu, AskNode):
        raise SystemExit(f"the flow's start node {flow.start!r} is not a question")
    greeting_s = _prompt_seconds(settings, menu.prompt["ko"])
    endpoint_s = menu.listen.endpoint_silence_s
    yes = spoken_8k(flow.confirmation.yes["ko"][0])
    plans: dict[str, CallerPlan] = {}
    work.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        payload_type = media.CODECS[kind.codec]
        script: list[media.Step] = [media.Silence(round(greeting_s + 0.5, 2))]
        if kind.spoken:
            said = spoken_8k(kind.said, voice=kind.voice, rate=kind.words_per_minute)
            confirm = flow.intents[kind.intent].confirm.get("ko", "")
            # "네" once the confirmation would be over: endpoint, decision, the question, a breath.
            wait = endpoint_s + 0.3 + (_prompt_seconds(settings, confirm) if confirm else 0.0) + 0.3
            script += [media.Speech(said, kind.said), media.Silence(round(wait, 2)),
                       media.Speech(yes, "네"), media.Silence(tail_s)]
        else:
            script += [media.Keys(kind.keys, key_ms=kind.key_ms, gap_ms=kind.gap_ms), media.Silence(tail_s)]
        rendered = media.render(script, payload_type)
        pcap = work / f"{kind.name}-{kind.codec.lower()}.pcap"
        pcap.write_bytes(media.pcap_bytes(rendered.packets))
        plan = CallerPlan(kind, pcap, rendered.timeline)
        if kind.spoken:
            audio = heard_audio(rendered.packets, payload_type)
            speech = rendered.timeline.speech
            plan.margin = recognition_margin(settings, audio, speech[0], kind.said, flow, confirm=False)
            plan.margin_yes = recognition_margin(settings, audio, speech[1], "네", flow, confirm=True)
        plans[kind.name] = plan
    return plans, endpoint_s


class UnreliableSpeech(RuntimeError):
    """A synthetic phrase is not recognized surely enough offline for a run to rely on it."""


def heard_audio(packets: Sequence[media.RtpPacket], payload_type: int) -> bytes:
    """What Asterisk hands the controller: the audio packets' G.711 decoded to 16-bit PCM."""
    return b"".join(media.decode(p.payload, payload_type).astype("<i2").tobytes()
                    for p in packets if p.payload_type == payload_type)


def recognition_margin(settings: Settings, audio: bytes, segment: tuple[str, float, float], phrase: str,
                       flow: Any, confirm: bool) -> float:
    """The lowest n-best share of `phrase` over lead-ins and frame offsets, through G.711, in the call's grammar.

    Raises UnreliableSpeech when the phrase is not the top hypothesis with RECOGNITION_MARGIN in every variation.
    """
    from asr.grammar import build_grammar
    from asr.packs import default_registry
    from asr.stream import TurnRecognizer

    node = flow.nodes[flow.start]
    phrases = flow.grammar_phrases(node, "ko", corrections=confirm)
    if confirm:
        phrases = flow.confirmation.yes["ko"] + phrases
    model = default_registry().get("ko")
    grammar = build_grammar(phrases, model)
    _label, start, end = segment
    per_s = 8000 * 2
    speech = audio[int((start - 0.2) * per_s) // 2 * 2: int((end + 0.2) * per_s) // 2 * 2]
    lowest = 1.0
    for lead_s in (0.5, 1.5, 3.0, 4.0):
        for shift_ms in range(0, 20, 5):
            pcm = bytes(int(lead_s * per_s) // 2 * 2 + shift_ms * 16) + speech + bytes(int(0.8 * per_s))
            recognizer = TurnRecognizer(model, grammar, sample_rate=8000)
            for offset in range(0, len(pcm), 320):
                recognizer.feed(pcm[offset:offset + 320])
            result = recognizer.finish()
            top = result.alternatives[0] if result.alternatives else None
            heard = [(a.text, round(a.confidence, 2)) for a in result.alternatives]
            if top is None or top.text != phrase or top.confidence < RECOGNITION_MARGIN:
                raise UnreliableSpeech(f"synthetic {phrase!r} through G.711 ({lead_s} s lead-in, {shift_ms} ms into"
                                       f" a frame) is heard offline as {heard}: a run cannot rely on it")
            lowest = min(lowest, top.confidence)
    return round(lowest, 3)


# --- the stack ------------------------------------------------------------------------------------


def ready_stack(settings: Settings) -> None:
    """The stack up, and the simulator's trunk and the SIP ACL loaded (provisioned and reloaded if not)."""
    from ivr.ops import stack
    from ivr.ops.provision import provision, sim_trunk_address

    if not sim_trunk_address():
        raise SystemExit("IVR_SIM_TRUNK_ADDRESS is empty: the load test calls through the simulator's trunk")
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed: apt-get install sip-tester (make setup does)")
    stack.up(settings)
    identifies = stack.asterisk_rx(settings, "pjsip show identifies").stdout
    if "sim-trunk" not in identifies:
        provision(settings)
        stack.asterisk_rx(settings, "core reload")
        deadline = time.monotonic() + 10
        while "sim-trunk" not in stack.asterisk_rx(settings, "pjsip show identifies").stdout:
            if time.monotonic() > deadline:
                raise SystemExit("Asterisk did not load the simulator's trunk (pjsip show identifies): see its log")
            time.sleep(0.5)


def channels_up(settings: Settings) -> int:
    from ivr.ops import stack

    out = stack.asterisk_rx(settings, "core show channels count").stdout
    match = re.search(r"(\d+) active channel", out)
    return int(match.group(1)) if match else -1


async def wait_for_no_channels(settings: Settings, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    left = await asyncio.to_thread(channels_up, settings)
    while left > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        left = await asyncio.to_thread(channels_up, settings)
    return left


# --- one step -------------------------------------------------------------------------------------


def sipp_command(plan: CallerPlan, calls: int, index: int, prefix: str, address: str, settings: Settings,
                 work: Path, hold_s: float = HOLD_S) -> list[str]:
    """One SIPp process placing `calls` calls of one kind within RAMP_S seconds, each holding `hold_s` in the
    queue after its pcap; index sets its SIP and media ports (several processes at once)."""
    pause_ms = int(1000 * (plan.timeline.seconds + hold_s))
    return [
        "sipp", ASTERISK_SIP, "-sf", str(SCENARIO), "-s", settings.hotline_number or HOTLINE,
        "-i", address, "-p", str(SIP_PORT + index), "-mi", address, "-mp", str(MEDIA_PORT + 10 * index),
        "-key", "caller_audio", str(plan.pcap), "-key", "codec_pt", str(media.CODECS[plan.kind.codec]),
        "-key", "codec_name", plan.kind.codec, "-key", "caller_prefix", prefix,
        "-d", str(pause_ms), "-m", str(calls), "-l", str(calls), "-r", str(calls), "-rp", str(int(RAMP_S * 1000)),
        "-recv_timeout", "20000", "-timeout", str(int(RAMP_S + plan.timeline.seconds + hold_s + 60)),
        "-nostdin", "-trace_stat", "-stf", str(work / "stats.csv"), "-fd", "1",
        "-trace_logs", "-log_file", str(work / "calls.log"), "-trace_err", "-error_file", str(work / "errors.log"),
    ]


async def _follow_events(settings: Settings, seen: dict[str, dict[str, float]], ready: asyncio.Event) -> None:
    """call_id -> {event type: time} from the controller's ivr:events channel."""
    import redis.asyncio as aioredis

    from ivr.records.store import EVENTS_CHANNEL

    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(EVENTS_CHANNEL)
        ready.set()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                event = json.loads(message["data"])
                seen.setdefault(str(event["call_id"]), {}).setdefault(str(event["type"]), float(event["at"]))
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
            await client.aclose()


async def _records(settings: Settings, call_ids: Iterable[str]) -> list[dict[str, Any]]:
    import redis.asyncio as aioredis

    from ivr.records.store import call_key

    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        ids = list(call_ids)
        raw = await client.mget([call_key(i) for i in ids]) if ids else []
    finally:
        await client.aclose()
    return [json.loads(r) for r in raw if r]


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def run_step(settings: Settings, plans: dict[str, CallerPlan], total: int, step_index: int, run_id: int,
                   address: str, work: Path) -> tuple[list[CallResult], dict[str, int], CpuWindow]:
    counts = split_calls(total, [p.kind for p in plans.values()])
    stop, ready = asyncio.Event(), asyncio.Event()
    seen: dict[str, dict[str, float]] = {}
    follower = asyncio.create_task(_follow_events(settings, seen, ready))
    await asyncio.wait_for(ready.wait(), 10)
    window = CpuWindow()
    processes = StackProcesses(settings)
    watcher = asyncio.create_task(processes.watch(window, stop))
    await asyncio.sleep(2.0)  # the idle baseline
    window.calls_from = time.time()
    prefixes: dict[str, str] = {}
    runs: list[tuple[str, Path, asyncio.subprocess.Process]] = []
    for index, (name, plan) in enumerate(plans.items()):
        prefixes[name] = f"0{run_id:03d}{step_index:02d}{index}"
        folder = work / f"step{total:03d}" / name
        folder.mkdir(parents=True, exist_ok=True)
        command = sipp_command(plan, counts[name], index, prefixes[name], address, settings, folder)
        with (folder / "sipp.out").open("wb") as out:
            process = await asyncio.create_subprocess_exec(*command, cwd=folder, stdout=out,
                                                           stderr=asyncio.subprocess.STDOUT,
                                                           stdin=asyncio.subprocess.DEVNULL)
        processes.add_sipp(process.pid)
        runs.append((name, folder, process))
    for _name, _folder, process in runs:
        await process.wait()
    left = await wait_for_no_channels(settings)
    await asyncio.sleep(1.0)  # the controller's last events (hang-ups) and records
    stop.set()
    await watcher
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    records = {r.get("caller", ""): r for r in await _records(settings, seen)}
    results: list[CallResult] = []
    sipp_totals: dict[str, int] = {"channels_left": max(0, left)}
    for name, folder, process in runs:
        starts, failed = read_call_log(_text(folder / "calls.log")), read_failed_calls(_text(folder / "errors.log"))
        stats = read_stats(_text(folder / "stats.csv"))
        for key, value in stats.items():
            sipp_totals[key] = sipp_totals.get(key, 0) + value
        if process.returncode not in (0, 1):  # 1: some calls failed (counted per call); else SIPp itself broke
            sipp_totals["sipp_exit_errors"] = sipp_totals.get("sipp_exit_errors", 0) + 1
        for number in range(1, counts[name] + 1):
            caller = f"{prefixes[name]}{number}"
            record = records.get(caller)
            routed = seen.get(str(record.get("call_id")), {}) if record else {}
            results.append(CallResult(
                kind=name, caller=caller, sipp_ok=number not in failed and process.returncode in (0, 1)
                and number in starts, started=starts.get(number), record=record,
                left_ivr=routed.get("call.routed") or routed.get("call.updated")))
    return results, sipp_totals, window


# --- the run --------------------------------------------------------------------------------------


def print_row(row: StepRow) -> None:
    rec = f"{row.recognition_right}/{row.recognition_calls}"
    cpu = "/".join(f"{row.cpu_pct.get(n, 0):.0f}" for n in ("asterisk", "controller", "redis", SIPP, "others"))
    peak = "/".join(f"{row.cpu_peak_pct.get(n, 0):.0f}" for n in ("asterisk", "controller", "redis"))
    mem = "/".join(f"{row.memory_mb_per_call.get(n, 0):.1f}" for n in ("asterisk", "controller"))
    print(f"{row.concurrent:>5} {row.attempted:>5} {row.completed:>5} {row.failed:>5} {row.sip_errors:>4}"
          f" {row.peak_in_ivr:>4} {_num(row.turn_latency_p50_ms):>7} {_num(row.turn_latency_p95_ms):>7}"
          f" {_num(row.audio_lag_p95_ms):>7}"
          f" {rec:>7} {cpu:>20} {peak:>13} {_num(row.cpu_core_pct_per_call):>6} {mem:>9}"
          f"  {'ok' if row.ok else 'MISS'}", flush=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


HEADER = (f"{'calls':>5} {'tried':>5} {'done':>5} {'fail':>5} {'sip':>4} {'ivr':>4} {'p50ms':>7} {'p95ms':>7}"
          f" {'lag95ms':>7} {'recog':>7} {'cpu% a/c/r/sipp/oth':>20} {'peak% a/c/r':>13} {'%/call':>6} {'MB/call':>9}")


def chart(rows: Sequence[StepRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.concurrent for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 9), sharex=True,
                                              gridspec_kw={"height_ratios": [3, 3, 2]})
    floor = 10.0  # a log axis: decisions before the node's endpoint (Vosk's own, earlier) show at 10 ms
    top.plot(x, [max(floor, r.turn_latency_p50_ms or np.nan) for r in rows], "o-", label="p50")
    top.plot(x, [max(floor, r.turn_latency_p95_ms or np.nan) for r in rows], "s-", label="p95")
    top.axhline(P95_BUDGET_S * 1000, color="red", linestyle="--", label="p95 budget, 300 ms")
    top.set_yscale("log")
    top.set_ylabel("turn latency past the\ncaller's endpoint, ms")
    top.set_title("Real SIP calls into the IVR (SIPp over G.711), ramped in steps")
    top.legend(loc="upper left", fontsize=8)
    for name in ("asterisk", "controller", "redis", SIPP, "others"):
        middle.plot(x, [r.cpu_pct.get(name, 0) for r in rows], "o-", label=name)
    middle.plot(x, [r.cpu_peak_pct.get("controller", 0) for r in rows], "^--", label="controller, busiest second")
    middle.set_ylabel("CPU while calls are\nin the IVR, % of a core")
    middle.legend(loc="upper left", fontsize=8, ncol=2)
    bottom.bar([v - 1.5 for v in x], [100 * (r.recognition_share or 0) for r in rows], width=3,
               label="spoken calls routed right, %")
    bottom.bar([v + 1.5 for v in x], [100 * r.failed / max(1, r.attempted) for r in rows], width=3, color="black",
               label="failed calls, %")
    bottom.set_ylim(0, 105)
    bottom.set_ylabel("%")
    bottom.set_xlabel("concurrent calls (placed within 3 s: all in the IVR at once)")
    bottom.legend(loc="center left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(steps: Sequence[int] = STEPS) -> dict[str, Any]:
    from ivr.config import load_settings
    from ivr.ops import stack
    from ivr.ops.provision import sim_trunk_address

    settings = load_settings()
    work = settings.run_dir / "loadtest"
    if work.exists():
        shutil.rmtree(work)
    ready_stack(settings)
    address = sim_trunk_address()
    print("preparing the callers' audio (espeak-ng -> G.711 pcap) and checking its recognition margin ...", flush=True)
    try:
        plans, endpoint_s = prepare(settings, work / "pcap")
    except UnreliableSpeech as exc:
        raise SystemExit(str(exc)) from None
    for plan in plans.values():
        what = plan.kind.said or f"key {plan.kind.keys}"
        margin = "" if plan.margin is None else f", margin {plan.margin:.2f} (네 {plan.margin_yes:.2f})"
        print(f"  {plan.kind.name:<10} {what} ({plan.kind.codec}) -> {plan.kind.queue}{margin},"
              f" IVR part {plan.timeline.seconds:.1f} s", flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before the run: {' '.join(load)}; asterisk pid {stack.running_pid(settings, 'asterisk')},"
          f" controller pid {stack.running_pid(settings, 'controller')}", flush=True)
    if float(load[0]) > 1.0:
        print(f"note: the machine is busy (load average {load[0]} on {__import__('os').cpu_count()} cores): the"
              " figures below are what the stack gets besides that work (the \"oth\" CPU column)", flush=True)
    print("\n" + HEADER)
    rows: list[StepRow] = []
    details: list[dict[str, Any]] = []
    run_id = int(time.time()) % 1000
    misses = 0
    for index, total in enumerate(steps):
        if channels_up(settings) > 0:
            asyncio.run(wait_for_no_channels(settings))
        results, sipp, cpu = asyncio.run(run_step(settings, plans, total, index, run_id, address, work))
        row = step_row(total, results, plans, endpoint_s, sipp, cpu)
        rows.append(row)
        details.append({"concurrent": total, "sipp": sipp, "calls": [
            {"kind": r.kind, "caller": r.caller, "sipp_ok": r.sipp_ok, "call_id": (r.record or {}).get("call_id"),
             "queue": (r.record or {}).get("queue"), "intent": (r.record or {}).get("intent"),
             "transcripts": [t.get("transcript") for t in (r.record or {}).get("turns") or []],
             "failed": judge(r, plans[r.kind], endpoint_s).failed} for r in results]})
        print_row(row)
        misses = 0 if row.ok else misses + 1
        if misses >= 2:
            print("two steps in a row missed: stopping the ramp", flush=True)
            break
    best = max_concurrent_zero_fail(rows)
    ok_rows = [r for r in rows if r.ok]
    per_call = [r.cpu_core_pct_per_call for r in ok_rows if r.cpu_core_pct_per_call is not None]
    data: dict[str, Any] = {
        "max_concurrent_zero_fail": best,
        "target": TARGET,
        "meets_target": best >= TARGET,
        "p95_budget_ms": P95_BUDGET_S * 1000,
        "cpu_core_pct_per_call": round(float(np.median(per_call)), 2) if per_call else None,
        "steps": [{**asdict(r), "recognition_share": r.recognition_share} for r in rows],
        "callers": {name: {"said": p.kind.said, "keys": p.kind.keys, "voice": p.kind.voice, "codec": p.kind.codec,
                           "expected_queue": p.kind.queue, "expected_intent": p.kind.intent,
                           "recognition_margin": p.margin, "recognition_margin_yes": p.margin_yes,
                           "ivr_part_s": p.timeline.seconds} for name, p in plans.items()},
        "method": {"ramp_s": RAMP_S, "hold_s": HOLD_S, "endpoint_silence_s": endpoint_s,
                   "trunk_address": address, "load_average_before": load,
                   "latency": "decided_at - (pcap start + end of the caller's last voiced frame + endpoint silence)"},
        "machine": {"cpus": __import__("os").cpu_count()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "loadtest.json").write_text(json.dumps(data, indent=2, ensure_ascii=False))
    (work / "calls.json").write_text(json.dumps(details, indent=1, ensure_ascii=False))
    chart(rows, OUT / "loadtest.png")
    verdict = "meets" if best >= TARGET else "misses"
    print(f"\nmax_concurrent_zero_fail = {best} ({verdict} the target of {TARGET});"
          f" CPU per call in the IVR ≈ {data['cpu_core_pct_per_call']} % of a core")
    print(f"-> bench/out/loadtest.json, bench/out/loadtest.png (per-call detail: {work / 'calls.json'})")
    return data


def _steps(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("steps: comma-separated call counts, e.g. 10,20,40") from None
    if not values or any(v < len(KINDS) for v in values):
        raise argparse.ArgumentTypeError(f"steps: each at least {len(KINDS)} (one call of each kind)")
    return values


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=_steps, default=STEPS, help="concurrent calls per step (default 10,...,100)")
    main(parser.parse_args().steps)
