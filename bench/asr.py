"""ASR capacity and turn latency of the navigation engine (issue 3's benchmark).

The controller side runs in this process: the real AudioSocketServer and the real
Navigator.listen() with the main menu's grammar on the shared Korean model. The
Asterisk side is a separate process (so its pacing does not steal this loop): N
streams connect over TCP, send their UUID, then 20 ms frames at real-time pace: a
short silence, a synthetic utterance ("계좌 이체"), then silence until hung up.

Real time holds at N when every stream's final result arrives within 500 ms of the end
of its speech plus the node's endpointing silence. Reported beside raw Vosk measured in
the same run.

By sample rate (issue 10, HD voice): the same espeak-ng utterances rendered at 16 kHz, and
downsampled with soxr to the 8 kHz band, recognized with the demo menu's grammar at each rate:

- streams per core: CPU seconds per audio second of one recognizer fed 20 ms frames (the
  AudioSocket frame), inverted;
- N concurrent calls (40 by default) on the recognition threads the controller uses
  (``Speech(threads=2)``, or ASR_THREADS), each fed at real-time pace from the wall clock in
  the navigator's 100 ms batches, three turns a call: turn latency from the end of the caller's
  speech (the last voiced frame received) to the final result, and how far the audio fed lags
  behind the wall clock. Real time is kept when no call's lag and no turn's latency past the
  endpoint silence exceed 500 ms.

Writes bench/out/asr.json (``by_rate`` holds the per-rate figures) and bench/out/asr_by_rate.svg.
`python -m bench.asr --calls 8 --turns 1 --levels 10` is a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr import NARROWBAND_RATE, WIDEBAND_RATE, Result, TurnRecognizer
from bench.common import OUT, bar_chart, percentile, report, spoken, spoken_8k
from bench.common import rate_table as common_rate_table
from bench.spine import raw_vosk
from tts.pcm import SAMPLE_WIDTH, resample_pcm

ENDPOINT_S = 0.5
REALTIME_BUDGET_S = 0.5
LEVELS = (10, 20, 40, 60, 80, 100, 120)

RATES = (NARROWBAND_RATE, WIDEBAND_RATE)
FRAME_S = 0.02
"""One AudioSocket frame: what the line delivers every 20 ms, at either rate."""
FEED_S = 0.1
"""Audio per recognizer feed in the load test: the navigator batches frames into 100 ms per thread hop
(FEED_BYTES of ivr.voice.navigator at 8 kHz)."""
LEAD_S = 0.5
"""Silence before each utterance."""
TAIL_S = ENDPOINT_S + 1.5
"""Silence after each utterance: the turn ends at the endpoint well before it runs out."""
UTTERANCES = ("계좌 이체", "상담원 연결")
"""What the synthetic callers say, rotated over calls and turns: the main-menu phrases espeak-ng's "ko" voice at
140 wpm is recognized in at 8 kHz (tests/unit/speech/test_asr.py RELIABLE; others come back as other phrases)."""
WIDEBAND_CALLS = 40
"""Concurrent HD voice calls that must keep real time on 2 cores (issue 10, item 6)."""
TARGET_CORES = 2
TURNS_PER_CALL = 3
RATE_AUDIO_S = 30.0
"""Seconds of audio per rate for the streams-per-core figure."""


def asr_threads() -> int:
    """The recognition threads of the controller's Speech (its default 2), or ASR_THREADS."""
    return int(os.environ.get("ASR_THREADS", 2))


def menu_phrases() -> list[str]:
    """The Korean phrases of the demo flow's main menu: the grammar callers are recognized with first."""
    from ivr.voice.flow import AskNode, load_flow

    flow = load_flow(Path(__file__).resolve().parents[1] / "dialplans" / "hotline.yaml")
    node = flow.nodes["main_menu"]
    assert isinstance(node, AskNode)
    return flow.grammar_phrases(node, "ko")


def utterance_pcm() -> bytes:
    return spoken_8k("계좌 이체")


# --- the Asterisk side (child process) ----------------------------------------------------


