"""The redaction step runs at every write point: the call record and turn stream in Redis, the archive, the agent's
notes and tickets, the report exports. Each is written with personal data in and read back without it."""

from __future__ import annotations

import json
from pathlib import Path

from ivr.cli.report import exported
from ivr.records.archive import Archive
from ivr.records.call import CallRecord, Turn
from ivr.records.store import CallStore, call_key
from ivr.voice.training.labels import archive_rows
from ivr.web.desk import TicketRequest, check_ticket
from tests.unit.voice.training.builders import call, said

PHONE, RRN, MAIL = "010-2345-6789", "851130-2987654", "kim@example.co.kr"
SAID = f"제 번호는 {PHONE} 주민번호 {RRN} 메일 {MAIL}"


def leaks(text: str) -> list[str]:
    return [v for v in (PHONE, RRN, MAIL, "2345-6789", "2987654") if v in text]


def a_call() -> CallRecord:
    turn = said("menu", SAID, nbest=(f"번호 {PHONE}",))
    turn.words = [{"word": w, "start": 0.0, "end": 0.1, "conf": 1.0} for w in SAID.split()]
    record = call(turn)
    record.notes.append(f"caller said {PHONE}")  # appended directly: the write point still redacts it
    record.note(f"spelled {MAIL}")
    return record


async def test_redis_record_and_turn_stream(redis_url: str, redis_db) -> None:  # type: ignore[no-untyped-def]
    store = CallStore(redis_url, 60)
    record = a_call()
    try:
        await store.save(record, "call.updated")
        await store.append_turn(record, Turn(node="menu", transcript=f"전화 {PHONE}",
                                             alternatives=[{"text": RRN, "confidence": 0.4}]))
    finally:
        await store.close()
    saved = await redis_db.get(call_key(record.call_id))
    stream = await redis_db.xrange(f"{call_key(record.call_id)}:turns")
    assert saved and not leaks(saved) and "<PHONE>" in saved and "<RRN>" in saved and "<EMAIL>" in saved
    assert stream and not leaks(json.dumps(stream, ensure_ascii=False))


def test_the_archive(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive.sqlite3")
    record = a_call()
    archive.record_call(*archive_rows(record, "hotline", ivr_ended_at=record.started_at + 5))
    archive.set_disposition(record.call_id, f"resolved, call back on {PHONE}", None)
    archive.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert not leaks(raw.decode("utf-8", "replace"))
    [turn] = Archive(tmp_path / "archive.sqlite3").turns(0)
    assert turn.transcript.startswith("제 번호는 <PHONE>")


def test_agents_ticket_fields() -> None:
    from ivr.web import desk

    template = "complaint"
    names = [f["name"] for f in desk.TICKET_TEMPLATES[template]["fields"]]
    fields = {name: f"{PHONE} / {RRN} / 4111 1111 1111 1111" for name in names}
    checked = check_ticket(TicketRequest(template=template, fields=fields))
    for value in checked.values():
        assert not leaks(value) and "411111******1111" in value


def test_exports() -> None:
    rows = exported([{"queue": "cards", "value": f"menu {PHONE}", "calls": 3, "rate": 0.5}])
    assert rows == [{"queue": "cards", "value": "menu <PHONE>", "calls": 3, "rate": 0.5}]
