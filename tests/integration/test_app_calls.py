"""App calls through the real stack: an aiortc peer in this process stands in for the bank's app.

Its offer goes to the controller's ``POST /api/app-calls``; the gateway answers with aiortc and bridges the call into
Asterisk (AudioSocket channel into ``[app-call]``, then ``[hotline]``): the real IVR, Vosk, routing, ACD and pop.
Everything the app hears and says crosses Opus, DTLS-SRTP and ICE on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.ops import stack
from ivr.sim.app_caller import AppCaller, rms
from ivr.webrtc.ice import restrict_host_addresses
from ivr.webrtc.tokens import issue_token
from tests.integration.test_routing import directory, phones, ready  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

QUIET_RMS = 300.0


@pytest.fixture(scope="module", autouse=True)
def loopback_ice() -> None:
    """This process's ICE offers loopback only, like the gateway's (IVR_WEBRTC_ICE_INTERFACES)."""
    restrict_host_addresses(["127.0.0.1"])


@pytest.fixture
async def red(live_stack: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def apps(live_stack: Settings) -> AsyncIterator[Callable[..., AppCaller]]:
    made: list[AppCaller] = []
    base = f"http://{live_stack.http_host}:{live_stack.http_port}"

    def _app(customer: str, screen: str | None = None) -> AppCaller:
        app = AppCaller(base, token(live_stack, customer, screen), screen=screen)
        made.append(app)
        return app

    yield _app
    for app in made:
        if app.call_id:
            with contextlib.suppress(Exception):  # ended already, or the test failed midway: never left up
                await app.hang_up()
        await app.close()


def token(settings: Settings, customer: str, screen: str | None = None, **kwargs: Any) -> str:
    return issue_token(settings.app_token_secret.get_secret_value(), customer, issuer=settings.app_token_issuer,
                       audience=settings.app_token_audience, screen=screen, **kwargs)


def channels(settings: Settings) -> int:
    out = stack.asterisk_rx(settings, "core show channels count").stdout
    match = re.search(r"(\d+) active channel", out)
    assert match, out
    return int(match.group(1))


async def record(red: aioredis.Redis, call_id: str) -> dict[str, Any]:
    raw = await red.get(f"ivr:call:{call_id}")
    return json.loads(raw) if raw else {}


async def until(probe: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.1)


async def prompt_heard(app: AppCaller, since: float, timeout: float = 10.0) -> tuple[float, float]:
    """When the IVR's prompt reached the app (energy on the received track) and when it stopped (0.6 s quiet)."""
    started: float | None = None

    async def over() -> bool:
        nonlocal started
        started = started or app.heard.energy_after(since, QUIET_RMS)
        if started is None:
            return False
        tail = [(at, pcm) for at, pcm in app.heard.chunks if at > started]
        return bool(tail) and tail[-1][0] - started > 0.6 and all(
            rms(pcm) < QUIET_RMS for at, pcm in tail if at > tail[-1][0] - 0.6)

    await until(over, timeout, "the IVR's prompt at the app")
    assert started is not None
    return started, time.time()


def pcm16(path: Any) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 16_000
        return wav.readframes(wav.getnframes())


