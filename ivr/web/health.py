"""``/healthz``, ``/readyz`` and ``/metrics``: the controller as a load balancer, an orchestrator and Prometheus see it.

- ``/healthz``: the process answers (200). Nothing else is asked: a liveness probe that failed on Redis would
  have the orchestrator restart a controller that is serving calls.
- ``/readyz``: 200 only when the controller can take calls as designed: AMI logged in, Redis answering a PING,
  the FastAGI listener up, a speech model loaded; else 503 with the error body of every API error plus
  ``not_ready`` (the parts) and ``checks`` (each part: "ok" or what is wrong). The parts report themselves
  (``ivr.metrics.set_up``); Redis is pinged on each request, bounded by ``READY_TIMEOUT_S``.
- ``/metrics``: Prometheus' text format (``ivr.metrics``, prometheus-client). No sign-in (a scraper has no
  session), so it is served only to the networks in ``IVR_METRICS_CLIENTS`` (loopback by default), checked
  against the TCP peer's address (the web app never trusts proxy headers): a 403 naming the setting for anyone
  else. The web app itself listens on ``IVR_HTTP_HOST`` (loopback by default) like the pages.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import os
import uuid
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ivr import metrics
from ivr.config import Settings
from ivr.routing.acd import Acd, Seat

log = logging.getLogger(__name__)

#: The longest /readyz waits for Redis' PING: a probe must answer quickly even when Redis does not.
READY_TIMEOUT_S = 1.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Probes and scrapes read the state now: never a cached answer.
NO_STORE = {"Cache-Control": "no-store"}


def health_router(settings: Settings, redis: aioredis.Redis, acd: Acd | None = None) -> APIRouter:
    """The three routes, over the web app's Redis and this process's ACD (the ACD's gauges read it)."""
    router = APIRouter(tags=["health"])
    allowed = metrics_networks(settings.metrics_clients)
    metrics.watch_acd((lambda: acd_counts(acd)) if acd is not None else None)

    @router.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"alive": True, "pid": os.getpid()}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await readiness(redis)
        not_ready = [part for part, state in checks.items() if state != "ok"]
        if not not_ready:
            return JSONResponse({"ready": True, "checks": checks}, headers=NO_STORE)
        return JSONResponse({"detail": f"not ready: {', '.join(not_ready)}", "status": 503,
                             "error_id": uuid.uuid4().hex[:12], "ready": False, "not_ready": not_ready,
                             "checks": checks}, status_code=503, headers=NO_STORE)

    @router.get("/metrics", include_in_schema=False)
    async def metrics_page(request: Request) -> Response:
        peer = request.client.host if request.client else ""
        if not client_allowed(peer, allowed):
            return JSONResponse({"detail": f"/metrics is served only to IVR_METRICS_CLIENTS, not to {peer or '?'}",
                                 "status": 403, "error_id": uuid.uuid4().hex[:12]}, status_code=403)
        # Rendering walks every series: a thread, so a scrape never holds up a call's turn in this loop.
        body = await asyncio.to_thread(generate_latest, REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)

    return router


async def readiness(redis: aioredis.Redis) -> dict[str, str]:
    """Each part /readyz needs: "ok", or what is wrong with it."""
    checks = {
        "ami": "ok" if metrics.is_up(metrics.Component.AMI) else "AMI not logged in (Asterisk down, or the login "
                                                                  "refused: see the controller's log)",
        "redis": await _ping(redis),
        "agi": "ok" if metrics.is_up(metrics.Component.FASTAGI) else "the FastAGI listener is not up",
        "asr": "ok" if metrics.is_up(metrics.Component.ASR) else "no speech model loaded",
    }
    return checks


async def _ping(redis: aioredis.Redis) -> str:
    try:
        await asyncio.wait_for(redis.ping(), READY_TIMEOUT_S)
    except TimeoutError:
        return f"Redis did not answer a PING within {READY_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"Redis unreachable: {type(exc).__name__}: {exc}"
    return "ok"


def metrics_networks(entries: list[str]) -> list[Network]:
    """IVR_METRICS_CLIENTS as networks; an entry that is none is logged and left out (it never stops the pages)."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            log.error("IVR_METRICS_CLIENTS: %r is not a network (%s): left out", entry, exc)
    return networks


def client_allowed(peer: str, networks: list[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # no TCP peer (a Unix socket, a test transport without one)
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack listener is loopback too
    return any(address in network for network in networks)


def seat_state(seat: Seat) -> str:
    """The agent's state on the dashboard: what a call is doing to them, else their own presence."""
    return seat.activity or seat.status.value


def acd_counts(acd: Acd) -> metrics.AcdCounts:
    waiting = collections.Counter(call.queue for call in list(acd.router.waiting.values()))
    agents = collections.Counter(seat_state(seat) for seat in list(acd.seats.values()))
    return metrics.AcdCounts(waiting=dict(waiting), agents=dict(agents))
