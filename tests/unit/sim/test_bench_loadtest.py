"""bench/loadtest.py's pure parts: SIPp's files read, calls judged, steps summed up, the capacity picked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import loadtest
from bench.loadtest import CallerKind, CallerPlan, CallResult, CpuWindow, StepRow
from bench.sipp.media import Timeline

TRANSFER = CallerKind("transfer", "PCMU", "transfer", "payments", 0.4, said="계좌 이체", voice="ko+f1")
KEYS = CallerKind("cards-key", "PCMU", "lost_card", "cards", 0.2, keys="2")
SPOKEN_PLAN = CallerPlan(TRANSFER, Path("t.pcap"), Timeline(13.0, [("계좌 이체", 4.2, 5.2), ("네", 10.1, 10.5)], []))
KEYS_PLAN = CallerPlan(KEYS, Path("k.pcap"), Timeline(6.4, [], [("2", 4.2)]))
T0 = 1_000.0


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "call_id": "1.1", "caller": "0123", "queue": "payments", "intent": "transfer", "outcome": "abandoned",
        "heard_at_hz": 8000, "notes": ["decision: flow node to_payments"], "started_at": T0 + 0.01,
        "turns": [{"node": "main_menu", "kind": "ask", "transcript": "계좌 이체", "dtmf": "",
                   "started_at": T0 + 0.02, "speech_ended_at": T0 + 5.19, "decided_at": T0 + 5.85}],
    }
    return {**base, **changes}


def test_spoken_call_latency_is_measured_from_the_callers_endpoint() -> None:
    verdict = loadtest.judge(CallResult("transfer", "0123", True, T0, record(), T0 + 5.9), SPOKEN_PLAN, 0.6)
    assert verdict.failed == []
    assert verdict.recognized is True
    assert verdict.speech_latency_s == [pytest.approx(5.85 - (5.2 + 0.6))]
    assert verdict.engine_latency_s == [pytest.approx(5.85 - 5.19 - 0.6)]
    assert verdict.lag_s == [pytest.approx(5.19 - 5.2)]
    assert verdict.ivr_interval == (pytest.approx(T0 + 0.01), pytest.approx(T0 + 5.9))


def test_a_confirmation_turn_is_timed_on_the_yes_not_the_phrase() -> None:
    turns = record()["turns"] + [{"node": "main_menu", "kind": "confirm", "transcript": "네", "dtmf": "",
                                  "started_at": T0 + 6.0, "speech_ended_at": T0 + 10.49, "decided_at": T0 + 11.3}]
    verdict = loadtest.judge(CallResult("transfer", "0123", True, T0, record(turns=turns)), SPOKEN_PLAN, 0.6)
    assert verdict.speech_latency_s == [pytest.approx(0.05), pytest.approx(11.3 - 10.5 - 0.6)]


def test_a_misheard_call_is_not_a_failed_one() -> None:
    verdict = loadtest.judge(CallResult("transfer", "0123", True, T0, record(queue="general", intent="agent")),
                             SPOKEN_PLAN, 0.6)
    assert verdict.failed == [] and verdict.recognized is False


@pytest.mark.parametrize(("result", "why"), [
    (CallResult("transfer", "0123", False, T0, record()), "SIPp: the call failed"),
    (CallResult("transfer", "0123", True, T0, None), "no record"),
    (CallResult("transfer", "0123", True, T0, record(queue=None, outcome="abandoned")), "not routed"),
    (CallResult("transfer", "0123", True, T0, record(outcome="error")), "outcome error"),
    (CallResult("transfer", "0123", True, T0, record(heard_at_hz=None)), "never heard the caller's audio"),
    (CallResult("transfer", "0123", True, T0, record(notes=["AudioSocket did not connect: to a person"])),
     "note: AudioSocket did not connect"),
])
def test_failed_calls_say_why(result: CallResult, why: str) -> None:
    assert any(why in reason for reason in loadtest.judge(result, SPOKEN_PLAN, 0.6).failed)


def test_key_latency_runs_from_the_key() -> None:
    keyed = record(queue="cards", intent="lost_card", turns=[
        {"node": "main_menu", "kind": "ask", "transcript": "", "dtmf": "2", "started_at": T0,
         "speech_ended_at": None, "decided_at": T0 + 4.31}])
    verdict = loadtest.judge(CallResult("cards-key", "0123", True, T0, keyed), KEYS_PLAN, 0.6)
    assert verdict.key_latency_s == [pytest.approx(0.11)]
    assert verdict.speech_latency_s == [] and verdict.recognized is None


def test_peak_overlap() -> None:
    assert loadtest.peak_overlap([]) == 0
    assert loadtest.peak_overlap([(0, 2), (1, 3), (2, 4)]) == 2  # one ending as another starts: not both
    assert loadtest.peak_overlap([(0, 10), (1, 2), (1.5, 3), (2.5, 4)]) == 3


def test_split_calls_shares_and_sums() -> None:
    kinds = [TRANSFER, CallerKind("agent", "PCMA", "agent", "general", 0.4, said="상담원 연결"), KEYS]
    for total in (3, 4, 10, 17, 60, 100):
        counts = loadtest.split_calls(total, kinds)
        assert sum(counts.values()) == total and min(counts.values()) >= 1
    assert loadtest.split_calls(10, kinds) == {"transfer": 4, "agent": 4, "cards-key": 2}
    with pytest.raises(ValueError, match="at least 3 calls"):
        loadtest.split_calls(2, kinds)


SIPP_LOG = ("pcap 1 1-25810@127.0.0.10 2026-12-02\t13:28:52.411180\t1796218132.411180\n"
            "pcap 12 12-25810@127.0.0.10 2026-12-02\t13:28:53.000001\t1796218133.000001\n"
            "something else\n")
SIPP_ERRORS = ("The following events occurred:\n2026-12-02\t13:29:19.413266\t1796218159.413266: Aborting call on"
               " unexpected message for Call-Id '7-26111@127.0.0.2': while expecting '200' (index 3)\n")


def test_sipp_files_are_read() -> None:
    assert loadtest.read_call_log(SIPP_LOG) == {1: 1796218132.41118, 12: 1796218133.000001}
    assert loadtest.read_failed_calls(SIPP_ERRORS) == {7}
    header = "StartTime;TotalCallCreated;SuccessfulCall(C);FailedCall(C);FailedUnexpectedMessage(C);Retransmissions(C);"
    stats = loadtest.read_stats(f"{header}\nx;1;1;0;0;0;\nx;9;7;2;1;5;\n")
    assert stats == {"successful": 7, "failed": 2, "unexpected": 1, "retransmissions": 5, "created": 9}
    assert loadtest.read_stats("") == {}


def test_cpu_window_rates_baseline_and_busiest_second() -> None:
    window = CpuWindow(calls_from=2.0, samples=[
        (0.0, {"controller": 0.0}), (2.0, {"controller": 0.2}), (3.0, {"controller": 1.0}),
        (4.0, {"controller": 1.5}), (5.0, {"controller": 1.6})])
    assert window.baseline() == {"controller": pytest.approx(0.1)}
    assert window.rate(2.0, 4.0) == {"controller": pytest.approx(0.65)}
    assert window.used(2.5) == {"controller": pytest.approx(0.6)}
    assert window.peak_pct(2.0, 5.0) == {"controller": 80.0}


def row(concurrent: int, failed: int, p95: float | None) -> StepRow:
    return StepRow(concurrent=concurrent, attempted=concurrent, completed=concurrent - failed, failed=failed,
                   sip_errors=0, retransmissions=0, peak_in_ivr=concurrent, turn_latency_p50_ms=10.0,
                   turn_latency_p95_ms=p95, turn_latency_max_ms=p95, voice_end_to_decision_p50_ms=610.0,
                   voice_end_to_decision_p95_ms=None if p95 is None else p95 + 600, engine_latency_p95_ms=10.0,
                   audio_lag_p95_ms=0.0, key_latency_p95_ms=None, recognition_right=0, recognition_calls=0,
                   cpu_pct={}, cpu_peak_pct={}, cpu_idle_pct={}, cpu_core_pct_per_call=None, memory_mb_per_call={},
                   ok=failed == 0 and p95 is not None and p95 < loadtest.P95_BUDGET_S * 1000)


def test_capacity_is_the_largest_step_with_no_failure_within_the_budget() -> None:
    rows = [row(10, 0, 80.0), row(20, 0, 120.0), row(40, 0, 290.0), row(60, 1, 150.0), row(80, 0, 420.0)]
    assert loadtest.max_concurrent_zero_fail(rows) == 40
    assert loadtest.max_concurrent_zero_fail([row(10, 2, 50.0)]) == 0