async def _asterisk(port: int, ids: list[str], pcm_path: str) -> None:
    """N AudioSocket calls as Asterisk makes them: connect (staggered over a second), UUID, then
    one 20 ms frame per call per tick from a single clock (Asterisk is not N Python timers)."""
    import uuid

    from ivr.telephony.audiosocket import Frame, Kind

    speech = Path(pcm_path).read_bytes()
    audio = bytes(8000) + speech + bytes(16000 * 4)  # 0.5 s silence, speech, up to 4 s silence
    frames = [Frame(Kind.AUDIO, audio[i : i + 320]).encode() for i in range(0, len(audio) - 319, 320)]
    loop = asyncio.get_running_loop()
    streams: list[tuple[asyncio.StreamWriter, list[int]]] = []

    async def connect(k: int, session_id: str) -> None:
        await asyncio.sleep(k / len(ids))
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(Frame(Kind.UUID, uuid.UUID(session_id).bytes).encode())
        streams.append((writer, [0]))

    connecting = asyncio.gather(*(connect(k, i) for k, i in enumerate(ids)))
    deadline = loop.time()
    while not connecting.done() or any(pos[0] < len(frames) for _, pos in streams):
        deadline += 0.02
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        for writer, pos in streams:
            if pos[0] < len(frames) and not writer.transport.is_closing():
                writer.write(frames[pos[0]])
                pos[0] += 1
            elif pos[0] < len(frames):
                pos[0] = len(frames)  # the controller decided and closed this call
    await connecting
    for writer, _ in streams:
        writer.close()


# --- the controller side ------------------------------------------------------------------


async def run_level(n: int, pcm_path: str) -> dict[str, Any]:
    from asr import default_registry
    from ivr.records.call import CallRecord
    from ivr.telephony.audiosocket import AudioSocketServer
    from ivr.voice.flow import AskNode, load_flow
    from ivr.voice.navigator import Navigator, Speech
    from tts import PromptRenderer

    flow = load_flow(Path(__file__).resolve().parents[1] / "dialplans" / "hotline.yaml")
    node = flow.nodes["main_menu"]
    assert isinstance(node, AskNode)
    listen = node.listen.model_copy(update={"endpoint_silence_s": ENDPOINT_S, "no_input_s": 3.0})
    with tempfile.TemporaryDirectory() as tmp:
        speech = Speech(default_registry(), PromptRenderer(Path(tmp)), threads=asr_threads())
        nav = Navigator(flow, speech, Path(tmp))
        phrases = flow.grammar_phrases(node, "ko")
        server = AudioSocketServer("127.0.0.1", 0)
        await server.start()
        expected = [server.expect(f"bench-{k}") for k in range(n)]
        rss_before = _rss_mb()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "import asyncio,sys; from bench.asr import _asterisk; "
            f"asyncio.run(_asterisk({server.port}, sys.argv[1:], {pcm_path!r}))",
            *[str(sid) for sid, _ in expected],
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        peak_rss = rss_before

        async def one(future: asyncio.Future[Any], k: int) -> tuple[float, float, str]:
            nonlocal peak_rss
            session = await asyncio.wait_for(future, 10)
            call = CallRecord(call_id=f"bench-{k}", caller="", language="ko")
            heard = await nav.listen(session, listen, "", call, "main_menu", phrases)
            decided = time.time()
            peak_rss = max(peak_rss, _rss_mb())
            await session.close()
            text = heard.result.phrase or heard.result.text if heard.result else ""
            end = heard.speech_ended_at or decided
            return decided - end, decided - end - ENDPOINT_S, text

        started = time.process_time()
        results = await asyncio.gather(*(one(f, k) for k, (_, f) in enumerate(expected)))
        cpu = time.process_time() - started
        await child.wait()
        await server.stop()
        speech.executor.shutdown()
    latency = [r[0] for r in results]
    beyond = [r[1] for r in results]
    correct = sum(1 for r in results if "계좌 이체" in r[2]) / n
    if os.environ.get("BENCH_DEBUG"):
        print(sorted({r[2] for r in results}))
    return {
        "streams": n,
        "realtime": max(beyond) <= REALTIME_BUDGET_S,
        "turn_latency_p50_ms": round(1000 * percentile(latency, 50), 1),
        "turn_latency_p95_ms": round(1000 * percentile(latency, 95), 1),
        "beyond_endpoint_p95_ms": round(1000 * percentile(beyond, 95), 1),
        "beyond_endpoint_max_ms": round(1000 * max(beyond), 1),
        "correct_share": round(correct, 3),
        "controller_cpu_s": round(cpu, 2),
        "mb_per_call": round(max(0.0, peak_rss - rss_before) / n, 2),
    }


