"""Rendering of IVR prompts to cached raw PCM files, per sample rate (8 kHz, and 16 kHz for HD voice)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tts.engine as engine  # the module itself, not the package: tts/__init__ imports this module
from tts.pcm import TELEPHONE_RATE, to_pcm

logger = logging.getLogger(__name__)

FORMAT_VERSION = "slin-8k-s16le-mono-v1"
"""Part of every 8 kHz cache key: bump it when the produced audio changes so old files are not reused."""

PROMPT_SUFFIX = ".sln"  # Asterisk reads .sln as 8 kHz signed linear (.sln16 would be 16 kHz)
"""File name suffix of rendered 8 kHz prompts (content: 8 kHz, 16-bit signed LE, mono, no header).

Beware: Asterisk reads `.sln16` as 16 kHz and `.sln` as 8 kHz when it picks a format by suffix.
"""

PROMPT_SAMPLE_RATES = (8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000, 192000)
"""Rates a prompt can be rendered at: those of Asterisk's slin formats (and AudioSocket's kinds)."""


def format_version(sample_rate: int = TELEPHONE_RATE) -> str:
    """The cache-key format of prompts at `sample_rate` (FORMAT_VERSION at 8 kHz)."""
    _check_rate(sample_rate)
    return f"slin-{sample_rate // 1000}k-s16le-mono-v1"


def prompt_suffix(sample_rate: int = TELEPHONE_RATE) -> str:
    """File suffix of prompts at `sample_rate`, the one Asterisk reads at that rate: .sln, .sln16, ..."""
    _check_rate(sample_rate)
    return PROMPT_SUFFIX if sample_rate == TELEPHONE_RATE else f".sln{sample_rate // 1000}"


def _check_rate(sample_rate: int) -> None:
    if sample_rate not in PROMPT_SAMPLE_RATES:
        known = ", ".join(str(rate) for rate in PROMPT_SAMPLE_RATES)
        raise ValueError(f"prompts cannot be rendered at {sample_rate} Hz (rates: {known})")

DEFAULT_VOICES: dict[str, str] = {"ko": "ko", "en": "en-us"}
"""espeak-ng voice for each prompt language."""

# One worker: renders are serialised anyway, and a single thread keeps pyttsx3 on one thread.
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _render_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts-render")
        return _executor


class PromptRenderer:
    """Renders prompt texts with espeak-ng and keeps the results in a content-addressed cache.

    Every method takes the `sample_rate` of the PCM wanted (8000 unless told; 16000 for a wideband
    caller); each rate is cached in its own file, whose key includes the rate.
    """

    def __init__(self, cache_dir: Path, voice_by_language: dict[str, str] | None = None, rate: int = 160):
        self.cache_dir = Path(cache_dir)
        self.voice_by_language = dict(DEFAULT_VOICES if voice_by_language is None else voice_by_language)
        self.rate = rate
        """Speaking rate of espeak-ng, in words per minute (not a sample rate)."""
        self.renders = 0
        """How many texts this renderer has synthesized (cache hits excluded)."""

    def voice_for(self, language: str) -> str:
        """The espeak-ng voice used for `language`; ValueError for an unknown language."""
        try:
            return self.voice_by_language[language]
        except KeyError:
            known = ", ".join(sorted(self.voice_by_language)) or "none"
            raise ValueError(f"no TTS voice for language {language!r}; known languages: {known}") from None

    def path_for(self, text: str, language: str, sample_rate: int = TELEPHONE_RATE) -> Path:
        """Where the rendering of `text` in `language` at `sample_rate` is (or would be) cached.

        The key covers text, language, voice, speaking rate and the format, which names the sample
        rate; the 8 kHz key is the one every earlier version used, so existing caches stay valid.
        """
        voice = self.voice_for(language)
        key = json.dumps([text, language, voice, self.rate, format_version(sample_rate)], ensure_ascii=False)
        return self.cache_dir / (hashlib.sha256(key.encode("utf-8")).hexdigest() + prompt_suffix(sample_rate))

    def render(self, text: str, language: str, sample_rate: int = TELEPHONE_RATE) -> Path:
        """Render `text` unless cached, and return the path of its raw PCM file at `sample_rate`."""
        return self._ensure(text, language, (sample_rate,))[0][0]

    def render_pcm(self, text: str, language: str, sample_rate: int = TELEPHONE_RATE) -> bytes:
        """The raw 16-bit mono PCM of `text` at `sample_rate` (8 kHz unless told), rendered unless cached."""
        return self.render(text, language, sample_rate).read_bytes()

    async def render_async(self, text: str, language: str, sample_rate: int = TELEPHONE_RATE) -> Path:
        """`render` on a dedicated worker thread so the event loop never blocks on espeak-ng."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_render_executor(), self.render, text, language, sample_rate)

    def prerender(self, items: Iterable[tuple[str, str]], sample_rates: Iterable[int] = (TELEPHONE_RATE,)) -> int:
        """Render every `(text, language)` pair at each of `sample_rates` (one synthesis per text);
        return how many files were not cached yet."""
        rates = tuple(dict.fromkeys(sample_rates))
        return sum(
            rendered for text, language in items for _path, rendered in self._ensure(text, language, rates)
        )

    def _ensure(self, text: str, language: str, sample_rates: tuple[int, ...]) -> list[tuple[Path, bool]]:
        """The cached path of `text` at each rate, and whether it had to be rendered now."""
        paths = [self.path_for(text, language, rate) for rate in sample_rates]
        if all(path.exists() for path in paths):
            return [(path, False) for path in paths]
        wave = self._synthesize(text, language)  # once, whatever the number of rates missing
        result = []
        for path, rate in zip(paths, sample_rates, strict=True):
            # Re-check: another renderer (or process) may have written it while we synthesized.
            if path.exists():
                result.append((path, False))
                continue
            _write_atomically(path, to_pcm(wave.samples, wave.sample_rate, rate))
            result.append((path, True))
        return result

    def _synthesize(self, text: str, language: str) -> engine.Waveform:
        voice = self.voice_for(language)
        wave = engine.synthesize(text, voice, self.rate)
        self.renders += 1
        logger.debug("rendered %r (%s, voice %s, rate %d)", text, language, voice, self.rate)
        return wave


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the target directory so os.replace stays a same-filesystem rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; Asterisk usually runs as another user and must read them.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
