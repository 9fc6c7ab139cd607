"""The web API and WebSocket hub against the real Redis (db 15): auth, roles, pops, dispositions, the wall.

HTTP through httpx's ASGI transport; WebSockets through a real uvicorn (``serve_web``) on a free port,
with the ``websockets`` client, so the embedding in a running loop is exercised too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from argon2 import PasswordHasher
from websockets.exceptions import ConnectionClosed

from ivr.config import Settings, read_env_file
from ivr.records.agent import Agent
from ivr.records.call import CallRecord
from ivr.records.customer import Customer
from ivr.routing.agents import AgentDirectory, Presence
from ivr.routing.customers import CustomerStore
from ivr.sim.demo_users import ensure_demo_users, env_key
from ivr.web.app import create_app, serve_web
from ivr.web.auth import UserStore
from ivr.web.hub import SEND_QUEUE_MAX, Client, Hub
from ivr.web.wall import Wall

PASSWORD = "correct horse battery"
ORIGIN = "http://127.0.0.1:8080"
#: Cheap argon2 parameters: the tests check the logic, not the cost.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
AGENTS = [
    Agent(id="A1001", name="박지훈", device="PJSIP/1001", skills={"cards": 8}),
    Agent(id="A1002", name="최수아", device="PJSIP/1002", skills={"loans": 6}),
    Agent(id="F2001", name="윤재호", role="field", device="PJSIP/2001", skills={"loans": 9}),
    Agent(id="S0001", name="오세영", role="supervisor", device="PJSIP/1099"),
]
USERS = [("a1", "agent", "A1001"), ("a2", "agent", "A1002"), ("f1", "field", "F2001"),
         ("sup", "supervisor", "S0001"), ("admin", "admin", None)]


@pytest.fixture
async def app(redis_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    directory = AgentDirectory(redis_db)
    for agent in AGENTS:
        await directory.put(agent)
    app = create_app(Settings(web_session_ttl_s=60), redis_db, static_dir=tmp_path / "static")
    app.state.users.hasher = FAST
    for username, role, agent_id in USERS:
        await app.state.users.add(username, PASSWORD, role, agent_id)
    return app


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    reply = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


async def published(pubsub: Any, wanted: Any, timeout: float = 3.0) -> dict[str, Any]:
    """The first message on ``pubsub`` that ``wanted`` accepts (pub/sub is server-wide: a running controller's
    messages may come through too)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message and wanted(data := json.loads(message["data"])):
                return dict(data)


async def store_pop(redis, call_id: str, agent: str, customer: str | None = "C1") -> None:  # type: ignore[no-untyped-def]
    pop = {"call_id": call_id, "agent_id": agent, "offered_at": time.time(), "caller": "01012345678",
           "customer": {"id": customer, "name": "김민준"} if customer else None,
           "ivr": {"path": ["main_menu", "to_cards"], "intent": "lost_card", "queue": "cards", "turns": []}}
    await redis.set(f"ivr:pop:{call_id}", json.dumps({"agent": agent, "pop": pop}))


# --- sign-in and sessions


