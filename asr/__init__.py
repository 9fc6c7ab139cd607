"""Offline speech recognition with Vosk: model packs, grammars and per-turn streaming."""

from asr.download import ModelPullFailed, pull
from asr.grammar import Grammar, build_grammar
from asr.loaded import LoadedModel, ModelPack
from asr.packs import (
    DEFAULT_MODELS_DIR,
    ModelMissing,
    ModelRegistry,
    default_registry,
)
from asr.stream import NARROWBAND_RATE, WIDEBAND_RATE, Alternative, Partial, Result, TurnRecognizer, Word
from asr.text import normalize_phrase

__all__ = [
    "DEFAULT_MODELS_DIR",
    "NARROWBAND_RATE",
    "WIDEBAND_RATE",
    "Alternative",
    "Grammar",
    "LoadedModel",
    "ModelMissing",
    "ModelPack",
    "ModelPullFailed",
    "ModelRegistry",
    "Partial",
    "Result",
    "TurnRecognizer",
    "Word",
    "build_grammar",
    "default_registry",
    "normalize_phrase",
    "pull",
]
