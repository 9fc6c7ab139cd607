"""The archive of finished calls (SQLite in a temporary folder): upserts, labels, clusters, paging, races."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ivr.records.archive import Archive, ClusterChanged, NoSuchCluster, NoSuchTurn, heard_signature, heard_similarity
from ivr.records.call import Outcome
from ivr.voice.training.labels import archive_rows
from tests.unit.voice.training.builders import call, failed_then_key, said


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive.sqlite3")


def test_a_call_written_twice_is_completed_not_duplicated(archive: Archive) -> None:
    record = failed_then_key(queue=None)
    archive.record_call(*archive_rows(record, "hotline", ivr_ended_at=record.started_at + 10))
    record.ended_at = record.started_at + 30
    archive.record_call(*archive_rows(record, "hotline", ivr_ended_at=record.started_at + 25))
    [stored] = archive.calls(0)
    assert stored.ended_at == record.started_at + 30
    assert stored.ivr_ended_at == record.started_at + 10  # the IVR's end as first written
    assert len(archive.turns(0)) == 2
    assert [t.call_id for t in archive.turns(0, failed_only=True)] == [record.call_id]


def test_a_trainers_label_survives_a_later_write_and_a_suggestion(archive: Archive) -> None:
    record = failed_then_key(intent="balance")
    archive.record_call(*archive_rows(record, "hotline"))
    archive.set_label(record.call_id, 1, "loan", dialect="gyeongsang", by="kim")
    archive.record_call(*archive_rows(record, "hotline"))  # the hangup's write: suggests balance again
    turn = archive.turn(record.call_id, 1)
    assert (turn.label, turn.label_source, turn.label_dialect, turn.labeled_by) == ("loan", "trainer", "gyeongsang",
                                                                                     "kim")
    assert turn.confirmed
    with pytest.raises(NoSuchTurn):
        archive.set_label(record.call_id, 9, "loan")


def test_a_disposition_reason_labels_failed_turns_before_or_after_the_call_is_archived(archive: Archive) -> None:
    early = call(said("menu", "어"), said("menu", "음"), queue="general", outcome=Outcome.ANSWERED)
    archive.set_disposition(early.call_id, "resolved", "complaint", at=time.time())
    archive.record_call(*archive_rows(early, "hotline"))
    late = call(said("menu", "어"), queue="general", outcome=Outcome.ANSWERED)
    archive.record_call(*archive_rows(late, "hotline"))
    archive.set_disposition(late.call_id, "resolved", "loan")
    labels = {(t.call_id, t.index): (t.label, t.label_source) for t in archive.turns(0, labeled_only=True)}
    assert labels == {(early.call_id, 1): ("complaint", "disposition"),
                      (early.call_id, 2): ("complaint", "disposition"), (late.call_id, 1): ("loan", "disposition")}
    assert archive.call(early.call_id).disposition == "resolved"  # type: ignore[union-attr]
    # A key is stronger evidence than a disposition: it replaces the suggestion, a disposition never replaces it.
    keyed = failed_then_key(intent="balance")
    archive.record_call(*archive_rows(keyed, "hotline"))
    archive.set_disposition(keyed.call_id, "resolved", "loan")
    assert archive.turn(keyed.call_id, 1).label == "balance"


def test_failed_turns_heard_alike_share_a_cluster_and_others_do_not(archive: Archive) -> None:
    rows = [archive_rows(failed_then_key(text=text), "hotline")
            for text in ("자나 조회", "자나 조회", "자나 조회 요", "대출 상담")]
    for row in rows:
        archive.record_call(*row)
    clusters = {t.transcript: t.cluster for t in archive.turns(0, failed_only=True)}
    assert clusters["자나 조회"] == clusters["자나 조회 요"] != clusters["대출 상담"]
    total, page = archive.clusters(0)
    assert total == 2 and [c.size for c in page] == [3, 1]
    assert (page[0].heard, page[0].suggested, page[0].suggested_source) == ("자나 조회", "balance", "key")
    assert heard_similarity(heard_signature(""), heard_signature("")) == 1.0
    assert heard_similarity(heard_signature(""), heard_signature("잔액")) == 0.0


def test_labeling_a_cluster_needs_the_revision_it_was_decided_on(archive: Archive) -> None:
    for _ in range(3):
        archive.record_call(*archive_rows(failed_then_key(), "hotline"))
    [summary] = archive.clusters(0)[1]
    assert archive.label_cluster(summary.id, "loan", summary.revision, by="kim") == 3
    with pytest.raises(ClusterChanged, match="changed since you saw it"):
        archive.label_cluster(summary.id, "balance", summary.revision, by="lee")
    assert {t.label for t in archive.turns(0, failed_only=True)} == {"loan"}  # nothing of lee's written
    with pytest.raises(NoSuchCluster):
        archive.label_cluster(999, "loan", 0)


def test_two_trainers_at_once_one_wins_whole_and_the_other_gets_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    archive = Archive(path)
    archive.record_calls([archive_rows(failed_then_key(at=1_800_000_000.0 + i), "hotline") for i in range(2000)])
    [summary] = archive.clusters(0)[1]
    results: dict[str, object] = {}

    def label(who: str, intent: str) -> None:
        try:
            results[who] = Archive(path).label_cluster(summary.id, intent, summary.revision, by=who)
        except ClusterChanged as exc:
            results[who] = exc

    threads = [threading.Thread(target=label, args=(w, i)) for w, i in (("kim", "loan"), ("lee", "complaint"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [w for w, r in results.items() if r == 2000]
    lost = [w for w, r in results.items() if isinstance(r, ClusterChanged)]
    assert len(won) == 1 and len(lost) == 1
    labels = {(t.label, t.labeled_by) for t in archive.turns(0, failed_only=True)}
    assert labels == {({"kim": "loan", "lee": "complaint"}[won[0]], won[0])}  # never half of each


def test_a_50000_turn_cluster_is_paged_and_labeled_in_one_statement(archive: Archive) -> None:
    archive.record_calls([archive_rows(failed_then_key(at=1_800_000_000.0 + i), "hotline") for i in range(50_000)])
    [summary] = archive.clusters(0)[1]
    assert summary.size == 50_000
    page = archive.cluster_turns(summary.id, offset=100, limit=20)
    assert len(page) == 20 and page[0].started_at > page[-1].started_at  # newest first
    started = time.perf_counter()
    assert archive.label_cluster(summary.id, "balance", summary.revision, by="kim") == 50_000
    assert time.perf_counter() - started < 10  # generous: one UPDATE, not 50,000 round trips
    assert archive.cluster(summary.id).labeled == 50_000


def test_turns_can_be_read_by_window_flow_and_in_batches(archive: Archive) -> None:
    for i in range(5):
        archive.record_call(*archive_rows(failed_then_key(at=1_800_000_000.0 + i * 100), "hotline"))
    assert len(archive.turns(1_800_000_200.0)) == 6  # 3 calls x 2 turns
    assert len(archive.turns(0, until=1_800_000_100.0)) == 2
    assert archive.turns(0, flow_id="other") == []
    assert len(list(archive.iter_turns(0, batch=3))) == 10
    assert len(archive.turns(0, limit=4)) == 4
