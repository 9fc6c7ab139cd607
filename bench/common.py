"""Shared benchmark output: a table on screen, JSON under bench/out/."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def spoken(text: str, rate: int, voice: str = "ko", words_per_minute: int = 140) -> bytes:
    """A synthetic caller's utterance: espeak-ng, resampled (soxr, tts.pcm) to `rate` 16-bit mono PCM."""
    import subprocess
    import tempfile
    import wave

    import numpy as np

    from tts.pcm import to_pcm

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            return to_pcm(pcm, w.getframerate(), rate)


def spoken_8k(text: str, voice: str = "ko", rate: int = 140) -> bytes:
    """A synthetic caller's utterance: espeak-ng, resampled to 8 kHz 16-bit mono PCM."""
    return spoken(text, 8000, voice, rate)


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


def bar_chart(path: Path, title: str, bars: list[tuple[str, float]], unit: str,
              line: tuple[float, str] | None = None) -> Path:
    """A small bar chart (matplotlib, headless) written to ``path`` (.svg or .png); returns the path.

    ``bars``: (label, value) left to right; ``line``: an optional dashed reference (value, label), e.g. a target.
    """
    import matplotlib

    matplotlib.use("Agg")  # no screen on a server
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.8, 3.6))
    try:
        labels, values = zip(*bars, strict=True) if bars else ((), ())
        drawn = axes.bar(labels, values, color="#4878a8", width=0.6)
        axes.bar_label(drawn, fmt="%.1f")
        if line is not None:
            axes.axhline(line[0], color="#c0392b", linestyle="--", label=f"{line[1]} ({line[0]:g})")
            axes.legend(loc="lower right")
        axes.set_title(title)
        axes.set_ylabel(unit)
        axes.margins(y=0.15)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path


def rate_table(by_rate: dict[str, dict[str, Any]], rows: Sequence[tuple[str, str]]) -> str:
    """Figures per caller rate side by side: a column per rate ("8 kHz", "16 kHz"), a line per (label, key)
    of ``rows``; a figure a rate lacks shows as "-"."""
    rates = list(by_rate)
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':<{width}}" + "".join(f"{int(rate) // 1000:>9} kHz" for rate in rates)]
    lines.append("-" * len(lines[0]))
    for label, key in rows:
        cells = [by_rate[rate].get(key) for rate in rates]
        lines.append(f"{label:<{width}}" + "".join(f"{'-' if c is None else str(c):>13}" for c in cells))
    return "\n".join(lines)
