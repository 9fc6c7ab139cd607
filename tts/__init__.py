"""Prompt rendering: text -> cached 8 kHz 16-bit mono raw PCM via espeak-ng (pyttsx3)."""

from tts.engine import SynthesisError
from tts.render import FORMAT_VERSION, PROMPT_SUFFIX, PromptRenderer

__all__ = ["FORMAT_VERSION", "PROMPT_SUFFIX", "PromptRenderer", "SynthesisError"]
