"""The ASR benchmark's pure parts: framing the caller's audio, and what counts as keeping real time."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.asr import (
    ENDPOINT_S,
    FRAME_S,
    LEAD_S,
    REALTIME_BUDGET_S,
    TAIL_S,
    CallLog,
    TurnTiming,
    _levels,
    cpu_busy_seconds,
    frames,
    load_summary,
    rate_table,
    turn_audio,
)
from bench.common import bar_chart


@pytest.mark.parametrize(("rate", "size"), [(8000, 320), (16000, 640)])
def test_frames_are_20_ms_at_the_callers_rate(rate: int, size: int) -> None:
    pcm = bytes(range(256)) * 10  # 2,560 bytes: not a whole number of frames at either rate
    cut = frames(pcm, rate)
    assert {len(f) for f in cut} == {size}
    assert b"".join(cut)[: len(pcm)] == pcm
    assert b"".join(cut)[len(pcm) :] == bytes(len(cut) * size - len(pcm))  # the last frame padded with silence
    assert len(cut) * FRAME_S == pytest.approx(-(-len(pcm) // size) * size / (2 * rate))


def test_frames_of_nothing_are_none() -> None:
    assert frames(b"", 16000) == []


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_turn_is_lead_silence_speech_and_tail_silence(rate: int) -> None:
    speech = b"\x01\x02" * 100
    audio = turn_audio(speech, rate)
    lead = 2 * round(rate * LEAD_S)
    assert audio[:lead] == bytes(lead)
    assert audio[lead : lead + len(speech)] == speech
    assert audio[lead + len(speech) :] == bytes(2 * round(rate * TAIL_S))
    assert TAIL_S > ENDPOINT_S  # the turn ends at the endpoint, not when the audio runs out


def call(*turns: tuple[float | None, float], lags: tuple[float, ...] = (0.01,), right: bool = True) -> CallLog:
    return CallLog(lags=list(lags), turns=[TurnTiming(end, at, right) for end, at in turns], cpu_s=0.1, audio_s=4.0)


def test_latency_is_from_the_end_of_speech_to_the_final_result() -> None:
    logs = [call((10.0, 10.52)), call((20.0, 20.53)), call((30.0, 30.60), lags=(0.02, 0.04))]
    summary = load_summary(logs, turns_per_call=1)
    assert summary["concurrent_tested"] == 3
    assert summary["turns"] == 3
    assert summary["latency_p50_ms"] == pytest.approx(530.0)
    assert summary["latency_p95_ms"] == pytest.approx(600.0)
    assert summary["beyond_endpoint_p95_ms"] == pytest.approx(600.0 - 1000 * ENDPOINT_S)
    assert summary["beyond_endpoint_max_ms"] == pytest.approx(100.0)
    assert summary["max_lag_ms"] == pytest.approx(40.0)
    assert summary["calls_behind"] == 0
    assert summary["kept_real_time"] is True
    assert summary["correct_share"] == 1.0
    assert summary["rtf_under_load"] == pytest.approx(0.025)


def test_a_call_whose_audio_lags_the_wall_clock_past_the_budget_falls_behind() -> None:
    late = REALTIME_BUDGET_S + 0.01
    logs = [call((1.0, 1.55)), call((2.0, 2.55), lags=(0.01, late, 0.02))]
    summary = load_summary(logs, turns_per_call=1)
    assert summary["calls_behind"] == 1
    assert summary["max_lag_ms"] == pytest.approx(1000 * late)
    assert summary["end_lag_max_ms"] == pytest.approx(20.0)  # it caught up by its last feed
    assert summary["kept_real_time"] is False


def test_a_result_too_long_after_the_endpoint_misses_real_time() -> None:
    too_late = ENDPOINT_S + REALTIME_BUDGET_S + 0.01
    summary = load_summary([call((1.0, 1.5 + 0.02)), call((5.0, 5.0 + too_late))], turns_per_call=1)
    assert summary["calls_behind"] == 0
    assert summary["kept_real_time"] is False


def test_a_turn_without_voice_or_a_missing_turn_is_no_real_time() -> None:
    no_voice = load_summary([call((None, 3.0)), call((1.0, 1.52))], turns_per_call=1)
    assert no_voice["turns"] == 1
    assert no_voice["kept_real_time"] is False
    missing = load_summary([call((1.0, 1.52)), call((2.0, 2.52), (4.0, 4.52))], turns_per_call=2)
    assert missing["kept_real_time"] is False


def test_nothing_measured_keeps_nothing() -> None:
    summary = load_summary([], turns_per_call=3)
    assert summary["kept_real_time"] is False
    assert summary["latency_p95_ms"] is None
    assert summary["rtf_under_load"] is None


def test_wrong_answers_lower_the_share_heard_right() -> None:
    summary = load_summary([call((1.0, 1.52)), call((1.0, 1.52), right=False)], turns_per_call=1)
    assert summary["correct_share"] == 0.5


def test_the_rate_table_puts_the_rates_side_by_side() -> None:
    table = rate_table({"8000": {"streams_per_core": 41.9, "kept_real_time": True},
                        "16000": {"streams_per_core": 44.1}})
    header, rule, *rows = table.splitlines()
    assert header.split() == ["8", "kHz", "16", "kHz"]
    assert set(rule) == {"-"}
    per_core = next(r for r in rows if r.startswith("streams per core"))
    assert per_core.split()[-2:] == ["41.9", "44.1"]
    kept = next(r for r in rows if r.startswith("kept real time"))
    assert kept.split()[-2:] == ["True", "-"]


def test_the_bar_chart_is_svg_with_a_bar_per_rate_and_the_target_line(tmp_path: Path) -> None:
    path = bar_chart(tmp_path / "chart.svg", "streams <per> core", [("8 kHz", 41.9), ("16 kHz", 44.1)], "streams",
                     line=(20.0, "40 calls"))
    svg = path.read_text()
    ET.fromstring(svg)  # well-formed
    assert "streams &lt;per&gt; core" in svg  # the title, escaped
    assert "41.9" in svg and "44.1" in svg  # each bar labelled with its value
    assert "40 calls (20)" in svg  # the target line's legend


def test_levels_are_positive_call_counts() -> None:
    assert _levels("10,20, 40") == (10, 20, 40)
    for bad in ("", "0", "10,-5"):
        with pytest.raises(argparse.ArgumentTypeError):
            _levels(bad)


def test_busy_cpu_time_counts_everything_but_idle_and_iowait() -> None:
    stat = "cpu  100 10 50 1000 40 5 5 30 0 0\ncpu0 50 5 25 500 20 2 3 15 0 0\nintr 1 2 3\n"
    assert cpu_busy_seconds(stat, 100.0) == pytest.approx((100 + 10 + 50 + 5 + 5 + 30) / 100)
    assert cpu_busy_seconds("cpu  100 0 50 1000\n", 100.0) == pytest.approx(1.5)  # an old kernel's shorter line
