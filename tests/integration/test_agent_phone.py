"""Agents' softphones (ivr.sim.agent_phone) registered to the real Asterisk, rung through AMI Originate.

Each test rings a phone with Originate of ``PJSIP/<extension>`` to an application (Playback of the
simulator's 200 ms of silence, or Wait), the way Dial and Queue ring an agent, and checks both
sides: what the phone recorded, and what Asterisk saw (OriginateResponse, channel states and
hangup causes, device state, contacts).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from panoramisk.message import Message

from ivr.config import Settings
from ivr.ops import stack
from ivr.sim.agent_phone import AgentPhone, AgentPhoneError, CallEnd, RingEvent
from ivr.telephony.ami import AmiClient

pytestmark = pytest.mark.integration

SILENCE = "/srv/ivr/run/sim/silence200ms"  # run/sim/silence200ms.wav, as Asterisk sees it


def pyvoip_threads() -> list[threading.Thread]:
    """pyVoIP's threads (as tests/integration/test_sip_caller.py counts them) and the phones' call workers."""
    names = ("SIP Recieve", "SIP Register", "RTP Receiver", "RTP Transmitter", "AgentPhone")
    return [t for t in threading.enumerate() if t.name.startswith(names) and t.is_alive()]


class Ami:
    """Our own AMI login: actions, and every event since the test began."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.events: list[Message] = []

    async def originate(self, extension: str, caller: str, *, app: str = "Playback", data: str = SILENCE,
                        timeout_s: float = 10.0) -> Message:
        """Ring PJSIP/<extension>; returns the OriginateResponse (Success once answered, Failure otherwise)."""
        reply = await self.client.action({
            "Action": "Originate", "Channel": f"PJSIP/{extension}", "Application": app, "Data": data,
            "Timeout": str(int(timeout_s * 1000)), "CallerID": f'"Routing Test" <{caller}>', "Async": "true",
        }, timeout=timeout_s + 10)
        # panoramisk collects an async Originate's reply and its OriginateResponse event together.
        assert isinstance(reply, list), reply
        response = next(m for m in reply if m.get("Event") == "OriginateResponse")
        assert response.get("CallerIDNum") == caller
        return response

    async def device_state(self, extension: str) -> str:
        reply = await self.client.action({"Action": "Getvar", "Variable": f"DEVICE_STATE(PJSIP/{extension})"})
        assert isinstance(reply, Message)
        return str(reply.get("Value"))

    async def wait_device_state(self, extension: str, wanted: str, timeout: float = 3.0) -> str:
        """The device state once it is ``wanted`` (Asterisk updates it asynchronously), or the last one seen."""
        deadline = time.monotonic() + timeout
        state = await self.device_state(extension)
        while state != wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            state = await self.device_state(extension)
        return state

    async def channel_var(self, channel: str, variable: str) -> str:
        reply = await self.client.action({"Action": "Getvar", "Channel": channel, "Variable": variable})
        assert isinstance(reply, Message)
        return str(reply.get("Value"))

    def of(self, name: str, channel_prefix: str) -> list[Message]:
        return [e for e in self.events if e.get("Event") == name and e.get("Channel", "").startswith(channel_prefix)]

    async def wait_event(self, name: str, channel_prefix: str, timeout: float) -> Message | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.of(name, channel_prefix):
                return found[0]
            await asyncio.sleep(0.05)
        return None


@pytest.fixture
async def ami(live_stack: Settings) -> AsyncIterator[Ami]:
    client = AmiClient(live_stack.ami_host, live_stack.ami_port, live_stack.ami_username,
                       live_stack.ami_secret.get_secret_value())
    ami = Ami(client)
    client.on("*", ami.events.append)
    client.start()
    assert await client.wait_ready(10), client.last_error
    yield ami
    client.close()


@pytest.fixture
async def agent_phone(live_stack: Settings) -> AsyncIterator[Callable[..., Awaitable[AgentPhone]]]:
    """Start AgentPhones (off the event loop: pyVoIP blocks); every one is stopped at the end."""
    phones: list[AgentPhone] = []

    async def _start(extension: str, **kwargs: Any) -> AgentPhone:
        phone = AgentPhone(live_stack, extension, **kwargs)
        phones.append(phone)
        await asyncio.to_thread(phone.start)
        return phone

    yield _start
    for phone in phones:
        await asyncio.to_thread(phone.stop)


