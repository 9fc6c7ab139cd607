"""The metrics (ivr/metrics.py) move where the events happen: each test drives the instrumented code with small
fakes at the boundary and reads the process registry (prometheus-client's ``REGISTRY.get_sample_value``).

The registry is process-wide and other tests count into it too, so every assertion is on a difference taken
around the one thing the test does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from ivr import metrics
from ivr.records.agent import Agent
from ivr.routing.acd import Seat
from ivr.routing.agents import Presence
from ivr.telephony.agi import AgiSession, FastAgiServer
from ivr.telephony.ami import AmiClient
from ivr.telephony.audiosocket import AudioSocketServer, uuid_frame
from ivr.web.auth import User, UserRole
from ivr.web.health import acd_counts
from ivr.web.hub import Client, Hub
from tests.unit.voice.navigator.fakes import key, make, silence, speech, walk

TIMEOUT = 5.0


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def readiness_kept() -> Iterator[None]:
    """The parts' up/down state as it was before the test (it is process-wide)."""
    before = {c: metrics.is_up(c) for c in metrics.Component}
    yield
    for component, up in before.items():
        metrics.set_up(component, up)


# --- the lines to Asterisk


def test_ami_reconnects_are_counted_and_up_follows_the_login(readiness_kept: None) -> None:
    client = AmiClient("127.0.0.1", 1, "ivr", "secret")
    ok: Any = SimpleNamespace()
    reconnects = value("ivr_ami_reconnects_total")
    client._login_result(True, ok)  # the first login is no reconnect
    assert value("ivr_ami_reconnects_total") == reconnects
    assert value("ivr_up", component="ami") == 1 and metrics.is_up("ami")
    client._on_disconnect(client._manager, ConnectionResetError("Asterisk restarted"))
    assert value("ivr_up", component="ami") == 0 and not metrics.is_up("ami")
    client._login_result(True, ok)
    client._login_result(True, ok)
    assert value("ivr_ami_reconnects_total") == reconnects + 2
    assert value("ivr_up", component="ami") == 1
    client.close()
    assert value("ivr_up", component="ami") == 0


async def test_a_refused_ami_login_counts_an_error(readiness_kept: None) -> None:
    client = AmiClient("127.0.0.1", 1, "ivr", "wrong")
    client._manager.protocol = SimpleNamespace(close=lambda: None)
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    reply.set_result({"Response": "Error", "Message": "Authentication failed"})
    before = value("ivr_errors_total", kind="ami_login")
    client._login_result(False, reply)
    assert value("ivr_errors_total", kind="ami_login") == before + 1
    assert not metrics.is_up("ami")
    client.close()


async def test_listeners_report_themselves_up_and_down(readiness_kept: None) -> None:
    agi, audio = FastAgiServer("127.0.0.1", 0), AudioSocketServer("127.0.0.1", 0)
    await agi.start()
    await audio.start()
    assert value("ivr_up", component="fastagi") == 1 and value("ivr_up", component="audiosocket") == 1
    await agi.stop()
    assert value("ivr_up", component="fastagi") == 0 and not metrics.is_up(metrics.Component.FASTAGI)
    assert value("ivr_up", component="audiosocket") == 1
    await audio.stop()
    assert value("ivr_up", component="audiosocket") == 0
    # Another listener's protocol name becomes a label value of its own (the app calls' AudioSocket).
    assert metrics.component_name("AudioSocket (app calls)") == "audiosocket_app_calls"


