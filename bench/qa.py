"""QA transcription throughput (issue 15): how much agent talk the quality checks transcribe per wall second on
this machine, and the backlog they keep up with.

Synthetic agent talk (espeak-ng Korean sentences in three voices, 8 kHz as MixMonitor records, with the pauses of
a conversation: the agent listens about a third of the time, silence on the agent's channel), transcribed by the
quality worker's own code (``ivr.recordings.quality.transcribe``: Vosk free dictation, one model shared by the
worker threads) with 1 and with 2 worker threads, the way ``IVR_QA_WORKERS`` runs them. The model is loaded before
the clock starts (the worker loads it once per process). Measured at normal priority on an otherwise idle machine:
the live worker runs at nice 19, so under call load it gets only what the calls leave.

Keeping up: calls per hour = 3600 x (audio seconds per wall second) / (average agent talk per call).

Writes bench/out/qa.json: audio_s, wall_s, realtime_factor (audio s per wall s), cpu_s_per_audio_s, workers, per
worker count, and calls_per_hour_at_avg_s {avg talk s: calls/h}; a chart bench/out/qa.svg.
`python -m bench.qa --seconds 20` is a quick look.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import numpy as np

from bench.common import OUT, bar_chart, report, spoken

RATE = 8000
SENTENCES = ("안녕하십니까 고객님 상담원 김민수입니다", "본인 확인을 위해 생년월일을 말씀해 주시겠습니까",
             "이 상품은 원금 손실이 발생할 수 있는 투자 상품입니다", "예금자 보호법에 따라 보호되지 않습니다",
             "중도 상환 수수료는 일 퍼센트입니다", "다른 문의 사항은 없으십니까 감사합니다")
VOICES = ("ko", "ko+f2", "ko+m3")
AVERAGE_TALK_S = (120, 240, 480)
"""Average agent talk per call (seconds) the backlog is given at; 240 (4 min) is the headline."""


def agent_talk(seconds: float) -> bytes:
    """About ``seconds`` of an agent's channel: sentences, pauses, and the listening third in silence."""
    rng = np.random.default_rng(15)
    pieces: list[bytes] = []
    total = 0
    index = 0
    rendered: dict[tuple[str, str], bytes] = {}
    while total < seconds * RATE * 2:
        key = (SENTENCES[index % len(SENTENCES)], VOICES[index % len(VOICES)])
        if key not in rendered:
            rendered[key] = spoken(key[0], RATE, key[1], 140)
        speech = rendered[key]
        pause = bytes(int(RATE * rng.uniform(0.3, 1.2)) * 2)
        listening = bytes(int(len(speech) * 0.5) // 2 * 2) if index % 2 else b""
        pieces += [speech, pause, listening]
        total += len(speech) + len(pause) + len(listening)
        index += 1
    return b"".join(pieces)[: int(seconds * RATE) * 2]


def measure(transcriber: Any, talk: bytes, workers: int, per_worker: int) -> dict[str, Any]:
    """``workers`` threads each transcribing ``per_worker`` calls of ``talk``, as the worker's threads do."""
    from ivr.recordings.quality.transcribe import AgentAudio, transcribe_agent

    audio = AgentAudio(talk, RATE, ((0.0, len(talk) / 2 / RATE),), "agent channel")
    cpu_before = transcriber.cpu_s
    words: list[int] = []

    def work() -> None:
        for _ in range(per_worker):
            words.append(len(transcribe_agent(audio, transcriber)))

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    audio_s = audio.audio_s * workers * per_worker
    rtf = audio_s / wall
    return {"workers": workers, "calls": workers * per_worker, "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
            "realtime_factor": round(rtf, 2), "cpu_s_per_audio_s": round((transcriber.cpu_s - cpu_before) / audio_s, 3),
            "words": sum(words),
            "calls_per_hour_at_avg_s": {str(avg): round(3600 * rtf / avg, 1) for avg in AVERAGE_TALK_S}}


def main(seconds: float = 45.0) -> dict[str, Any]:
    from ivr.recordings.quality.transcribe import VoskTranscriber

    talk = agent_talk(seconds)
    transcriber = VoskTranscriber("ko")
    one = measure(transcriber, talk, 1, 1)
    two = measure(transcriber, talk, 2, 1)
    best = max((one, two), key=lambda r: r["realtime_factor"])
    headline = str(AVERAGE_TALK_S[1])
    data = {"audio_s": best["audio_s"], "wall_s": best["wall_s"], "realtime_factor": best["realtime_factor"],
            "cpu_s_per_audio_s": best["cpu_s_per_audio_s"], "workers": best["workers"],
            "calls_per_hour_at_avg_s": best["calls_per_hour_at_avg_s"], "by_workers": [one, two],
            "average_talk_s": AVERAGE_TALK_S, "talk_per_call_s": round(len(talk) / 2 / RATE, 1)}
    rows: list[tuple[str, Any]] = []
    for result in (one, two):
        n = result["workers"]
        rows += [(f"{n} worker(s): audio s", result["audio_s"]), (f"{n} worker(s): wall s", result["wall_s"]),
                 (f"{n} worker(s): audio s per wall s", result["realtime_factor"]),
                 (f"{n} worker(s): CPU s per audio s", result["cpu_s_per_audio_s"])]
        rows += [(f"{n} worker(s): calls/h at {avg} s talk", result["calls_per_hour_at_avg_s"][str(avg)])
                 for avg in AVERAGE_TALK_S]
    report("qa", rows, data)
    bar_chart(OUT / "qa.svg", f"QA checks kept up with ({headline} s of agent talk a call)",
              [(f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}", r["calls_per_hour_at_avg_s"][headline])
               for r in (one, two)], "calls per hour")
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="agent talk per transcribed call")
    main(parser.parse_args().seconds)
