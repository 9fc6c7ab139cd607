"""Shared benchmark output: a table on screen, JSON under bench/out/."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def spoken_8k(text: str, voice: str = "ko", rate: int = 140) -> bytes:
    """A synthetic caller's utterance: espeak-ng, resampled to 8 kHz 16-bit mono PCM."""
    import subprocess
    import tempfile
    import wave

    import numpy as np
    import soxr

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            return soxr.resample(pcm, w.getframerate(), 8000).astype("<i2").tobytes()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def report(name: str, rows: list[tuple[str, Any]], data: dict[str, Any]) -> Path:
    width = max(len(label) for label, _ in rows)
    print(f"\n{name}")
    print("-" * (width + 16))
    for label, value in rows:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{label:<{width}}  {shown:>12}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    data = {**data, "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    print(f"-> {path.relative_to(OUT.parent.parent)}")
    return path