def _rss_mb() -> float:
    # Current RSS from /proc (ru_maxrss is a lifetime peak and would hide per-level growth).
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- by sample rate: narrowband (8 kHz) next to HD voice (16 kHz) -------------------------------


Utterance = tuple[str, bytes]
"""What a synthetic caller says, and its 16-bit mono PCM at one rate."""


def utterances_by_rate(texts: tuple[str, ...] = UTTERANCES) -> dict[int, list[Utterance]]:
    """The same espeak-ng utterances at 16 kHz, and downsampled (soxr) to the 8 kHz telephone band."""
    wide = [(text, spoken(text, WIDEBAND_RATE)) for text in texts]
    narrow = [(text, resample_pcm(pcm, WIDEBAND_RATE, NARROWBAND_RATE)) for text, pcm in wide]
    return {WIDEBAND_RATE: wide, NARROWBAND_RATE: narrow}


def frames(pcm: bytes, rate: int, frame_s: float = FRAME_S) -> list[bytes]:
    """`pcm` (16-bit mono at `rate`) cut into frames of `frame_s`, the last one padded with silence."""
    size = SAMPLE_WIDTH * round(rate * frame_s)
    padded = pcm + bytes(-len(pcm) % size)
    return [padded[i : i + size] for i in range(0, len(padded), size)]


def turn_audio(speech: bytes, rate: int) -> bytes:
    """One caller turn at `rate`: LEAD_S of silence, the utterance, TAIL_S of silence."""
    return bytes(SAMPLE_WIDTH * round(rate * LEAD_S)) + speech + bytes(SAMPLE_WIDTH * round(rate * TAIL_S))


def heard_right(result: Result, expected: str) -> bool:
    return expected in (result.phrase or result.text)


def cpu_per_audio(model: Any, grammar: Any, utterances: list[Utterance], rate: int,
                  seconds: float = RATE_AUDIO_S) -> tuple[float, float, float]:
    """(CPU seconds, audio seconds, share heard right) of recognizers at `rate` fed 20 ms frames in turn until
    `seconds` of audio went in, each turn from its first frame to Vosk's final result."""
    cpu = audio = 0.0
    right = turns = 0
    while audio < seconds:
        text, pcm = utterances[turns % len(utterances)]
        recognizer = TurnRecognizer(model, grammar, sample_rate=rate)
        for frame in frames(turn_audio(pcm, rate), rate):
            if recognizer.ended:
                break
            recognizer.feed(frame)
        right += heard_right(recognizer.finish(), text)
        turns += 1
        cpu += recognizer.cpu_seconds
        audio += recognizer.audio_seconds
    return cpu, audio, right / turns


@dataclass
class TurnTiming:
    """One turn of a paced call, in event-loop time."""

    speech_end: float | None
    """When the last voiced frame had arrived (None: the recognizer finished before any voice)."""
    final_at: float
    """When the final result was back from the recognition thread."""
    right: bool


@dataclass
class CallLog:
    """What one paced call saw."""

    lags: list[float] = field(default_factory=list)
    """After each feed: wall time minus the time the newest audio fed had arrived at real-time pace (a stall shows
    as lags falling back afterwards; too little CPU as lags that stay or grow to the call's last feed)."""
    turns: list[TurnTiming] = field(default_factory=list)
    cpu_s: float = 0.0
    audio_s: float = 0.0


