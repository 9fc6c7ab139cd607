"""POST /api/app-calls and friends (ivr/web/app_calls.py): WHIP-style answers and the house's JSON errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivr.sim.app_caller import AppCaller
from ivr.web.app import create_app
from ivr.webrtc.gateway import AppCallGateway
from tests.unit.test_webrtc_gateway import KEY, FakeAsterisk, settings, token


@pytest.fixture
async def gateway(redis_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    fake = FakeAsterisk()
    gw = AppCallGateway(settings(tmp_path, stun_urls=["stun:stun.example.net:3478"]), fake,  # type: ignore[arg-type]
                        redis_db)
    await gw.start()
    yield gw
    await gw.stop()
    await fake.close()


@pytest.fixture
async def app(redis_db, tmp_path: Path, gateway: AppCallGateway):  # type: ignore[no-untyped-def]
    return create_app(gateway.settings, redis_db, static_dir=tmp_path / "static", app_calls=gateway)


@pytest.fixture
async def offer():  # type: ignore[no-untyped-def]
    caller = AppCaller("http://test", token())
    yield await caller.offer_sdp()
    await caller.close()


def sdp_headers(tok: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok or token()}", "Content-Type": "application/sdp"}


async def test_an_offer_is_answered_with_sdp_location_and_ice_servers(client: httpx.AsyncClient, offer: str,
                                                                    gateway: AppCallGateway) -> None:
    reply = await client.post("/api/app-calls?screen=card", content=offer, headers=sdp_headers())
    assert reply.status_code == 201, reply.text
    assert reply.headers["content-type"] == "application/sdp" and reply.text.startswith("v=0")
    call_id = reply.headers["location"].rsplit("/", 1)[-1]
    assert reply.headers["location"] == f"/api/app-calls/{call_id}" and call_id in gateway.calls
    assert reply.headers.get_list("link") == ['<stun:stun.example.net:3478>; rel="ice-server"']
    assert reply.headers["cache-control"] == "no-store"
    status = (await client.get(f"/api/app-calls/{call_id}", headers=sdp_headers())).json()
    assert (status["customer_id"], status["screen"], status["state"]) == ("C1001", "card", "offered")
    assert (await client.delete(f"/api/app-calls/{call_id}", headers=sdp_headers())).status_code == 204
    ended = (await client.get(f"/api/app-calls/{call_id}", headers=sdp_headers())).json()  # kept in Redis
    assert (ended["state"], ended["ended_by"], ended["end_reason"]) == ("ended", "app", "the app hung up")
    other = await client.get(f"/api/app-calls/{call_id}", headers=sdp_headers(token("C1002")))
    assert other.status_code == 404


def auth(tok: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok or token()}"}


async def errors(reply: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = reply.json()
    assert body["status"] == reply.status_code and body["error_id"]
    return reply.status_code, body["detail"]


async def test_refusals_are_json_errors_naming_the_problem(client: httpx.AsyncClient, offer: str) -> None:
    assert await errors(await client.post("/api/app-calls", content=offer,
                                          headers={"Content-Type": "application/sdp"})) == (
        401, "an app call needs the app's token: Authorization: Bearer <token>")
    forged = await client.post("/api/app-calls", content=offer, headers=sdp_headers(
        token().rsplit(".", 1)[0] + ".AAAA"))
    assert await errors(forged) == (401, "the app token's signature does not verify")
    assert forged.headers["www-authenticate"].startswith("Bearer")
    assert await errors(await client.post("/api/app-calls", json={"sdp": offer}, headers={
        "Authorization": f"Bearer {token()}"})) == (415, "an app call's offer is application/sdp, not application/json")
    huge = await client.post("/api/app-calls", content=b"v=0\r\n" + b"a=x\r\n" * 200_000, headers=sdp_headers())
    assert await errors(huge) == (413, "the SDP offer is 1000005 bytes, over the gateway's limit of 16384 bytes")

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"a=x\r\n" * 2000
    chunked = await client.post("/api/app-calls", content=chunks(), headers=sdp_headers())
    assert await errors(chunked) == (413, "the SDP offer is over the gateway's limit of 16384 bytes")
    no_audio = await client.post("/api/app-calls", content=offer.replace("m=audio", "m=video"), headers=sdp_headers())
    assert (await errors(no_audio))[0] == 422 and "no audio section" in no_audio.json()["detail"]
    bad_screen = await client.post("/api/app-calls?screen=..%2Fx", content=offer, headers=sdp_headers())
    assert (await errors(bad_screen))[0] == 422


async def test_a_burst_of_offers_from_one_customer_is_429_after_its_bound(client: httpx.AsyncClient, offer: str,
                                                                        gateway: AppCallGateway) -> None:
    replies = await asyncio.gather(*(client.post("/api/app-calls", content=offer, headers=sdp_headers())
                                     for _ in range(20)))
    codes = [r.status_code for r in replies]
    assert codes.count(201) == 2 and codes.count(429) == 18, codes
    assert all("retry-after" in r.headers for r in replies if r.status_code == 429)
    other = await client.post("/api/app-calls", content=offer, headers=sdp_headers(token("C1002")))
    assert other.status_code == 201  # another customer is not affected
    assert len(gateway.calls) == 3


async def test_keys_and_hang_up_need_the_callers_own_call(client: httpx.AsyncClient, offer: str) -> None:
    reply = await client.post("/api/app-calls", content=offer, headers=sdp_headers())
    call_id = reply.headers["location"].rsplit("/", 1)[-1]
    keys = await client.post(f"/api/app-calls/{call_id}/dtmf", json={"digits": "1"}, headers=auth())
    assert await errors(keys) == (409, "the app call is offered, not in the hotline: no keys yet")
    bad = await client.post(f"/api/app-calls/{call_id}/dtmf", json={"digits": "12345x"}, headers=auth())
    assert bad.status_code == 422 and bad.json()["field"] == "digits"
    theirs = await client.delete(f"/api/app-calls/{call_id}", headers=sdp_headers(token("C1002")))
    assert theirs.status_code == 404
    assert (await client.delete("/api/app-calls/nonsense", headers=sdp_headers())).status_code == 422


async def test_a_process_without_the_gateway_says_so(redis_db, tmp_path: Path, offer: str) -> None:
    bare = create_app(settings(tmp_path), redis_db, static_dir=tmp_path / "static")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://test") as http:
        reply = await http.post("/api/app-calls", content=offer, headers=sdp_headers())
    assert await errors(reply) == (503, "app calls are not served by this process")
    assert KEY  # the same dev key as the gateway's tests
