"""The simulator's offline parts: WAV conversion for the phone line, answer preparation, the summary."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ivr.config import Settings
from ivr.records.call import CallRecord, Outcome, Turn
from ivr.sim.simulator import CallDriver, SimulationError, Simulator, summary, to_caller_audio, to_telephone_wav


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def tone(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2")


def test_16k_stereo_becomes_8k_mono_same_duration(tmp_path: Path) -> None:
    left = tone(16000, 1.5)
    stereo = np.column_stack([left, left]).reshape(-1)
    source = write_wav(tmp_path / "in.wav", stereo, 16000, 2)
    target = tmp_path / "out" / "turn1.wav"
    seconds = to_telephone_wav(source, target)
    assert seconds == pytest.approx(1.5, rel=0.01)
    with wave.open(str(target)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == pytest.approx(12000, rel=0.01)
        assert wav.getnframes() / 8000 == seconds
        out = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
    # The 440 Hz tone survives: same RMS as the source (8000/sqrt(2)), within 5%.
    rms = np.sqrt(np.mean(out[400:-400] ** 2))
    assert rms == pytest.approx(8000 / np.sqrt(2), rel=0.05)


def test_stereo_channels_are_mixed_not_interleaved(tmp_path: Path) -> None:
    left = np.full(8000, 1000, dtype="<i2")
    right = np.full(8000, 3000, dtype="<i2")
    source = write_wav(tmp_path / "in.wav", np.column_stack([left, right]).reshape(-1), 8000, 2)
    assert to_telephone_wav(source, tmp_path / "out.wav") == 1.0
    with wave.open(str(tmp_path / "out.wav")) as wav:
        out = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert out.tolist() == [2000] * 8000


def test_8k_mono_passes_through_unchanged(tmp_path: Path) -> None:
    samples = tone(8000, 0.5)
    source = write_wav(tmp_path / "in.wav", samples, 8000, 1)
    assert to_telephone_wav(source, tmp_path / "out.wav") == 0.5
    with wave.open(str(tmp_path / "out.wav")) as wav:
        assert wav.readframes(wav.getnframes()) == samples.tobytes()


def test_non_wav_file(tmp_path: Path) -> None:
    source = tmp_path / "notes.wav"
    source.write_text("this is not audio\n")
    with pytest.raises(SimulationError) as info:
        to_telephone_wav(source, tmp_path / "out.wav")
    assert str(info.value).startswith(f"{source}: not a readable WAV file (")
    assert not (tmp_path / "out.wav").exists()


def test_empty_file(tmp_path: Path) -> None:
    source = tmp_path / "empty.wav"
    source.write_bytes(b"")
    with pytest.raises(SimulationError, match="not a readable WAV file"):
        to_telephone_wav(source, tmp_path / "out.wav")


def test_missing_file(tmp_path: Path) -> None:
    source = tmp_path / "absent.wav"
    with pytest.raises(SimulationError) as info:
        to_telephone_wav(source, tmp_path / "out.wav")
    assert str(info.value) == f"{source}: no such file"


def test_8_bit_wav_refused(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "u8.wav", np.full(800, 128, dtype="u1"), 8000, 1, width=1)
    with pytest.raises(SimulationError) as info:
        to_telephone_wav(source, tmp_path / "out.wav")
    assert str(info.value) == f"{source}: only 16-bit PCM WAV is supported (got 8-bit)"


@pytest.mark.parametrize("bad", ["", "12x", "1 2", "a", "#*E", "１"])
def test_prepare_rejects_bad_dtmf(tmp_path: Path, bad: str) -> None:
    simulator = Simulator(Settings(run_dir=tmp_path, recordings_dir=tmp_path / "rec"))
    with pytest.raises(SimulationError) as info:
        simulator.prepare([], ["123", bad], tmp_path)
    assert str(info.value) == f"--dtmf {bad!r}: only 0-9, *, #, A-D"


def test_prepare_accepts_dtmf_in_order(tmp_path: Path) -> None:
    simulator = Simulator(Settings(run_dir=tmp_path, recordings_dir=tmp_path / "rec"))
    assert simulator.prepare([], ["2", "*0#", "ABCD"], tmp_path) == [
        ("dtmf", "2"), ("dtmf", "*0#"), ("dtmf", "ABCD"),
    ]


SUMMARY_KEYS = {
    "call_id", "caller", "customer", "path", "turns", "intent", "queue", "agent", "outcome", "routing", "notes",
    "heard_at_hz",
}
TURN_KEYS = {"node", "transcript", "confidence", "intent", "score", "dtmf", "audio", "error"}


def test_summary_keeps_exactly_the_documented_keys() -> None:
    record = CallRecord(call_id="c1", caller="+8210", channel="PJSIP/x", customer="C-9", intent="loan",
                        queue="loans", outcome=Outcome.QUEUED, path=["main_menu", "to_loans"], started_at=1.0)
    record.turns.append(Turn(node="main_menu", transcript="대출", confidence=0.9, intent="loan", score=0.9,
                             started_at=2.0, decided_at=3.0))
    record.note("matched by speech")
    data = record.to_dict()
    data["internal_extra"] = 1
    out = summary(data)
    assert set(out) == SUMMARY_KEYS
    assert out["outcome"] == "queued"
    assert out["notes"] == ["matched by speech"]
    assert out["path"] == ["main_menu", "to_loans"]
    assert out["turns"] == [{
        "node": "main_menu", "transcript": "대출", "confidence": 0.9, "intent": "loan", "score": 0.9,
        "dtmf": "", "audio": None, "error": None,
    }]
    assert set(out["turns"][0]) == TURN_KEYS


def test_summary_of_sparse_record() -> None:
    out = summary({"call_id": "c2", "turns": None})
    assert out == {
        "call_id": "c2", "caller": None, "customer": None, "path": None, "turns": [], "intent": None,
        "queue": None, "agent": None, "outcome": None, "routing": [], "notes": [], "heard_at_hz": None,
    }


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_truncated_stereo_wav_is_a_simulation_error(tmp_path: Path, cut: int) -> None:
    full = write_wav(tmp_path / "full.wav", np.zeros(2000, dtype="<i2"), 16000, 2).read_bytes()
    source = tmp_path / "cut.wav"
    source.write_bytes(full[:-cut])
    with pytest.raises(SimulationError) as info:
        to_telephone_wav(source, tmp_path / "out.wav")
    assert str(info.value).startswith(f"{source}: ")


def test_wideband_caller_audio_keeps_what_the_telephone_band_drops(tmp_path: Path) -> None:
    """A 5 kHz tone (above the 4 kHz Nyquist of a phone line) survives at 16 kHz, raw, for Asterisk's sln16."""
    source = write_wav(tmp_path / "in.wav", tone(48000, 1.0, freq=5000.0), 48000, 1)
    wide = tmp_path / "turn1.sln16"
    assert to_caller_audio(source, wide, 16000) == 1.0
    pcm = np.frombuffer(wide.read_bytes(), dtype="<i2").astype(float)
    assert len(pcm) == 16000
    assert np.sqrt(np.mean(pcm[400:-400] ** 2)) == pytest.approx(8000 / np.sqrt(2), rel=0.05)
    narrow = tmp_path / "turn1.wav"
    to_caller_audio(source, narrow, 8000)
    with wave.open(str(narrow)) as wav:
        dropped = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
    assert np.sqrt(np.mean(dropped[400:-400] ** 2)) < 400  # filtered out by the resampler, not aliased


def test_a_rate_no_caller_speaks_at_is_refused_by_name(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "in.wav", tone(8000, 0.1), 8000, 1)
    with pytest.raises(SimulationError, match=r"--rate 44100: a simulated caller speaks at 8000 or 16000 Hz"):
        to_caller_audio(source, tmp_path / "out.wav", 44100)


def test_wideband_turns_are_prepared_as_sln16(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "in.wav", tone(16000, 0.2), 16000, 1)
    driver = CallDriver(Settings(run_dir=tmp_path, recordings_dir=tmp_path / "rec"))
    turns = driver.prepare([source], ["1"], tmp_path / "work", rate=16000)
    assert turns[0][0] == "audio" and (tmp_path / "work" / "turn1.sln16").stat().st_size == 2 * 3200
    assert turns[1] == ("dtmf", "1")
