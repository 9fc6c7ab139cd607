"""Conversion of synthesized audio to the raw 8 kHz 16-bit mono PCM that Asterisk plays as slin."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

TELEPHONE_RATE = 8000
"""Sample rate of a narrow-band phone line, and of every prompt we store."""

SAMPLE_WIDTH = 2
"""Bytes per sample: 16-bit signed, little-endian, mono."""


def to_telephone_pcm(samples: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    """Resample mono 16-bit audio to 8 kHz and return it as raw little-endian PCM (no header)."""
    audio = samples.astype(np.float32) / 32768.0
    if sample_rate != TELEPHONE_RATE:
        # soxr's HQ filter also removes everything above 4 kHz, which would alias otherwise.
        audio = soxr.resample(audio, sample_rate, TELEPHONE_RATE, quality="HQ")
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    return pcm.tobytes()


def duration_seconds(pcm: bytes) -> float:
    """Playing time of raw 8 kHz 16-bit mono PCM."""
    return len(pcm) / (SAMPLE_WIDTH * TELEPHONE_RATE)
