"""Acoustic replay (ivr.voice.training.replay) with a small fake recognizer at the boundary, and once with Vosk."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from asr import Alternative, Result
from ivr.audio import write_wav
from ivr.records.archive import ArchivedTurn
from ivr.voice.flow import FlowError
from ivr.voice.training.replay import ReplayTurn, leads_to_self_service, parse_since, replay, replay_turns

ROOT = Path(__file__).resolve().parents[4]
TEXT = (ROOT / "dialplans" / "hotline.yaml").read_text(encoding="utf-8")
# The candidate: "와 유언" is also a way to ask for a transfer (what the model hears for some callers).
TRANSFER = "ko: [계좌 이체, 송금, 착오 송금, 이체 취소]"
CANDIDATE = TEXT.replace(TRANSFER, TRANSFER[:-1] + ", 와 유언]")
assert CANDIDATE != TEXT


class FakeHearing:
    """Hears each recording as its file name says (stem "<words>_<n>"), if the grammar has it; else nothing."""

    def __init__(self) -> None:
        self.grammars: list[tuple[str, ...]] = []

    def hear(self, pcm: bytes, rate: int, phrases: Sequence[str], language: str) -> tuple[Result, frozenset[str]]:
        self.grammars.append(tuple(phrases))
        said = self.current.replace("-", " ")
        grammar = frozenset(phrases)
        if said not in grammar:
            return Result("", 0.0), grammar
        return Result(said, 1.0, [Alternative(said, 1.0)]), grammar

    current = ""


class NamedHearing(FakeHearing):
    def __init__(self, names: dict[int, str]) -> None:
        super().__init__()
        self.names = names

    def hear(self, pcm: bytes, rate: int, phrases: Sequence[str], language: str) -> tuple[Result, frozenset[str]]:
        self.current = self.names[len(pcm)]
        return super().hear(pcm, rate, phrases, language)


def voice(seconds: float, rate: int = 8000, tone: float = 220.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * tone * t) * 6000).astype("<i2").tobytes()


@pytest.fixture
def recorded(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Writes a turn recording whose fake hearing is ``said``; each has its own length (the fake's key)."""
    names: dict[int, str] = {}

    def _recorded(name: str, said: str) -> Path:
        pcm = bytes(1600) + voice(0.3 + 0.1 * len(names)) + bytes(1600)
        names[len(pcm)] = said
        path = tmp_path / f"{name}.wav"
        write_wav(path, pcm, 8000)
        return path

    _recorded.names = names  # type: ignore[attr-defined]
    return _recorded


def turn(key: str, audio: Path | None, truth: str | None, live_intent: str | None, live_action: str, *,
         labeled: bool = True, confirmed: bool = False, contained: bool = False, node: str = "main_menu") -> ReplayTurn:
    return ReplayTurn(key=key, call_id=key, audio=audio, node=node, language="ko", truth=truth, labeled=labeled,
                      live_intent=live_intent, live_action=live_action, confirmed_live=confirmed,
                      contained_live=contained)


def test_fixed_broken_now_act_and_containment(recorded, tmp_path: Path) -> None:
    turns = [
        turn("fails-live", recorded("a", "와 유언"), "transfer", None, "reprompt"),        # fixed by the new phrase
        turn("right-live", recorded("b", "상담원 연결"), "agent", "agent", "act", labeled=False),  # stays right
        turn("confirmed", recorded("c", "계좌 이체"), "transfer", "transfer", "confirm", labeled=False,
             confirmed=True),                                                             # now acts
        turn("balance", recorded("d", "잔액 조회"), "balance", "balance", "act", contained=True, labeled=False),
        turn("unknown", recorded("e", "민원"), None, None, "reprompt"),                     # no truth: not judged
        turn("missing", tmp_path / "gone.wav", "loan", None, "reprompt"),
        turn("no-audio", None, "loan", None, "reprompt"),
    ]
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    turns.append(turn("corrupt", tmp_path / "corrupt.wav", "loan", None, "reprompt"))
    hearing = NamedHearing(recorded.names)
    seen: list[tuple[int, int]] = []
    result = replay(CANDIDATE, turns, hearing=hearing, progress=lambda done, total: seen.append((done, total)))
    assert (result.turns, result.fixed, result.broken, result.now_act) == (5, 1, 0, 1)
    assert result.fixed_turns == ["fails-live"] and result.judged == 4 and result.labeled == 1
    assert result.by_label["transfer"] == {"transfer": 2}
    assert result.by_live["reprompt:-"] == {"act:transfer": 1, "act:complaint": 1}
    # missing and corrupt audio: counted and named, not a crash
    assert result.unreadable == 3
    assert {f["turn"]: f["error"].split(" ")[0] for f in result.unreadable_files} == \
        {"missing": "missing", "no-audio": "no", "corrupt": "unreadable"}
    assert (result.containment_before, result.containment_after) == (0.2, 0.2)
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    assert all("와 유언" in g for g in hearing.grammars)  # the candidate's grammar, not the live one
    keys = result.to_dict()
    assert {"turns", "fixed", "broken", "now_act", "containment_before", "containment_after"} <= set(keys)


