"""Acoustic replay throughput (issue 11): how fast a candidate flow is heard against recorded turns.

Synthetic recorded turns (espeak-ng: the demo menu's phrases in four voices at two paces, at 8 kHz as a phone
line carries them, each behind 0.2-1.2 s of silence as a caller's turn recording starts), written as WAV files
the way the navigator keeps them, replayed with the hotline (its menu grammar, the live recognizer's settings) by
``ivr.voice.training.replay`` on every core (a process pool: each worker loads the Vosk model once; the start-up
is part of the wall time). The target: at least 30 seconds of audio replayed per wall second on 2 cores.

Writes bench/out/replay.json: turns, audio_s, wall_s, turns_per_s, realtime_factor, workers, target_met.
`python -m bench.replay --turns 48` is a quick look.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.common import report, spoken
from ivr.audio import write_wav

ROOT = Path(__file__).resolve().parent.parent
PHRASES = ("잔액 조회", "카드 분실 신고", "대출 상담", "계좌 이체", "비밀번호 변경", "상담원 연결")
VOICES = ("ko", "ko+f2", "ko+m3", "ko+f4")
WPMS = (120, 150)
TARGET_REALTIME = 30.0
RATE = 8000


def recorded_turns(folder: Path, count: int) -> list[Any]:
    """``count`` turn recordings (WAV, 8 kHz) under ``folder``, as ReplayTurns of the main menu."""
    from ivr.voice.training.replay import ReplayTurn

    utterances = [(p, v, w) for p in PHRASES for v in VOICES for w in WPMS]
    rendered = {u: spoken(u[0], RATE, u[1], u[2]) for u in utterances[:count]}
    turns = []
    for index in range(count):
        phrase, voice, wpm = utterances[index % len(utterances)]
        lead = bytes(int(RATE * (0.2 + 0.25 * (index % 5))) * 2)
        path = folder / f"turn-{index}.wav"
        write_wav(path, lead + rendered[(phrase, voice, wpm)] + bytes(RATE), RATE)
        turns.append(ReplayTurn(key=f"bench#{index}", call_id=f"bench-{index}", audio=path, node="main_menu",
                                language="ko", truth=None, labeled=False, live_intent=None, live_action="reprompt"))
    return turns


def main(turns: int = 240, workers: int | None = None) -> dict[str, Any]:
    from ivr.voice.training.replay import replay

    text = (ROOT / "dialplans" / "hotline.yaml").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        batch = recorded_turns(Path(tmp), turns)
        result = replay(text, batch, workers=workers or os.cpu_count() or 1)
    factor = result.audio_s / result.wall_s if result.wall_s else 0.0
    data = {"turns": result.turns, "audio_s": result.audio_s, "wall_s": result.wall_s,
            "turns_per_s": round(result.turns / result.wall_s, 2) if result.wall_s else 0.0,
            "realtime_factor": round(factor, 1), "workers": result.workers, "target_realtime": TARGET_REALTIME,
            "target_met": factor >= TARGET_REALTIME, "unreadable": result.unreadable}
    report("replay", [("turns replayed", result.turns), ("audio (s)", result.audio_s), ("wall (s)", result.wall_s),
                      ("turns per second", data["turns_per_s"]), ("x real time", data["realtime_factor"]),
                      ("processes", result.workers), (f"target >= {TARGET_REALTIME:g}x met", data["target_met"])],
           data)
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=240)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    main(args.turns, args.workers)
