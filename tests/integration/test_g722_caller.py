"""`ivr call --sip --codec g722`: an HD voice phone (baresip, G.722) calls the hotline through PJSIP.

What neither the Local-channel simulator nor the pyVoIP phone (G.711 only) can show: a caller whose SIP
leg is G.722 stays wideband all the way to the recognizer. PJSIP answers in its own codec order, G.722
first (asterisk_conf/pjsip.conf), so Asterisk's channel for the caller is native g722, the controller
dials AudioSocket with c(slin16), and the turn audio it keeps is 16 kHz with the caller's high band in it.
A narrowband phone on the same stack is still heard at 8 kHz.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings
from ivr.sim.g722_caller import G722Caller
from ivr.sim.simulator import SimulationError, to_caller_audio
from tests.integration.conftest import YES
from tests.integration.test_wideband import band_energy

pytestmark = pytest.mark.integration


def g722_call(settings: Settings, caller: str, audio: list[Path] | None = None, dtmf: list[str] | None = None,
              codecs: tuple[str, ...] = ("g722",), **kwargs: Any) -> tuple[dict[str, Any], G722Caller]:
    phone = G722Caller(settings, codecs)
    return phone.run(caller, audio or [], dtmf or [], **kwargs), phone


def assert_gone(phone: G722Caller) -> None:
    """baresip stopped (and reaped) and its temporary folder removed."""
    assert phone.pid is not None and phone.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(phone.pid, 0)
    assert phone.work is not None and not phone.work.exists()


# Phrases the recognizer hears right at that rate however the call frames it (`recognizable`; which espeak
# voice suits which rate: tests/integration/test_wideband.py).
@pytest.mark.parametrize(("codecs", "native", "rate", "said", "voice", "intent", "queue"), [
    (("g722",), "(g722)", 16000, "계좌 이체", {"voice": "ko+f2", "rate": 150}, "transfer", "payments"),
    (("pcmu",), "(ulaw)", 8000, "상담원 연결", {}, "agent", "general"),
], ids=["g722", "pcmu"])
def test_speech_is_heard_at_the_rate_of_the_sip_leg(live_stack: Settings, say, recognizable,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path, codecs: tuple[str, ...], native: str, rate: int,
                                                    said: str, voice: dict[str, object], intent: str,
                                                    queue: str) -> None:
    spoken = say(said, **voice)
    recognizable(spoken, said, rate)
    record, phone = g722_call(live_stack, "010-5555-1212", [spoken], [YES], codecs=codecs)  # YES: a confirmation
    assert phone.native_format == native  # Asterisk's CHANNEL(audionativeformat) of the caller's channel
    assert record["channel"].startswith(f"PJSIP/{live_stack.sim_extension}-")
    assert record["caller"] == "01055551212"  # presented through [sim-phone]
    assert record["heard_at_hz"] == rate
    turn = record["turns"][0]
    assert (turn["transcript"], record["intent"], record["queue"], record["outcome"]) == (said, intent, queue,
                                                                                          "queued")
    heard_rate, rms, high_share = band_energy(live_stack.recordings_dir / turn["audio"])
    assert heard_rate == rate
    assert rms > 300, f"the turn's audio is near silence (RMS {rms:.0f})"
    if rate == 16000:
        # What the phone sent above 4 kHz arrives (G.722 codes 4-8 kHz with 2 bits a sample: coarsely, but 98 %
        # of this phrase's share measured), where a leg transcoded through 8 kHz anywhere would bring none.
        sent = tmp_path / "sent-16k.wav"
        to_caller_audio(spoken, sent, 16000)
        _, _, sent_share = band_energy(sent)
        assert sent_share > 0.002
        assert high_share > 0.5 * sent_share, f"{high_share:.4f} of the energy above 4 kHz, {sent_share:.4f} sent"
    else:
        assert high_share == 0.0  # a phone line has no spectrum above 4 kHz at all
    assert_gone(phone)


@pytest.mark.parametrize("codecs", [("g722",), ("pcmu", "g722")], ids=["g722-only", "prefers-g711"])
def test_rfc4733_dtmf_over_a_g722_leg_reaches_cards(live_stack: Settings, codecs: tuple[str, ...]) -> None:
    """Keys route a wideband caller; a phone preferring G.711 but offering G.722 too is answered in G.722."""
    record, phone = g722_call(live_stack, "01055551313", dtmf=["2"], codecs=codecs)
    assert phone.native_format == "(g722)"
    assert record["heard_at_hz"] == 16000
    assert record["turns"][0]["dtmf"] == "2"
    assert record["path"] == ["main_menu", "to_cards"]
    assert (record["queue"], record["outcome"]) == ("cards", "queued")
    assert_gone(phone)


def test_refused_registration_is_a_clear_error(live_stack: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"IVR_SIP_PASSWORD_{live_stack.sim_extension}", "not-the-password")
    phone = G722Caller(live_stack)
    with pytest.raises(SimulationError, match=r"SIP registration of extension \d+ .* failed \(401 Unauthorized\)"):
        phone.run("01055551414", [], ["2"])
    assert_gone(phone)


def test_refused_invite_is_a_clear_error(live_stack: Settings) -> None:
    settings = live_stack.model_copy(update={"hotline_number": "7777"})  # no such extension in [sim-phone]
    phone = G722Caller(settings)
    with pytest.raises(SimulationError, match=r"refused the SIP call to 7777\*01055551515 .*: 404 Not Found"):
        phone.run("01055551515", [], ["2"])
    assert_gone(phone)
