"""The quality checks' API for /qa: progress, the review list, a call's result, the checklist and its validation
(refused with the item named, nothing saved); QA roles only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from ivr.config import Settings
from ivr.recordings.quality.service import QualityService
from tests.unit.recordings.builders import answered_call, call_dict, write_raw
from tests.unit.recordings.quality.test_service import CHECKLIST, FakeTranscriber

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
async def app(redis_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    from ivr.web.app import create_app

    checklist = tmp_path / "qa-checklist.yaml"
    checklist.write_text(CHECKLIST, encoding="utf-8")
    settings = Settings(web_session_ttl_s=60, archive_path=tmp_path / "archive.sqlite3",
                        recordings_dir=tmp_path / "recordings", dialplans_dir=ROOT / "dialplans",
                        recordings_index_path=tmp_path / "recordings.sqlite3", qa_db_path=tmp_path / "quality.sqlite3",
                        qa_checklist_path=checklist)
    app = create_app(settings, redis_db, static_dir=tmp_path / "static")
    app.state.users.hasher = FAST
    for username, role, agent_id in (("q1", "qa", None), ("a1", "agent", "A1001")):
        await app.state.users.add(username, PASSWORD, role, agent_id)
    service = QualityService.from_settings(settings)
    service.library.settle_s = 0.0
    for call_id in ("c-1", "c-2"):
        call = answered_call(call_id, at=time.time() - 120)
        write_raw(settings.recordings_dir, call, 20.0)
        service.library.finalize(call_dict(call))
    service.discover()
    service.run_one(FakeTranscriber())  # c-1 or c-2, whichever is first: says the forbidden phrase
    app.state.quality = service
    return app


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    reply = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


async def test_progress_and_the_review_list(client: httpx.AsyncClient, app: Any) -> None:
    qa = await login(client, "q1")
    progress = (await client.get("/api/qa/quality", headers=qa)).json()
    assert (progress["queued"], progress["done"], progress["flagged"], progress["checklist_error"]) == (1, 1, 1, None)
    review = (await client.get("/api/qa/quality/review", headers=qa)).json()
    assert review["total"] == 1
    [item] = review["items"]
    assert item["score"] == 50 and item["findings"][0]["kind"] == "forbidden_phrase"
    assert item["findings"][0]["at_s"] == 12.5 and item["queue"] == "cards"
    result = (await client.get(f"/api/qa/quality/calls/{item['call_id']}", headers=qa)).json()
    assert result["state"] == "done" and result["result"]["transcript"]
    assert (await client.get("/api/qa/quality/calls/nope", headers=qa)).status_code == 404


async def test_a_broken_pattern_is_refused_naming_the_item_and_nothing_is_saved(client: httpx.AsyncClient,
                                                                               app: Any) -> None:
    qa = await login(client, "q1")
    before = (await client.get("/api/qa/quality/checklist", headers=qa)).json()
    assert before["ok"] and before["text"] == CHECKLIST
    broken = CHECKLIST.replace("[원금 보장]", '[{re: "원금(보장"}]')
    reply = await client.post("/api/qa/quality/checklist/validate", headers=qa, json={"text": broken})
    assert reply.status_code == 200 and reply.json()["ok"] is False
    [problem] = reply.json()["problems"]
    assert (problem["line"], problem["path"]) == (3, "every_queue[1].phrases[0]")
    assert "'원금(보장' is not a valid regular expression" in problem["message"]
    assert (await client.get("/api/qa/quality/checklist", headers=qa)).json()["text"] == CHECKLIST


async def test_only_qa_roles_see_the_quality_checks(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/qa/quality")).status_code == 401
    reply = await client.get("/api/qa/quality/review", headers=await login(client, "a1"))
    assert reply.status_code == 403 and "quality checks need the admin or qa or supervisor role" in reply.text