def load_summary(logs: list[CallLog], turns_per_call: int, endpoint_s: float = ENDPOINT_S,
                 budget_s: float = REALTIME_BUDGET_S) -> dict[str, Any]:
    """Latency past the end of speech, lag behind the wall clock, and whether real time was kept.

    Real time is kept when every call finished all its turns with a final result after voice, no call's
    fed audio ever lagged the wall clock by more than `budget_s`, and no turn's result came more than
    `budget_s` after the endpoint (`endpoint_s` of silence after the speech).
    """
    latencies = [t.final_at - t.speech_end for log in logs for t in log.turns if t.speech_end is not None]
    beyond = [latency - endpoint_s for latency in latencies]
    lags = [lag for log in logs for lag in log.lags]
    behind = sum(1 for log in logs if log.lags and max(log.lags) > budget_s)
    complete = len(latencies) == len(logs) * turns_per_call
    ms = lambda xs, q: round(1000 * percentile(xs, q), 1) if xs else None  # noqa: E731
    cpu, audio = sum(log.cpu_s for log in logs), sum(log.audio_s for log in logs)
    return {
        "concurrent_tested": len(logs),
        "turns": len(latencies),
        "latency_p50_ms": ms(latencies, 50),
        "latency_p95_ms": ms(latencies, 95),
        "beyond_endpoint_p95_ms": ms(beyond, 95),
        "beyond_endpoint_max_ms": ms(beyond, 100),
        "lag_p95_ms": ms(lags, 95),
        "max_lag_ms": ms(lags, 100),
        "end_lag_max_ms": ms([log.lags[-1] for log in logs if log.lags], 100),
        "calls_behind": behind,
        "kept_real_time": bool(logs) and complete and behind == 0 and max(beyond, default=0.0) <= budget_s,
        "correct_share": round(sum(t.right for log in logs for t in log.turns) / max(1, len(logs) * turns_per_call), 3),
        "rtf_under_load": round(cpu / audio, 4) if audio else None,
    }


async def _paced_call(k: int, n: int, rate: int, model: Any, grammar: Any, utterances: list[Utterance], turns: int,
                      executor: ThreadPoolExecutor, t0: float, log: CallLog) -> None:
    """One call, as the navigator hears it: a 20 ms frame arriving every 20 ms of wall time, voice or silence
    told per frame, 100 ms batches fed on the recognition threads, the turn over after ENDPOINT_S of silence
    (or at Vosk's own endpoint), then a new recognizer for the next turn on the same timeline."""
    from ivr.voice.navigator import voiced  # imported by paced_load before the clock starts

    loop = asyncio.get_running_loop()
    start = t0 + k / n  # calls come in over the first second
    feed_bytes = SAMPLE_WIDTH * round(rate * FEED_S)
    received = 0  # frames of this call received so far

    async def feed(recognizer: TurnRecognizer, chunk: bytes, due: float) -> Result | None:
        out = await loop.run_in_executor(executor, recognizer.feed, chunk)
        log.lags.append(loop.time() - due)
        return out if isinstance(out, Result) else None

    for j in range(turns):
        text, pcm = utterances[(k + j) % len(utterances)]
        recognizer = TurnRecognizer(model, grammar, sample_rate=rate)  # on the loop, as Speech.recognizer
        pending = bytearray()
        heard = 0.0
        last_voice: float | None = None
        speech_end: float | None = None
        result: Result | None = None
        for frame in frames(turn_audio(pcm, rate), rate):
            received += 1
            due = start + received * FRAME_S  # the frame has fully arrived
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            heard += FRAME_S
            if voiced(frame):
                last_voice, speech_end = heard, due
            pending += frame
            if len(pending) >= feed_bytes:
                chunk, pending = bytes(pending), bytearray()
                if (result := await feed(recognizer, chunk, due)) is not None:
                    break
            if last_voice is not None and heard - last_voice >= ENDPOINT_S - 1e-9:
                if pending:
                    result = await feed(recognizer, bytes(pending), due)
                break
        if result is None:
            result = await loop.run_in_executor(executor, recognizer.finish)
        log.turns.append(TurnTiming(speech_end, loop.time(), heard_right(result, text)))
        log.cpu_s += recognizer.cpu_seconds
        log.audio_s += recognizer.audio_seconds


