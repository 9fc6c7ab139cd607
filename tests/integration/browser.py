"""What the browser tests share: headless Debian Chromium, the demo users' passwords, signing in, screenshots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ivr.config import PROJECT_DIR, Settings, read_env_file
from ivr.sim.demo_users import ensure_demo_users, env_key

ARTIFACTS = PROJECT_DIR / "tests" / "artifacts"
"""Screenshots of every page the tests drive (gitignored), for a person to look at."""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def demo_passwords(settings: Settings) -> dict[str, str]:
    """Username -> password of the demo web users (created if missing; kept in run/demo_users.env)."""
    async def create() -> Path:
        client = aioredis.from_url(settings.redis_url, decode_responses=True)
        try:
            _, path = await ensure_demo_users(client)
            return path
        finally:
            await client.aclose()

    values = read_env_file(asyncio.run(create()))
    return {key.removeprefix("IVR_DEMO_PASSWORD_"): value for key, value in values.items()
            if key.startswith(env_key(""))}


async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium for one test (the body of the ``browser`` fixtures)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240  (one stat, before the browser starts)
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def sign_in(page: Any, settings: Settings, path: str, username: str, password: str) -> None:
    """Sign in through the page's own form, and wait for its live updates."""
    await page.goto(f"http://{settings.http_host}:{settings.http_port}{path}")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("login").wait_for(state="hidden", timeout=10_000)
    await page.locator('[data-testid="ws-status"][data-status="live"]').wait_for(timeout=10_000)


async def shot(page: Any, name: str) -> Path:
    """A full-page screenshot in tests/artifacts/ (no hover effects, from the top)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.mouse.move(0, 0)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path
