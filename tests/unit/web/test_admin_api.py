"""The flow editor's API (/api/admin): admins only, checks with lines, publish with a base, 413, rollback, audit.

HTTP through httpx's ASGI transport against the real Redis (a private server, tests/unit/conftest.py); the flow
store is the real one, with prompts not rendered (no espeak-ng needed) and validation against the demo's queues.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from ivr.config import PROJECT_DIR, Settings
from ivr.voice.flow import parse_flow
from ivr.voice.validation import MAX_FLOW_BYTES, Context
from ivr.voice.versions import FlowStore
from ivr.web.admin import MAX_BODY_BYTES, flow_graph
from ivr.web.app import create_app

PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
USERS = [("a1", "agent", "A1001"), ("f1", "field", "F2001"), ("sup", "supervisor", "S0001"), ("admin", "admin", None),
         ("root2", "admin", None)]
HOTLINE = (PROJECT_DIR / "dialplans" / "hotline.yaml").read_text(encoding="utf-8")
ROUTE_LINE = "      lost_card: to_cards\n"
assert HOTLINE.count(ROUTE_LINE) == 1
CARDS_NODE = "  to_cards: {type: route, queue: cards, skills: [cards], priority: 10}\n"
assert HOTLINE.count(CARDS_NODE) == 1
#: Lost cards go to the payments queue; the cards node, now unreachable (an error), goes.
TO_PAYMENTS = HOTLINE.replace(ROUTE_LINE, "      lost_card: to_payments\n").replace(CARDS_NODE, "")
BROKEN = HOTLINE.replace(ROUTE_LINE, "      lost_card: to_nowhere\n")
BROKEN_LINE = HOTLINE[: HOTLINE.index(ROUTE_LINE)].count("\n") + 1


async def _no_prompts(flow: Any) -> None:
    """Publishing pre-renders prompts; these tests do not need the audio."""


@pytest.fixture
async def app(redis_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    dialplans = tmp_path / "dialplans"
    dialplans.mkdir()
    shutil.copy(PROJECT_DIR / "dialplans" / "hotline.yaml", dialplans / "hotline.yaml")
    settings = Settings(web_session_ttl_s=60, dialplans_dir=dialplans)
    app = create_app(settings, redis_db, static_dir=tmp_path / "static")
    app.state.users.hasher = FAST
    for username, role, agent_id in USERS:
        await app.state.users.add(username, PASSWORD, role, agent_id)
    queues = frozenset({"general", "cards", "loans", "payments", "complaints"})
    app.state.flows = FlowStore(redis_db, prerender=_no_prompts, context=Context(queues=queues), settings=settings)
    return app


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    reply = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> dict[str, str]:
    headers = await login(client, "admin")
    listed = await client.get("/api/admin/flows", headers=headers)  # seeds hotline from dialplans/ as version 1
    assert listed.status_code == 200 and [f["id"] for f in listed.json()] == ["hotline"], listed.text
    return headers


def admin_routes(app: Any) -> list[tuple[str, str]]:
    """Every admin route (from the OpenAPI schema), with example path values: a route added later is covered
    without editing this test."""
    values = {"{flow_id}": "hotline", "{number}": "1"}
    out = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/admin"):
            for name, value in values.items():
                path = path.replace(name, value)
            assert "{" not in path, f"add an example value for {path}"
            out += [(method.upper(), path) for method in sorted(operations)]
    return out


# --- who may


async def test_admin_routes_need_a_session_and_the_admin_role(app, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    routes = admin_routes(app)
    assert len(routes) >= 10
    for method, path in routes:
        reply = await client.request(method, path, json={"text": "x", "comment": "c", "version": 1})
        assert reply.status_code == 401, (method, path, reply.text)
    for username, role, _ in USERS:
        if role == "admin":
            continue
        headers = await login(client, username)
        for method, path in routes:
            reply = await client.request(method, path, headers=headers,
                                         json={"text": TO_PAYMENTS, "comment": "c", "base": 1, "version": 1})
            assert reply.status_code == 403, (username, method, path, reply.text)
            assert reply.json()["detail"] == f"this needs the admin role; you are {role}"
    # and nothing was published or recorded by anyone of them
    admin = await login(client, "admin")
    assert (await client.get("/api/admin/audit", headers=admin)).json() == []


async def test_the_admin_page_is_served(app, client: httpx.AsyncClient, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "admin.html").write_text("<h1>flows</h1>")
    page = await client.get("/admin")
    assert page.status_code == 200 and page.text == "<h1>flows</h1>"


# --- reading and checking


async def test_flows_list_and_the_live_text(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    [hotline] = (await client.get("/api/admin/flows", headers=admin)).json()
    assert (hotline["id"], hotline["live"], hotline["versions"]) == ("hotline", 1, 1)
    flow = (await client.get("/api/admin/flows/hotline", headers=admin)).json()
    assert (flow["version"], flow["author"], flow["text"]) == (1, "seed", HOTLINE)
    missing = await client.get("/api/admin/flows/nothing", headers=admin)
    assert missing.status_code == 404 and "nothing" in missing.json()["detail"]
    bad_id = await client.get("/api/admin/flows/..%2Fetc", headers=admin)
    assert bad_id.status_code in (404, 422)


async def test_validate_gives_problems_with_their_lines_and_the_diagram(client: httpx.AsyncClient,
                                                                        admin: dict[str, str]) -> None:
    reply = await client.post("/api/admin/flows/hotline/validate", headers=admin, json={"text": BROKEN})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ok"] is False
    errors = [p for p in body["problems"] if p["severity"] == "error"]
    assert errors, body["problems"]
    [problem] = [p for p in errors if "to_nowhere" in p["message"]]
    assert problem["line"] == BROKEN_LINE and problem["path"].startswith("nodes.main_menu")
    assert set(problem) == {"severity", "message", "line", "path"}
    # The diagram still draws, with the broken edge going to a node marked missing.
    graph = body["graph"]
    assert graph["partial"] is True
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["to_nowhere"]["type"] == "missing" and nodes["main_menu"]["start"] is True
    assert {"from": "main_menu", "to": "to_nowhere", "label": "lost_card · 2"} in graph["edges"]

    good = (await client.post("/api/admin/flows/hotline/validate", headers=admin, json={"text": TO_PAYMENTS})).json()
    assert good["ok"] is True and not [p for p in good["problems"] if p["severity"] == "error"]
    edges = {(e["from"], e["to"]): e["label"] for e in good["graph"]["edges"]}
    assert edges[("main_menu", "to_payments")] == "lost_card · 2, transfer · 4"
    assert ("main_menu", "to_cards") not in edges and "partial" not in good["graph"]

    syntax = (await client.post("/api/admin/flows/hotline/validate", headers=admin,
                                json={"text": "id: hotline\nnodes: [\n"})).json()
    assert syntax["ok"] is False and syntax["problems"][0]["line"] and syntax["graph"] is None


async def test_validate_flags_an_id_that_is_not_this_flow(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    text = HOTLINE.replace("id: hotline", "id: other")
    body = (await client.post("/api/admin/flows/hotline/validate", headers=admin, json={"text": text})).json()
    assert body["ok"] is False
    [problem] = [p for p in body["problems"] if p["path"] == "id"]
    assert "hotline" in problem["message"] and problem["line"] == text.splitlines().index("id: other") + 1


def test_the_diagram_has_every_node_and_merges_edges() -> None:
    flow = parse_flow(HOTLINE)
    graph = flow_graph(flow.model_dump(mode="json"))
    assert {n["id"] for n in graph["nodes"]} == set(flow.nodes)
    labels = {(e["from"], e["to"]): e["label"] for e in graph["edges"]}
    assert labels[("main_menu", "to_general")] == "password · 5, agent · 0"
    assert labels[("balance", "to_general")] == "unavailable"
    assert labels[("complaint_callback", "to_complaints")] == "declined"
    route = next(n for n in graph["nodes"] if n["id"] == "to_cards")
    assert route == {"id": "to_cards", "type": "route", "label": "queue cards · cards"}


# --- size


async def test_a_flow_over_1_mb_is_413_before_it_is_parsed(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    huge = "# " + "x" * 2_000_000 + "\n" + HOTLINE
    for path, extra in (("validate", {}), ("simulate", {"inputs": []}), ("publish", {"comment": "big", "base": 1})):
        reply = await client.post(f"/api/admin/flows/hotline/{path}", headers=admin, json={"text": huge, **extra})
        assert reply.status_code == 413, (path, reply.text)
        assert "at most 1,000,000 bytes (1 MB)" in reply.json()["detail"]
    # Just over the limit, in a body the server still reads: the text itself is measured.
    over = "# " + "x" * (MAX_FLOW_BYTES - len(HOTLINE)) + "\n" + HOTLINE
    assert len(over.encode()) > MAX_FLOW_BYTES and len(over.encode()) + 100 < MAX_BODY_BYTES
    reply = await client.post("/api/admin/flows/hotline/validate", headers=admin, json={"text": over})
    assert reply.status_code == 413 and f"({len(over.encode()):,} bytes)" in reply.json()["detail"]
    # Without a Content-Length (chunked), the body is cut off while it is read.

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(40):
            yield b"y" * 50_000
        yield b'"}'

    reply = await client.post("/api/admin/flows/hotline/validate", headers=admin, content=chunks())
    assert reply.status_code == 413 and "more than" in reply.json()["detail"]
    live = (await client.get("/api/admin/flows/hotline", headers=admin)).json()
    assert live["version"] == 1


# --- publishing


async def test_publish_makes_a_version_with_its_author_and_comment(client: httpx.AsyncClient,
                                                                    admin: dict[str, str]) -> None:
    reply = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                              json={"text": TO_PAYMENTS, "comment": "lost cards to payments", "base": 1})
    assert reply.status_code == 201, reply.text
    version = reply.json()
    assert (version["number"], version["author"], version["comment"], version["live"]) == (
        2, "admin", "lost cards to payments", True)
    live = (await client.get("/api/admin/flows/hotline", headers=admin)).json()
    assert (live["version"], live["text"]) == (2, TO_PAYMENTS)
    history = (await client.get("/api/admin/flows/hotline/versions", headers=admin)).json()
    assert [(v["number"], v["live"], v["author"]) for v in history] == [(2, True, "admin"), (1, False, "seed")]
    assert "text" not in history[0]
    old = (await client.get("/api/admin/flows/hotline/versions/1", headers=admin)).json()
    assert old["text"] == HOTLINE and old["live"] is False
    diff = (await client.get("/api/admin/flows/hotline/diff?a=1&b=2", headers=admin)).json()["diff"]
    assert "-      lost_card: to_cards\n" in diff and "+      lost_card: to_payments\n" in diff
    assert (await client.get("/api/admin/flows/hotline/diff?a=1&b=9", headers=admin)).status_code == 404


async def test_publish_with_a_stale_base_is_409_and_the_live_flow_stays(client: httpx.AsyncClient,
                                                                        admin: dict[str, str]) -> None:
    other = await login(client, "root2")
    first = await client.post("/api/admin/flows/hotline/publish", headers=other,
                              json={"text": TO_PAYMENTS, "comment": "root2 was first", "base": 1})
    assert first.status_code == 201, first.text
    mine = HOTLINE.replace("priority: 10", "priority: 20")
    assert mine != HOTLINE
    reply = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                              json={"text": mine, "comment": "raise cards priority", "base": 1})
    assert reply.status_code == 409, reply.text
    body = reply.json()
    assert body["detail"] == ("the live flow changed since you opened it (version 2 by root2): reload and merge")
    assert body["live"] == 2 and body["status"] == 409
    live = (await client.get("/api/admin/flows/hotline", headers=admin)).json()
    assert (live["version"], live["text"], live["author"]) == (2, TO_PAYMENTS, "root2")
    # Merged and published on top of version 2: accepted.
    merged = TO_PAYMENTS.replace("to_loans: {type: route, queue: loans, skills: [loans]}",
                                 "to_loans: {type: route, queue: loans, skills: [loans], priority: 20}")
    assert merged != TO_PAYMENTS
    again = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                              json={"text": merged, "comment": "raise cards priority", "base": 2})
    assert again.status_code == 201 and again.json()["number"] == 3


async def test_an_invalid_flow_is_422_with_its_problems_and_not_published(client: httpx.AsyncClient,
                                                                         admin: dict[str, str]) -> None:
    reply = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                              json={"text": BROKEN, "comment": "oops", "base": 1})
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["field"] == "text" and "to_nowhere" in body["detail"]
    assert any(p["line"] == BROKEN_LINE for p in body["problems"])
    no_comment = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                                   json={"text": TO_PAYMENTS, "comment": "", "base": 1})
    assert no_comment.status_code == 422 and no_comment.json()["field"] == "comment"
    assert (await client.get("/api/admin/flows/hotline", headers=admin)).json()["version"] == 1


# --- rollback and the audit log


async def test_rollback_makes_the_old_text_live_as_a_new_version(client: httpx.AsyncClient,
                                                                 admin: dict[str, str]) -> None:
    published = await client.post("/api/admin/flows/hotline/publish", headers=admin,
                                  json={"text": TO_PAYMENTS, "comment": "drill", "base": 1})
    assert published.status_code == 201
    reply = await client.post("/api/admin/flows/hotline/rollback", headers=admin,
                              json={"version": 1, "comment": "drill over"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["number"] == 3 and reply.json()["author"] == "admin"
    live = (await client.get("/api/admin/flows/hotline", headers=admin)).json()
    assert (live["version"], live["text"]) == (3, HOTLINE)
    assert "drill over" in live["comment"]
    unknown = await client.post("/api/admin/flows/hotline/rollback", headers=admin, json={"version": 42})
    assert unknown.status_code == 404 and "42" in unknown.json()["detail"]


async def test_the_audit_log_lists_publishes_and_rollbacks(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    await client.post("/api/admin/flows/hotline/publish", headers=admin,
                      json={"text": TO_PAYMENTS, "comment": "lost cards to payments", "base": 1})
    await client.post("/api/admin/flows/hotline/rollback", headers=admin, json={"version": 1, "comment": "undo"})
    entries = (await client.get("/api/admin/audit", headers=admin)).json()
    assert [(e["action"], e["who"]) for e in entries[:3]] == [("rollback", "admin"), ("publish", "admin"),
                                                            ("import", "seed")]
    publish = entries[1]
    assert "hotline" in publish["target"] and "lost cards to payments" in publish["detail"]
    assert isinstance(publish["at"], float) and publish["at"] > 0
    assert len((await client.get("/api/admin/audit?count=1", headers=admin)).json()) == 1
    assert (await client.get("/api/admin/audit?count=0", headers=admin)).status_code == 422


# --- simulation


async def test_simulate_runs_the_edited_text_and_refuses_an_invalid_one(client: httpx.AsyncClient,
                                                                       admin: dict[str, str]) -> None:
    reply = await client.post("/api/admin/flows/hotline/simulate", headers=admin,
                              json={"text": TO_PAYMENTS, "caller": "01099998888", "inputs": ["key:2"]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["decision"]["queue"] == "payments", body["decision"]
    assert body["steps"][0]["node"] == "main_menu"
    assert {"prompt", "node", "kind", "heard", "scores", "intent"} <= set(body["steps"][0])
    invalid = await client.post("/api/admin/flows/hotline/simulate", headers=admin,
                                json={"text": BROKEN, "inputs": ["key:2"]})
    assert invalid.status_code == 422 and any(p["line"] == BROKEN_LINE for p in invalid.json()["problems"])
    # Nothing was published by simulating.
    assert (await client.get("/api/admin/flows/hotline", headers=admin)).json()["version"] == 1
