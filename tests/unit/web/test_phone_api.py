"""GET /api/phone/config: a signed-in agent gets their own page phone's credentials, nobody else does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from ivr.config import Settings
from ivr.records.agent import Agent
from ivr.routing.agents import AgentDirectory
from ivr.telephony import pagephone
from ivr.web.app import create_app

PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
async def app(redis_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv(pagephone.password_key("1003"), raising=False)
    (tmp_path / "secrets.env").write_text(f"{pagephone.password_key('1003')}=page-secret-1003\n"
                                          "IVR_SIP_PASSWORD_1003=desk-secret-1003\n")
    directory = AgentDirectory(redis_db)
    await directory.put(Agent(id="A1003", name="정예린", device="PJSIP/webrtc-1003"))
    await directory.put(Agent(id="A1001", name="박지훈", device="PJSIP/1001"))
    await directory.put(Agent(id="A1004", name="강도윤", device="PJSIP/webrtc-1004"))  # no password provisioned
    settings = Settings(run_dir=tmp_path, stun_urls=["stun:stun.example.net:3478"],
                        turn_urls=["turn:turn.example.net:3478?transport=udp"], turn_username="u",
                        turn_password="p")  # type: ignore[arg-type]
    app = create_app(settings, redis_db, static_dir=tmp_path / "static")
    app.state.users.hasher = FAST
    for username, role, agent_id in (("page", "agent", "A1003"), ("desk", "agent", "A1001"),
                                     ("nopass", "field", "A1004"), ("sup", "supervisor", None)):
        await app.state.users.add(username, PASSWORD, role, agent_id)
    return app


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    reply = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


async def test_an_agent_with_a_page_phone_gets_its_credentials_uncached(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/phone/config", headers=await login(client, "page"))
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    assert reply.json() == {
        "enabled": True, "device": "PJSIP/webrtc-1003", "reason": "", "wss_url": "wss://127.0.0.1:8089/ws",
        "sip_uri": "sip:webrtc-1003@127.0.0.1", "authorization_user": "webrtc-1003", "password": "page-secret-1003",
        "display_name": "정예린", "ice_gathering_cap_ms": 1500,
        "ice_servers": [{"urls": ["stun:stun.example.net:3478"]},
                        {"urls": ["turn:turn.example.net:3478?transport=udp"], "username": "u", "credential": "p"}],
    }


async def test_an_agent_on_a_sip_phone_is_told_where_calls_ring_and_gets_no_secret(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/phone/config", headers=await login(client, "desk"))
    assert reply.status_code == 200
    body = reply.json()
    assert body["enabled"] is False and body["device"] == "PJSIP/1001" and "PJSIP/1001" in body["reason"]
    assert not {"password", "sip_uri", "wss_url"} & set(body)


async def test_only_call_takers_signed_in_and_a_missing_password_is_named(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/phone/config")).status_code == 401
    reply = await client.get("/api/phone/config", headers=await login(client, "sup"))
    assert reply.status_code == 403
    reply = await client.get("/api/phone/config", headers=await login(client, "nopass"))
    assert reply.status_code == 503
    assert "webrtc-1004" in reply.json()["detail"] and "ivr setup" in reply.json()["detail"]


def test_page_phone_names() -> None:
    assert pagephone.page_phone("PJSIP/webrtc-1001") == ("webrtc-1001", "1001")
    assert pagephone.page_phone("PJSIP/1001") is None
    assert pagephone.page_phone("PJSIP/webrtc-1001&PJSIP/1002") is None
    assert pagephone.endpoint_of("2001") == "webrtc-2001"
    assert pagephone.password_key("2001") == "IVR_WEBRTC_PASSWORD_2001"