async def test_an_app_call_is_heard_recognized_routed_and_popped_as_the_app_says(  # type: ignore[no-untyped-def]
        live_stack, red, apps, say, recognizable, directory, phones) -> None:  # noqa: F811
    settings: Settings = live_stack
    phrase = "카드 분실 신고"  # in this voice, heard right offline at 16 kHz whatever the lead-in and frame offset
    wav = say(phrase, voice="ko+f2", rate=120)
    recognizable(wav, phrase, rate=16_000)  # the app's leg is wideband: the IVR hears it at 16 kHz
    speech = pcm16(wav.with_name(f"{wav.stem}-16k.wav"))
    phones("1001")
    await ready(directory, settings, "A1001")
    baseline = channels(settings)
    # Two customers at once: C1001 from the app's home screen says what she wants; C1002 taps "call" on the
    # loan screen and confirms the hint with a key.
    speaker, presser = apps("C1001", "home"), apps("C1002", "loan")
    replies = await asyncio.gather(speaker.call(), presser.call())
    assert [r.status_code for r in replies] == [201, 201], [r.text for r in replies]

    async def speak() -> None:
        await prompt_heard(speaker, speaker.offered_at)
        await speaker.say(speech, 16_000)

    async def press() -> None:
        await prompt_heard(presser, presser.offered_at)  # "대출 상담을 원하십니까?" instead of the menu
        presser.press("1")

    await asyncio.gather(speak(), press())

    async def popped() -> bool:
        return bool(await red.get(f"ivr:pop:{speaker.call_id}"))

    await until(popped, 30, "the pop at A1001's desk")
    pop = json.loads(await red.get(f"ivr:pop:{speaker.call_id}") or "{}")["pop"]
    assert pop["authenticated"] == {"by": "app", "label": "authenticated in app", "customer_id": "C1001",
                                    "screen": "home", "intent_hint": None}
    # The token's customer; the number shown is the one on her file (the app call has no caller ID).
    assert pop["customer"]["id"] == "C1001" and pop["caller"] == "01012345678"
    assert pop["ivr"]["turns"][0]["transcript"] == phrase and pop["ivr"]["queue"] == "cards"

    async def held() -> bool:
        return (await record(red, presser.call_id or "")).get("queue") == "loans"

    await until(held, 15, "the hinted call in the loans line")
    loan = await record(red, presser.call_id or "")
    assert (loan["via"], loan["app_customer"], loan["customer"], loan["app_screen"], loan["app_intent"]) == (
        "app", "C1002", "C1002", "loan", "loan")
    assert loan["path"][:2] == ["main_menu", "to_loans"] and loan["turns"][0]["kind"] == "confirm"
    assert loan["turns"][0]["dtmf"] == "1" and loan["heard_at_hz"] == 16_000
    spoken = await record(red, speaker.call_id or "")
    assert spoken["turns"][0]["intent"] == "lost_card" and spoken["heard_at_hz"] == 16_000
    for app in (speaker, presser):
        assert (await app.hang_up()).status_code == 204
    await until(lambda: _true(channels(settings) <= baseline), 10, "the app calls' channels to go")


async def _true(value: bool) -> bool:
    return value


async def test_either_side_hangs_up_and_nothing_stays(live_stack, red, apps) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = live_stack
    baseline = channels(settings)
    served, leaving = apps("C1001"), apps("C1002")
    await asyncio.gather(served.call(), leaving.call())
    await asyncio.gather(prompt_heard(served, served.offered_at), prompt_heard(leaving, leaving.offered_at))
    # The IVR's side ends this one: her balance (1), then "9" to finish: the flow's goodbye hangs up.
    served.press("1")

    async def after_balance() -> bool:
        return "after_balance" in (await record(red, served.call_id or "")).get("path", [])

    await until(after_balance, 20, "the question after the balance")
    served.press("9")
    # The app's side ends the other one mid-IVR.
    assert (await leaving.hang_up()).status_code == 204

    async def both_ended() -> bool:
        states = [(await app.status())["state"] for app in (served, leaving)]
        return states == ["ended", "ended"]

    await until(both_ended, 20, "both app calls to end")
    by_ivr, by_app = await served.status(), await leaving.status()
    assert (by_ivr["ended_by"], by_app["ended_by"], by_app["end_reason"]) == ("hotline", "app", "the app hung up")
    assert served.ended_message() is not None and served.ended_message()["by"] == "hotline"  # type: ignore[index]
    assert (await record(red, served.call_id or ""))["outcome"] == "self_service"
    await until(lambda: _true(channels(settings) <= baseline), 10, "no stale Asterisk channel")
    gone = await record(red, leaving.call_id or "")
    assert gone["app_end"] == "app: the app hung up" and gone["outcome"] == "abandoned"
    assert await _live_app_calls(red) == 0


async def _live_app_calls(red: aioredis.Redis) -> int:
    await asyncio.sleep(1.2)  # the controller's heartbeat is written every second
    return int((await red.hgetall("ivr:controller")).get("app_calls_live", -1))


async def test_an_app_that_vanishes_ends_its_call_with_the_reason(live_stack, red, apps) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = live_stack
    baseline = channels(settings)
    app = apps("C1001")
    assert (await app.call()).status_code == 201
    await prompt_heard(app, app.offered_at)
    assert channels(settings) == baseline + 2  # the app's channel and the IVR's AudioSocket leg
    vanished_at = time.time()
    await app.vanish()  # no DELETE, no DTLS close: the phone is gone

    async def noted() -> bool:
        return bool((await record(red, app.call_id or "")).get("app_end"))

    await until(noted, settings.app_call_media_timeout_s + 5, "the record to say why")
    call = await record(red, app.call_id or "")
    assert call["app_end"] == (f"network: no audio from the app for {settings.app_call_media_timeout_s:g} s "
                               "(its network or the app is gone)")
    assert time.time() - vanished_at < settings.app_call_media_timeout_s + 3
    await until(lambda: _true(channels(settings) == baseline), 10, "no stale Asterisk channel")
    assert (await _record_after(red, app.call_id or ""))["outcome"] == "abandoned"
    assert await _live_app_calls(red) == 0