async def test_login_gives_a_token_that_opens_the_api(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/login", json={"username": "a1", "password": PASSWORD})
    body = reply.json()
    assert reply.status_code == 200 and body["role"] == "agent" and body["agent_id"] == "A1001"
    assert len(body["token"]) >= 40 and body["expires_at"] == pytest.approx(time.time() + 60, abs=5)
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json() == {"username": "a1", "role": "agent", "agent_id": "A1001", "name": "a1"}
    assert me.headers["cache-control"] == "no-store" and me.headers["x-frame-options"] == "DENY"


async def test_wrong_password_and_unknown_user_get_the_same_answer(client: httpx.AsyncClient) -> None:
    wrong = await client.post("/api/login", json={"username": "a1", "password": "nope-nope"})
    unknown = await client.post("/api/login", json={"username": "nobody", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong username or password"


async def test_password_guessing_is_slowed_down(client: httpx.AsyncClient) -> None:
    for _ in range(10):
        assert (await client.post("/api/login", json={"username": "a2", "password": "guess-123"})).status_code == 401
    reply = await client.post("/api/login", json={"username": "a2", "password": PASSWORD})
    assert reply.status_code == 429 and int(reply.headers["retry-after"]) > 0


async def test_an_old_hash_is_upgraded_at_login(app, client: httpx.AsyncClient, redis_db) -> None:  # type: ignore[no-untyped-def]
    app.state.users.hasher = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    await login(client, "a1")
    stored = json.loads(await redis_db.get("ivr:user:a1"))["password_hash"]
    assert stored.startswith("$argon2id$") and "m=16,t=2" in stored


async def test_missing_unknown_and_expired_sessions_are_401(app, client: httpx.AsyncClient, redis_db) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/api/me")).status_code == 401
    assert (await client.get("/api/me", headers={"Authorization": "Bearer nonsense"})).status_code == 401
    headers = await login(client, "a1")
    token = headers["Authorization"].split()[1]
    # The key outlived its time (a clock at the edge): the stored expiry still counts.
    await redis_db.set(f"ivr:session:{token}", json.dumps({"username": "a1", "expires_at": time.time() - 1}))
    reply = await client.get("/api/me", headers=headers)
    assert reply.status_code == 401 and "sign in again" in reply.json()["detail"]
    assert reply.headers["www-authenticate"] == "Bearer"
    headers = await login(client, "a1")
    assert 0 < await redis_db.ttl(f"ivr:session:{headers['Authorization'].split()[1]}") <= 60
    await redis_db.delete(f"ivr:session:{headers['Authorization'].split()[1]}")  # Redis expired it
    assert (await client.get("/api/me", headers=headers)).status_code == 401


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    headers = await login(client, "sup")
    assert (await client.post("/api/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/me", headers=headers)).status_code == 401


# --- roles

ROUTES = [("GET", "/api/me"), ("POST", "/api/logout"), ("GET", "/api/agents"), ("GET", "/api/agents/me"),
          ("POST", "/api/agents/A1001/presence"), ("GET", "/api/calls/c1/pop"), ("POST", "/api/calls/c1/decline"),
          ("POST", "/api/calls/c1/disposition"), ("GET", "/api/ticket-templates"), ("GET", "/api/wall")]
#: Who may use each route (None: every signed-in user).
ALLOWED: dict[str, set[str] | None] = {
    "/api/agents": {"supervisor", "admin"}, "/api/wall": {"supervisor", "admin"},
    "/api/agents/me": {"agent", "field"}, "/api/calls/c1/decline": {"agent", "field"},
    "/api/calls/c1/disposition": {"agent", "field"}}


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_api_route_needs_a_session(client: httpx.AsyncClient, method: str, path: str) -> None:
    reply = await client.request(method, path, json={})
    assert reply.status_code == 401, reply.text
    assert set(reply.json()) >= {"detail", "status", "error_id"}


async def test_roles_on_every_route(client: httpx.AsyncClient) -> None:
    for username, role, _ in USERS:
        headers = await login(client, username)
        for method, path in ROUTES:
            if path == "/api/logout":
                continue
            reply = await client.request(method, path, headers=headers, json={})
            allowed = ALLOWED.get(path)
            if allowed is not None and role not in allowed:
                assert reply.status_code == 403, (username, path, reply.text)
                assert f"you are {role}" in reply.json()["detail"]
            else:
                assert reply.status_code not in (401, 403), (username, path, reply.text)


async def test_agents_list_and_my_agent(client: httpx.AsyncClient) -> None:
    agents = (await client.get("/api/agents", headers=await login(client, "sup"))).json()
    assert [a["id"] for a in agents] == ["A1001", "A1002", "F2001", "S0001"]
    assert set(agents[0]) == {"id", "name", "role", "device", "skills", "status", "reason", "activity", "call_id"}
    mine = (await client.get("/api/agents/me", headers=await login(client, "f1"))).json()
    assert (mine["id"], mine["role"], mine["status"]) == ("F2001", "field", "offline")


async def test_presence_is_published_and_only_ones_own(client: httpx.AsyncClient, redis_db) -> None:  # type: ignore[no-untyped-def]
    agent = await login(client, "a1")
    pubsub = redis_db.pubsub()
    await pubsub.subscribe("ivr:presence")
    try:
        reply = await client.post("/api/agents/A1001/presence", headers=agent,
                                  json={"status": "not_ready", "reason": "lunch"})
        assert reply.status_code == 204
        message = await published(pubsub, lambda m: m.get("by") == "web")
    finally:
        await pubsub.aclose()
    assert message | {"at": 0} == {"agent": "A1001", "status": "not_ready", "reason": "lunch", "by": "web", "at": 0}
    other = await client.post("/api/agents/A1002/presence", headers=agent, json={"status": "ready"})
    assert other.status_code == 403
    supervisor = await client.post("/api/agents/A1002/presence", headers=await login(client, "sup"),
                                   json={"status": "ready"})
    assert supervisor.status_code == 204
    assert (await AgentDirectory(redis_db).presence("A1002"))["status"] == "ready"
    unknown = await client.post("/api/agents/Z9/presence", headers=await login(client, "admin"),
                                json={"status": "ready"})
    assert unknown.status_code == 404


async def test_validation_error_names_the_field(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/agents/A1001/presence", headers=await login(client, "a1"),
                              json={"status": "sleeping"})
    body = reply.json()
    assert reply.status_code == 422 and body["field"] == "status"
    assert body["detail"].startswith("status: ") and "ready" in body["detail"]
    missing = await client.post("/api/login", json={"username": "a1"})
    assert missing.status_code == 422 and missing.json()["detail"].startswith("password: ")


# --- pops, decline, disposition


async def test_a_pop_is_seen_by_its_agent_and_supervisors_only(client: httpx.AsyncClient, redis_db) -> None:  # type: ignore[no-untyped-def]
    await store_pop(redis_db, "c1", "A1001")
    mine = await client.get("/api/calls/c1/pop", headers=await login(client, "a1"))
    assert mine.status_code == 200 and mine.json()["agent_id"] == "A1001" and mine.json()["call_id"] == "c1"
    theirs = await client.get("/api/calls/c1/pop", headers=await login(client, "a2"))
    nothing = await client.get("/api/calls/c9/pop", headers=await login(client, "a2"))
    assert theirs.status_code == nothing.status_code == 404  # not 403: no hint that the call exists
    assert theirs.json()["detail"] == "no screen pop for call c1"
    assert (await client.get("/api/calls/c1/pop", headers=await login(client, "sup"))).status_code == 200
    bad_id = await client.get("/api/calls/c1%3Ax/pop", headers=await login(client, "sup"))
    assert bad_id.status_code == 422 and bad_id.json()["field"] == "call_id"


async def test_decline_asks_the_acd(client: httpx.AsyncClient, redis_db) -> None:  # type: ignore[no-untyped-def]
    await store_pop(redis_db, "c1", "A1001")
    pubsub = redis_db.pubsub()
    await pubsub.subscribe("ivr:acd:commands")
    try:
        assert (await client.post("/api/calls/c1/decline", headers=await login(client, "a2"))).status_code == 404
        reply = await client.post("/api/calls/c1/decline", headers=await login(client, "a1"))
        assert reply.status_code == 202
        message = await published(pubsub, lambda m: m.get("call_id") == "c1")
    finally:
        await pubsub.aclose()
    assert message == {"type": "decline", "call_id": "c1", "agent": "A1001"}


async def test_disposition_goes_to_history_and_tickets_masked(client: httpx.AsyncClient, redis_db) -> None:  # type: ignore[no-untyped-def]
    customers = CustomerStore(redis_db)
    await customers.put(Customer(id="C1", name="김민준", phones=["01012345678"]))
    await redis_db.set("ivr:call:c1", json.dumps(CallRecord(call_id="c1", caller="01012345678",
                                                            started_at=1000.0).to_dict()))
    await store_pop(redis_db, "c1", "A1001")
    agent = await login(client, "a1")
    body = {"disposition": "escalated", "notes": "lost card 4111 1111 1111 1111 yesterday",
            "ticket": {"template": "lost_card", "fields": {"card_last4": "1111", "blocked": "yes",
                                                           "lost_at": "card 4111111111111111 at the station"}}}
    missing = await client.post("/api/calls/c1/disposition", headers=agent,
                                json=body | {"ticket": {"template": "lost_card", "fields": {"card_last4": "1111"}}})
    assert missing.status_code == 422 and missing.json()["field"] == "ticket.fields.blocked"
    assert (await client.post("/api/calls/c1/disposition", headers=await login(client, "a2"),
                              json=body)).status_code == 404
    reply = await client.post("/api/calls/c1/disposition", headers=agent, json=body)
    assert reply.status_code == 201, reply.text
    ticket_id = reply.json()["ticket_id"]
    assert ticket_id.startswith("T")
    [contact] = await customers.history("C1")
    assert (contact.call_id, contact.agent, contact.outcome, contact.disposition, contact.ticket_id, contact.at) == (
        "c1", "A1001", "answered", "escalated", ticket_id, 1000.0)
    assert contact.notes == "lost card 411111******1111 yesterday"
    [(_, ticket)] = await redis_db.xrange("ivr:tickets")
    assert ticket["ticket_id"] == ticket_id and ticket["customer"] == "C1" and ticket["template"] == "lost_card"
    assert json.loads(ticket["fields"])["lost_at"] == "card 411111******1111 at the station"
    stored = json.dumps(await redis_db.xrange("ivr:tickets")) + (await redis_db.get("ivr:disposition:c1"))
    assert "4111111111111111" not in stored.replace(" ", "")
    again = await client.post("/api/calls/c1/disposition", headers=agent, json=body)
    assert again.status_code == 409


async def test_ticket_templates(client: httpx.AsyncClient) -> None:
    templates = (await client.get("/api/ticket-templates", headers=await login(client, "a1"))).json()
    assert set(templates) == {"lost_card", "complaint", "loan", "general"}
    assert {"name": "card_last4", "label": "Card (last 4 digits)", "required": True} in templates["lost_card"]["fields"]


# --- errors and pages


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/nothing-here")
    assert reply.status_code == 404 and reply.json()["detail"] == "not found: GET /api/nothing-here"
    assert reply.json()["status"] == 404 and reply.json()["error_id"]


async def test_internal_error_gives_an_id_and_no_traceback(app, client: httpx.AsyncClient, caplog) -> None:  # type: ignore[no-untyped-def]
    async def broken() -> None:
        raise RuntimeError("secret internals")

    app.state.desk.agents = broken
    headers = await login(client, "sup")
    with caplog.at_level(logging.ERROR, logger="ivr.web.app"):
        reply = await client.get("/api/agents", headers=headers)
    body = reply.json()
    assert reply.status_code == 500 and body["detail"] == "internal error" and len(body["error_id"]) == 12
    assert "secret" not in reply.text and "Traceback" not in reply.text
    [record] = [r for r in caplog.records if body["error_id"] in r.getMessage()]
    assert record.exc_info and "secret internals" in str(record.exc_info[1])


async def test_pages_are_served_once_they_exist(app, client: httpx.AsyncClient, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = await client.get("/agent")
    assert missing.status_code == 404 and "ivr/web/static/agent.html is missing" in missing.json()["detail"]
    assert (await client.get("/static/app.js")).status_code == 404
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "agent.html").write_text("<h1>agent</h1>")
    (tmp_path / "static" / "app.js").write_text("1")
    page = await client.get("/agent")
    assert page.status_code == 200 and page.text == "<h1>agent</h1>" and page.headers["content-type"].startswith(
        "text/html")
    assert (await client.get("/static/app.js")).text == "1"
    assert (await client.get("/openapi.json")).json()["paths"]["/api/login"]


async def test_static_modules_in_subfolders_are_served_as_javascript(app, client: httpx.AsyncClient,  # type: ignore[no-untyped-def]
                                                                      tmp_path: Path) -> None:
    (tmp_path / "static" / "lib").mkdir(parents=True)
    (tmp_path / "static" / "lib" / "dom.js").write_text("export const x = 1;\n")
    reply = await client.get("/static/lib/dom.js")
    assert reply.status_code == 200 and reply.text == "export const x = 1;\n"
    assert reply.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
    assert (await client.get("/static/lib/../../secrets.env")).status_code == 404


# --- the wall


async def test_wall_counts_queues_agents_and_ivr_nodes(redis_db) -> None:  # type: ignore[no-untyped-def]
    await AgentDirectory(redis_db).put(AGENTS[0])
    now = 10_000.0
    await redis_db.set("ivr:acd", json.dumps({
        "agents": {"A1001": {"shown": "ringing", "device": "PJSIP/1001", "device_state": "RINGING"}},
        "waiting": {"w1": {"queue": "cards", "position": 1, "callback": False},
                    "w2": {"queue": "cards", "position": 2, "callback": False}},
        "offers": {}, "answered": 0, "ronas": 0}))
    for call_id, queued_at in (("w1", now - 42.7), ("w2", now - 5)):
        await redis_db.set(f"ivr:call:{call_id}", json.dumps({"call_id": call_id, "queued_at": queued_at}))
    await redis_db.set("ivr:call:a1", json.dumps({"call_id": "a1", "queue": "loans", "queued_at": now - 30,
                                                  "answered_at": now - 20}))
    wall = Wall(redis_db, queues=["general", "cards"])
    for event in ({"type": "call.started", "call_id": "i1"}, {"type": "call.listening", "call_id": "i1",
                                                                 "node": "main_menu"},
                  {"type": "call.listening", "call_id": "i2", "node": "main_menu"},
                  {"type": "call.turn", "call_id": "i3", "node": "confirm"},
                  {"type": "call.routed", "call_id": "i3"}):
        wall.on_event(event, now)
    assert wall.on_event({"type": "call.answered", "call_id": "a1", "agent": "A1001"}, now)
    await wall.record_outcome("a1", "call.answered", now)
    built = await wall.build(now)
    assert built["queues"] == {"general": {"waiting": 0, "longest_wait_s": 0, "service_level": None, "fcr": None},
                               "cards": {"waiting": 2, "longest_wait_s": 42, "service_level": None, "fcr": None},
                               "loans": {"waiting": 0, "longest_wait_s": 0, "service_level": 1.0, "fcr": None}}
    # First-contact resolution comes from the agents' dispositions once they give them.
    await redis_db.set("ivr:disposition:a1", json.dumps({"call_id": "a1", "disposition": "resolved"}))
    assert (await wall.build(now))["queues"]["loans"]["fcr"] == 1.0
    assert built["agents"] == {"A1001": {"name": "박지훈", "shown": "ringing", "device_state": "RINGING"}}
    assert built["ivr"] == {"main_menu": 2} and built["at"] == now


# --- WebSockets, through a real uvicorn in this loop


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def server(app) -> AsyncIterator[tuple[str, Any]]:  # type: ignore[no-untyped-def]
    port = free_port()
    app.state.hub.wall_every_s = 0.1
    task = serve_web(Settings(http_port=port), app.state.users.redis, app=app)
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.02)
    await asyncio.wait_for(app.state.hub.subscribed.wait(), 2)
    yield f"ws://127.0.0.1:{port}/ws", app
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def token_of(app, username: str) -> str:  # type: ignore[no-untyped-def]
    user = await app.state.users.get(username)
    token, _ = await app.state.users.open_session(user)
    return str(token)


async def next_of(ws: Any, kind: str, timeout: float = 2.0) -> dict[str, Any]:
    """The next message of ``kind``, skipping others (the greeting)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return dict(message)


async def close_code(url: str, origin: str | None) -> int:
    async with websockets.connect(url, origin=origin) as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 2)
    assert closed.value.rcvd is not None
    return int(closed.value.rcvd.code)


async def test_socket_needs_a_session_and_an_allowed_origin(server) -> None:  # type: ignore[no-untyped-def]
    url, app = server
    assert await close_code(f"{url}?token=forged", ORIGIN) == 4401
    assert await close_code(url, ORIGIN) == 4401
    token = await token_of(app, "a1")
    assert await close_code(f"{url}?token={token}", "http://evil.example") == 4403
    assert await close_code(f"{url}?token={token}", None) == 4403


async def test_pop_reaches_only_the_offered_agent(server, redis_db) -> None:  # type: ignore[no-untyped-def]
    url, app = server
    async with websockets.connect(f"{url}?token={await token_of(app, 'a1')}", origin=ORIGIN) as a1, \
            websockets.connect(f"{url}?token={await token_of(app, 'a2')}", origin=ORIGIN) as a2, \
            websockets.connect(f"{url}?token={await token_of(app, 'sup')}", origin=ORIGIN) as sup:
        hello = await next_of(a1, "hello")
        assert hello["user"]["agent_id"] == "A1001"
        await next_of(a2, "presence")  # greeted
        await next_of(sup, "wall")
        pop = {"call_id": "c7", "agent_id": "A1001", "customer": None}
        await redis_db.publish("ivr:pops", json.dumps({"agent": "A1001", "pop": pop}))
        await redis_db.publish("ivr:events", json.dumps({"type": "call.answered", "call_id": "c7",
                                                         "agent": "A1001", "at": 1.0}))
        await AgentDirectory(redis_db).set_presence("A1002", Presence.READY)
        assert (await next_of(a1, "pop"))["pop"] == pop
        assert await next_of(a1, "call") == {"type": "call", "call_id": "c7", "event": "call.answered",
                                             "agent": "A1001", "at": 1.0}
        # Messages arrive in order: A1002's presence coming first means the pop never went to them.
        async with asyncio.timeout(2):
            while (after := json.loads(await a2.recv()))["type"] != "presence" or after["status"] != "ready":
                assert after["type"] != "pop", after
        assert after["agent"] == "A1002"
        seen = await next_of(sup, "presence")  # supervisors see presence, never pops
        assert seen["agent"] == "A1002"
        await a1.send(json.dumps({"type": "ping"}))
        assert await next_of(a1, "pong") == {"type": "pong"}


async def test_supervisors_get_the_wall_when_it_changes(server, redis_db) -> None:  # type: ignore[no-untyped-def]
    url, app = server
    async with websockets.connect(f"{url}?token={await token_of(app, 'sup')}", origin=ORIGIN) as sup:
        first = await next_of(sup, "wall")
        assert first["wall"]["queues"].get("cards", {}).get("waiting", 0) == 0
        await redis_db.set("ivr:call:w1", json.dumps({"call_id": "w1", "queued_at": time.time() - 3}))
        await redis_db.set("ivr:acd", json.dumps({"agents": {}, "offers": {}, "waiting": {
            "w1": {"queue": "cards", "position": 1, "callback": False}}}))
        async with asyncio.timeout(2):  # pushed, without asking (other walls may come first: a running stack's events)
            while (await next_of(sup, "wall"))["wall"]["queues"].get("cards", {}).get("waiting") != 1:
                pass


async def test_a_stalled_socket_is_dropped_and_blocks_nobody(redis_db) -> None:  # type: ignore[no-untyped-def]
    received: list[str] = []

    class Stalled:
        async def send_text(self, text: str) -> None:
            await asyncio.Event().wait()  # a browser that stopped reading: never drains

    class Reading:
        async def send_text(self, text: str) -> None:
            received.append(text)

    hub = Hub(redis_db, UserStore(redis_db), Wall(redis_db), [ORIGIN])
    supervisor = await UserStore(redis_db, hasher=FAST).add("s", PASSWORD, "supervisor")
    slow, fast = Client(Stalled(), supervisor, "t1"), Client(Reading(), supervisor, "t2")  # type: ignore[arg-type]
    hub.clients |= {slow, fast}
    senders = [asyncio.create_task(Hub._send_loop(slow)), asyncio.create_task(Hub._send_loop(fast))]
    total = SEND_QUEUE_MAX + 10
    for n in range(total):
        hub.broadcast(lambda c: c.supervising, {"type": "wall", "n": n})  # returns at once: it never waits
        if n % 50 == 0:
            await asyncio.sleep(0)  # the senders run between bursts
    for _ in range(5):
        await asyncio.sleep(0)
    for task in senders:
        task.cancel()
    assert slow.gone.is_set() and slow.close_code == 1013
    assert not fast.gone.is_set() and len(received) == total


async def test_busy_port_leaves_the_controller_running(redis_db, caplog) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(http_port=taken.getsockname()[1])
        with caplog.at_level(logging.ERROR, logger="ivr.web.app"):
            task = serve_web(settings, redis_db)
            await asyncio.wait_for(task, 2)
    assert task.exception() is None
    assert any("web pages NOT served" in r.getMessage() for r in caplog.records)


# --- demo users


async def test_demo_users_get_generated_passwords_kept_in_a_private_file(redis_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "demo_users.env"
    users, written = await ensure_demo_users(redis_db, path, store=UserStore(redis_db, hasher=FAST))
    assert written == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    roles = {u.username: (u.role.value, u.agent_id) for u in users}
    assert roles["A1001"] == ("agent", "A1001") and roles["F2002"] == ("field", "F2002")
    assert roles["S0001"] == ("supervisor", "S0001") and roles["admin"] == ("admin", None) and len(roles) == 8
    passwords = read_env_file(path)
    store = UserStore(redis_db, hasher=FAST)
    assert await store.verify("A1001", passwords[env_key("A1001")])
    await ensure_demo_users(redis_db, path, store=store)
    assert read_env_file(path) == passwords  # generated once


async def test_the_embedded_server_leaves_signals_to_the_controller(server) -> None:  # type: ignore[no-untyped-def]
    import signal

    # uvicorn's own Server.serve() would have replaced these with its handle_exit while running.
    handlers = {signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)}
    assert not any(getattr(h, "__name__", "") == "handle_exit" for h in handlers), handlers
