"""The wire under faults: an AMI link that goes silent is dropped and made again; a taken port is waited for.

A small AMI server stands in for Asterisk (the greeting, Login, Ping, FullyBooted): it can stop answering
without closing the connection, as a firewall dropping packets makes a link look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import pytest

from ivr.telephony.ami import AmiClient
from ivr.telephony.tcp import TcpListener, port_holder


class FakeAsterisk:
    """Answers Login and Ping like Asterisk's manager; ``silent`` swallows every action (a black-holed link)."""

    def __init__(self) -> None:
        self.silent = False
        self.logins = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                if self.silent:
                    continue
                fields = dict(line.split(": ", 1) for line in block.decode().strip().split("\r\n") if ": " in line)
                action, action_id = fields.get("Action", "").lower(), fields.get("ActionID", "")
                if action == "login":
                    self.logins += 1
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\n"
                                 "Message: Authentication accepted\r\n\r\n".encode())
                    writer.write(b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
                elif action == "ping":
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n".encode())
                else:
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def test_a_silent_ami_link_is_dropped_and_made_again() -> None:
    asterisk = FakeAsterisk()
    await asterisk.start()
    client = AmiClient("127.0.0.1", asterisk.port, "ivr", "secret", reconnect_s=0, ping_s=0.1, ping_timeout_s=0.2)
    client.start()
    try:
        assert await client.wait_ready(3)
        assert client.logins == 1
        await asyncio.sleep(0.4)  # answered pings keep the link
        assert client.ready and client.dropped == 0
        asterisk.silent = True
        assert await until(lambda: not client.ready, 2), "a link that stopped answering still counts as up"
        assert client.dropped >= 1
        assert "did not answer a Ping" in client.last_error
        asterisk.silent = False
        assert await until(lambda: client.ready and client.logins >= 2, 3), client.last_error
        assert asterisk.logins >= 2
    finally:
        client.close()
        await asterisk.stop()


async def test_an_answering_link_is_never_dropped() -> None:
    asterisk = FakeAsterisk()
    await asterisk.start()
    client = AmiClient("127.0.0.1", asterisk.port, "ivr", "secret", reconnect_s=0, ping_s=0.05, ping_timeout_s=0.5)
    client.start()
    try:
        assert await client.wait_ready(3)
        await asyncio.sleep(0.6)
        assert (client.ready, client.dropped, client.logins) == (True, 0, 1)
    finally:
        client.close()
        await asterisk.stop()


class Echo(TcpListener):
    protocol = "Echo"
    while_busy = "nobody is echoed"
    busy_retry_s = 0.05

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()


async def test_a_taken_port_is_named_and_taken_once_free(caplog: pytest.LogCaptureFixture) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    listener = Echo("127.0.0.1", port)
    try:
        with caplog.at_level(logging.ERROR, logger="ivr.telephony.tcp"):
            await listener.start()  # returns: the rest of the controller starts meanwhile
        assert not listener.listening
        said = " ".join(r.getMessage() for r in caplog.records)
        assert f"Echo port 127.0.0.1:{port} is taken by pid {os.getpid()}" in said
        assert "nobody is echoed" in said
        squatter.close()
        assert await until(lambda: listener.listening, 2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        writer.close()
    finally:
        squatter.close()
        await listener.stop()


async def test_stopping_while_waiting_for_the_port_leaves_nothing_behind() -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    listener = Echo("127.0.0.1", squatter.getsockname()[1])
    try:
        await listener.start()
        await listener.stop()
        squatter.close()
        await asyncio.sleep(0.2)
        assert not listener.listening
    finally:
        squatter.close()


def test_port_holder_names_the_listening_process_or_nothing() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert port_holder(held.getsockname()[1]).startswith(f"pid {os.getpid()} (")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening
        assert port_holder(unused.getsockname()[1]) == ""
