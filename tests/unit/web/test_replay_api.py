"""Replays, suggestions and the publish gate over HTTP (ivr/web/replay.py, the admin's publish): the real Redis
(a private server) and a real archive (SQLite in a temporary folder); no speech model is needed here."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from ivr.config import Settings
from ivr.records.archive import Archive
from ivr.records.call import CallRecord, Outcome, Turn
from ivr.voice.training.gate import save_result, text_sha256
from ivr.voice.training.loop import cluster_suggestion
from ivr.voice.training.replay import ReplayResult
from ivr.voice.training.vocabulary import Vocabulary
from tests.unit.web.test_admin_api import HOTLINE, TO_PAYMENTS, login
from tests.unit.web.test_admin_api import app as admin_app  # noqa: F401  (the admin API's app, reused)

NEW_PHRASE = "ko: [계좌 이체, 송금, 착오 송금, 이체 취소, 와 유언]"


@pytest.fixture
async def app(admin_app, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    settings: Settings = admin_app.state.settings
    settings.archive_path = tmp_path / "archive.sqlite3"
    settings.recordings_dir = tmp_path / "recordings"
    await admin_app.state.users.add("trainer", "correct horse battery", "trainer", None)
    return admin_app


async def headers(client: httpx.AsyncClient, who: str) -> dict[str, str]:
    return await login(client, who)


async def test_a_version_breaking_more_than_it_fixes_needs_an_override_with_a_comment(client, app, redis_db):
    admin = await headers(client, "admin")
    assert (await client.get("/api/admin/flows", headers=admin)).status_code == 200  # seeds version 1
    worse = ReplayResult("hotline", turns=40, fixed=1, broken=3, sha256=text_sha256(TO_PAYMENTS))
    await save_result(redis_db, worse)
    body = {"text": TO_PAYMENTS, "comment": "key 2 to payments", "base": 1}
    refused = await client.post("/api/admin/flows/hotline/publish", headers=admin, json=body)
    assert refused.status_code == 422 and refused.json()["field"] == "override", refused.text
    assert "breaks 3 turns that were right and fixes only 1" in refused.json()["detail"]
    assert refused.json()["replay"]["broken"] == 3
    live = await client.get("/api/admin/flows/hotline", headers=admin)
    assert live.json()["version"] == 1 and live.json()["text"] == HOTLINE  # untouched
    blank = await client.post("/api/admin/flows/hotline/publish", headers=admin, json={**body, "override": "  "})
    assert blank.status_code == 422
    published = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                                  json={**body, "override": "payments takes lost cards during the migration"})
    assert published.status_code == 201, published.text
    kept = published.json()["replay"]
    assert (kept["fixed"], kept["broken"], kept["override"]) == (1, 3, "payments takes lost cards during the migration")
    audit = (await client.get("/api/admin/audit", headers=admin)).json()
    assert "replay: 40 turns replayed: 1 fixed, 3 broken" in audit[0]["detail"] and "OVERRIDE" in audit[0]["detail"]


async def test_a_version_the_replay_favours_publishes_with_its_evidence(client, app, redis_db):
    admin = await headers(client, "admin")
    await client.get("/api/admin/flows", headers=admin)
    text = HOTLINE.replace("ko: [계좌 이체, 송금, 착오 송금, 이체 취소]", NEW_PHRASE)
    await save_result(redis_db, ReplayResult("hotline", turns=10, fixed=4, broken=0, sha256=text_sha256(text)))
    found = await client.post("/api/trainer/flows/hotline/replays/lookup", headers=admin, json={"text": text})
    assert found.json()["result"]["fixed"] == 4
    published = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                                  json={"text": text, "comment": "와 유언 heard for transfers", "base": 1})
    assert published.status_code == 201 and published.json()["replay"]["override"] is None
    none = await client.post("/api/trainer/flows/hotline/replays/lookup", headers=admin, json={"text": HOTLINE})
    assert none.json() == {"result": None}


async def test_a_replay_job_runs_in_the_background_one_at_a_time(client, app):
    trainer = await headers(client, "trainer")
    assert (await client.get("/api/trainer/flows/hotline/replays/current", headers=trainer)).status_code == 404
    bad = await client.post("/api/trainer/flows/hotline/replays", headers=trainer, json={"text": "id: other\n"})
    assert bad.status_code == 422 and bad.json()["field"] == "text"
    started = await client.post("/api/trainer/flows/hotline/replays", headers=trainer, json={"since": "7d"})
    assert started.status_code == 202 and started.json()["state"] == "running"
    again = await client.post("/api/trainer/flows/hotline/replays", headers=trainer, json={})
    assert again.status_code == 409 and "is running" in again.json()["detail"]
    # The job starts a process pool (each worker loads the model): seconds on a busy 2-core machine. Not a
    # timing check: wait as long as it takes, within a minute.
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        job = (await client.get("/api/trainer/flows/hotline/replays/current", headers=trainer)).json()
        if job["state"] != "running" or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "done" and job["result"]["turns"] == 0, job
    agent = await headers(client, "a1")
    assert (await client.post("/api/trainer/flows/hotline/replays", headers=agent, json={})).status_code == 403
    assert (await client.post("/api/trainer/flows/hotline/replays", headers=trainer,
                              json={"since": "forever"})).json()["field"] == "since"


def failed_then_key(call_id: str, heard: str, key: str, at: float) -> CallRecord:
    """A call whose first answer was not understood, then the caller pressed ``key``."""
    call = CallRecord(call_id, "01099990001", language="ko", outcome=Outcome.QUEUED, queue="payments",
                      intent="transfer", started_at=at)
    call.turns = [Turn("main_menu", transcript=heard, confidence=0.5, alternatives=[{"text": heard, "confidence": 1.0}],
                       language="ko", started_at=at, decided_at=at + 3),
                  Turn("main_menu", dtmf=key, intent="transfer", score=1.0, language="ko", started_at=at + 4,
                       decided_at=at + 5)]
    return call


def labeled_cluster(settings: Settings) -> tuple[Archive, int]:
    from ivr.voice.training.labels import archive_rows

    archive = Archive(settings.archive_file)
    now = time.time()
    archive.record_calls([archive_rows(failed_then_key(f"c{i}", "확인 유언", "4", now - 60 + i), "hotline")
                          for i in range(3)])
    total, clusters = archive.clusters(now - 3600, "hotline")
    assert total == 1 and clusters[0].suggested == "transfer", clusters
    return archive, clusters[0].id


def test_a_labeled_cluster_gets_a_phrase_from_what_was_heard(app):
    archive, cluster = labeled_cluster(app.state.settings)
    vocabulary = Vocabulary({"확인", "유언", "와"}, "ko")
    suggestion = cluster_suggestion(archive, Path("/nonexistent"), HOTLINE, cluster, time.time() - 3600,
                                    listen=False, vocabulary=vocabulary)
    assert (suggestion.intent, suggestion.phrase, suggestion.source, suggestion.turns) == \
        ("transfer", "확인 유언", "nbest", 3)
    assert "+      ko: [계좌 이체, 송금, 착오 송금, 이체 취소, 확인 유언]" in suggestion.diff


async def test_suggestion_endpoint_errors_name_the_field(client, app):
    _archive, cluster = labeled_cluster(app.state.settings)
    trainer = await headers(client, "trainer")
    missing = await client.post("/api/trainer/clusters/999/suggestion", headers=trainer, json={})
    assert missing.status_code == 404
    wrong = await client.post(f"/api/trainer/clusters/{cluster}/suggestion", headers=trainer,
                              json={"label": "currency", "phrase": "와 유언"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "label"
    assert "'currency' is not an intent of flow 'hotline'" in wrong.json()["detail"]
