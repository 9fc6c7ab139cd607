"""/healthz, /readyz and /metrics of the web app (ivr/web/health.py), over the private Redis of the unit tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client import REGISTRY

from ivr import metrics
from ivr.config import Settings
from ivr.web.app import create_app
from ivr.web.health import client_allowed, metrics_networks

PARTS = (metrics.Component.AMI, metrics.Component.FASTAGI, metrics.Component.ASR)


@pytest.fixture(autouse=True)
def readiness_kept() -> Iterator[None]:
    """The parts' up/down state as it was before the test (it is process-wide)."""
    before = {c: metrics.is_up(c) for c in metrics.Component}
    yield
    for component, up in before.items():
        metrics.set_up(component, up)


def web(settings: Settings, redis: aioredis.Redis, tmp_path: Path) -> FastAPI:
    return create_app(settings, redis, static_dir=tmp_path / "static")


def http(app: FastAPI, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client as seen from `peer` (the TCP peer address the app checks)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(peer, 40000)), base_url="http://test")


@pytest.fixture
async def client(redis_db: aioredis.Redis, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with http(web(Settings(), redis_db, tmp_path)) as client:
        yield client


async def test_healthz_answers_while_the_process_lives_whatever_is_down(client: httpx.AsyncClient) -> None:
    for part in PARTS:
        metrics.set_up(part, False)
    reply = await client.get("/healthz")
    assert reply.status_code == 200 and reply.json()["alive"] is True


async def test_readyz_names_every_part_that_is_not_ready_then_turns_ready(client: httpx.AsyncClient) -> None:
    for part in PARTS:
        metrics.set_up(part, False)
    reply = await client.get("/readyz")
    assert reply.status_code == 503
    body = reply.json()
    assert body["not_ready"] == ["ami", "agi", "asr"]  # Redis (the private one) answers
    assert body["detail"] == "not ready: ami, agi, asr" and body["status"] == 503 and body["error_id"]
    assert body["checks"]["redis"] == "ok"
    assert "AMI not logged in" in body["checks"]["ami"]
    metrics.set_up(metrics.Component.AMI, True)
    metrics.set_up(metrics.Component.FASTAGI, True)
    assert (await client.get("/readyz")).json()["not_ready"] == ["asr"]
    metrics.set_up(metrics.Component.ASR, True)
    reply = await client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json() == {"ready": True, "checks": {"ami": "ok", "redis": "ok", "agi": "ok", "asr": "ok"}}
    metrics.set_up(metrics.Component.AMI, False)  # AMI lost: not ready again
    assert (await client.get("/readyz")).json()["not_ready"] == ["ami"]


async def test_readyz_names_redis_when_it_does_not_answer(tmp_path: Path) -> None:
    for part in PARTS:
        metrics.set_up(part, True)
    # Nothing listens on port 1: the PING fails at once.
    unreachable = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        async with http(web(Settings(), unreachable, tmp_path)) as client:
            reply = await client.get("/readyz")
    finally:
        await unreachable.aclose()
    assert reply.status_code == 503
    assert reply.json()["not_ready"] == ["redis"]
    assert reply.json()["checks"]["redis"].startswith("Redis unreachable: ")


async def test_metrics_in_prometheus_format_without_a_sign_in_from_loopback(client: httpx.AsyncClient) -> None:
    metrics.count_turn("ask", "transfer", "계좌 이체", "", None)
    reply = await client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    text = reply.text
    for series in ('ivr_turns_total{kind="ask",outcome="matched"}', "# TYPE ivr_calls_in_ivr gauge",
                   "# TYPE ivr_asr_latency_seconds histogram", 'ivr_errors_total{kind="navigation"}',
                   "ivr_audiosocket_sessions", "ivr_web_sockets", "ivr_ami_reconnects_total",
                   "# TYPE ivr_acd_waiting_calls gauge", 'ivr_acd_agents{state="ready"}', 'ivr_up{component="ami"}',
                   "process_resident_memory_bytes"):
        assert series in text, series
    turns = REGISTRY.get_sample_value("ivr_turns_total", {"kind": "ask", "outcome": "matched"})
    assert f'ivr_turns_total{{kind="ask",outcome="matched"}} {turns}' in text


@pytest.mark.parametrize(("peer", "clients", "status"), [
    ("127.0.0.1", None, 200), ("::1", None, 200), ("10.20.0.7", None, 403),
    ("10.20.0.7", ["127.0.0.1/32", "10.20.0.0/24"], 200), ("10.20.1.7", ["127.0.0.1/32", "10.20.0.0/24"], 403),
    ("127.0.0.1", [], 403),
])
async def test_metrics_only_to_the_networks_of_ivr_metrics_clients(redis_db: aioredis.Redis, tmp_path: Path,
                                                                    peer: str, clients: list[str] | None,
                                                                    status: int) -> None:
    settings = Settings() if clients is None else Settings(metrics_clients=clients)
    async with http(web(settings, redis_db, tmp_path), peer) as client:
        reply = await client.get("/metrics")
    assert reply.status_code == status
    if status == 403:
        assert reply.json()["detail"] == f"/metrics is served only to IVR_METRICS_CLIENTS, not to {peer}"
        assert reply.json()["error_id"]


def test_a_bad_network_is_named_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ivr.web.health"):
        networks = metrics_networks(["127.0.0.1/32", "10.0.0.300/8", " 192.168.1.0/24 "])
    assert [str(n) for n in networks] == ["127.0.0.1/32", "192.168.1.0/24"]
    assert any("'10.0.0.300/8' is not a network" in r.getMessage() for r in caplog.records)
    assert client_allowed("::ffff:127.0.0.1", networks)  # a dual-stack listener's loopback
    assert not client_allowed("testclient", networks)  # no address: never


async def test_an_internal_error_of_a_page_is_counted(redis_db: aioredis.Redis, tmp_path: Path) -> None:
    app = web(Settings(), redis_db, tmp_path)

    @app.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    before = REGISTRY.get_sample_value("ivr_errors_total", {"kind": "web"}) or 0.0
    async with http(app) as client:
        reply = await client.get("/api/boom")
    assert reply.status_code == 500 and reply.json()["detail"] == "internal error"
    assert REGISTRY.get_sample_value("ivr_errors_total", {"kind": "web"}) == before + 1
