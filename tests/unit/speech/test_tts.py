"""PromptRenderer: real espeak-ng renders to cached 8 kHz raw PCM."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tts.render
from tts import PROMPT_SUFFIX, PromptRenderer
from tts.engine import Waveform

RATE = 8000


@pytest.fixture
def renderer(tmp_path: Path) -> PromptRenderer:
    return PromptRenderer(tmp_path / "prompts")


def samples(pcm: bytes) -> np.ndarray:
    assert len(pcm) % 2 == 0, "16-bit PCM has an even number of bytes"
    return np.frombuffer(pcm, dtype="<i2")


@pytest.mark.parametrize(
    ("text", "language"),
    [("잔액 조회를 원하시면 1번을 누르세요", "ko"), ("Press one for your balance", "en")],
)
def test_render_produces_plausible_8khz_raw_pcm(renderer: PromptRenderer, text: str, language: str) -> None:
    path = renderer.render(text, language)

    assert path.parent == renderer.cache_dir
    assert path.suffix == PROMPT_SUFFIX
    pcm = path.read_bytes()
    assert not pcm.startswith(b"RIFF"), "prompts are headerless raw PCM"
    audio = samples(pcm)
    duration = len(audio) / RATE
    assert 0.3 <= duration <= 5.0, duration
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    assert rms > 300, f"render is (nearly) silent: RMS {rms:.0f}"
    # 8 kHz content: the resampler removed everything above Nyquist, and speech energy is there.
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    assert spectrum[(freqs > 200) & (freqs < 3400)].sum() > 0.8 * spectrum.sum()


def test_duration_matches_the_text_length(renderer: PromptRenderer) -> None:
    # Guards against a wrong sample rate: a 22.05 kHz buffer stored as 8 kHz would be ~2.8x longer.
    short = len(renderer.render_pcm("yes", "en")) / (2 * RATE)
    long = len(renderer.render_pcm("yes, please connect me to an agent right now", "en")) / (2 * RATE)
    assert 0.2 < short < 1.0
    assert long > 2 * short


def test_cache_hit_returns_the_same_file_without_rendering(renderer: PromptRenderer) -> None:
    first = renderer.render("상담원 연결", "ko")
    mtime = first.stat().st_mtime_ns
    second = renderer.render("상담원 연결", "ko")

    assert second == first
    assert renderer.renders == 1
    assert second.stat().st_mtime_ns == mtime
    assert renderer.render_pcm("상담원 연결", "ko") == first.read_bytes()
    assert renderer.renders == 1


def test_a_second_renderer_on_the_same_cache_reuses_files(tmp_path: Path) -> None:
    first = PromptRenderer(tmp_path).render("hello", "en")
    other = PromptRenderer(tmp_path)
    assert other.render("hello", "en") == first
    assert other.renders == 0


def test_cache_key_covers_language_voice_and_rate(tmp_path: Path) -> None:
    base = PromptRenderer(tmp_path)
    paths = {
        base.path_for("ok", "en"),
        base.path_for("ok", "ko"),
        PromptRenderer(tmp_path, rate=130).path_for("ok", "en"),
        PromptRenderer(tmp_path, {"en": "en-gb"}).path_for("ok", "en"),
    }
    assert len(paths) == 4


def test_unknown_language_is_rejected_by_name(renderer: PromptRenderer) -> None:
    with pytest.raises(ValueError, match=r"'fr'.*known languages: en, ko"):
        renderer.render("bonjour", "fr")
    assert renderer.renders == 0


def test_empty_text_is_rejected(renderer: PromptRenderer) -> None:
    with pytest.raises(ValueError, match="empty"):
        renderer.render("   ", "en")


def test_prerender_counts_only_new_renders(renderer: PromptRenderer) -> None:
    items = [("잔액 조회", "ko"), ("balance", "en"), ("잔액 조회", "ko")]
    assert renderer.prerender(items) == 2
    assert renderer.prerender(items) == 0
    assert renderer.prerender([*items, ("transfer", "en")]) == 1


def test_twenty_renders_in_a_row_do_not_hang(renderer: PromptRenderer) -> None:
    # pyttsx3's espeak driver is known to hang when an engine is reused after runAndWait.
    started = time.monotonic()
    paths = [
        renderer.render(f"{i}번 메뉴" if i % 2 else f"menu {i}", "ko" if i % 2 else "en") for i in range(20)
    ]
    assert len(set(paths)) == 20
    assert all(len(p.read_bytes()) > 0.3 * 2 * RATE for p in paths)
    assert time.monotonic() - started < 30


def test_concurrent_renders_never_expose_partial_files(renderer: PromptRenderer) -> None:
    texts = [f"option {i}" for i in range(6)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for text in texts:
                path = renderer.render(text, "en")
                assert len(path.read_bytes()) > 0.3 * 2 * RATE
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    files = sorted(renderer.cache_dir.iterdir())
    assert [f.name for f in files if f.name.startswith(".tmp")] == []
    assert len(files) == len(texts)
    # Asterisk runs as another user: the files must be world-readable, unlike mkstemp's default.
    assert all(os.stat(f).st_mode & 0o044 == 0o044 for f in files)


async def test_render_async_keeps_the_event_loop_running(
    renderer: PromptRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []

    def slow_synthesize(text: str, voice: str, rate: int) -> Waveform:
        threads.append(threading.current_thread().name)
        time.sleep(0.3)
        return Waveform(samples=np.full(8000, 1000, dtype=np.int16), sample_rate=8000)

    monkeypatch.setattr(tts.render.engine, "synthesize", slow_synthesize)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    path = await renderer.render_async("hello", "en")
    task.cancel()

    assert path.read_bytes() == np.full(8000, 1000, dtype="<i2").tobytes()
    assert ticks >= 10, "the loop was blocked while rendering"
    assert threads and threads[0].startswith("tts-render")


def test_an_empty_rendering_is_retried_and_never_returned(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tts import engine as tts_engine

    real = tts_engine.Waveform(samples=np.ones(800, dtype=np.int16), sample_rate=8000)
    empty = tts_engine.Waveform(samples=np.zeros(0, dtype=np.int16), sample_rate=8000)
    tries = iter([empty, real])
    monkeypatch.setattr(tts_engine, "_synthesize_once", lambda text, voice, rate: next(tries))
    assert tts_engine.synthesize("안녕하세요", "ko", 160) is real
    monkeypatch.setattr(tts_engine, "_synthesize_once", lambda text, voice, rate: empty)
    with pytest.raises(tts_engine.SynthesisError, match="three times"):
        tts_engine.synthesize("안녕하세요", "ko", 160)


def test_a_driver_that_wrote_no_file_yet_is_retried(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The driver's loop may end before it writes the file: that try is empty, the next one renders."""
    from tts import engine as tts_engine

    real_run, real_mkstemp = tts_engine._run, tts_engine.tempfile.mkstemp
    paths: list[str] = []
    runs: list[int] = []

    def mkstemp(**kwargs):  # type: ignore[no-untyped-def]
        fd, path = real_mkstemp(**kwargs)
        paths.append(path)
        return fd, path

    def run(engine):  # type: ignore[no-untyped-def]
        runs.append(1)
        real_run(engine)
        if len(runs) == 1:
            os.unlink(paths[-1])  # the first try's file is not there when the loop ends, as under load

    monkeypatch.setattr(tts_engine.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tts_engine, "_run", run)
    wave = tts_engine.synthesize("안녕하세요", "ko", 160)
    assert len(runs) == 2 and len(wave.samples) > 0
    assert not any(os.path.exists(path) for path in paths)
