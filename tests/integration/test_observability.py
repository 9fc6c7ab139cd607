"""The running controller's /metrics, /readyz and /healthz, around one simulated call through the real Asterisk."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from ivr.config import Settings
from ivr.ops import stack

pytestmark = pytest.mark.integration


def base(settings: Settings) -> str:
    return f"http://{settings.http_host}:{settings.http_port}"


async def scrape(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        reply = await client.get(f"{base(settings)}/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(reply.text) for sample in family.samples}


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and all((k, v) in sample_labels for k, v in labels.items()))


async def test_a_call_shows_on_metrics_and_the_controller_is_ready(call, live_stack: Settings) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        # The controller may have just (re)started: its pages come up a moment after FastAGI, AMI logs in.
        for _ in range(150):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{base(live_stack)}/healthz")).json()["alive"] is True:
                    break
            await asyncio.sleep(0.2)
        for _ in range(50):
            ready = await client.get(f"{base(live_stack)}/readyz")
            if ready.status_code == 200:
                break
            await asyncio.sleep(0.2)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"ami": "ok", "redis": "ok", "agi": "ok", "asr": "ok"}

    before = await scrape(live_stack)
    record = await call(dtmf=["2"])
    assert (record["intent"], record["queue"]) == ("lost_card", "cards")
    after = await scrape(live_stack)

    assert total(after, "ivr_calls_total") >= total(before, "ivr_calls_total") + 1
    keys = total(after, "ivr_turns_total", kind="ask", outcome="keys") - \
        total(before, "ivr_turns_total", kind="ask", outcome="keys")
    assert keys >= 1, "the call's key turn was not counted"
    # The call has left the IVR: nobody is counted at its nodes any more (the suite places calls one at a time).
    assert total(after, "ivr_calls_in_ivr", node="main_menu") == 0
    assert total(after, "ivr_up", component="ami") == total(after, "ivr_up", component="fastagi") == 1
    assert total(after, "process_resident_memory_bytes") > 0

    # The ACD's agents on /metrics are the ACD's own (its snapshot in Redis, written each second).
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    try:
        snapshot = json.loads(await client.get("ivr:acd") or "{}")
    finally:
        await client.aclose()
    assert total(after, "ivr_acd_agents") == len(snapshot.get("agents", {})) > 0

    # `ivr status` reads the same readiness.
    web, ready_check = await asyncio.to_thread(stack.web_checks, live_stack)
    assert web.ok and ready_check.ok, (web, ready_check)
