"""The recordings service: a MixMonitor file made a stereo WAV, hashed and indexed; playback checks and their access
log; retention with legal hold; a purge racing a playback; encryption at rest."""

from __future__ import annotations

import hashlib
import io
import time
import wave
from pathlib import Path

import pytest

from ivr.recordings.crypto import is_sealed, new_key, parse_key
from ivr.recordings.index import RecordingIndex, Search
from ivr.recordings.library import Damaged, Missing, NoRecording, Purged, RecordingLibrary
from ivr.recordings.manifest import Manifest
from tests.unit.recordings.builders import answered_call, call_dict, write_raw

DAY = 24 * 3600


def library(tmp_path: Path, key: bytes | None = None) -> RecordingLibrary:
    return RecordingLibrary(tmp_path / "recordings", RecordingIndex(tmp_path / "index.sqlite3"),
                            Manifest(tmp_path / "recordings" / "manifest.jsonl"), key=key, settle_s=0.0, wait_s=2)


@pytest.fixture
def lib(tmp_path: Path) -> RecordingLibrary:
    return library(tmp_path)


def finalized(lib: RecordingLibrary, call_id: str = "c-1", at: float | None = None, seconds: float = 1.0) -> str:
    call = answered_call(call_id, at=at)
    write_raw(lib.recordings_dir, call, seconds)
    spans = [{"node": "card", "started_at": call.started_at + 12, "ended_at": call.started_at + 14,
              "what": "card number", "verified": True, "last4": "1234"}]
    row = lib.finalize(call_dict(call, spans))
    return row.path


def test_a_mixmonitor_file_becomes_an_indexed_stereo_wav_in_the_manifest(lib: RecordingLibrary) -> None:
    rel = finalized(lib)
    path = lib.recordings_dir / rel
    assert rel.endswith("/c-1.wav") and not list(lib.recordings_dir.rglob("*.raw"))
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 8000)
    row = lib.entry("c-1")
    assert (row.customer, row.agent, row.queue, row.outcome, row.channels, row.duration_s) == \
        ("C1001", "A1002", "cards", "answered", 2, 1.0)
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [s["kind"] for s in row.timeline["segments"]].count("secure") == 1
    [entry] = lib.manifest.entries()
    assert (entry.call_id, entry.path, entry.sha256) == ("c-1", rel, row.sha256)
    assert lib.verify().intact
    total, rows = lib.search(Search(agent="A1002", queue="cards", outcome="answered"))
    assert total == 1 and rows[0].call_id == "c-1"
    assert lib.search(Search(customer="C9999"))[0] == 0


def test_search_by_time_and_call_id_prefix(lib: RecordingLibrary) -> None:
    now = time.time()
    finalized(lib, "old-1", at=now - 10 * DAY)
    finalized(lib, "new-1", at=now - 60)
    assert [r.call_id for r in lib.search(Search(since=now - DAY))[1]] == ["new-1"]
    assert [r.call_id for r in lib.search(Search(until=now - DAY))[1]] == ["old-1"]
    assert [r.call_id for r in lib.search(Search(call_id="new"))[1]] == ["new-1"]
    assert lib.search(Search(call_id="%"))[0] == 0  # a LIKE wildcard is a character, not "anything"


def test_a_call_without_a_recording_is_indexed_as_missing_and_says_so(lib: RecordingLibrary) -> None:
    lib.finalize(call_dict(answered_call("none-1")))
    with pytest.raises(Missing, match="call none-1 has no recording"):
        lib.play("none-1", "q1", "qa")
    with pytest.raises(NoRecording, match="no recording of call nope"):
        lib.play("nope", "q1", "qa")


def test_playing_is_logged_and_a_missing_or_truncated_file_is_refused_with_its_reason(lib: RecordingLibrary) -> None:
    rel = finalized(lib)
    played = lib.play("c-1", "q1", "qa")
    assert played.data[:4] == b"RIFF"
    path = lib.recordings_dir / rel
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(Damaged, match=r"call c-1 is truncated: 1000 of \d+ bytes"):
        lib.play("c-1", "q1", "qa")
    path.unlink()
    with pytest.raises(Missing, match="call c-1 is missing from the disk"):
        lib.play("c-1", "sup", "supervisor", "download")
    log = [(a.who, a.action, a.detail.split(":")[0]) for a in reversed(lib.index.access("c-1"))]
    assert log == [("q1", "play", rel + " (1 s)"), ("q1", "refused", "play"), ("sup", "refused", "download")]


