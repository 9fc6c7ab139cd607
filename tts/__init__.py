"""Prompt rendering: text -> cached 16-bit mono raw PCM via espeak-ng (pyttsx3), per sample rate.

8 kHz (``.sln``) for narrowband callers, as always; 16 kHz (``.sln16``) for wideband ones.
"""

from tts.engine import SynthesisError
from tts.pcm import PROMPT_RATES, TELEPHONE_RATE, WIDEBAND_RATE, resample_pcm
from tts.render import FORMAT_VERSION, PROMPT_SUFFIX, PromptRenderer, format_version, prompt_suffix

__all__ = [
    "FORMAT_VERSION",
    "PROMPT_RATES",
    "PROMPT_SUFFIX",
    "TELEPHONE_RATE",
    "WIDEBAND_RATE",
    "PromptRenderer",
    "SynthesisError",
    "format_version",
    "prompt_suffix",
    "resample_pcm",
]
