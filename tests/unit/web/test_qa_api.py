"""The QA API over a private Redis and a temporary index: who may search and play, every play and refusal audited,
HTTP ranges, missing/damaged/purged recordings answered with their reason, legal hold."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from ivr.config import Settings
from ivr.voice.versions import AuditLog
from tests.unit.recordings.builders import answered_call, call_dict, write_raw

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
async def app(redis_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    from ivr.web.app import create_app
    from ivr.web.qa import qa_library

    settings = Settings(web_session_ttl_s=60, archive_path=tmp_path / "archive.sqlite3",
                        recordings_dir=tmp_path / "recordings", dialplans_dir=ROOT / "dialplans",
                        recordings_index_path=tmp_path / "recordings.sqlite3")
    app = create_app(settings, redis_db, static_dir=tmp_path / "static")
    app.state.users.hasher = FAST
    for username, role, agent_id in (("q1", "qa", None), ("sup", "supervisor", None), ("a1", "agent", "A1001"),
                                     ("t1", "trainer", None), ("admin", "admin", None)):
        await app.state.users.add(username, PASSWORD, role, agent_id)
    library = qa_library(settings)
    library.settle_s = 0.0
    for call_id, age in (("c-1", 60.0), ("old-1", 40 * 86400.0)):
        call = answered_call(call_id, at=time.time() - age)
        write_raw(settings.recordings_dir, call, 2.0)
        library.finalize(call_dict(call))
    app.state.library = library
    return app


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    reply = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


async def audit(app: Any) -> list[tuple[str, str, str]]:
    entries = await AuditLog(app.state.users.redis).entries(50)
    return [(e["who"], e["action"], e["target"]) for e in reversed(entries)]


async def test_qa_and_supervisors_search_others_are_refused_and_logged(client: httpx.AsyncClient, app: Any) -> None:
    assert (await client.get("/api/qa/recordings")).status_code == 401
    for user in ("q1", "sup", "admin"):
        reply = await client.get("/api/qa/recordings?since=365d", headers=await login(client, user))
        assert reply.status_code == 200, reply.text
        assert [i["call_id"] for i in reply.json()["items"]] == ["c-1", "old-1"]
    for user in ("a1", "t1"):
        reply = await client.get("/api/qa/recordings/c-1/audio", headers=await login(client, user))
        assert reply.status_code == 403
        assert "recordings need the admin or qa or supervisor role" in reply.json()["detail"]
    assert [(a.who, a.action) for a in reversed(app.state.library.index.access("c-1"))] == \
        [("a1", "denied"), ("t1", "denied")]
    assert [e for e in await audit(app) if e[1] == "recording-denied"] == \
        [("a1", "recording-denied", "c-1"), ("t1", "recording-denied", "c-1")]


async def test_search_filters_and_a_bad_field_is_named(client: httpx.AsyncClient) -> None:
    qa = await login(client, "q1")
    reply = await client.get("/api/qa/recordings?since=7d&agent=A1002&queue=cards&outcome=answered", headers=qa)
    assert [i["call_id"] for i in reply.json()["items"]] == ["c-1"]
    assert (await client.get("/api/qa/recordings?since=7d&agent=A9", headers=qa)).json()["total"] == 0
    bad = await client.get("/api/qa/recordings?since=soon", headers=qa)
    assert bad.status_code == 422 and bad.json()["field"] == "since"
    bad = await client.get("/api/qa/recordings?customer=a'b", headers=qa)
    assert bad.status_code == 422 and bad.json()["field"] == "customer"


async def test_playing_serves_the_stereo_wav_with_ranges_and_audits_who_when(client: httpx.AsyncClient,
                                                                              app: Any) -> None:
    qa = await login(client, "q1")
    detail = (await client.get("/api/qa/recordings/c-1", headers=qa)).json()
    assert detail["channels"] == 2 and detail["duration_s"] == 2.0
    assert [s["kind"] for s in detail["timeline"]["segments"]] == ["ivr", "turn", "queue", "agent"]
    reply = await client.get("/api/qa/recordings/c-1/audio", headers=qa)
    assert reply.status_code == 200 and reply.headers["content-type"] == "audio/wav"
    whole = reply.content
    assert whole[:4] == b"RIFF" and len(whole) == detail["bytes"]
    part = await client.get("/api/qa/recordings/c-1/audio", headers={**qa, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    tail = await client.get("/api/qa/recordings/c-1/audio", headers={**qa, "Range": "bytes=-10"})
    assert tail.content == whole[-10:]
    bad = await client.get("/api/qa/recordings/c-1/audio", headers={**qa, "Range": f"bytes={len(whole)}-"})
    assert bad.status_code == 416
    download = await client.get("/api/qa/recordings/c-1/audio?download=true", headers=qa)
    assert download.headers["content-disposition"] == 'attachment; filename="c-1.wav"'
    # One listening, one entry (the seeks in between are not new listenings); the download is its own.
    assert [(a.who, a.action) for a in reversed(app.state.library.index.access("c-1"))] == \
        [("q1", "play"), ("q1", "download")]
    assert [e for e in await audit(app) if e[2] == "c-1"] == \
        [("q1", "recording-play", "c-1"), ("q1", "recording-download", "c-1")]
    admin = await login(client, "admin")
    log = (await client.get("/api/qa/access?call_id=c-1", headers=admin)).json()["items"]
    assert [(e["who"], e["action"]) for e in log] == [("q1", "download"), ("q1", "play")]
    assert (await client.get("/api/qa/access", headers=qa)).status_code == 403


async def test_missing_truncated_and_purged_recordings_say_why_and_are_audited(client: httpx.AsyncClient,
                                                                                app: Any) -> None:
    qa = await login(client, "q1")
    library = app.state.library
    path = library.recordings_dir / library.entry("c-1").path
    path.write_bytes(path.read_bytes()[:500])
    reply = await client.get("/api/qa/recordings/c-1/audio", headers=qa)
    assert reply.status_code == 409 and "call c-1 is truncated: 500 of" in reply.json()["detail"]
    path.unlink()
    reply = await client.get("/api/qa/recordings/c-1/audio", headers=qa)
    assert reply.status_code == 404 and "missing from the disk" in reply.json()["detail"]
    library.purge(30, "cron")
    reply = await client.get("/api/qa/recordings/old-1/audio", headers=qa)
    assert reply.status_code == 410 and "purged by retention" in reply.json()["detail"]
    assert (await client.get("/api/qa/recordings/nope/audio", headers=qa)).status_code == 404
    refused = [e for e in await audit(app) if e[1] == "recording-play-refused"]
    assert [e[2] for e in refused] == ["c-1", "c-1", "old-1", "nope"]


async def test_legal_hold_from_the_page_keeps_a_call_from_the_purge(client: httpx.AsyncClient, app: Any) -> None:
    qa = await login(client, "q1")
    empty = await client.post("/api/qa/recordings/old-1/hold", json={"reason": "  "}, headers=qa)
    assert empty.status_code == 422 and empty.json()["field"] == "reason"
    held = await client.post("/api/qa/recordings/old-1/hold", json={"reason": "FSS inquiry 42"}, headers=qa)
    assert held.status_code == 200 and held.json()["held"] and held.json()["held_by"] == "q1"
    assert app.state.library.purge(30, "cron").held == ("old-1",)
    assert app.state.library.entry("old-1").state == "ok"
    agent = await login(client, "a1")
    assert (await client.post("/api/qa/recordings/old-1/release", json={"reason": "x"}, headers=agent)).status_code \
        == 403
    released = await client.post("/api/qa/recordings/old-1/release", json={"reason": "closed"}, headers=qa)
    assert released.status_code == 200 and not released.json()["held"]
    assert ("q1", "recording-hold", "old-1") in await audit(app)


async def test_flags_are_set_with_named_errors_and_shown_on_the_timeline(client: httpx.AsyncClient) -> None:
    qa = await login(client, "q1")
    bad = await client.put("/api/qa/recordings/c-1/flags", json={"flags": [{"at_s": 1, "kind": "?", "text": "x"}]},
                           headers=qa)
    assert bad.status_code == 422 and bad.json()["field"] == "flags[0].kind"
    flags = [{"at_s": 1.5, "kind": "forbidden_phrase", "text": "no risk"}]
    ok = await client.put("/api/qa/recordings/c-1/flags", json={"flags": flags}, headers=qa)
    assert ok.status_code == 200 and ok.json()["timeline"]["flags"] == flags
    flagged = (await client.get("/api/qa/recordings?flagged=true", headers=qa)).json()["items"]
    assert [i["call_id"] for i in flagged] == ["c-1"]