async def _record_after(red: aioredis.Redis, call_id: str) -> dict[str, Any]:
    async def ended() -> bool:
        return bool((await record(red, call_id)).get("ended_at"))

    await until(ended, 10, "the hangup in the record")
    return await record(red, call_id)


async def test_bad_input_is_refused_and_other_calls_go_on(live_stack, red, apps) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = live_stack
    url = f"http://{settings.http_host}:{settings.http_port}/api/app-calls"
    other = apps("C1002")  # a call in the IVR meanwhile: it must not notice
    assert (await other.call()).status_code == 201
    await prompt_heard(other, other.offered_at)
    stormer = f"T{uuid.uuid4().hex[:8]}"
    sdp = await apps(stormer).offer_sdp()  # one offer, posted many times

    def headers(tok: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tok}", "Content-Type": "application/sdp"}

    async with httpx.AsyncClient(timeout=20) as http:
        expired = await http.post(url, content=sdp, headers=headers(token(settings, "C1001", now=time.time() - 3600)))
        forged = await http.post(url, content=sdp, headers=headers(issue_token(
            "not-the-key" * 4, "C1001", issuer=settings.app_token_issuer, audience=settings.app_token_audience)))
        no_audio = await http.post(url, content=sdp.replace("m=audio", "m=video"), headers=headers(
            token(settings, stormer)))
        codecs = re.sub(r"a=rtpmap:\d+ [^\r\n]+\r\n", "", sdp)
        codecs = re.sub(r"(m=audio \d+ UDP/TLS/RTP/SAVPF)[^\r\n]*", r"\1 97", codecs).replace(
            "a=sendrecv", "a=sendrecv\r\na=rtpmap:97 iLBC/8000")
        unsupported = await http.post(url, content=codecs, headers=headers(token(settings, stormer)))
        huge = await http.post(url, content=b"v=0\r\n" + b"a=x\r\n" * 200_000,
                               headers=headers(token(settings, stormer)))
        started = time.monotonic()
        storm = await asyncio.gather(*(http.post(url, content=sdp, headers=headers(token(settings, stormer)))
                                       for _ in range(100)))
        storm_s = time.monotonic() - started
    assert (expired.status_code, expired.json()["detail"]) == (401, "the app token has expired")
    assert (forged.status_code, forged.json()["detail"]) == (401, "the app token's signature does not verify")
    assert no_audio.status_code == 422 and "no audio section" in no_audio.json()["detail"]
    assert unsupported.status_code == 415 and "ilbc/8000" in unsupported.json()["detail"]
    assert huge.status_code == 413 and huge.json()["error_id"]
    codes = [r.status_code for r in storm]
    assert codes.count(201) == settings.app_calls_per_customer and codes.count(429) == 100 - codes.count(201), codes
    assert storm_s < 5, f"100 offers took {storm_s:.1f} s"
    # The two admitted offers are never completed by their "app": ICE never connects and they end, saying so.
    admitted = [r.headers["location"].rsplit("/", 1)[-1] for r in storm if r.status_code == 201]
    async with httpx.AsyncClient(timeout=10) as http:
        async def ended() -> bool:
            states = [(await http.get(f"{url}/{call_id}", headers=headers(token(settings, stormer)))).json()
                      for call_id in admitted]
            return all(s["state"] == "ended" for s in states)

        await until(ended, settings.app_call_connect_timeout_s + 5, "the never-connected offers to end")
        final = (await http.get(f"{url}/{admitted[0]}", headers=headers(token(settings, stormer)))).json()
    assert (final["ended_by"], final["end_reason"]) == (
        "network", f"ICE did not connect within {settings.app_call_connect_timeout_s:g} s")
    # The call that was in the IVR all along still works: it goes to a person on "0".
    assert (await other.status())["state"] == "in_hotline"
    other.press("0")

    async def to_person() -> bool:
        return (await record(red, other.call_id or "")).get("queue") == "general"

    await until(to_person, 15, "the undisturbed call to reach a person")
