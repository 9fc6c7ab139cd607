"""The app-call gateway (ivr.webrtc.gateway) with a real aiortc app on loopback and a fake Asterisk at the boundary.

The fake plays Asterisk's part exactly where the gateway meets it: an AMI Originate makes it connect to the bridge
with the UUID it was given (as chan_audiosocket does) and echo the app's audio back; PlayDTMF and Hangup are
recorded. Everything else — tokens, bounds, SDP, aiortc, the bridge, the watchdog, the end — is the real code.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.config import Settings
from ivr.records.call import CallRecord
from ivr.sim.app_caller import AppCaller, rms
from ivr.telephony.ami import AmiError
from ivr.telephony.audiosocket import Kind, read_frame
from ivr.webrtc import gateway as gateway_module
from ivr.webrtc.gateway import AppCallGateway, AppCallRefused, EndedBy, State
from ivr.webrtc.tokens import issue_token

KEY = "dev-key-" + "x" * 40


class FakeAsterisk:
    """AMI and the AudioSocket channel, as the gateway uses them."""

    def __init__(self) -> None:
        self.originates: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.hangups: list[str] = []
        self.fail: str | None = None
        self.got_hangup_frame = asyncio.Event()
        self.audio_frames = 0
        self.writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def originate(self, channel: str, **kwargs: Any) -> None:
        self.originates.append({"channel": channel, **kwargs})
        if self.fail:
            raise AmiError(self.fail)
        match = re.fullmatch(r"AudioSocket/([\d.]+):(\d+)/([0-9a-f-]{36})/c\(slin16\)", channel)
        assert match, channel
        self._tasks.append(asyncio.create_task(self._channel(match[1], int(match[2]), match[3])))

    async def _channel(self, host: str, port: int, session: str) -> None:
        import uuid

        reader, writer = await asyncio.open_connection(host, port)
        self.writer = writer  # the latest call's, for hang_up_channel
        writer.write(b"\x01\x00\x10" + uuid.UUID(session).bytes)
        while True:
            frame = await read_frame(reader)
            if frame is None:
                return
            if frame.kind == Kind.HANGUP:
                self.got_hangup_frame.set()
                return
            if frame.kind == Kind.AUDIO_SLIN16:
                self.audio_frames += 1
                writer.write(b"\x12" + len(frame.payload).to_bytes(2, "big") + frame.payload)  # Echo()

    def hang_up_channel(self) -> None:
        assert self.writer is not None
        self.writer.write(b"\x00\x00\x00")

    async def action(self, action: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        self.actions.append(action)
        return {"Response": "Success"}

    async def hangup(self, channel: str, cause: int = 16) -> None:
        self.hangups.append(channel)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.writer is not None:
            self.writer.close()


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"run_dir": tmp_path, "app_call_bridge_port": 0, "app_token_secret": KEY,
                              "app_call_connect_timeout_s": 3.0, "app_call_media_timeout_s": 1.0, **overrides}
    return Settings(**values)


def token(customer: str = "C1001", screen: str | None = None) -> str:
    return issue_token(KEY, customer, issuer="ivr-dev", audience="ivr-app-calls", screen=screen)


@pytest.fixture
async def asterisk():  # type: ignore[no-untyped-def]
    fake = FakeAsterisk()
    yield fake
    await fake.close()


@pytest.fixture
async def make_gateway(tmp_path: Path, asterisk: FakeAsterisk):  # type: ignore[no-untyped-def]
    made: list[AppCallGateway] = []
    ended: list[tuple[Any, Any]] = []

    async def on_end(record: Any, call: Any) -> None:
        ended.append((record, call))

    async def make(**overrides: Any) -> AppCallGateway:
        gw = AppCallGateway(settings(tmp_path, **overrides), asterisk, on_end=on_end)  # type: ignore[arg-type]
        gw.ended_seen = ended  # type: ignore[attr-defined]
        await gw.start()
        made.append(gw)
        return gw

    yield make
    for gw in made:
        await gw.stop()


async def place(gw: AppCallGateway, app: AppCaller) -> str:
    answer = await gw.offer(app.token, await app.offer_sdp(), app.screen)
    from aiortc import RTCSessionDescription

    await app.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
    await asyncio.wait_for(app.connected.wait(), 5)
    return answer.call_id


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_an_app_call_carries_audio_both_ways_keys_and_the_apps_hang_up(make_gateway, asterisk) -> None:
    gw = await make_gateway()
    app = AppCaller("http://unused", token(screen="card"), screen="card")
    try:
        call_id = await place(gw, app)
        await until(lambda: gw.calls[call_id].record.state is State.IN_HOTLINE)
        assert gw.calls[call_id].outbound.encodes_opus  # what the app hears below went through our own encoder
        (origin,) = asterisk.originates
        assert origin["context"] == "app-call" and origin["exten"] == "s" and origin["channel_id"] == call_id
        assert origin["variables"] == {"IVR_APP_CALL": call_id, "IVR_APP_CUSTOMER": "C1001", "IVR_APP_SCREEN": "card"}
        # The app says a 1 kHz tone; Asterisk (echoing) sends it back; the app hears it.
        t = np.arange(16_000) / 16_000
        said_at = time.time()
        await app.say((8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes(), 16_000)
        await until(lambda: app.heard.energy_after(said_at, 1000) is not None)
        loud = [pcm for at, pcm in app.heard.chunks if at >= said_at and rms(pcm) > 1000]
        spectrum = np.abs(np.fft.rfft(np.frombuffer(b"".join(loud[:10]), dtype="<i2")))
        assert abs(np.fft.rfftfreq(3200 if len(loud) >= 10 else len(b"".join(loud[:10])) // 2, 1 / 16_000)
                   [int(np.argmax(spectrum))] - 1000) < 30
        # A key over the data channel: PlayDTMF as if the channel had received it.
        app.press("1#")
        await until(lambda: len(asterisk.actions) == 2)
        assert [(a["Action"], a["Channel"], a["Digit"], a["Receive"]) for a in asterisk.actions] == [
            ("PlayDTMF", call_id, "1", "true"), ("PlayDTMF", call_id, "#", "true")]
        record = await gw.hang_up(app.token, call_id)
        assert (record.state, record.ended_by, record.end_reason) == (State.ENDED, EndedBy.APP, "the app hung up")
        await asyncio.wait_for(asterisk.got_hangup_frame.wait(), 2)  # Asterisk hangs up its channel
        assert gw.calls == {} and gw.health()["app_calls_live"] == 0
        assert app.ended_message() == {"type": "ended", "by": "app", "reason": "the app hung up"}
    finally:
        await app.close()


async def test_no_peer_connection_exists_before_the_token_is_valid(make_gateway, monkeypatch) -> None:
    gw = await make_gateway()
    made: list[Any] = []
    real = gateway_module.RTCPeerConnection
    monkeypatch.setattr(gateway_module, "RTCPeerConnection", lambda *a, **k: made.append(1) or real(*a, **k))
    app = AppCaller("http://unused", issue_token("forged" * 8, "C1001", issuer="ivr-dev", audience="ivr-app-calls"))
    try:
        with pytest.raises(AppCallRefused) as refused:
            await gw.offer(app.token, await app.offer_sdp())
        assert (refused.value.status, str(refused.value)) == (401, "the app token's signature does not verify")
        expired = issue_token(KEY, "C1001", issuer="ivr-dev", audience="ivr-app-calls", now=time.time() - 1000)
        with pytest.raises(AppCallRefused, match="expired"):
            await gw.offer(expired, await app.offer_sdp())
        assert made == [] and gw.calls == {}
    finally:
        await app.close()


async def test_bounds_per_customer_and_overall_leave_other_customers_alone(make_gateway) -> None:
    gw = await make_gateway(app_calls_per_customer=2, app_calls_max=3, app_call_offers_per_minute=4)
    apps = [AppCaller("http://unused", token("C1001")) for _ in range(6)] + [AppCaller("http://unused", token("C1002"))]
    try:
        sdps = [await app.offer_sdp() for app in apps]
        for i in range(2):
            await gw.offer(apps[i].token, sdps[i])
        with pytest.raises(AppCallRefused) as busy:
            await gw.offer(apps[2].token, sdps[2])
        assert busy.value.status == 429 and str(busy.value) == (
            "customer C1001 already has 2 app calls (the most at once is 2)")
        assert busy.value.headers == {"Retry-After": "5"}
        await gw.offer(apps[6].token, sdps[6])  # another customer: unaffected
        with pytest.raises(AppCallRefused) as full:
            await gw.offer(token("C1003"), sdps[3])
        assert full.value.status == 503 and "carries its most app calls (3)" in str(full.value)
        for call_id in [c for c, call in gw.calls.items() if call.record.customer_id == "C1001"]:
            await gw.hang_up(apps[0].token, call_id)
        await gw.offer(apps[3].token, sdps[3])
        await gw.hang_up(apps[3].token, next(c for c, call in gw.calls.items() if call.record.customer_id == "C1001"))
        with pytest.raises(AppCallRefused) as storm:  # 4 offers a minute, refused ones included
            await gw.offer(apps[4].token, sdps[4])
        assert storm.value.status == 429 and "made 4 app-call offers in the last minute" in str(storm.value)
    finally:
        for app in apps:
            await app.close()


async def test_bad_offers_are_refused_with_their_status_and_no_call(make_gateway) -> None:
    gw = await make_gateway()
    app = AppCaller("http://unused", token())
    try:
        sdp = await app.offer_sdp()
        cases = [(sdp.replace("m=audio", "m=video"), 422), (sdp + "a=x\r\n" * 20_000, 413),
                 (re.sub(r"a=rtpmap:\d+ [^\r\n]+\r\n", "", sdp).replace("96 9 0 8", "97"), 415)]
        for bad, status in cases:
            with pytest.raises(AppCallRefused) as refused:
                await gw.offer(app.token, bad)
            assert refused.value.status == status, refused.value
        with pytest.raises(AppCallRefused, match="not a screen name") as screen:
            await gw.offer(app.token, sdp, "../etc")
        assert screen.value.status == 422 and gw.calls == {}
    finally:
        await app.close()


async def test_ice_that_never_connects_ends_the_call_saying_so(make_gateway, asterisk) -> None:
    gw = await make_gateway(app_call_connect_timeout_s=1.0)
    app = AppCaller("http://unused", token())
    try:
        answer = await gw.offer(app.token, await app.offer_sdp())  # the app never applies the answer
        call = gw.calls[answer.call_id]
        await until(lambda: call.ended, 4)
        assert (call.record.ended_by, call.record.end_reason) == (EndedBy.NETWORK, "ICE did not connect within 1 s")
        assert asterisk.originates == [] and gw.calls == {} and call.pc.connectionState == "closed"
    finally:
        await app.close()


async def test_an_app_that_vanishes_mid_call_is_ended_by_the_watchdog(make_gateway, asterisk) -> None:
    gw = await make_gateway(app_call_media_timeout_s=1.0)
    app = AppCaller("http://unused", token())
    try:
        call_id = await place(gw, app)
        call = gw.calls[call_id]
        hotline = CallRecord(call_id=call_id, caller="")
        await until(lambda: call.record.state is State.IN_HOTLINE)
        assert gw.identify(hotline) == "C1001"
        await app.vanish()
        await until(lambda: call.ended, 4)
        assert call.record.ended_by is EndedBy.NETWORK
        assert call.record.end_reason == "no audio from the app for 1 s (its network or the app is gone)"
        await asyncio.wait_for(asterisk.got_hangup_frame.wait(), 2)
        assert hotline.app_end == "network: no audio from the app for 1 s (its network or the app is gone)"
        await until(lambda: gw.ended_seen)  # type: ignore[attr-defined]
        assert gw.ended_seen == [(call.record, hotline)]  # type: ignore[attr-defined]
        assert gw.calls == {} and call.pc.connectionState == "closed"
    finally:
        await app.close()


async def test_the_hotline_hanging_up_ends_the_app_call(make_gateway, asterisk) -> None:
    gw = await make_gateway()
    app = AppCaller("http://unused", token())
    try:
        call_id = await place(gw, app)
        call = gw.calls[call_id]
        await until(lambda: call.record.state is State.IN_HOTLINE)
        asterisk.hang_up_channel()
        await until(lambda: call.ended)
        assert (call.record.ended_by, call.record.end_reason) == (EndedBy.HOTLINE, "Asterisk hung up the call")
        await until(lambda: app.ended_message() is not None or app.pc.connectionState == "closed")
    finally:
        await app.close()


async def test_an_unreachable_hotline_ends_the_call_saying_so(make_gateway, asterisk) -> None:
    gw = await make_gateway()
    asterisk.fail = "AMI not logged in (connecting)"
    app = AppCaller("http://unused", token())
    try:
        call_id = await place(gw, app)
        await until(lambda: gw.ended_seen)  # type: ignore[attr-defined]
        ((record, hotline),) = gw.ended_seen  # type: ignore[attr-defined]
        assert (record.ended_by, record.end_reason) == (
            EndedBy.GATEWAY, "the hotline could not be reached (AMI not logged in (connecting))")
        assert len(asterisk.originates) == 1 and asterisk.hangups == [call_id]  # no channel may linger
    finally:
        await app.close()


async def test_keys_wait_for_the_hotline_and_are_checked(make_gateway) -> None:
    gw = await make_gateway()
    app = AppCaller("http://unused", token())
    try:
        answer = await gw.offer(app.token, await app.offer_sdp())  # not connected yet
        with pytest.raises(AppCallRefused) as early:
            await gw.dtmf(app.token, answer.call_id, "1")
        assert (early.value.status, str(early.value)) == (
            409, "the app call is offered, not in the hotline: no keys yet")
        with pytest.raises(AppCallRefused) as bad:
            await gw.dtmf(app.token, answer.call_id, "1x")
        assert bad.value.status == 422
        with pytest.raises(AppCallRefused) as theirs:  # another customer's token never reaches someone's call
            await gw.dtmf(token("C1002"), answer.call_id, "1")
        assert theirs.value.status == 404
    finally:
        await app.close()


async def test_identify_knows_only_its_own_live_calls(make_gateway) -> None:
    gw = await make_gateway()
    phone = CallRecord(call_id="1700000000.12", caller="01012345678")
    assert gw.identify(phone) is None and phone.via == "phone" and phone.app_customer is None


async def test_a_gateway_without_a_key_refuses_with_503_naming_it(make_gateway) -> None:
    gw = await make_gateway(app_token_secret="")
    with pytest.raises(AppCallRefused) as refused:
        gw.authenticate(token())
    assert refused.value.status == 503 and "IVR_APP_TOKEN_SECRET is empty" in str(refused.value)
