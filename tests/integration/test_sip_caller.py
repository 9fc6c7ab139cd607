"""`ivr call --sip`: a pyVoIP phone registered as the simulator's extension calls the hotline.

Exercises what Local channels skip: PJSIP registration and digest auth, the INVITE
through [sim-phone], ulaw RTP into AudioSocket/Vosk, and RFC 4733 DTMF.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from ivr.config import Settings
from ivr.sim.simulator import SimulationError
from ivr.sim.sip_caller import SipCaller, ulaw_encode
from tests.integration.conftest import YES

pytestmark = pytest.mark.integration


def sip_call(settings: Settings, caller: str, audio: list[Any] | None = None, dtmf: list[str] | None = None,
             **kwargs: Any) -> dict[str, Any]:
    return SipCaller(settings).run(caller, audio or [], dtmf or [], **kwargs)


def pyvoip_threads() -> list[threading.Thread]:
    names = ("SIP Recieve", "SIP Register", "RTP Receiver", "RTP Transmitter")
    return [t for t in threading.enumerate() if t.name.startswith(names) and t.is_alive()]


def test_spoken_korean_over_sip_reaches_general_queue(live_stack: Settings, say, recognizable) -> None:  # type: ignore[no-untyped-def]
    recognizable(say("상담원 연결"), "상담원 연결")
    record = sip_call(live_stack, "010-5555-0202", [say("상담원 연결")], [YES])  # YES: should a confirmation come
    assert record["channel"].startswith(f"PJSIP/{live_stack.sim_extension}-")
    assert record["call_id"] and not record["call_id"].startswith("sim-")
    assert record["caller"] == "01055550202"  # presented through [sim-phone], not the phone's 9001
    turn = record["turns"][0]
    # G.711 ulaw, unlike the Local simulator's 16-bit audio, can make Vosk prepend a grammar word
    # ("아뇨 상담원 연결" with the negations in the main menu's grammar): the phrase must be there.
    assert "상담원 연결" in turn["transcript"]
    assert turn["intent"] == "agent"
    assert (record["queue"], record["outcome"]) == ("general", "queued")


def test_rfc4733_dtmf_over_sip_reaches_cards(live_stack: Settings) -> None:
    record = sip_call(live_stack, "01055550303", dtmf=["2"])
    assert record["channel"].startswith(f"PJSIP/{live_stack.sim_extension}-")
    assert record["turns"][0]["dtmf"] == "2"
    assert record["path"] == ["main_menu", "to_cards"]
    assert (record["queue"], record["outcome"]) == ("cards", "queued")


def test_concurrent_sip_calls_each_follow_their_own_channel(live_stack: Settings, say, recognizable) -> None:  # type: ignore[no-untyped-def]
    """Two phones on the same extension at once: each learns its call by its SIP Call-ID."""
    transfer = say("계좌 이체", voice="ko+f1", rate=140)  # heard right however framed (test_navigation.TRANSFER_VOICE)
    recognizable(transfer, "계좌 이체")
    with ThreadPoolExecutor(2) as pool:
        payments = pool.submit(sip_call, live_stack, "01055550404", [transfer], [YES])
        cards = pool.submit(sip_call, live_stack, "01055550505", None, ["2"])
        first, second = payments.result(timeout=90), cards.result(timeout=90)
    assert first["call_id"] != second["call_id"]
    assert (first["caller"], first["queue"]) == ("01055550404", "payments")
    assert "계좌 이체" in first["turns"][0]["transcript"]
    assert (second["caller"], second["queue"]) == ("01055550505", "cards")


def test_refused_registration_is_a_clear_error(live_stack: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"IVR_SIP_PASSWORD_{live_stack.sim_extension}", "not-the-password")
    with pytest.raises(SimulationError, match=r"SIP registration of extension \d+ .* failed \(401 Unauthorized\)"):
        sip_call(live_stack, "01055550606", dtmf=["2"])


def test_refused_invite_is_a_clear_error(live_stack: Settings) -> None:
    settings = live_stack.model_copy(update={"hotline_number": "7777"})  # no such extension in [sim-phone]
    with pytest.raises(SimulationError, match=r"refused the SIP call to 7777\*01055550707 .*404 Not Found"):
        sip_call(settings, "01055550707", dtmf=["2"])


def test_phone_threads_end_with_the_call(live_stack: Settings) -> None:
    sip_call(live_stack, "01055550808", dtmf=["2"])
    for thread in pyvoip_threads():
        thread.join(timeout=2)
    assert pyvoip_threads() == []


def test_ulaw_encoder_is_g711() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    samples = np.arange(-32768, 32768, dtype="<i2")
    assert ulaw_encode(samples) == audioop.lin2ulaw(samples.tobytes(), 2)
