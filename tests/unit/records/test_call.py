"""Call records survive the JSON round trip that Redis and `ivr call --json` use."""

from __future__ import annotations

import json

from ivr.records.call import CallRecord, Outcome, Turn


def sample() -> CallRecord:
    record = CallRecord(call_id="1700000000.1", caller="+821012345678", channel="PJSIP/trunk-1",
                        customer="C-1", language="ko", started_at=100.0)
    record.path += ["main_menu", "to_cards"]
    record.turns.append(Turn(node="main_menu", transcript="카드 분실", confidence=0.91, intent="lost_card",
                             score=0.9, started_at=101.0, decided_at=103.5, audio="calls/1/turn1.wav"))
    record.turns.append(Turn(node="main_menu", dtmf="2", error="no speech", started_at=104.0))
    record.intent, record.queue, record.outcome = "lost_card", "cards", Outcome.QUEUED
    record.note("fallback: asked twice")
    record.ended_at = 130.0
    return record


def test_to_dict_is_plain_json() -> None:
    data = sample().to_dict()
    assert data["outcome"] == "queued"
    assert type(data["outcome"]) is str
    assert data["turns"][0] == {
        "node": "main_menu", "transcript": "카드 분실", "confidence": 0.91, "intent": "lost_card",
        "score": 0.9, "dtmf": "", "started_at": 101.0, "decided_at": 103.5, "audio": "calls/1/turn1.wav",
        "error": None, "kind": "ask", "language": "", "alternatives": [], "words": [], "dialect": None,
        "used_context": False, "correction": False, "barged_in": False, "speech_started_at": None,
        "speech_ended_at": None,
    }
    assert json.loads(json.dumps(data)) == data


def test_round_trip_with_turns_and_outcome() -> None:
    original = sample()
    restored = CallRecord.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert restored.outcome is Outcome.QUEUED
    assert all(isinstance(t, Turn) for t in restored.turns)
    assert restored.turns[1].dtmf == "2"


def test_round_trip_without_outcome_or_turns() -> None:
    original = CallRecord(call_id="x", caller="", started_at=1.0)
    data = original.to_dict()
    assert data["outcome"] is None
    assert data["turns"] == []
    assert CallRecord.from_dict(data) == original


def test_from_dict_ignores_unknown_keys_and_does_not_mutate_input() -> None:
    data = sample().to_dict()
    data["added_by_a_newer_version"] = True
    snapshot = json.dumps(data, sort_keys=True)
    restored = CallRecord.from_dict(data)
    assert restored == sample()
    assert json.dumps(data, sort_keys=True) == snapshot
