"""The secure_digits node: the recording paused for exactly the entry and resumed on every way out, the digits only
to the verifier, nothing of them in the record. The real navigator over the text simulation's line."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest

from ivr.privacy.cards import SecretKind
from ivr.privacy.verifier import Verdict, demo_verify
from ivr.records.call import CallRecord
from ivr.voice.flow import load_flow
from ivr.voice.navigator import Decision, DecisionKind, Navigator
from ivr.voice.simulation import TextLine, TextSpeech, _fast, parse_inputs
from ivr.voice.validation import validate_text

FLOW = Path(__file__).resolve().parents[4] / "dialplans" / "hotline.yaml"
CARD = "4111111111111111"


class FakePause:
    """Records pauses and resumes; can refuse either."""

    def __init__(self, pause_ok: bool = True, resume_ok: bool = True) -> None:
        self.log: list[str] = []
        self.pause_ok, self.resume_ok = pause_ok, resume_ok

    async def pause(self, call: CallRecord) -> bool:
        self.log.append("pause")
        return self.pause_ok

    async def resume(self, call: CallRecord) -> bool:
        self.log.append("resume")
        return self.resume_ok


async def walk(inputs: list[str], pause: FakePause, verify=demo_verify, waits: bool = False  # type: ignore[no-untyped-def]
               ) -> tuple[Decision, CallRecord, list[str]]:
    """`waits`: once the inputs are used up the caller stays on the line without a key (at the node's own pace)."""
    flow = load_flow(FLOW) if waits else _fast(load_flow(FLOW))
    call = CallRecord(call_id="secure-test", caller="01099990000", channel="Local/s@sim-inbound-1;2")

    async def never(_step: object) -> str | None:
        await asyncio.Event().wait()
        return None

    line = TextLine(parse_inputs(inputs), call, flow, ask=never if waits else None)
    speech = TextSpeech(line, call.language)
    verified: list[str] = []

    async def spy(what: SecretKind, digits: str) -> Verdict:
        verified.append(digits)
        return await verify(what, digits)

    try:
        with tempfile.TemporaryDirectory() as recordings:
            navigator = Navigator(flow, speech, Path(recordings), on_listen=line.on_listen, on_turn=line.on_turn,
                                  verify=spy, recording=pause)
            decision = await navigator.run(call, line)  # type: ignore[arg-type]
    finally:
        speech.executor.shutdown(wait=False)
    return decision, call, verified


def assert_nothing_kept(call: CallRecord) -> None:
    text = json.dumps(call.to_dict(), ensure_ascii=False)
    assert CARD not in text and CARD[:12] not in text
    secure = [t for t in call.turns if t.kind == "secure"]
    assert secure and all(t.dtmf == "" and t.transcript == "" and t.audio is None for t in secure)


async def test_verified_card_goes_on_with_only_yes_and_last_four_kept():
    pause = FakePause()
    decision, call, verified = await walk(["key:7", f"key:{CARD}#", "key:9"], pause)
    assert pause.log == ["pause", "resume"] and verified == [CARD]
    assert call.path == ["main_menu", "activate_card", "card_activated", "after_balance", "goodbye"]
    [span] = call.secure_spans
    assert (span["node"], span["what"], span["verified"], span["last4"]) == ("activate_card", "card", True, "1111")
    assert span["started_at"] <= span["ended_at"]
    assert_nothing_kept(call)


async def test_refused_twice_goes_to_failed_exit():
    pause = FakePause()
    decision, call, verified = await walk(["key:7", "key:4111111111111112#", "key:5555555555554440#"], pause,
                                          verify=lambda w, d: _answer(False))
    # Luhn failures never reach the verifier: 4111...2 is refused here, 5555...0 too.
    assert verified == [] and pause.log == ["pause", "resume"]
    assert (decision.kind, decision.queue, call.path[-1]) == (DecisionKind.QUEUE, "general", "to_general")
    assert call.secure_spans[0]["verified"] is None
    assert any("Luhn" in n for n in call.notes) and not any("4111" in n for n in call.notes)


async def _answer(verified: bool | None, problem: str = "") -> Verdict:
    return Verdict(verified, problem)


async def test_verifier_says_no():
    pause = FakePause()
    decision, call, verified = await walk(["key:7", f"key:{CARD}#", f"key:{CARD}#"], pause,
                                          verify=lambda w, d: _answer(False))
    assert verified == [CARD, CARD] and call.secure_spans[0]["verified"] is False
    assert call.secure_spans[0]["last4"] is None and call.path[-1] == "to_general"
    assert_nothing_kept(call)


@pytest.mark.parametrize("problem", ["the card verifier did not answer within 3 s",
                                     "the card verifier's answer is not JSON"])
async def test_verifier_timeout_or_garbage_tells_the_caller_and_offers_a_person(problem):
    pause = FakePause()
    decision, call, verified = await walk(["key:7", f"key:{CARD}#"], pause, verify=lambda w, d: _answer(None, problem))
    assert pause.log == ["pause", "resume"] and verified == [CARD]
    assert (decision.kind, decision.queue) == (DecisionKind.QUEUE, "general")
    assert call.turns[-1].intent == "unavailable" and call.secure_spans[0]["verified"] is None
    assert any(problem in n for n in call.notes)
    assert_nothing_kept(call)


async def test_a_verifier_that_raises_is_no_verdict_and_its_message_is_not_kept():
    async def raises(what: SecretKind, digits: str) -> Verdict:
        raise RuntimeError(f"boom {digits}")

    pause = FakePause()
    decision, call, verified = await walk(["key:7", f"key:{CARD}#"], pause, verify=raises)
    assert pause.log == ["pause", "resume"] and call.path[-1] == "to_general"
    assert any("RuntimeError" in n for n in call.notes)
    assert_nothing_kept(call)


async def test_no_keys_goes_to_no_input_exit():
    pause = FakePause()
    decision, call, _ = await walk(["key:7", "silence", "silence"], pause)
    assert pause.log == ["pause", "resume"] and call.turns[-1].intent == "no_input"
    assert call.path[-1] == "to_general"


async def test_star_reaches_a_person_and_zero_is_a_digit():
    pause = FakePause()
    decision, call, _ = await walk(["key:7", "key:*"], pause)
    assert pause.log == ["pause", "resume"]
    assert (decision.kind, decision.queue, decision.reason) == (DecisionKind.QUEUE, "general",
                                                               "caller asked for a person")
    _, _, verified = await walk(["key:7", "key:4000000000000002#", "key:9"], FakePause())
    assert verified == ["4000000000000002"]


async def test_hang_up_mid_entry_resumes_and_ends():
    pause = FakePause()
    decision, call, verified = await walk(["key:7", "hangup"], pause)
    assert pause.log == ["pause", "resume"] and decision.caller_left and verified == []


async def test_recording_not_paused_means_nothing_collected():
    pause = FakePause(pause_ok=False)
    decision, call, verified = await walk(["key:7", f"key:{CARD}#"], pause)
    assert pause.log == ["pause"] and verified == [] and call.secure_spans == []
    assert call.path[-1] == "to_general" and any("could not be paused" in n for n in call.notes)


async def test_recording_not_resumed_is_noted_for_the_dialplan():
    pause = FakePause(resume_ok=False)
    decision, call, _ = await walk(["key:7", f"key:{CARD}#", "key:9"], pause)
    assert pause.log == ["pause", "resume"] and any("dialplan resumes it" in n for n in call.notes)


async def test_controller_failure_mid_entry_still_resumes():
    """The navigator's task cancelled (the controller stopping, the call's task failing) while keys are awaited."""
    pause = FakePause()
    task = asyncio.create_task(walk(["key:7"], pause, waits=True))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if pause.log:
            break
    assert pause.log == ["pause"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pause.log == ["pause", "resume"]


def test_the_validator_knows_the_node():
    text = FLOW.read_text(encoding="utf-8")
    assert validate_text(text, str(FLOW)).ok
    broken = text.replace("    what: card\n", "    what: cvv\n")
    report = validate_text(broken, str(FLOW))
    assert not report.ok and any("what" in p.format() for p in report.errors)
    loose = text.replace("    on_unavailable: to_general\n", "    on_unavailable: goodbye\n")
    assert any("on_unavailable" in p.format() and "person" in p.format() for p in validate_text(loose).warnings)
    missing = text.replace("    on_no_input: to_general\n", "")
    assert any("on_no_input" in p.format() for p in validate_text(missing).errors)
