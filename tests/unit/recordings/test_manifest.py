"""The chained manifest: every kind of tampering is found and named."""

from __future__ import annotations

import json
from pathlib import Path

from ivr.recordings.manifest import GENESIS, Head, Manifest, Problem, check, file_sha256, next_entry


def _setup(tmp_path: Path, n: int = 3) -> tuple[Manifest, Path, list[Head]]:
    manifest = Manifest(tmp_path / "manifest.jsonl")
    heads: list[Head] = []
    for i in range(1, n + 1):
        path = tmp_path / "calls" / f"c{i}.wav"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes([i]) * (100 + i))
        sha, size = file_sha256(path)
        manifest.append("recorded", f"c{i}", f"calls/c{i}.wav", sha, size,
                        on_appended=lambda e: heads.append(Head(e.seq, e.hash)))
    return manifest, tmp_path, heads


def _stat(root: Path):  # type: ignore[no-untyped-def]
    def stat(rel: str) -> tuple[str, int] | None:
        path = root / rel
        return file_sha256(path) if path.is_file() else None
    return stat


def _check(manifest: Manifest, root: Path, head: Head | None) -> list[Problem]:
    return check(manifest.lines(), head, _stat(root))


def test_an_intact_manifest_has_no_problem_and_is_chained(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    entries = manifest.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev == GENESIS and entries[1].prev == entries[0].hash and entries[2].prev == entries[1].hash
    assert _check(manifest, root, heads[-1]) == []


def test_a_changed_byte_in_a_recording_is_named(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    path = root / "calls" / "c2.wav"
    data = bytearray(path.read_bytes())
    data[50] ^= 0x01
    path.write_bytes(bytes(data))
    problems = _check(manifest, root, heads[-1])
    assert [(p.seq, p.call_id, p.what) for p in problems] == [(2, "c2", "changed")]
    assert "entry 2 (call c2, calls/c2.wav): changed" in problems[0].message()


def test_missing_and_truncated_recordings_are_named(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    (root / "calls" / "c1.wav").unlink()
    path = root / "calls" / "c3.wav"
    path.write_bytes(path.read_bytes()[:40])
    problems = _check(manifest, root, heads[-1])
    assert [(p.seq, p.what) for p in problems] == [(1, "missing"), (3, "truncated")]
    assert "40 bytes on the disk, 103 recorded" in problems[1].detail


def test_a_removed_entry_breaks_the_chain_at_the_next_one(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    lines = manifest.lines()
    manifest.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    problems = _check(manifest, root, heads[-1])
    assert [(p.seq, p.what) for p in problems] == [(3, "chain broken")]


def test_reordered_entries_are_found(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    lines = manifest.lines()
    manifest.path.write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n")
    problems = _check(manifest, root, heads[-1])
    assert {(p.seq, p.what) for p in problems} >= {(3, "chain broken"), (2, "chain broken")}


def test_an_edited_entry_is_found_even_with_its_file_changed_to_match(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    (root / "calls" / "c2.wav").write_bytes(b"forged")
    sha, size = file_sha256(root / "calls" / "c2.wav")
    lines = manifest.lines()
    data = json.loads(lines[1])
    data.update(sha256=sha, bytes=size)  # the forger updates the entry, not its hash
    lines[1] = json.dumps(data)
    manifest.path.write_text("\n".join(lines) + "\n")
    assert [(p.seq, p.what) for p in _check(manifest, root, heads[-1])] == [(2, "entry altered")]


def test_entries_cut_off_the_end_are_found_through_the_head(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    manifest.path.write_text("\n".join(manifest.lines()[:2]) + "\n")
    problems = _check(manifest, root, heads[-1])
    assert [(p.seq, p.what) for p in problems] == [(None, "cut off")]
    assert "ends at entry 2 but entry 3 was appended" in problems[0].detail


def test_a_purged_recording_is_not_missing(tmp_path: Path) -> None:
    manifest, root, heads = _setup(tmp_path)
    (root / "calls" / "c1.wav").unlink()
    manifest.append("purged", "c1", "calls/c1.wav", on_appended=lambda e: heads.append(Head(e.seq, e.hash)))
    assert _check(manifest, root, heads[-1]) == []


def test_garbage_lines_are_named_with_their_line_number() -> None:
    first = next_entry(None, "recorded", "c1", "calls/c1.wav", "ab" * 32, 10)
    problems = check([first.line(), "{not json"], None, lambda rel: ("ab" * 32, 10))
    assert [(p.what, p.detail.split(" is")[0]) for p in problems] == [("unreadable", "line 2")]