async def test_an_agi_request_for_a_script_not_served_counts_an_error(readiness_kept: None) -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=TIMEOUT)

    async def hotline(_session: AgiSession) -> None:
        return None

    server.route("hotline", hotline)
    await server.start()
    before = value("ivr_errors_total", kind="agi_request")
    try:
        assert server._server is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", server._server.sockets[0].getsockname()[1])
        writer.write(b"agi_network_script: nosuch\nagi_channel: PJSIP/trunk-1\nagi_uniqueid: 1.1\n\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed, nothing run
        writer.close()
    finally:
        await server.stop()
    assert value("ivr_errors_total", kind="agi_request") == before + 1


async def test_audiosocket_sessions_follow_the_open_calls_and_strangers_are_counted(readiness_kept: None) -> None:
    server = AudioSocketServer("127.0.0.1", 0, uuid_timeout=TIMEOUT)
    await server.start()
    open_before = value("ivr_audiosocket_sessions")
    rejected_before = value("ivr_errors_total", kind="audiosocket_rejected")
    try:
        session_id, future = server.expect("call-1")
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(uuid_frame(session_id).encode())
        await writer.drain()
        session = await asyncio.wait_for(future, TIMEOUT)
        assert value("ivr_audiosocket_sessions") == open_before + 1
        # A stranger without a UUID we issued: refused and counted, the open call untouched.
        stranger_reader, stranger = await asyncio.open_connection("127.0.0.1", server.port)
        stranger.write(b"\x01\x00\x10" + bytes(16))
        await stranger.drain()
        assert await asyncio.wait_for(stranger_reader.read(), TIMEOUT) == b""
        stranger.close()
        assert value("ivr_errors_total", kind="audiosocket_rejected") == rejected_before + 1
        assert value("ivr_audiosocket_sessions") == open_before + 1
        await session.close()
        await session.close()  # twice: still counted down once
        assert value("ivr_audiosocket_sessions") == open_before
        writer.close()
    finally:
        await server.stop()


# --- calls and turns through the navigator


async def test_a_call_is_counted_at_its_node_while_there_and_its_turn_when_decided() -> None:
    nav, caller = make(["계좌 이체"], [speech(0.6) + silence(0.4)])
    at_menu: list[float] = []
    listened = caller.on_listen

    async def on_listen(call: Any, node: str, prompt_s: float) -> None:
        at_menu.append(value("ivr_calls_in_ivr", node=node))
        await listened(call, node, prompt_s)

    nav.on_listen = on_listen
    in_menu, at_route = value("ivr_calls_in_ivr", node="main_menu"), value("ivr_calls_in_ivr", node="to_payments")
    matched = value("ivr_turns_total", kind="ask", outcome="matched")
    latencies = value("ivr_asr_latency_seconds_count")
    decision, call = await walk(nav, caller)
    assert decision.queue == "payments"
    assert at_menu == [in_menu + 1]  # while the question was asked, the call was counted at main_menu
    assert value("ivr_calls_in_ivr", node="main_menu") == in_menu  # and no longer once it moved on
    assert value("ivr_calls_in_ivr", node="to_payments") == at_route  # the route node, left when the walk ended
    assert value("ivr_turns_total", kind="ask", outcome="matched") == matched + 1
    assert value("ivr_asr_latency_seconds_count") == latencies + 1  # one recognized turn, one latency


@pytest.mark.parametrize(("answers", "turns", "outcomes"), [
    ([None], [key("2")], [("ask", "keys")]),
    ([None, None], [key("8"), key("2")], [("ask", "wrong_key"), ("ask", "keys")]),
    ([None, None], [silence(0.1), silence(0.1)], [("ask", "no_input"), ("ask", "no_input")]),
    ([RuntimeError("kaldi exploded"), None], [speech(0.5) + silence(0.4), key("3")], [("ask", "error"),
                                                                                       ("ask", "keys")]),
], ids=["key", "wrong-key", "silence", "recognizer-crash"])
async def test_each_turn_is_counted_by_its_outcome(answers: list[Any], turns: list[bytes],
                                                   outcomes: list[tuple[str, str]]) -> None:
    labels = sorted(set(outcomes))
    before = {label: value("ivr_turns_total", kind=label[0], outcome=label[1]) for label in labels}
    asr_errors = value("ivr_errors_total", kind="asr")
    nav, caller = make(answers, turns)
    _, call = await walk(nav, caller)
    assert len(call.turns) == len(outcomes)
    for label in labels:
        assert value("ivr_turns_total", kind=label[0], outcome=label[1]) == before[label] + outcomes.count(label)
    crashed = any(outcome == "error" for _, outcome in outcomes)
    assert value("ivr_errors_total", kind="asr") == asr_errors + (1 if crashed else 0)


async def test_a_confirmation_is_a_turn_of_its_own() -> None:
    # Middle band: "…, right?" answered by key 1.
    nav, caller = make([("계좌 이체", [("계좌 이체", 0.45), ("잔액 조회", 0.3), ("대출 상담", 0.25)]), None],
                       [speech(0.6) + silence(0.4), key("1")])
    confirmed = value("ivr_turns_total", kind="confirm", outcome="keys")
    decision, call = await walk(nav, caller)
    assert [t.kind for t in call.turns] == ["ask", "confirm"]
    assert decision.queue == "payments"
    assert value("ivr_turns_total", kind="confirm", outcome="keys") == confirmed + 1


@pytest.mark.parametrize(("kind", "intent", "transcript", "dtmf", "error", "outcome"), [
    ("ask", "transfer", "계좌 이체", "", None, "matched"),
    ("ask", None, "음", "", None, "unmatched"),
    ("ask", "loan", "", "3", None, "keys"),
    ("ask", None, "", "8", None, "wrong_key"),
    ("ask", None, "", "", None, "no_input"),
    ("ask", None, "", "", "recognizer failed", "error"),
    ("offer", "callback", "네", "", None, "matched"),
    ("secure", "verified", "", "", None, "verified"),
    ("secure", None, "", "", None, "no_input"),
])
def test_turn_outcomes(kind: str, intent: str | None, transcript: str, dtmf: str, error: str | None,
                       outcome: str) -> None:
    assert metrics.turn_outcome(kind, intent, transcript, dtmf, error) == outcome


# --- the pages' sockets


def test_web_sockets_are_counted_while_open() -> None:
    hub = Hub(None, None, None, [])  # type: ignore[arg-type]  # _add/_remove touch none of them
    user = User(username="a1", password_hash="x", role=UserRole.AGENT, agent_id="A1001")
    first, second = Client(None, user, "t1"), Client(None, user, "t2")  # type: ignore[arg-type]
    before = value("ivr_web_sockets")
    hub._add(first)
    hub._add(second)
    hub._add(second)  # the same socket again is not a second one
    assert value("ivr_web_sockets") == before + 2
    hub._remove(first)
    hub._remove(first)
    assert value("ivr_web_sockets") == before + 1
    hub._remove(second)
    assert value("ivr_web_sockets") == before


# --- the ACD, read at each scrape


def _seat(agent_id: str, status: Presence, activity: str = "") -> Seat:
    return Seat(Agent(id=agent_id, name=agent_id, device=f"PJSIP/{agent_id}"), status=status, activity=activity)


def test_acd_waiting_calls_and_agents_are_read_from_the_live_acd() -> None:
    acd: Any = SimpleNamespace(
        router=SimpleNamespace(waiting={"c1": SimpleNamespace(queue="cards"), "c2": SimpleNamespace(queue="cards"),
                                        "c3": SimpleNamespace(queue="loans")}),
        seats={"A1": _seat("A1", Presence.READY), "A2": _seat("A2", Presence.READY, "on_call"),
               "A3": _seat("A3", Presence.NOT_READY, ""), "A4": _seat("A4", Presence.READY, "ringing")})
    metrics.watch_acd(lambda: acd_counts(acd))
    try:
        assert value("ivr_acd_waiting_calls", queue="cards") == 2
        assert value("ivr_acd_waiting_calls", queue="loans") == 1
        assert [value("ivr_acd_agents", state=s) for s in ("ready", "on_call", "not_ready", "ringing", "offline")] \
            == [1, 1, 1, 1, 0]
        del acd.router.waiting["c1"]  # read at each scrape: nothing to keep in step
        acd.seats["A1"].activity = "ringing"
        assert value("ivr_acd_waiting_calls", queue="cards") == 1
        assert value("ivr_acd_agents", state="ringing") == 2 and value("ivr_acd_agents", state="ready") == 0
    finally:
        metrics.watch_acd(None)
    assert REGISTRY.get_sample_value("ivr_acd_waiting_calls", {"queue": "cards"}) is None


def test_an_acd_that_cannot_be_read_does_not_fail_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> metrics.AcdCounts:
        raise RuntimeError("dictionary changed size during iteration")

    metrics.watch_acd(broken)
    try:
        with caplog.at_level(logging.WARNING, logger="ivr.metrics"):
            assert value("ivr_acd_agents", state="ready") == 0
    finally:
        metrics.watch_acd(None)
    assert any("the ACD could not be read" in r.getMessage() for r in caplog.records)


# --- every warning and error logged


def test_warnings_and_errors_logged_anywhere_are_counted_by_logger() -> None:
    logger = logging.getLogger("ivr.tests.metrics")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    metrics.count_logs(logger)
    metrics.count_logs(logger)  # once, however often installed
    try:
        errors = value("ivr_log_records_total", level="error", logger="ivr.tests.metrics")
        warnings = value("ivr_log_records_total", level="warning", logger="ivr.tests.metrics")
        logger.info("not counted")
        logger.warning("a warning")
        logger.error("an error")
        logger.critical("worse")
        assert value("ivr_log_records_total", level="warning", logger="ivr.tests.metrics") == warnings + 1
        assert value("ivr_log_records_total", level="error", logger="ivr.tests.metrics") == errors + 2
    finally:
        logger.handlers.clear()
        logger.propagate = True


def test_every_error_kind_and_part_has_a_series_from_the_start() -> None:
    for kind in metrics.ErrorKind:
        assert REGISTRY.get_sample_value("ivr_errors_total", {"kind": kind.value}) is not None
    for component in metrics.Component:
        assert REGISTRY.get_sample_value("ivr_up", {"component": component.value}) is not None
    assert REGISTRY.get_sample_value("process_cpu_seconds_total") is not None  # prometheus-client's own
