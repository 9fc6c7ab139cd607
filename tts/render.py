"""Rendering of IVR prompts to cached 8 kHz raw PCM files."""

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

from tts import engine
from tts.pcm import to_telephone_pcm

logger = logging.getLogger(__name__)

FORMAT_VERSION = "slin-8k-s16le-mono-v1"
"""Part of every cache key: bump it when the produced audio changes so old files are not reused."""

PROMPT_SUFFIX = ".sln"  # Asterisk reads .sln as 8 kHz signed linear (.sln16 would be 16 kHz)
"""File name suffix of rendered prompts (content: 8 kHz, 16-bit signed LE, mono, no header).

Beware: Asterisk reads `.sln16` as 16 kHz and `.sln` as 8 kHz when it picks a format by suffix.
"""

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
    """Renders prompt texts with espeak-ng and keeps the results in a content-addressed cache."""

    def __init__(self, cache_dir: Path, voice_by_language: dict[str, str] | None = None, rate: int = 160):
        self.cache_dir = Path(cache_dir)
        self.voice_by_language = dict(DEFAULT_VOICES if voice_by_language is None else voice_by_language)
        self.rate = rate
        self.renders = 0
        """How many texts this renderer has synthesized (cache hits excluded)."""

    def voice_for(self, language: str) -> str:
        """The espeak-ng voice used for `language`; ValueError for an unknown language."""
        try:
            return self.voice_by_language[language]
        except KeyError:
            known = ", ".join(sorted(self.voice_by_language)) or "none"
            raise ValueError(f"no TTS voice for language {language!r}; known languages: {known}") from None

    def path_for(self, text: str, language: str) -> Path:
        """Where the rendering of `text` in `language` is (or would be) cached."""
        voice = self.voice_for(language)
        key = json.dumps([text, language, voice, self.rate, FORMAT_VERSION], ensure_ascii=False)
        return self.cache_dir / (hashlib.sha256(key.encode("utf-8")).hexdigest() + PROMPT_SUFFIX)

    def render(self, text: str, language: str) -> Path:
        """Render `text` unless cached, and return the path of its raw 8 kHz PCM file."""
        return self._ensure(text, language)[0]

    def render_pcm(self, text: str, language: str) -> bytes:
        """The raw 8 kHz 16-bit mono PCM of `text`, rendered unless cached."""
        return self.render(text, language).read_bytes()

    async def render_async(self, text: str, language: str) -> Path:
        """`render` on a dedicated worker thread so the event loop never blocks on espeak-ng."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_render_executor(), self.render, text, language)

    def prerender(self, items: Iterable[tuple[str, str]]) -> int:
        """Render every `(text, language)` pair; return how many were not cached yet."""
        return sum(self._ensure(text, language)[1] for text, language in items)

    def _ensure(self, text: str, language: str) -> tuple[Path, bool]:
        """The cached path of `text`, and whether it had to be rendered now."""
        path = self.path_for(text, language)
        if path.exists():
            return path, False
        pcm = self._synthesize(text, language)
        # Re-check: another renderer (or process) may have written it while we synthesized.
        if path.exists():
            return path, False
        _write_atomically(path, pcm)
        return path, True

    def _synthesize(self, text: str, language: str) -> bytes:
        voice = self.voice_for(language)
        wave = engine.synthesize(text, voice, self.rate)
        self.renders += 1
        logger.debug("rendered %r (%s, voice %s, rate %d)", text, language, voice, self.rate)
        return to_telephone_pcm(wave.samples, wave.sample_rate)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the target directory so os.replace stays a same-filesystem rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=PROMPT_SUFFIX)
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