async def paced_load(model: Any, grammar: Any, utterances: list[Utterance], rate: int, calls: int, turns: int,
                     threads: int) -> list[CallLog]:
    """`calls` concurrent paced calls at `rate` on `threads` recognition threads."""
    import ivr.voice.navigator  # noqa: F401  (the calls' first import must not stall the clock)

    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="asr")
    try:
        logs = [CallLog() for _ in range(calls)]
        t0 = asyncio.get_running_loop().time() + 0.1
        await asyncio.gather(*(_paced_call(k, calls, rate, model, grammar, utterances, turns, executor, t0, logs[k])
                               for k in range(calls)))
        return logs
    finally:
        executor.shutdown()


def cpu_busy_seconds(stat: str, ticks_per_s: float) -> float:
    """CPU seconds all cores were busy or taken since boot, from /proc/stat's text: idle and iowait are free;
    steal (the hypervisor ran someone else) counts, as it is CPU this machine did not get; guest is inside user."""
    fields = [float(x) for x in stat.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0.0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / ticks_per_s


def _machine_busy_s() -> float | None:
    try:
        return cpu_busy_seconds(Path("/proc/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None  # not Linux: the figure is left out


def measure_by_rate(calls: int = WIDEBAND_CALLS, turns: int = TURNS_PER_CALL,
                    audio_s: float = RATE_AUDIO_S) -> dict[str, dict[str, Any]]:
    """Streams per core, and latency and real time under `calls` concurrent calls, at 8 and 16 kHz."""
    from asr import build_grammar, default_registry

    model = default_registry().get("ko")
    grammar = build_grammar(menu_phrases(), model)
    utterances = utterances_by_rate()
    threads = asr_threads()
    by_rate: dict[str, dict[str, Any]] = {}
    for rate in RATES:
        cpu, audio, right = cpu_per_audio(model, grammar, utterances[rate], rate, audio_s)
        started_cpu, started, machine = time.process_time(), time.monotonic(), _machine_busy_s()
        logs = asyncio.run(paced_load(model, grammar, utterances[rate], rate, calls, turns, threads))
        ours, wall, machine_after = time.process_time() - started_cpu, time.monotonic() - started, _machine_busy_s()
        other = (machine_after - machine - ours) / wall if machine is not None and machine_after is not None else None
        by_rate[str(rate)] = {
            "streams_per_core": round(audio / cpu, 1),
            "rtf": round(cpu / audio, 4),
            "feed_ms": round(FRAME_S * 1000),
            "load_feed_ms": round(FEED_S * 1000),
            "correct_share_single": round(right, 3),
            "threads": threads,
            **load_summary(logs, turns),
            "cores_busy": round(ours / wall, 2),
            "other_load_cores": round(max(0.0, other), 2) if other is not None else None,
            "cores": os.cpu_count(),
        }
        row = by_rate[str(rate)]
        print(f"  {rate:5d} Hz: {row['streams_per_core']} streams/core, {calls} calls: "
              f"kept_real_time={row['kept_real_time']} p95={row['latency_p95_ms']} ms "
              f"max lag={row['max_lag_ms']} ms", flush=True)
    return by_rate


RATE_ROWS = (
    ("streams per core (20 ms frames)", "streams_per_core"),
    ("CPU-s per audio-s", "rtf"),
    ("concurrent calls tested", "concurrent_tested"),
    ("recognition threads", "threads"),
    ("end of speech -> result p50 ms", "latency_p50_ms"),
    ("end of speech -> result p95 ms", "latency_p95_ms"),
    ("past the endpoint p95 ms", "beyond_endpoint_p95_ms"),
    ("fed audio lag p95 ms", "lag_p95_ms"),
    ("fed audio lag max ms", "max_lag_ms"),
    ("lag at the calls' last feed, max ms", "end_lag_max_ms"),
    ("calls fallen behind", "calls_behind"),
    ("kept real time", "kept_real_time"),
    ("heard right (under load)", "correct_share"),
    ("CPU-s per audio-s under load", "rtf_under_load"),
    ("CPU cores busy (whole process)", "cores_busy"),
    ("cores busy with other work", "other_load_cores"),
)


def rate_table(by_rate: dict[str, dict[str, Any]]) -> str:
    """The per-rate figures side by side, one row per figure (missing ones as "-")."""
    return common_rate_table(by_rate, RATE_ROWS)


def write_chart(by_rate: dict[str, dict[str, Any]]) -> Path:
    """bench/out/asr_by_rate.svg: streams per core by rate, against what 40 wideband calls on 2 cores need."""
    bars = [(f"{int(rate) // 1000} kHz", float(row["streams_per_core"])) for rate, row in by_rate.items()]
    need = WIDEBAND_CALLS / TARGET_CORES
    return bar_chart(OUT / "asr_by_rate.svg", "Vosk streams per core by caller sample rate", bars,
                     "real-time streams per core", line=(need, f"{WIDEBAND_CALLS} calls on {TARGET_CORES} cores"))


def main(levels: tuple[int, ...] = LEVELS, calls: int = WIDEBAND_CALLS, turns: int = TURNS_PER_CALL) -> dict[str, Any]:
    raw = raw_vosk(30.0)
    print("asr: by sample rate", flush=True)
    by_rate = measure_by_rate(calls, turns)
    with tempfile.NamedTemporaryFile(suffix=".sln", delete=False) as tmp:
        tmp.write(utterance_pcm())
        pcm_path = tmp.name
    rows: list[dict[str, Any]] = []
    try:
        for n in levels:
            row = asyncio.run(run_level(n, pcm_path))
            rows.append(row)
            print(f"  {n:4d} streams: realtime={row['realtime']} p95={row['turn_latency_p95_ms']} ms "
                  f"beyond-endpoint max={row['beyond_endpoint_max_ms']} ms correct={row['correct_share']}",
                  flush=True)
            if not row["realtime"]:
                break
    finally:
        os.unlink(pcm_path)
    passing = [r for r in rows if r["realtime"]]
    best = passing[-1] if passing else rows[0]
    data = {
        "raw_vosk_cpu_s_per_audio_s": round(raw["raw_vosk_cpu_s_per_audio_s"], 4),
        "raw_vosk_streams_per_core": round(raw["raw_vosk_streams_per_core"], 1),
        "realtime_streams": best["streams"] if passing else 0,
        "turn_latency_p50_ms": best["turn_latency_p50_ms"],
        "turn_latency_p95_ms": best["turn_latency_p95_ms"],
        "beyond_endpoint_p95_ms": best["beyond_endpoint_p95_ms"],
        "endpoint_silence_ms": int(ENDPOINT_S * 1000),
        "mb_per_call": best["mb_per_call"],
        "levels": rows,
        "by_rate": by_rate,
    }
    print("\nasr by sample rate")
    print(rate_table(by_rate))
    report("asr", [(k, v) for k, v in data.items() if k not in ("levels", "by_rate")], data)
    print(f"-> {write_chart(by_rate).relative_to(OUT.parent.parent)}")
    return data


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(int(part) for part in text.split(",") if part.strip())
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("levels: comma-separated positive call counts, e.g. 10,20,40")
    return levels


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive whole number")
    return int(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.asr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=_positive, default=WIDEBAND_CALLS,
                        help="concurrent calls of the by-rate load test (default %(default)s)")
    parser.add_argument("--turns", type=_positive, default=TURNS_PER_CALL, help="turns per call (default %(default)s)")
    parser.add_argument("--levels", type=_levels, default=LEVELS,
                        help="call counts of the AudioSocket test, stopping at the first to miss real time")
    args = parser.parse_args()
    main(args.levels, args.calls, args.turns)
