"""What each turn did live and the labels that come for free (pure: no archive, no I/O)."""

from __future__ import annotations

from ivr.records.call import Outcome
from ivr.voice.training.labels import archive_rows, read_turns
from tests.unit.voice.training.builders import call, failed_then_key, pressed, said


def test_speech_failed_then_a_key_labels_the_failed_turn_with_the_keys_intent() -> None:
    record = failed_then_key(text="자나 조회", intent="balance", key="1")
    reads = read_turns(record)
    assert [r.outcome for r in reads] == ["no_match", "key"]
    assert [r.failed for r in reads] == [True, False]
    assert (reads[0].label, reads[0].label_source) == ("balance", "key")
    assert reads[0].next_step == "pressed 1: balance"
    assert reads[1].label is None  # the key turn itself is not a failure


def test_two_misses_then_a_key_label_both_misses() -> None:
    record = call(said("menu", "어"), said("menu", "음"), pressed("menu", "3", "loan"), intent="loan", queue="loans")
    reads = read_turns(record)
    assert [(r.label, r.label_source) for r in reads] == [("loan", "key"), ("loan", "key"), (None, None)]
    assert reads[0].next_step == "said “음”: not understood"


def test_a_key_at_another_question_labels_nothing() -> None:
    record = call(said("menu", "어"), pressed("cards", "1", "lost_card"), intent="lost_card", queue="cards")
    reads = read_turns(record)
    assert reads[0].label is None and reads[0].failed


def test_a_rejected_confirmation_is_a_failure_and_a_correction_names_the_intent() -> None:
    rejected = call(said("menu", "대출", "loan", 0.6), said("menu", "아니요", None, kind="confirm"),
                    said("menu", "어"), outcome=Outcome.QUEUED, queue="general")
    assert [r.outcome for r in read_turns(rejected)][:2] == ["confirm_rejected", "answer"]
    assert read_turns(rejected)[0].failed and read_turns(rejected)[0].label is None
    corrected = call(said("menu", "대출", "loan", 0.6), said("menu", "아니요 잔액", "balance", 1.0, kind="confirm",
                                                           correction=True), intent="balance")
    first = read_turns(corrected)[0]
    assert (first.outcome, first.failed, first.label, first.label_source) == ("corrected", True, "balance",
                                                                             "correction")


def test_acted_confirmed_agent_and_hangup_are_told_apart() -> None:
    acted = call(said("menu", "잔액", "balance", 0.9), said("pin", "일이삼사", "pin_ok", 0.9), intent="pin_ok")
    assert [r.outcome for r in read_turns(acted)] == ["act", "act"]
    confirmed = call(said("menu", "대출", "loan", 0.6), said("menu", "네", "loan", 1.0, kind="confirm"), intent="loan")
    assert read_turns(confirmed)[0].outcome == "confirmed" and not read_turns(confirmed)[0].failed
    agent = call(pressed("menu", "0", "agent"), intent="agent", queue="general")
    assert read_turns(agent)[0].outcome == "agent"
    left = call(said("menu", ""), outcome=Outcome.ABANDONED)
    assert read_turns(left)[0].outcome == "hangup"
    assert read_turns(left)[0].next_step == "hung up"


def test_archive_rows_carry_the_call_and_the_turn_audio_rate() -> None:
    record = failed_then_key()
    archived, turns = archive_rows(record, "hotline", ivr_ended_at=record.started_at + 12)
    assert (archived.flow_id, archived.flow_version, archived.outcome, archived.self_served) == \
        ("hotline", 3, "self_service", True)
    assert archived.ivr_ended_at == record.started_at + 12
    assert [t.index for t in turns] == [1, 2]
    assert turns[0].audio_rate == 8000 and turns[1].audio_rate is None  # the key turn kept no audio
    assert turns[0].alternatives == (("자나 조회", 0.5),)
    asked = archive_rows(call(pressed("menu", "0", "agent"), intent="agent", queue="general"), "hotline")[0]
    assert asked.asked_person and not asked.left_in_ivr