def contacts(settings: Settings) -> str:
    """`pjsip show contacts` (the AMI user may not run PJSIPShowContacts: it needs the system class)."""
    out = stack.asterisk_rx(settings, "pjsip show contacts")
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_auto_answer_records_the_ring_and_asterisk_sees_the_call_up(ami: Ami, agent_phone) -> None:  # type: ignore[no-untyped-def]
    phone = await agent_phone("1001", answer="auto", answer_after_s=0.3)
    response = await ami.originate("1001", "0255500001")
    assert response.get("Response") == "Success", response
    channel = response.get("Channel", "")
    assert channel.startswith("PJSIP/1001-")

    ring = await asyncio.to_thread(phone.wait_for_ring, 5)
    assert isinstance(ring, RingEvent)
    assert (ring.caller_id, ring.caller_name) == ("0255500001", "Routing Test")
    assert ring.call_id
    assert ring.answered_at is not None and ring.answered_at - ring.at >= 0.3 - 0.05
    assert await asyncio.to_thread(phone.wait_for_answer, 1) is ring
    assert [e.get("ChannelStateDesc") for e in ami.of("Newstate", channel)] == ["Ringing", "Up"]

    # Playback of 200 ms, then Asterisk hangs up: the phone takes the BYE.
    ended = await asyncio.to_thread(phone.wait_for_end, 5)
    assert ended is ring and ring.ended_by == CallEnd.REMOTE
    assert ring.ended_at is not None and ring.ended_at >= ring.answered_at
    assert await ami.wait_event("Hangup", channel, 5) is not None
    assert phone.rings == [ring]


async def test_auto_answer_talks_then_the_agent_hangs_up(ami: Ami, agent_phone) -> None:  # type: ignore[no-untyped-def]
    phone = await agent_phone("1001", answer="auto", answer_after_s=0.2, talk_s=2.0)
    response = await ami.originate("1001", "0255500002", app="Wait", data="30")
    assert response.get("Response") == "Success", response
    channel = response.get("Channel", "")
    ring = await asyncio.to_thread(phone.wait_for_answer, 5)
    assert ring is not None and ring.answered_at is not None
    # The phone's call is this channel, and Asterisk counts the agent in use on it (what the ACD follows).
    assert await ami.channel_var(channel, "CHANNEL(pjsip,call-id)") == ring.call_id
    assert await ami.wait_device_state("1001", "INUSE") == "INUSE"
    # Our BYE ends the channel after talk_s, long before Wait(30) would.
    hangup = await ami.wait_event("Hangup", channel, 10)
    assert hangup is not None
    assert ring.ended_by == CallEnd.AGENT and ring.ended_at is not None
    assert 1.8 <= ring.ended_at - ring.answered_at <= 3.0
    assert float(hangup["Timestamp"]) - ring.answered_at < 4.0
    assert await ami.wait_device_state("1001", "NOT_INUSE") == "NOT_INUSE"


async def test_never_answers_rings_until_asterisk_cancels(ami: Ami, agent_phone) -> None:  # type: ignore[no-untyped-def]
    phone = await agent_phone("2001", answer="never")
    originate = asyncio.create_task(ami.originate("2001", "0255500003", timeout_s=4))
    ring = await asyncio.to_thread(phone.wait_for_ring, 5)
    assert ring is not None and ring.caller_id == "0255500003"
    assert await ami.wait_device_state("2001", "RINGING") == "RINGING"

    response = await originate
    assert (response.get("Response"), response.get("Reason")) == ("Failure", "3")  # 3: timed out ringing
    assert await asyncio.to_thread(phone.wait_for_end, 3) is ring
    assert ring.answered_at is None
    assert ring.ended_by == CallEnd.CANCELLED and ring.ended_at is not None
    assert 3.5 <= ring.ended_at - ring.at <= 6.0
    hangup = await ami.wait_event("Hangup", "PJSIP/2001-", 5)
    assert hangup is not None and hangup.get("Cause") == "19", hangup  # no answer
    assert [e.get("ChannelStateDesc") for e in ami.of("Newstate", "PJSIP/2001-")] == ["Ringing"]  # never Up
    assert phone.phone is not None and phone.phone.calls == {}

    # The CANCEL freed the line: the next call rings too (pyVoIP alone would keep the first one RINGING).
    response = await ami.originate("2001", "0255500004", timeout_s=1.5)
    assert response.get("Response") == "Failure"
    second = await asyncio.to_thread(phone.wait_for_end, 3)
    assert second is not None and second.caller_id == "0255500004"
    assert second.ended_by == CallEnd.CANCELLED
    assert await ami.wait_device_state("2001", "NOT_INUSE") == "NOT_INUSE"


async def test_reject_declines_with_busy_here(ami: Ami, agent_phone) -> None:  # type: ignore[no-untyped-def]
    phone = await agent_phone("1002", answer="reject", answer_after_s=0.3)
    response = await ami.originate("1002", "0255500005")
    assert response.get("Response") == "Failure"
    ring = await asyncio.to_thread(phone.wait_for_end, 3)
    assert ring is not None and ring.caller_id == "0255500005"
    assert ring.answered_at is None and ring.ended_by == CallEnd.REJECTED
    hangup = await ami.wait_event("Hangup", "PJSIP/1002-", 5)
    assert hangup is not None and hangup.get("Cause") == "17", hangup  # user busy