def test_a_changed_byte_is_refused_on_play_and_named_by_verify(lib: RecordingLibrary) -> None:
    rel = finalized(lib)
    path = lib.recordings_dir / rel
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Damaged, match="was changed since it was recorded"):
        lib.play("c-1", "q1", "qa")
    report = lib.verify()
    assert [(p.seq, p.call_id, p.what) for p in report.problems] == [(1, "c-1", "changed")]


def test_retention_purges_old_calls_except_those_on_legal_hold(lib: RecordingLibrary) -> None:
    now = time.time()
    finalized(lib, "old-held", at=now - 40 * DAY)
    finalized(lib, "old-free", at=now - 40 * DAY)
    finalized(lib, "recent", at=now - DAY)
    with pytest.raises(ValueError, match=r"^reason:"):
        lib.hold("old-held", "q1", "qa", "  ")
    lib.hold("old-held", "q1", "qa", "complaint 2027-118")
    dry = lib.purge(30, "cron", dry_run=True)
    assert dry.purged == ("old-free",) and lib.entry("old-free").state == "ok"
    report = lib.purge(30, "cron")
    assert report.purged == ("old-free",) and report.held == ("old-held",) and report.files == 1
    assert not (lib.recordings_dir / lib.entry("old-free").path).exists()
    assert lib.entry("old-free").state == "purged" and lib.entry("old-held").state == "ok"
    assert lib.entry("recent").state == "ok"
    assert lib.verify().intact  # the purge is in the manifest: a purged file is not "missing"
    assert [e.kind for e in lib.manifest.entries()][-1] == "purged"
    assert lib.index.access("old-free")[0].action == "purge"
    with pytest.raises(Purged, match="call old-free was purged by retention"):
        lib.play("old-free", "q1", "qa")
    lib.release("old-held", "q1", "qa", "case closed")
    assert lib.purge(30, "cron").purged == ("old-held",)


def test_a_purge_racing_a_playback_answers_purged_not_missing(lib: RecordingLibrary) -> None:
    finalized(lib, "old", at=time.time() - 40 * DAY)
    original = lib.entry

    def entry_then_purge(call_id: str):  # type: ignore[no-untyped-def]
        row = original(call_id)
        lib.purge(30, "cron")  # the purge runs between the lookup and the read
        return row

    lib.entry = entry_then_purge  # type: ignore[method-assign]
    with pytest.raises(Purged, match="purged by retention"):
        lib.play("old", "q1", "qa")
    lib.entry = original  # type: ignore[method-assign]
    assert [a.action for a in lib.index.access("old")] == ["refused", "purge"]


def test_stray_files_of_expired_days_are_purged_unless_held(lib: RecordingLibrary) -> None:
    old = time.strftime("%Y-%m-%d", time.localtime(time.time() - 40 * DAY))
    folder = lib.recordings_dir / "calls" / old
    folder.mkdir(parents=True)
    (folder / "stray.wav").write_bytes(b"x" * 10)
    report = lib.purge(30, "cron")
    assert report.stray == 1 and not folder.exists()


def test_encrypted_at_rest_decrypted_for_the_player(tmp_path: Path) -> None:
    key = parse_key(new_key())
    lib = library(tmp_path, key)
    rel = finalized(lib)
    stored = (lib.recordings_dir / rel).read_bytes()
    assert rel.endswith(".wav.enc") and is_sealed(stored) and b"RIFF" not in stored[:64]
    assert lib.entry("c-1").sha256 == hashlib.sha256(stored).hexdigest()  # verify needs no key
    played = lib.play("c-1", "q1", "qa")
    with wave.open(io.BytesIO(played.data), "rb") as w:
        assert w.getnchannels() == 2
    assert lib.verify().intact
    without_key = library(tmp_path)
    with pytest.raises(Damaged, match="encrypted and IVR_RECORDINGS_KEY is not set"):
        without_key.play("c-1", "q1", "qa")
    wrong = library(tmp_path, parse_key(new_key()))
    with pytest.raises(Damaged, match="does not decrypt with this key"):
        wrong.play("c-1", "q1", "qa")


def test_a_bad_key_is_named() -> None:
    with pytest.raises(ValueError, match="IVR_RECORDINGS_KEY: 3 bytes"):
        parse_key("YWJj")


def test_transcripts_on_the_timeline_pass_the_redaction_step(lib: RecordingLibrary) -> None:
    call = answered_call("pii-1")
    call.turns[0].transcript = "제 번호는 010-1234-5678 입니다"
    write_raw(lib.recordings_dir, call)
    row = lib.finalize(call_dict(call))
    [turn] = [s for s in row.timeline["segments"] if s["kind"] == "turn"]
    assert "<PHONE>" in turn["label"] and "5678" not in turn["label"]
