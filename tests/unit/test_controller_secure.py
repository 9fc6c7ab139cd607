"""The controller's recording pause for secure_digits nodes: AMI MixMonitorMute in both directions, with IVR_SECURE
set for exactly as long as a mute may be on (the dialplan resumes a recording the controller could not)."""

from __future__ import annotations

from typing import Any

from ivr.controller import AmiRecordingPause
from ivr.records.call import CallRecord
from ivr.telephony.ami import AmiError


class FakeAmi:
    def __init__(self, failing: str = "") -> None:
        self.sent: list[tuple[str, ...]] = []
        self.failing = failing

    async def action(self, action: dict[str, Any], timeout: float = 10.0) -> Any:
        name = action["Action"]
        if name == self.failing:
            raise AmiError(f"AMI {name} failed: Cannot set mute flag", "Error")
        self.sent.append((name, *(str(action[k]) for k in ("Variable", "Value", "Direction", "State") if k in action)))
        return {"Response": "Success"}


CALL = CallRecord(call_id="1700.1", caller="01012345678", channel="PJSIP/trunk-00000001")


async def test_pause_sets_the_flag_then_mutes_both_ways_and_resume_undoes_it_in_reverse():
    ami = FakeAmi()
    pause = AmiRecordingPause(ami)  # type: ignore[arg-type]
    assert await pause.pause(CALL) and await pause.resume(CALL)
    assert ami.sent == [("Setvar", "IVR_SECURE", "1"), ("MixMonitorMute", "both", "1"),
                        ("MixMonitorMute", "both", "0"), ("Setvar", "IVR_SECURE", "")]


async def test_a_mute_that_fails_is_no_pause():
    ami = FakeAmi(failing="MixMonitorMute")
    assert not await AmiRecordingPause(ami).pause(CALL)  # type: ignore[arg-type]
    # The flag stays set: if a mute did happen after all, the dialplan restarts the recording.
    assert ami.sent == [("Setvar", "IVR_SECURE", "1")]


async def test_an_unmute_that_fails_leaves_the_flag_for_the_dialplan():
    ami = FakeAmi()
    pause = AmiRecordingPause(ami)  # type: ignore[arg-type]
    assert await pause.pause(CALL)
    ami.failing = "MixMonitorMute"
    assert not await pause.resume(CALL)
    assert ami.sent[-1] == ("MixMonitorMute", "both", "1") and ("Setvar", "IVR_SECURE", "") not in ami.sent


async def test_no_channel_no_pause():
    ami = FakeAmi()
    assert not await AmiRecordingPause(ami).pause(CallRecord(call_id="x", caller=""))  # type: ignore[arg-type]
    assert ami.sent == []
