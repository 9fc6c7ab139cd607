"""The speech resources every call shares: model packs, rendered prompts, recognition threads.

One ``Speech`` per process, handed to every navigator (a new version of a flow gets a new navigator, never new
models). The listening loop (``listening``) takes recognizers and prompts from it; the turn logic (``turns``)
asks it which of a flow's languages have a pack here, and plays its prompts.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from asr import NARROWBAND_RATE, TurnRecognizer, build_grammar
from tts import PromptRenderer

log = logging.getLogger(__name__)

#: Rendered prompts kept in memory (a flow's static prompts are a few dozen).
PROMPT_MEMORY_CACHE = 512


class ModelSource(Protocol):
    def get(self, language: str, dialect: str | None = None) -> Any: ...

    def packs(self) -> list[Any]: ...


class Speech:
    """Shared speech resources: models (one per pack), prompts, recognition threads."""

    def __init__(self, registry: ModelSource, renderer: PromptRenderer, threads: int = 2) -> None:
        self.registry = registry
        self.renderer = renderer
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="asr")
        self._prompts: dict[tuple[str, str, int], bytes] = {}
        self.oov_reported: set[tuple[str, str]] = set()

    def languages_with_packs(self, languages: list[str]) -> list[str]:
        """The flow's languages that have a model pack on this machine, in the flow's order."""
        packs = getattr(self.registry, "packs", None)
        if packs is None:
            return languages[:1]
        loaded = {p.language for p in packs()}
        return [lang for lang in languages if lang in loaded]

    def recognizer(self, language: str, phrases: list[str], sample_rate: int = NARROWBAND_RATE) -> TurnRecognizer:
        """A recognizer for one turn, for audio at `sample_rate` (the turn's hearing rate)."""
        model = self.registry.get(language)
        grammar = build_grammar(phrases, model) if phrases else None
        if grammar is not None:
            for phrase, words in grammar.oov.items():
                if (language, phrase) not in self.oov_reported:  # once per process, not per call
                    self.oov_reported.add((language, phrase))
                    log.warning("phrase %r: %s not in the %s model's vocabulary (Vosk ignores them)",
                                phrase, ", ".join(words), language)
        return TurnRecognizer(model, grammar, sample_rate=sample_rate)

    async def prompt(self, text: str, language: str, sample_rate: int = NARROWBAND_RATE) -> bytes:
        """`text` spoken, as 16-bit PCM at `sample_rate` (16 kHz for a wideband caller: HD voice both ways)."""
        key = (text, language, sample_rate)
        pcm = self._prompts.get(key)
        if pcm is None:
            path = await self.renderer.render_async(text, language, sample_rate)
            pcm = await asyncio.to_thread(Path(path).read_bytes)
            if len(self._prompts) >= PROMPT_MEMORY_CACHE:  # dynamic prompts (amounts) must not grow it forever
                self._prompts.pop(next(iter(self._prompts)))
            self._prompts[key] = pcm
        return pcm
