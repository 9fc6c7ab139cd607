"""``ivr report`` on a month of archived calls: 100,000 synthetic turns (target: each report under 2 s).

A synthetic archive (a temporary SQLite file, seeded): ~40,000 calls over 30 days, with the mix a hotline sees
(most act on the first answer; some confirm, miss then press a key, miss twice and go to a person, ask for a
person or hang up; a few hundred different mishearings), queued, answered or abandoned with waits and talk times.
Then the command itself, as an operator runs it (a fresh process: Python start-up included): ``ivr report
navigation --since 30d --json`` by node and by version, and ``ivr report kpi --since 30d --json``.

Writes bench/out/trainer_report.json: ``report_turns`` (turns in the archive), ``report_s`` (the slowest of the
reports, wall time), each report's time, and the in-process compute time without start-up. Runs alone:
``python -m bench.trainer_report``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report
from ivr.records.archive import Archive
from ivr.records.call import CallRecord, Outcome, Turn
from ivr.voice.training.labels import archive_rows
from ivr.voice.training.service import TrainerService

SEED = 20261202
TURNS = 100_000
DAYS = 30
TARGET_S = 2.0
INTENTS = {"balance": "1", "lost_card": "2", "loan": "3", "transfer": "4", "password": "5", "complaint": "6"}
SAID = {"balance": "잔액 조회", "lost_card": "카드 분실", "loan": "대출 상담", "transfer": "이체",
        "password": "비밀번호", "complaint": "민원"}
SYLLABLES = "가나다라마바사아자차카타파하잔액대출분실이체민원조회상담카드"
NODES = ("main_menu", "after_balance")


def _misheard(rng: random.Random) -> str:
    return " ".join("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 2)))


def synthetic_call(rng: random.Random, index: int, start: float) -> CallRecord:
    """One call as the navigator and the ACD would leave it."""
    at = start + rng.random() * DAYS * 86400
    intent = rng.choice(list(INTENTS))
    node = rng.choice(NODES)
    call = CallRecord(call_id=f"bench.{index}", caller=f"010{rng.randint(0, 20_000):08d}", started_at=at,
                      flow_version=rng.choice((3, 4)), heard_at_hz=rng.choice((8000, 16000)),
                      dialect=rng.choice((None, None, "gyeongsang", "jeolla")))
    t = at + 5

    def turn(**fields: object) -> Turn:
        nonlocal t
        t += 4
        return Turn(node=node, language="ko", started_at=t, decided_at=t + 2, **fields)  # type: ignore[arg-type]

    def heard(text: str, **fields: object) -> Turn:
        return turn(transcript=text, alternatives=[{"text": text, "confidence": 0.6}],
                    audio=f"turns/x/{call.call_id}-{len(call.turns) + 1}.wav", **fields)

    roll = rng.random()
    if roll < 0.55:
        call.turns = [heard(SAID[intent], intent=intent, score=0.9)]
    elif roll < 0.65:
        call.turns = [heard(SAID[intent], intent=intent, score=0.6), heard("네", intent=intent, kind="confirm")]
    elif roll < 0.82:
        call.turns = [heard(_misheard(rng)), turn(dtmf=INTENTS[intent], intent=intent, score=1.0)]
    elif roll < 0.90:
        call.turns = [heard(_misheard(rng)), heard(_misheard(rng))]
        intent = "agent"
    elif roll < 0.95:
        call.turns = [turn(dtmf="0", intent="agent", score=1.0)]
        intent = "agent"
    else:
        call.turns = [heard("")]
        call.outcome, call.ended_at = Outcome.ABANDONED, t + 3
        return call
    call.intent = intent
    if intent == "balance" and rng.random() < 0.8:
        call.self_served, call.outcome, call.ended_at = True, Outcome.SELF_SERVICE, t + 20
        return call
    call.queue = {"loan": "loans", "complaint": "complaints"}.get(intent, "general")
    call.queued_at = t + 3
    if rng.random() < 0.9:
        call.answered_at = call.queued_at + rng.expovariate(1 / 25)
        call.agent, call.outcome = f"A{rng.randint(1000, 1100)}", Outcome.ANSWERED
        call.ended_at = call.answered_at + rng.expovariate(1 / 240)
    else:
        call.outcome, call.ended_at = Outcome.ABANDONED, call.queued_at + rng.expovariate(1 / 60)
    return call


def build(path: Path, turns: int = TURNS, seed: int = SEED) -> int:
    """A synthetic archive of at least ``turns`` turns at ``path``; returns how many turns it holds."""
    rng = random.Random(seed)
    archive = Archive(path)
    start = time.time() - DAYS * 86400 + 3600
    count = index = 0
    batch: list[tuple[object, object]] = []
    while count < turns:
        call = synthetic_call(rng, index, start)
        index += 1
        count += len(call.turns)
        batch.append(archive_rows(call, "hotline", ivr_ended_at=call.queued_at or call.started_at + 30))
        if len(batch) >= 5000:
            archive.record_calls(batch)  # type: ignore[arg-type]
            batch = []
    if batch:
        archive.record_calls(batch)  # type: ignore[arg-type]
    return count


def _cli(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ivr", *args], env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ivr {' '.join(args)} failed: {done.stderr[-500:]}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "archive.sqlite3"
        started = time.perf_counter()
        turns = build(path)
        built_s = time.perf_counter() - started
        env = {**os.environ, "IVR_ARCHIVE_PATH": str(path)}
        service = TrainerService(Archive(path), Path(tmp))
        since = time.time() - DAYS * 86400 - 60
        t0 = time.perf_counter()
        service.navigation(since, by="node")
        service.kpis(since)
        compute_s = time.perf_counter() - t0
        times = {
            "navigation_node_s": _cli(["report", "navigation", "--since", "31d", "--json"], env),
            "navigation_version_s": _cli(["report", "navigation", "--since", "31d", "--by", "version", "--json"], env),
            "kpi_s": _cli(["report", "kpi", "--since", "31d", "--json"], env),
        }
    slowest = max(times.values())
    rows = [("turns in the archive", turns), ("archive built (s)", built_s),
            ("navigation + kpi compute, in process (s)", compute_s),
            *((f"ivr report {name.removesuffix('_s').replace('_', ' by ')} (s)", value)
              for name, value in times.items()),
            ("slowest report (s)", slowest), ("target (s)", TARGET_S), ("met", slowest < TARGET_S)]
    report("trainer_report", rows, {"report_turns": turns, "report_s": round(slowest, 3),
                                    "report_compute_s": round(compute_s, 3), "archive_build_s": round(built_s, 2),
                                    **{k: round(v, 3) for k, v in times.items()}, "target_s": TARGET_S,
                                    "met": slowest < TARGET_S})


if __name__ == "__main__":
    main()
