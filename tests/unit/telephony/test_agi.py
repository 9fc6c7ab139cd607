"""FastAGI: environment parsing, command framing and replies, and the server on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from ivr.telephony.agi import (
    MAX_ENVIRONMENT_BYTES,
    AgiEnvironment,
    AgiError,
    AgiReply,
    AgiSession,
    CallHungUp,
    FastAgiServer,
    MalformedEnvironment,
    normalize_number,
    parse_environment,
    quote_arg,
    read_environment,
)

TIMEOUT = 2.0

GOOD_ENV = (
    b"agi_network: yes\n"
    b"agi_network_script: hotline\n"
    b"agi_request: agi://127.0.0.1:4573/hotline\n"
    b"agi_channel: PJSIP/trunk-00000001\n"
    b"agi_language: ko\n"
    b"agi_uniqueid: 1700000000.1\n"
    b"agi_callerid: 01012345678\n"
    b"agi_calleridname: Kim\n"
    b"agi_dnid: 1588\n"
    b"agi_context: hotline\n"
    b"\n"
)


def headers(**extra: str) -> dict[str, str]:
    base = {"agi_network_script": "hotline", "agi_channel": "PJSIP/trunk-1", "agi_uniqueid": "1.1"}
    base.update(extra)
    return base


# --- parse_environment / AgiEnvironment ------------------------------------------------


def test_parse_environment_lf() -> None:
    parsed = parse_environment(GOOD_ENV)
    assert parsed["agi_network_script"] == "hotline"
    assert parsed["agi_request"] == "agi://127.0.0.1:4573/hotline"
    assert parsed["agi_uniqueid"] == "1700000000.1"
    assert len(parsed) == 10


def test_parse_environment_crlf_and_junk() -> None:
    blob = (
        b"agi_network_script: hotline\r\n"
        b"hello there\r\n"
        b"x_agi_channel: nope\r\n"
        b"agi_nocolon\r\n"
        b"agi_calleridname: A: B \r\n"
        b"agi_channel:PJSIP/no-space\r\n"
        b"agi_uniqueid: 42\r\n"
        b"\r\n"
    )
    assert parse_environment(blob) == {
        "agi_network_script": "hotline",
        "agi_calleridname": "A: B",
        "agi_uniqueid": "42",
    }


def test_parse_environment_replaces_invalid_utf8() -> None:
    assert parse_environment(b"agi_calleridname: \xff\xfeKim\n\n") == {"agi_calleridname": "\ufffd\ufffdKim"}


def test_from_headers_full_environment() -> None:
    env = AgiEnvironment.from_headers(parse_environment(GOOD_ENV))
    assert env.script == "hotline"
    assert env.channel == "PJSIP/trunk-00000001"
    assert env.uniqueid == "1700000000.1"
    assert env.caller == "01012345678"
    assert env.caller_name == "Kim"
    assert env.dialed == "1588"
    assert env.context == "hotline"
    assert env.language == "ko"
    assert env.raw["agi_network"] == "yes"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+82 (10) 1234-5678", "+821012345678"),
        ("010-1234-5678", "01012345678"),
        ("anonymous", ""),
        ("unknown", ""),
        ("+", ""),
        ("", ""),
        ("  +1 555 0100  ", "+15550100"),
        ("1+2", "12"),
    ],
)
def test_caller_normalized(raw: str, expected: str) -> None:
    assert normalize_number(raw) == expected
    assert AgiEnvironment.from_headers(headers(agi_callerid=raw)).caller == expected


def test_from_headers_defaults_and_cleanup() -> None:
    env = AgiEnvironment.from_headers(
        headers(agi_network_script="/hotline/", agi_dnid="unknown", agi_calleridname="x" * 100)
    )
    assert env.script == "hotline"
    assert env.dialed == ""
    assert env.caller == ""
    assert env.caller_name == "x" * 80
    assert env.language == "en"
    assert env.context == ""


def test_from_headers_names_every_missing_key() -> None:
    with pytest.raises(MalformedEnvironment) as info:
        AgiEnvironment.from_headers({"agi_callerid": "1"})
    assert str(info.value) == "AGI environment lacks agi_network_script, agi_channel, agi_uniqueid"


def test_from_headers_empty_value_counts_as_missing() -> None:
    with pytest.raises(MalformedEnvironment) as info:
        AgiEnvironment.from_headers(headers(agi_channel=""))
    assert str(info.value) == "AGI environment lacks agi_channel"


# --- read_environment --------------------------------------------------------------------


def reader_with(data: bytes, eof: bool = False, limit: int = MAX_ENVIRONMENT_BYTES) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_read_environment_stops_at_blank_line() -> None:
    reader = reader_with(GOOD_ENV + b"200 result=0\n")
    parsed = await read_environment(reader, TIMEOUT)
    assert parsed["agi_channel"] == "PJSIP/trunk-00000001"
    assert await reader.readline() == b"200 result=0\n"  # the rest stays for the commands


async def test_read_environment_times_out() -> None:
    reader = reader_with(b"agi_network_script: hotline\n")
    with pytest.raises(MalformedEnvironment) as info:
        await read_environment(reader, 0.05)
    assert str(info.value) == "no complete AGI environment within 0.05 s"


async def test_read_environment_early_eof() -> None:
    partial = b"agi_network_script: hotline\nagi_chan"
    with pytest.raises(MalformedEnvironment) as info:
        await read_environment(reader_with(partial, eof=True), TIMEOUT)
    assert str(info.value) == f"peer closed after {len(partial)} bytes, before the blank line"
    assert info.value.received == len(partial) and not info.value.is_probe


async def test_read_environment_eof_without_data() -> None:
    with pytest.raises(MalformedEnvironment) as info:
        await read_environment(reader_with(b"", eof=True), TIMEOUT)
    assert str(info.value) == "peer closed after 0 bytes, before the blank line"
    assert info.value.received == 0 and info.value.is_probe  # a port probe, logged at debug level


async def test_read_environment_oversize_without_blank_line() -> None:
    reader = reader_with(b"agi_junk: " + b"x" * (MAX_ENVIRONMENT_BYTES + 100) + b"\n")
    with pytest.raises(MalformedEnvironment) as info:
        await asyncio.wait_for(read_environment(reader, TIMEOUT), TIMEOUT)
    assert str(info.value) == f"AGI environment over {MAX_ENVIRONMENT_BYTES} bytes"


async def test_read_environment_oversize_with_late_blank_line() -> None:
    reader = reader_with(b"agi_junk: " + b"x" * (MAX_ENVIRONMENT_BYTES + 100) + b"\n\n")
    with pytest.raises(MalformedEnvironment, match="over 16384 bytes"):
        await asyncio.wait_for(read_environment(reader, TIMEOUT), TIMEOUT)


# --- quoting ------------------------------------------------------------------------------


def test_quote_arg_wraps_plain_values() -> None:
    assert quote_arg("uuid,127.0.0.1:9092") == '"uuid,127.0.0.1:9092"'
    assert quote_arg("") == '""'
    assert quote_arg("잔액 조회") == '"잔액 조회"'


@pytest.mark.parametrize("bad", ['say "hi"', "a\nb", "a\rb", "back\\slash"])
def test_quote_arg_rejects_breakouts(bad: str) -> None:
    with pytest.raises(ValueError, match="quote, backslash or line break"):
        quote_arg(bad)


# --- AgiSession with a fake transport -------------------------------------------------------


class FakeWriter:
    def __init__(self, fail: bool = False) -> None:
        self.data = bytearray()
        self.fail = fail

    def write(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionResetError("reset")
        self.data += data

    async def drain(self) -> None:
        return None


def session_with(replies: bytes, eof: bool = False, fail: bool = False) -> tuple[AgiSession, FakeWriter]:
    env = AgiEnvironment.from_headers(headers())
    writer = FakeWriter(fail)
    reader = reader_with(replies, eof=eof)
    return AgiSession(env, reader, writer), writer  # type: ignore[arg-type]


async def test_command_parses_result_and_data() -> None:
    session, writer = session_with(b"200 result=1 (cards)\n")
    assert await session.command("GET VARIABLE IVR_QUEUE") == AgiReply(200, "1", "cards")
    assert bytes(writer.data) == b"GET VARIABLE IVR_QUEUE\n"


async def test_command_plain_result() -> None:
    session, _ = session_with(b"200 result=1\r\n")
    assert await session.command("ANSWER") == AgiReply(200, "1", "")
    assert session.hung_up is False


async def test_command_skips_100_trying() -> None:
    session, _ = session_with(b"100 result=0 Trying...\n200 result=0\n")
    assert await session.command("EXEC Dial PJSIP/1001") == AgiReply(200, "0", "")


async def test_command_511_is_hangup() -> None:
    session, _ = session_with(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    with pytest.raises(CallHungUp) as info:
        await session.command("ANSWER")
    assert info.value.status == 511
    assert session.hung_up is True


async def test_command_result_minus_one_is_hangup() -> None:
    session, _ = session_with(b"200 result=-1\n")
    with pytest.raises(CallHungUp) as info:
        await session.command("STREAM FILE beep \"\"")
    assert info.value.status == 200
    assert session.hung_up is True


async def test_command_eof_is_hangup() -> None:
    session, _ = session_with(b"", eof=True)
    with pytest.raises(CallHungUp, match="AGI socket closed by Asterisk"):
        await session.command("ANSWER")
    assert session.hung_up is True


async def test_command_socket_error_is_hangup() -> None:
    session, _ = session_with(b"", fail=True)
    with pytest.raises(CallHungUp, match="AGI socket error: reset"):
        await session.command("ANSWER")
    assert session.hung_up is True


async def test_hangup_notice_then_reply_then_no_more_commands() -> None:
    session, writer = session_with(b"HANGUP\n200 result=0\n")
    assert await session.command("ANSWER") == AgiReply(200, "0", "")
    assert session.hung_up is True
    with pytest.raises(CallHungUp) as info:
        await session.command("NOOP")
    assert info.value.status == 511
    assert bytes(writer.data) == b"ANSWER\n"  # nothing sent on a dead channel


async def test_command_invalid_command_is_agi_error_not_hangup() -> None:
    session, _ = session_with(b"510 Invalid or unknown command\n")
    with pytest.raises(AgiError) as info:
        await session.command("FROB")
    assert not isinstance(info.value, CallHungUp)
    assert info.value.status == 510
    assert "AGIInvalidCommand" in str(info.value)
    assert session.hung_up is False


async def test_command_unparsable_reply() -> None:
    session, _ = session_with(b"what is this\n")
    with pytest.raises(AgiError) as info:
        await session.command("NOOP")
    assert str(info.value) == "AGI 'NOOP' failed: unparsable what is this"
    assert info.value.status == 0


async def test_multiline_520_usage_reply_does_not_desync_next_command() -> None:
    session, _ = session_with(
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: SET VARIABLE <variablename> <value>\n"
        b"520 End of proper usage.\n"
        b"200 result=1\n"
    )
    with pytest.raises(AgiError) as info:
        await session.command("SET VARIABLE")
    assert info.value.status == 520
    assert await session.command("ANSWER") == AgiReply(200, "1", "")


async def test_command_refuses_line_breaks_and_sends_nothing() -> None:
    session, writer = session_with(b"200 result=0\n")
    with pytest.raises(ValueError, match="line break"):
        await session.command("NOOP\nHANGUP")
    with pytest.raises(ValueError, match="line break"):
        await session.command("NOOP\r")
    assert bytes(writer.data) == b""


async def test_set_variable_exact_bytes() -> None:
    session, writer = session_with(b"200 result=1\n")
    await session.set_variable("IVR_QUEUE", "cards")
    assert bytes(writer.data) == b'SET VARIABLE IVR_QUEUE "cards"\n'


async def test_set_variable_function_name_allowed() -> None:
    session, writer = session_with(b"200 result=1\n")
    await session.set_variable("CDR(userfield)", "x")
    assert bytes(writer.data) == b'SET VARIABLE CDR(userfield) "x"\n'


@pytest.mark.parametrize("name", ["", "1QUEUE", "IVR QUEUE", "IVR-QUEUE", "A;B", 'A"'])
async def test_invalid_variable_names_rejected(name: str) -> None:
    session, writer = session_with(b"200 result=1\n")
    with pytest.raises(ValueError, match="not a channel variable name"):
        await session.set_variable(name, "x")
    with pytest.raises(ValueError, match="not a channel variable name"):
        await session.get_variable(name)
    assert bytes(writer.data) == b""


async def test_set_variable_refuses_unsafe_value() -> None:
    session, writer = session_with(b"200 result=1\n")
    with pytest.raises(ValueError):
        await session.set_variable("IVR_QUEUE", 'x"\nEXEC System rm')
    assert bytes(writer.data) == b""


async def test_get_variable() -> None:
    session, writer = session_with(b"200 result=1 (cards)\n200 result=0\n")
    assert await session.get_variable("IVR_QUEUE") == "cards"
    assert await session.get_variable("UNSET") is None
    assert bytes(writer.data) == b"GET VARIABLE IVR_QUEUE\nGET VARIABLE UNSET\n"


async def test_exec_audiosocket_exact_bytes() -> None:
    session, writer = session_with(b"200 result=0\n")
    await session.exec("AudioSocket", "uuid", "127.0.0.1:9092")
    assert bytes(writer.data) == b'EXEC AudioSocket "uuid,127.0.0.1:9092"\n'


async def test_exec_without_arguments() -> None:
    session, writer = session_with(b"200 result=0\n")
    await session.exec("Answer")
    assert bytes(writer.data) == b"EXEC Answer\n"


@pytest.mark.parametrize("app", ["Audio Socket", "System;", "", "Dial\n"])
async def test_exec_rejects_bad_application_names(app: str) -> None:
    session, writer = session_with(b"200 result=0\n")
    with pytest.raises(ValueError, match="not an application name"):
        await session.exec(app, "x")
    assert bytes(writer.data) == b""


# --- FastAgiServer over loopback ----------------------------------------------------------


@contextlib.asynccontextmanager
async def running(server: FastAgiServer) -> AsyncIterator[int]:
    await server.start()
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        await server.stop()


async def wait_idle(server: FastAgiServer) -> None:
    for _ in range(400):
        if not server.active:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("server still has active requests")


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionResetError:
        return b""


def test_route_registered_twice_is_refused() -> None:
    server = FastAgiServer("127.0.0.1", 0)

    async def handler(_session: AgiSession) -> None:
        return None

    server.route("hotline", handler)
    with pytest.raises(ValueError, match="'hotline' already registered"):
        server.route("hotline", handler)


async def test_request_reaches_route_and_commands_flow() -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=TIMEOUT)
    seen: list[tuple[str, str, AgiReply]] = []

    async def hotline(session: AgiSession) -> None:
        reply = await session.command("ANSWER")
        seen.append((session.env.uniqueid, session.env.caller, reply))

    server.route("hotline", hotline)
    async with running(server) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GOOD_ENV)
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"ANSWER\n"
        writer.write(b"200 result=0\n")
        await writer.drain()
        assert await read_to_eof(reader) == b""  # the server hangs up the AGI socket when done
        writer.close()
        await wait_idle(server)
    assert seen == [("1700000000.1", "01012345678", AgiReply(200, "0", ""))]


async def test_failing_route_does_not_stop_server(caplog: pytest.LogCaptureFixture) -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=TIMEOUT)
    calls: list[str] = []

    async def hotline(session: AgiSession) -> None:
        calls.append(session.env.uniqueid)
        if len(calls) == 1:
            raise RuntimeError("boom in route")
        await session.command("NOOP")

    server.route("hotline", hotline)
    with caplog.at_level(logging.ERROR, logger="ivr.telephony.agi"):
        async with running(server) as port:
            r1, w1 = await asyncio.open_connection("127.0.0.1", port)
            w1.write(GOOD_ENV)
            assert await read_to_eof(r1) == b""  # socket closed after the failure
            w1.close()

            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            w2.write(GOOD_ENV.replace(b"1700000000.1", b"1700000000.2"))
            assert await asyncio.wait_for(r2.readline(), TIMEOUT) == b"NOOP\n"
            w2.write(b"200 result=0\n")
            assert await read_to_eof(r2) == b""
            w2.close()
            await wait_idle(server)
    assert calls == ["1700000000.1", "1700000000.2"]
    failures = [r for r in caplog.records if "failed; Asterisk's dialplan takes over" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None and str(failures[0].exc_info[1]) == "boom in route"


async def test_half_environment_then_close_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=30)
    called: list[AgiSession] = []

    async def hotline(session: AgiSession) -> None:
        called.append(session)

    server.route("hotline", hotline)
    half = GOOD_ENV[:40]
    with caplog.at_level(logging.ERROR, logger="ivr.telephony.agi"):
        async with running(server) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(half)
            await writer.drain()
            writer.write_eof()
            assert await read_to_eof(reader) == b""
            writer.close()
            await asyncio.wait_for(wait_idle(server), TIMEOUT)
    assert called == []
    messages = [r.getMessage() for r in caplog.records]
    expected = f"rejected: peer closed after {len(half)} bytes, before the blank line"
    assert any(m.endswith(expected) for m in messages)


async def test_silent_peer_times_out(caplog: pytest.LogCaptureFixture) -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=0.1)
    with caplog.at_level(logging.ERROR, logger="ivr.telephony.agi"):
        async with running(server) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"agi_network_script: hotline\n")
            assert await read_to_eof(reader) == b""
            writer.close()
            await wait_idle(server)
    assert any(r.getMessage().endswith("no complete AGI environment within 0.1 s") for r in caplog.records)


async def test_oversized_environment_rejected_by_stream_limit(caplog: pytest.LogCaptureFixture) -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=TIMEOUT)
    with caplog.at_level(logging.ERROR, logger="ivr.telephony.agi"):
        async with running(server) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"agi_junk: " + b"x" * (MAX_ENVIRONMENT_BYTES * 3))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            assert await read_to_eof(reader) == b""
            writer.close()
            await wait_idle(server)
    assert any(r.getMessage().endswith(f"over {MAX_ENVIRONMENT_BYTES} bytes") for r in caplog.records)


async def test_unknown_route_closes_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=TIMEOUT)

    async def hotline(_session: AgiSession) -> None:
        raise AssertionError("must not be called")

    server.route("hotline", hotline)
    with caplog.at_level(logging.ERROR, logger="ivr.telephony.agi"):
        async with running(server) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(GOOD_ENV.replace(b"script: hotline", b"script: nope"))
            assert await read_to_eof(reader) == b""
            writer.close()
            await wait_idle(server)
    assert any("unknown route 'nope' (known: hotline)" in r.getMessage() for r in caplog.records)


async def test_caller_hangup_in_route_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    server = FastAgiServer("127.0.0.1", 0, environment_timeout=TIMEOUT)

    async def hotline(session: AgiSession) -> None:
        await session.command("ANSWER")

    server.route("hotline", hotline)
    with caplog.at_level(logging.INFO, logger="ivr.telephony.agi"):
        async with running(server) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(GOOD_ENV)
            assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"ANSWER\n"
            writer.write(b"HANGUP\n200 result=-1\n")
            assert await read_to_eof(reader) == b""
            writer.close()
            await wait_idle(server)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.INFO, "FastAGI hotline: caller hung up") in messages
    assert not [m for level, m in messages if level >= logging.ERROR]
