"""Sweep espeak-ng voices, rates and phone-channel effects over the Korean demo grammar.

Renders each demo phrase with PromptRenderer (8 kHz), passes it through a simulated channel
(clean, 300-3400 Hz band-pass, 300 Hz high-pass, G.711 mu-law, band-pass + mu-law),
streams it in 20 ms chunks into a grammar-mode TurnRecognizer, and prints which phrases come back
right plus CPU seconds per audio second.

    .venv/bin/python -m bench.asr_prompt_sweep --voices ko ko+f2 --rates 130 150 170
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import vosk

from asr import Result, TurnRecognizer, build_grammar, default_registry
from tts import PromptRenderer

DEMO_PHRASES = ("잔액 조회", "카드 분실 신고", "대출 상담", "계좌 이체", "비밀번호 변경", "상담원 연결")
CHUNK_BYTES = 320  # 20 ms at 8 kHz, 16-bit


def band_pass(pcm: bytes, low: float = 300.0, high: float = 3400.0, rate: int = 8000) -> bytes:
    """Crude telephone channel: zero every FFT bin outside low..high Hz."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    out = np.fft.irfft(spectrum, n=len(samples))
    return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()


def mu_law(pcm: bytes) -> bytes:
    """G.711 mu-law encode and decode, as on an Asterisk ulaw trunk (continuous approximation)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    mu = 255.0
    encoded = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127.0) / 127.0
    decoded = np.sign(encoded) * np.expm1(np.abs(encoded) * np.log1p(mu)) / mu
    return np.clip(np.round(decoded * 32768.0), -32768, 32767).astype("<i2").tobytes()


CHANNELS = {
    "clean": lambda pcm: pcm,
    "bp": band_pass,
    "hp": lambda pcm: band_pass(pcm, low=300.0, high=4000.0),
    "ulaw": mu_law,
    "bp+ulaw": lambda pcm: mu_law(band_pass(pcm)),
}


def recognize(recognizer: TurnRecognizer, pcm: bytes, trailing_silence: float = 0.6) -> Result:
    """Stream `pcm` plus some silence in 20 ms chunks and return the turn's result."""
    audio = pcm + bytes(int(trailing_silence * 8000) * 2)
    for offset in range(0, len(audio), CHUNK_BYTES):
        recognizer.feed(audio[offset : offset + CHUNK_BYTES])
    return recognizer.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voices", nargs="+", default=["ko"])
    parser.add_argument("--rates", nargs="+", type=int, default=[130, 140, 150, 160, 170])
    parser.add_argument("--channels", nargs="+", choices=sorted(CHANNELS), default=["clean", "bp"])
    parser.add_argument("--max-alternatives", type=int, default=3)
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    args = parser.parse_args()
    vosk.SetLogLevel(-1)
    model = default_registry().get("ko")
    grammar = build_grammar(DEMO_PHRASES, model)
    exact = dict.fromkeys(DEMO_PHRASES, 0)
    matched = dict.fromkeys(DEMO_PHRASES, 0)
    working: dict[str, list[str]] = {p: [] for p in DEMO_PHRASES}
    trials = 0
    cpu = audio = 0.0
    with tempfile.TemporaryDirectory() as cache:
        for voice in args.voices:
            for rate in args.rates:
                renderer = PromptRenderer(Path(cache), {"ko": voice}, rate=rate)
                for channel in args.channels:
                    row = []
                    for phrase in DEMO_PHRASES:
                        pcm = renderer.render_pcm(phrase, "ko")
                        pcm = CHANNELS[channel](pcm)
                        recognizer = TurnRecognizer(model, grammar, max_alternatives=args.max_alternatives)
                        result = recognize(recognizer, pcm)
                        cpu += recognizer.cpu_seconds
                        audio += recognizer.audio_seconds
                        exact[phrase] += result.text == phrase
                        matched[phrase] += result.phrase == phrase
                        if result.phrase == phrase:
                            working[phrase].append(f"{voice}@{rate}/{channel}")
                        mark = "OK" if result.text == phrase else ("ok" if result.phrase == phrase else "--")
                        row.append(f"{mark} {result.text or '∅'}({result.confidence:.2f})")
                    trials += 1
                    if not args.quiet:
                        print(f"{voice:9} {rate} {channel:7} | " + " | ".join(row))
    print(f"\nconfigurations: {trials}  (exact = best text; phrase = first n-best entry that is a phrase)")
    for phrase in DEMO_PHRASES:
        print(f"{phrase}: exact {exact[phrase]}/{trials}, phrase {matched[phrase]}/{trials}")
        if args.quiet:
            print("   ", " ".join(working[phrase]))
    print(f"grammar mode: {cpu / audio:.3f} CPU s per audio s ({audio:.0f} s of audio)")


if __name__ == "__main__":
    main()