def test_a_candidate_without_the_phrase_breaks_what_it_fixed_and_a_lost_self_service_costs_containment(recorded):
    turns = [turn("was-right", recorded("a", "잔액 조회"), "balance", "balance", "act", contained=True),
             turn("still", recorded("b", "상담원 연결"), "agent", "agent", "act")]
    without = TEXT.replace("ko: [잔액 조회, 잔액 확인, 잔고 조회, 잔고 확인, 통장 잔액, 잔액]", "ko: [잔액 확인]")
    result = replay(without, turns, hearing=NamedHearing(recorded.names))
    assert (result.fixed, result.broken, result.broken_turns) == (0, 1, ["was-right"])
    assert (result.containment_before, result.containment_after) == (0.5, 0.0)


def test_a_label_naming_an_intent_the_candidate_lacks_counts_against_it(recorded):
    gone = turn("labeled-currency", recorded("a", "와 유언"), "currency", None, "reprompt")
    result = replay(CANDIDATE, [gone], hearing=NamedHearing(recorded.names))
    assert (result.fixed, result.broken, result.by_label) == (0, 0, {"currency": {"transfer": 1}})


def test_a_candidate_that_is_no_flow_is_refused_before_any_work():
    with pytest.raises(FlowError):
        replay("id: hotline\n", [], hearing=FakeHearing())


def test_archived_turns_become_replay_turns(tmp_path: Path):
    def archived(index: int, outcome: str, *, label: str | None = None, intent: str | None = None,
                 kind: str = "ask", failed: bool = False) -> ArchivedTurn:
        return ArchivedTurn("c1", index, "hotline", 3, "main_menu", kind, "ko", None, "heard", (), intent, 0.5, 0.5,
                            "", f"turns/c1-{index}.wav", 8000, 1.0 + index, None, None, outcome, failed, "", "queued",
                            label, "key" if label else None, None, None, 7 if failed else None)

    rows = [archived(1, "no_match", label="loan", failed=True), archived(5, "no_match", failed=True),
            archived(2, "key", intent="loan"), archived(3, "confirmed", intent="loan"),
            archived(4, "answer", kind="confirm"), archived(6, "corrected", intent="balance", label="loan")]
    turns = replay_turns(rows, tmp_path)
    assert [t.key for t in turns] == ["c1#1", "c1#5", "c1#3", "c1#6"]
    first, retry, confirmed, corrected = turns
    assert (first.truth, first.labeled, first.live_action, first.audio) == ("loan", True, "reprompt",
                                                                            tmp_path / "turns/c1-1.wav")
    assert (confirmed.truth, confirmed.labeled, confirmed.confirmed_live) == ("loan", False, True)
    assert retry.corrections and not first.corrections
    assert (corrected.live_intent, corrected.live_action, corrected.truth) == ("balance", "confirm", "loan")


def test_helpers():
    from ivr.voice.flow import parse_flow

    flow = parse_flow(TEXT)
    assert leads_to_self_service(flow, "main_menu", "balance") and not leads_to_self_service(flow, "main_menu", "loan")
    assert parse_since("30d") == 30 * 86400 and parse_since("12h") == 43200 and parse_since("2") == 172800
    with pytest.raises(ValueError, match="30d"):
        parse_since("soon")


def test_real_vosk_on_a_couple_of_recordings(tmp_path: Path):
    """The pool and the live recognizer's settings, end to end: a synthetic 상담원 연결 (the phrase the
    integration tests rely on in this voice) acts on the agent intent; a missing file is named."""
    source = tmp_path / "agent-src.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(source), "상담원 연결"], check=True)
    from ivr.sim.simulator import to_caller_audio

    to_caller_audio(source, tmp_path / "agent.wav", 8000)
    turns = [turn("agent", tmp_path / "agent.wav", "agent", None, "reprompt"),
             turn("missing", tmp_path / "none.wav", "agent", None, "reprompt")]
    result = replay(TEXT, turns, workers=1)
    assert (result.turns, result.unreadable, result.workers) == (1, 1, 1)
    assert result.by_label == {"agent": {"agent": 1}} and result.fixed == 1
    assert result.audio_s > 1.0