async def test_a_second_call_while_on_a_call_is_busy(ami: Ami, agent_phone) -> None:  # type: ignore[no-untyped-def]
    phone = await agent_phone("1004", answer="auto", answer_after_s=0.1)
    first = await ami.originate("1004", "0255500006", app="Wait", data="30")
    assert first.get("Response") == "Success"
    second = await ami.originate("1004", "0255500007")
    assert second.get("Response") == "Failure"
    rings = phone.rings
    assert [r.caller_id for r in rings] == ["0255500006", "0255500007"]
    assert rings[0].answered_at is not None and rings[0].ended_at is None
    assert rings[1].ended_by == CallEnd.BUSY and rings[1].answered_at is None
    # hangup() ends the call in progress from the agent's side.
    assert await asyncio.to_thread(phone.hangup)
    assert await ami.wait_event("Hangup", first.get("Channel", "?"), 5) is not None
    assert rings[0].ended_by == CallEnd.AGENT
    assert not await asyncio.to_thread(phone.hangup)  # nothing left to hang up


async def test_stop_during_a_call_hangs_it_up(ami: Ami, agent_phone) -> None:  # type: ignore[no-untyped-def]
    phone = await agent_phone("1003", answer="auto", answer_after_s=0.1)  # talk_s None: until the far end ends
    response = await ami.originate("1003", "0255500008", app="Wait", data="30")
    assert response.get("Response") == "Success"
    ring = await asyncio.to_thread(phone.wait_for_answer, 3)
    assert ring is not None
    await asyncio.sleep(1)
    assert ring.ended_at is None  # still talking
    await asyncio.to_thread(phone.stop)
    assert ring.ended_by == CallEnd.STOPPED
    assert await ami.wait_event("Hangup", response.get("Channel", "?"), 5) is not None
    assert await ami.wait_device_state("1003", "UNAVAILABLE") == "UNAVAILABLE"


async def test_two_phones_at_once_then_both_unregistered(live_stack: Settings, ami: Ami, agent_phone) -> None:  # type: ignore[no-untyped-def]
    desk = await agent_phone("1001", answer="auto", answer_after_s=0.2)
    mobile = await agent_phone("2001", answer="auto", answer_after_s=0.4)
    assert desk.registered and mobile.registered
    assert desk.sip_port != mobile.sip_port and desk.rtp_port != mobile.rtp_port
    assert await ami.wait_device_state("1001", "NOT_INUSE") == "NOT_INUSE"
    assert await ami.wait_device_state("2001", "NOT_INUSE") == "NOT_INUSE"
    listed = contacts(live_stack)
    assert f"1001/sip:1001@{desk.my_ip}:{desk.sip_port}" in listed, listed
    assert f"2001/sip:2001@{mobile.my_ip}:{mobile.sip_port}" in listed, listed

    # Ring both at once: each phone takes its own call, and only its own.
    to_desk, to_mobile = await asyncio.gather(ami.originate("1001", "0255500009"),
                                              ami.originate("2001", "0255500010"))
    assert to_desk.get("Response") == to_mobile.get("Response") == "Success"
    assert [r.caller_id for r in desk.rings] == ["0255500009"]
    assert [r.caller_id for r in mobile.rings] == ["0255500010"]
    assert all(r.answered_at is not None for r in desk.rings + mobile.rings)
    assert desk.rings[0].call_id != mobile.rings[0].call_id
    assert await asyncio.to_thread(desk.wait_for_end, 5) is not None
    assert await asyncio.to_thread(mobile.wait_for_end, 5) is not None

    await asyncio.gather(asyncio.to_thread(desk.stop), asyncio.to_thread(mobile.stop))
    assert not desk.registered and not mobile.registered
    assert await ami.wait_device_state("1001", "UNAVAILABLE") == "UNAVAILABLE"
    assert await ami.wait_device_state("2001", "UNAVAILABLE") == "UNAVAILABLE"
    listed = contacts(live_stack)
    assert f":{desk.sip_port}" not in listed and f":{mobile.sip_port}" not in listed, listed
    assert pyvoip_threads() == []


async def test_refused_registration_is_a_clear_error(live_stack: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_SIP_PASSWORD_1002", "not-the-password")
    phone = AgentPhone(live_stack, "1002")
    with pytest.raises(AgentPhoneError, match=r"SIP registration of extension 1002 .* failed \(401 Unauthorized\)"):
        await asyncio.to_thread(phone.start)
    assert not phone.registered
    assert pyvoip_threads() == []


def test_unknown_answer_mode_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="answer must be one of auto, never, reject"):
        AgentPhone(settings, "1001", answer="maybe")  # type: ignore[arg-type]
