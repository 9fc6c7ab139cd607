"""ASR capacity and turn latency of the navigation engine (issue 3's benchmark).

The controller side runs in this process: the real AudioSocketServer and the real
Navigator.listen() with the main menu's grammar on the shared Korean model. The
Asterisk side is a separate process (so its pacing does not steal this loop): N
streams connect over TCP, send their UUID, then 20 ms frames at real-time pace: a
short silence, a synthetic utterance ("계좌 이체"), then silence until hung up.

Real time holds at N when every stream's final result arrives within 500 ms of the end
of its speech plus the node's endpointing silence. Reported beside raw Vosk measured in
the same run. Writes bench/out/asr.json.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile, report, spoken_8k
from bench.spine import raw_vosk

ENDPOINT_S = 0.5
REALTIME_BUDGET_S = 0.5
LEVELS = (10, 20, 40, 60, 80, 100, 120)


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
        speech = Speech(default_registry(), PromptRenderer(Path(tmp)), threads=int(os.environ.get("ASR_THREADS", 2)))
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


def main(levels: tuple[int, ...] = LEVELS) -> dict[str, Any]:
    raw = raw_vosk(30.0)
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
    }
    report("asr", [(k, v) for k, v in data.items() if k != "levels"], data)
    return data


if __name__ == "__main__":
    main()
