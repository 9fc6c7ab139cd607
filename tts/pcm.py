"""Conversion of synthesized audio to the raw 16-bit mono PCM that Asterisk plays as slin / slin16.

Every resampling goes through soxr (its HQ filter also removes everything above the target's
Nyquist frequency, which would alias otherwise); nothing here loops over samples by hand.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

TELEPHONE_RATE = 8000
"""Sample rate of a narrow-band phone line (G.711), and the default of every function here."""

WIDEBAND_RATE = 16000
"""Sample rate of an HD voice line (G.722; Opus decoded for the IVR) and of the Korean Vosk model."""

PROMPT_RATES = (TELEPHONE_RATE, WIDEBAND_RATE)
"""The rates prompts are rendered and cached at."""

SAMPLE_WIDTH = 2
"""Bytes per sample: 16-bit signed, little-endian, mono."""


def to_pcm(samples: npt.NDArray[np.int16], sample_rate: int, rate: int = TELEPHONE_RATE) -> bytes:
    """Resample mono 16-bit audio from `sample_rate` to `rate`; raw little-endian PCM (no header)."""
    if rate <= 0 or sample_rate <= 0:
        raise ValueError(f"sample rates must be positive (got {sample_rate} -> {rate})")
    audio = samples.astype(np.float32) / 32768.0
    if sample_rate != rate:
        audio = soxr.resample(audio, sample_rate, rate, quality="HQ")
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    return pcm.tobytes()


def to_telephone_pcm(samples: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    """Resample mono 16-bit audio to 8 kHz and return it as raw little-endian PCM (no header)."""
    return to_pcm(samples, sample_rate, TELEPHONE_RATE)


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Raw 16-bit mono PCM at `from_rate` as raw PCM at `to_rate` (unchanged when the rates agree).

    For a caller heard at one rate and a recognizer or recording at another (a mid-call format
    change, a 48 kHz trunk). ValueError for odd-length PCM: it is not whole samples.
    """
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"{len(pcm)} bytes of 16-bit PCM is not a whole number of samples")
    if from_rate == to_rate:
        return pcm
    return to_pcm(np.frombuffer(pcm, dtype="<i2"), from_rate, to_rate)


def duration_seconds(pcm: bytes, rate: int = TELEPHONE_RATE) -> float:
    """Playing time of raw 16-bit mono PCM at `rate` (8 kHz unless told)."""
    return len(pcm) / (SAMPLE_WIDTH * rate)
