"""The trainer's and reports' API over a real (private) Redis and a temporary archive: roles, paging, labels
(unknown intent, a stale revision), audio only from inside the recordings, charts, and a disposition's reason."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from ivr.config import Settings
from ivr.records.archive import Archive
from ivr.voice.training.labels import archive_rows
from tests.unit.voice.training.builders import failed_then_key

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
async def app(redis_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    from ivr.web.app import create_app

    settings = Settings(web_session_ttl_s=60, archive_path=tmp_path / "archive.sqlite3",
                        recordings_dir=tmp_path / "recordings", dialplans_dir=ROOT / "dialplans")
    app = create_app(settings, redis_db, static_dir=tmp_path / "static")
    app.state.users.hasher = FAST
    for username, role, agent_id in (("t1", "trainer", None), ("sup", "supervisor", None), ("a1", "agent", "A1001"),
                                     ("admin", "admin", None)):
        await app.state.users.add(username, PASSWORD, role, agent_id)
    archive = Archive(settings.archive_file)
    now = time.time()
    for i in range(30):  # 25 heard alike, 5 heard otherwise
        record = failed_then_key(text="자나 조회" if i < 25 else "대출 상담", at=now - 3600 + i, intent="balance")
        rel = f"turns/2027-01-15/{record.call_id}-1.wav"
        record.turns[0].audio = rel
        if i == 0:
            (settings.recordings_dir / rel).parent.mkdir(parents=True)
            (settings.recordings_dir / rel).write_bytes(_wav())
            app.state.first_call = record.call_id
        archive.record_call(*archive_rows(record, "hotline"))
    return app


def _wav() -> bytes:
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return out.getvalue()


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    reply = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


async def test_only_trainers_and_admins_label_supervisors_read_reports(client: httpx.AsyncClient) -> None:
    agent, sup, trainer = [await login(client, u) for u in ("a1", "sup", "t1")]
    assert (await client.get("/api/trainer/clusters")).status_code == 401
    assert (await client.get("/api/trainer/clusters", headers=agent)).status_code == 403
    assert (await client.get("/api/trainer/clusters", headers=sup)).status_code == 403
    assert (await client.get("/api/trainer/clusters", headers=trainer)).status_code == 200
    assert (await client.get("/api/trainer/clusters", headers=await login(client, "admin"))).status_code == 200
    assert (await client.get("/api/reports/kpi", headers=sup)).status_code == 200
    assert (await client.get("/api/reports/kpi", headers=agent)).status_code == 403


async def test_clusters_are_paged_and_a_whole_cluster_is_labeled_once(client: httpx.AsyncClient) -> None:
    trainer = await login(client, "t1")
    page = (await client.get("/api/trainer/clusters?limit=1", headers=trainer)).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    big = page["items"][0]
    assert (big["heard"], big["size"], big["suggested"], big["suggested_source"]) == ("자나 조회", 25, "balance", "key")
    turns = (await client.get(f"/api/trainer/clusters/{big['id']}/turns?offset=20&limit=10", headers=trainer)).json()
    assert turns["total"] == 25 and len(turns["items"]) == 5
    assert turns["items"][0]["next_step"] == "pressed 1: balance"
    body = {"label": "balance", "revision": big["revision"], "dialect": "gyeongsang"}
    reply = await client.post(f"/api/trainer/clusters/{big['id']}/label", json=body, headers=trainer)
    assert reply.status_code == 200, reply.text
    assert reply.json()["labeled"] == 25 and reply.json()["cluster"]["labeled"] == 25
    stale = await client.post(f"/api/trainer/clusters/{big['id']}/label", json={**body, "label": "loan"},
                              headers=trainer)
    assert stale.status_code == 409 and "changed since you saw it" in stale.json()["detail"]
    left = (await client.get("/api/trainer/clusters?unlabeled=true", headers=trainer)).json()
    assert [c["heard"] for c in left["items"]] == ["대출 상담"]


async def test_a_label_the_flow_does_not_have_is_refused_naming_it(client: httpx.AsyncClient) -> None:
    trainer = await login(client, "t1")
    [cluster, *_] = (await client.get("/api/trainer/clusters", headers=trainer)).json()["items"]
    reply = await client.post(f"/api/trainer/clusters/{cluster['id']}/label",
                              json={"label": "mortgage", "revision": cluster["revision"]}, headers=trainer)
    assert reply.status_code == 422
    assert reply.json()["field"] == "label" and "'mortgage' is not an intent of the flow" in reply.json()["detail"]
    assert (await client.post("/api/trainer/clusters/999/label", json={"label": "loan", "revision": 0},
                              headers=trainer)).status_code == 404
    bad_dialect = await client.post(f"/api/trainer/clusters/{cluster['id']}/label",
                                    json={"label": "loan", "revision": 0, "dialect": "<b>"}, headers=trainer)
    assert bad_dialect.status_code == 422 and bad_dialect.json()["field"] == "dialect"
    assert (await client.post("/api/trainer/turns/nope/1/label", json={"label": "loan"},
                              headers=trainer)).status_code == 404
    cluster_turn = (await client.get(f"/api/trainer/clusters/{cluster['id']}/turns?limit=1",
                                           headers=trainer)).json()["items"][0]
    relabeled = await client.post(f"/api/trainer/turns/{cluster_turn['call_id']}/1/label",
                                  json={"label": "loan", "dialect": "jeolla"}, headers=trainer)
    assert relabeled.status_code == 200, relabeled.text
    assert {k: relabeled.json()[k] for k in ("label", "label_source", "label_dialect", "labeled_by")} == \
        {"label": "loan", "label_source": "trainer", "label_dialect": "jeolla", "labeled_by": "t1"}
    assert cluster_turn["label_source"] == "key"
    assert (await client.get("/api/trainer/clusters?since=yesterday", headers=trainer)).json()["field"] == "since"


async def test_turn_audio_is_served_only_from_the_recordings(client: httpx.AsyncClient, app: Any) -> None:
    trainer = await login(client, "t1")
    items = (await client.get("/api/trainer/clusters/1/turns?limit=50", headers=trainer)).json()["items"]
    with_audio = [t for t in items if t["call_id"] == app.state.first_call]
    assert with_audio, items
    reply = await client.get(f"/api/trainer/turns/{app.state.first_call}/1/audio", headers=trainer)
    assert reply.status_code == 200 and reply.headers["content-type"] == "audio/wav"
    assert reply.content[:4] == b"RIFF"
    missing = next(t for t in items if t["call_id"] != app.state.first_call)
    gone = await client.get(f"/api/trainer/turns/{missing['call_id']}/1/audio", headers=trainer)
    assert gone.status_code == 404 and "is not there" in gone.json()["detail"]
    # A path that leaves the recordings (a forged archive row) is never served.
    archive = Archive(app.state.settings.archive_file)
    archive.query("UPDATE turns SET audio = '../archive.sqlite3' WHERE call_id = ?", (missing["call_id"],))
    assert (await client.get(f"/api/trainer/turns/{missing['call_id']}/1/audio", headers=trainer)).status_code == 404
    assert (await client.get(f"/api/trainer/turns/{app.state.first_call}/1/audio")).status_code == 401


async def test_reports_answer_json_and_server_drawn_svg(client: httpx.AsyncClient) -> None:
    sup = await login(client, "sup")
    nav = (await client.get("/api/reports/navigation?by=node", headers=sup)).json()
    main = next(r for r in nav["rows"] if r["value"] == "menu")
    assert main["calls"] == 30 and main["no_match"] == 1.0 and main["keys_after_failure"] == 1.0
    kpi = (await client.get("/api/reports/kpi?per=day", headers=sup)).json()
    assert kpi["rows"][-1]["calls"] == 30 and kpi["rows"][-1]["containment"] == 1.0
    for path in ("/api/reports/navigation.svg?by=version", "/api/reports/kpi.svg"):
        svg = await client.get(path, headers=sup)
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text
    assert (await client.get("/api/reports/navigation?by=queue", headers=sup)).status_code == 422


async def test_a_disposition_reason_reaches_the_archive(client: httpx.AsyncClient, app: Any, redis_db: Any) -> None:
    await redis_db.set("ivr:pop:1800.77", json.dumps({"agent": "A1001", "pop": {"customer": None, "ivr": {}}}))
    agent = await login(client, "a1")
    bad = await client.post("/api/calls/1800.77/disposition", json={"disposition": "resolved", "reason": "lo an"},
                            headers=agent)
    assert bad.status_code == 422 and bad.json()["field"] == "reason"
    reply = await client.post("/api/calls/1800.77/disposition", json={"disposition": "resolved", "reason": "loan"},
                              headers=agent)
    assert reply.status_code == 201, reply.text
    stored = Archive(app.state.settings.archive_file).call("1800.77")
    assert stored is not None and (stored.disposition, stored.disposition_reason) == ("resolved", "loan")
    plain = await client.post("/api/calls/1800.77/disposition", json={"disposition": "resolved"}, headers=agent)
    assert plain.status_code == 409  # still once per call


async def test_a_label_is_checked_against_the_turns_own_flow(client: httpx.AsyncClient, app: Any,
                                                              tmp_path: Path) -> None:
    """A turn of another flow (archive rows carry flow_id) takes that flow's intents, not the hotline's."""
    import re
    import shutil

    settings: Settings = app.state.settings
    plans = tmp_path / "dialplans"
    plans.mkdir()
    shutil.copy(ROOT / "dialplans" / "hotline.yaml", plans / "hotline.yaml")
    hotline = (plans / "hotline.yaml").read_text(encoding="utf-8")
    cards = re.sub(r"^(\s+)loan:", r"\1mortgage:", hotline.replace("id: hotline", "id: cards", 1), flags=re.M)
    (plans / "cards.yaml").write_text(cards, encoding="utf-8")
    settings.dialplans_dir = plans
    archive = Archive(settings.archive_file)
    record = failed_then_key(text="카드 대출 시험", at=time.time() - 60, intent="balance")
    archive.record_call(*archive_rows(record, "cards"))
    gone = failed_then_key(text="없는 흐름 시험", at=time.time() - 50, intent="balance")
    archive.record_call(*archive_rows(gone, "retired"))
    trainer = await login(client, "t1")

    on_cards = await client.post(f"/api/trainer/turns/{record.call_id}/1/label", json={"label": "mortgage"},
                                 headers=trainer)
    assert on_cards.status_code == 200, on_cards.text
    assert on_cards.json()["label"] == "mortgage"
    refused = await client.post(f"/api/trainer/turns/{record.call_id}/1/label", json={"label": "loan"},
                                headers=trainer)
    assert refused.status_code == 422 and refused.json()["field"] == "label"
    assert "'loan' is not an intent of the flow 'cards'" in refused.json()["detail"], refused.text
    assert archive.turn(record.call_id, 1).label == "mortgage"  # nothing written by the refusal
    cluster = archive.turn(record.call_id, 1).cluster
    assert cluster is not None
    summary = archive.cluster(cluster)
    by_cluster = await client.post(f"/api/trainer/clusters/{cluster}/label",
                                   json={"label": "loan", "revision": summary.revision}, headers=trainer)
    assert by_cluster.status_code == 422 and "flow 'cards'" in by_cluster.json()["detail"]
    # The hotline's own turns still take "loan" and refuse "mortgage", naming the hotline.
    hot = (await client.get("/api/trainer/clusters", headers=trainer)).json()["items"][0]
    wrong = await client.post(f"/api/trainer/clusters/{hot['id']}/label",
                              json={"label": "mortgage", "revision": hot["revision"]}, headers=trainer)
    assert wrong.status_code == 422 and "'mortgage' is not an intent of the flow 'hotline'" in wrong.json()["detail"]
    # A flow that is neither published nor a file: named, nothing written.
    lost = await client.post(f"/api/trainer/turns/{gone.call_id}/1/label", json={"label": "loan"}, headers=trainer)
    assert lost.status_code == 422 and lost.json()["field"] == "flow" and "'retired'" in lost.json()["detail"]
    assert archive.turn(gone.call_id, 1).label_source == "key"
    cards_intents = (await client.get("/api/trainer/intents?flow=cards", headers=trainer)).json()
    assert cards_intents["flow_id"] == "cards" and "mortgage" in [i["id"] for i in cards_intents["intents"]]
