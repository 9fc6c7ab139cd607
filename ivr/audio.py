"""PCM audio helpers every concern shares: signed-linear 16-bit mono, the format Asterisk and Vosk exchange."""

from __future__ import annotations

import wave
from pathlib import Path


def write_wav(path: Path, pcm: bytes, rate: int = 8000) -> None:
    """Signed-linear 16-bit mono ``pcm`` at ``rate`` Hz as a WAV file (the parent folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
