"""The TCP listener that Asterisk connects to (FastAGI, AudioSocket): start, report the port, stop."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class TcpListener:
    """Base for the controller's servers; subclasses implement ``_handle`` for one connection."""

    protocol = "TCP"
    #: StreamReader buffer limit; a protocol with bounded messages sets it lower.
    read_limit = 2**16

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=self.read_limit)
        self.port = self._server.sockets[0].getsockname()[1]  # the real port when asked for port 0
        log.info("%s listening on %s:%d", self.protocol, self.host, self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
