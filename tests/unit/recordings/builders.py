"""Calls and MixMonitor files for the recordings' unit tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ivr.records.call import CallRecord, Outcome, Turn


def stereo_raw(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """MixMonitor's D output: a 440 Hz tone on the left (the caller), 880 Hz on the right (what they hear)."""
    t = np.arange(int(seconds * rate)) / rate
    left, right = 8000 * np.sin(2 * np.pi * 440 * t), 8000 * np.sin(2 * np.pi * 880 * t)
    return np.stack([left, right], axis=1).astype("<i2").tobytes()


def answered_call(call_id: str = "c-1", at: float | None = None, **extra: Any) -> CallRecord:
    """A call: one IVR turn, 4 s waiting in "cards", answered by A1002, 10 s talking, a card span muted."""
    at = time.time() - 60 if at is None else at
    call = CallRecord(call_id=call_id, caller="01012345678", customer="C1001", queue="cards", agent="A1002",
                      intent="lost_card", outcome=Outcome.ANSWERED, started_at=at, queued_at=at + 6,
                      answered_at=at + 10, ended_at=at + 20, **extra)
    call.turns.append(Turn(node="main_menu", transcript="카드 분실", intent="lost_card", started_at=at + 0.5,
                           decided_at=at + 5))
    call.routing.append({"at": at + 8, "agent": "A1002", "rule": "best", "result": "answered"})
    return call


def call_dict(call: CallRecord, spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = call.to_dict()
    if spans is not None:  # part 1 adds secure_spans to the record; the index reads it from the dict
        data["secure_spans"] = spans
    return data


def write_raw(recordings: Path, call: CallRecord, seconds: float = 1.0) -> Path:
    day = time.strftime("%Y-%m-%d", time.localtime(call.started_at))
    path = recordings / "calls" / day / f"{call.call_id}.raw"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stereo_raw(seconds))
    return path
