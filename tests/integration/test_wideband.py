"""HD voice through the real Asterisk: a wideband caller reaches the recognizer at 16 kHz, a phone line at 8 kHz.

The simulated wideband caller is a Local channel in slin16 (what a G.722 phone or an Opus app call is
to the dialplan); the controller dials the call's AudioSocket with c(slin16) for it. The proof is in
the audio the controller kept of the turn: its rate, and energy above 4 kHz, which no 8 kHz leg has.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ivr.config import Settings
from tests.integration.conftest import YES

pytestmark = pytest.mark.integration


def band_energy(path: Path) -> tuple[int, float, float]:
    """(rate, RMS of the whole turn, share of its energy above 4 kHz)."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return rate, float(np.sqrt(np.mean(samples ** 2))), float(spectrum[freqs > 4000].sum() / spectrum.sum())


# Synthetic speech the recognizer hears right at that rate however the call frames it (`recognizable`).
# espeak-ng's voices fare differently at 16 kHz than at 8 kHz: 상담원 연결 in the default voice is heard
# right at 8 kHz and mostly wrong at 16 kHz, 계좌 이체 in ko+f2 at 150 words a minute the other way round.
@pytest.mark.parametrize(("rate", "said", "voice", "intent", "queue"), [
    (16000, "계좌 이체", {"voice": "ko+f2", "rate": 150}, "transfer", "payments"),
    (8000, "상담원 연결", {}, "agent", "general"),
])
async def test_the_caller_is_heard_at_the_rate_of_their_leg(call, say, recognizable, live_stack: Settings,
                                                            rate: int, said: str, voice: dict[str, object],
                                                            intent: str, queue: str) -> None:
    spoken = say(said, **voice)
    recognizable(spoken, said, rate)
    record = await call(audio=[spoken], dtmf=[YES], rate=rate)  # YES: should the engine ask "…, right?"
    assert record["heard_at_hz"] == rate
    assert (record["turns"][0]["transcript"], record["intent"], record["queue"]) == (said, intent, queue)
    heard_rate, rms, high_share = band_energy(live_stack.recordings_dir / record["turns"][0]["audio"])
    assert heard_rate == rate
    assert rms > 300, f"the turn's audio is near silence (RMS {rms:.0f})"
    if rate == 16000:
        # What the caller sent above 4 kHz arrives (a leg transcoded through 8 kHz anywhere would have none).
        _, _, sent_share = band_energy(spoken)
        assert sent_share > 0.002
        assert high_share > 0.5 * sent_share, f"{high_share:.4f} of the energy above 4 kHz, {sent_share:.4f} sent"
    else:
        assert high_share == 0.0  # a phone line has no spectrum above 4 kHz at all
