"""The WebSocket hub: what each signed-in page is pushed, from Redis pub/sub.

One subscription per process (``ivr:pops``, ``ivr:presence``, ``ivr:events``), so several controller
processes can serve the same agents: whichever process holds a call publishes, every process's hub
hears it and tells the sockets it has. Who gets what:

- ``pop``: only the call taker the call is offered to (supervisors do not get pops);
- ``presence``: that agent and every supervisor / admin;
- ``call``: the call taker the call was offered to (call.offered, call.answered, call.ended, ...);
- ``wall``: supervisors and admins, when the wall changes (checked every 0.5 s).

Fan-out never waits for a socket: each socket has its own bounded send queue, drained by its own
task; a socket whose queue overflows (a stalled or dead browser) is dropped, never waited for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.websockets import WebSocket

from ivr import metrics
from ivr.records.store import EVENTS_CHANNEL, follow_channels
from ivr.routing.agents import PRESENCE_CHANNEL, AgentDirectory
from ivr.routing.screenpop import POPS_CHANNEL
from ivr.web.auth import CALL_TAKERS, SUPERVISING, User, UserStore
from ivr.web.wall import MAX_TRACKED, Wall, changed

log = logging.getLogger(__name__)

CHANNELS = (POPS_CHANNEL, PRESENCE_CHANNEL, EVENTS_CHANNEL)
#: Messages waiting for one socket before it counts as stalled and is dropped.
SEND_QUEUE_MAX = 256
#: Close codes (4000-4999 are the application's): sign in again; this page's origin is not allowed.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TOO_SLOW = 1013  # "try again later": the page reconnects and gets the current state
CLOSE_GOING_AWAY = 1001


class Client:
    """One open socket: its user and its send queue."""

    def __init__(self, websocket: WebSocket, user: User, token: str, limit: int = SEND_QUEUE_MAX) -> None:
        self.websocket = websocket
        self.user = user
        self.token = token
        self.queue: asyncio.Queue[str] = asyncio.Queue(limit)
        self.gone = asyncio.Event()
        """Set when the server drops the socket (queue overflow, session ended, shutdown)."""
        self.close_code = 1000
        self.close_reason = ""

    @property
    def supervising(self) -> bool:
        return self.user.role in SUPERVISING

    def takes_calls_as(self, agent_id: str) -> bool:
        return self.user.role in CALL_TAKERS and self.user.agent_id == agent_id

    def send(self, text: str) -> None:
        """Queue a message; never waits. A full queue drops the socket."""
        if self.gone.is_set():
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("web socket of %s dropped: %d messages unsent (stalled connection)", self.user.username,
                        self.queue.qsize())
            self.drop(CLOSE_TOO_SLOW, "too slow: messages piled up; reconnect")

    def drop(self, code: int, reason: str) -> None:
        if not self.gone.is_set():
            self.close_code, self.close_reason = code, reason
            self.gone.set()


class Hub:
    """Open sockets and the Redis subscription that feeds them."""

    def __init__(self, redis: aioredis.Redis, users: UserStore, wall: Wall, origins: Iterable[str], *,
                 send_limit: int = SEND_QUEUE_MAX, wall_every_s: float = 0.5, recheck_sessions_s: float = 30.0
                 ) -> None:
        self.redis = redis
        self.users = users
        self.wall = wall
        self.origins = frozenset(origins)
        self.send_limit = send_limit
        self.wall_every_s = wall_every_s
        self.recheck_sessions_s = recheck_sessions_s
        self.directory = AgentDirectory(redis)
        self.clients: set[Client] = set()
        # Indexes, so a pop costs the same with 10 or 10,000 sockets open (a burst was O(sockets x pops)).
        self.by_agent: dict[str, set[Client]] = collections.defaultdict(set)
        """Sockets of users who have an agent id, by that id."""
        self.supervisors: set[Client] = set()
        self.offered: collections.OrderedDict[str, str] = collections.OrderedDict()
        """call id -> the agent it is (or was last) offered to: where its call events go."""
        self.last_wall: dict[str, Any] | None = None
        self.subscribed = asyncio.Event()
        """Set once the Redis subscription is live (tests wait for it)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()

    # --- lifecycle (the app's lifespan)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="web-hub-redis"),
                       asyncio.create_task(self._watch(), name="web-hub-wall")]

    async def stop(self) -> None:
        for client in list(self.clients):
            client.drop(CLOSE_GOING_AWAY, "server stopping")
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)

    # --- one socket

    async def serve(self, websocket: WebSocket, token: str) -> None:
        """The life of one socket: checks, a greeting with the current state, then pushes until it closes."""
        origin = websocket.headers.get("origin", "")
        if origin not in self.origins:
            # Accepted first so the page sees the code (a refused handshake is only "1006" to a browser).
            await websocket.accept()
            await websocket.close(CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
            log.warning("web socket refused: origin %r is not in IVR_WEB_ORIGINS", origin[:100])
            return
        try:
            user = await self.users.session_user(token)
        except (RedisError, OSError) as exc:
            # Many pages reconnecting at once (a restart, a network blip) may exhaust Redis connections:
            # "try again later", which the page does with its back-off, rather than a 500.
            await websocket.accept()
            await websocket.close(CLOSE_TOO_SLOW, "busy: reconnect")
            log.warning("web socket deferred: session lookup failed (%s)", exc)
            return
        if user is None:
            await websocket.accept()
            await websocket.close(CLOSE_UNAUTHORIZED, "sign in again")
            return
        await websocket.accept()
        client = Client(websocket, user, token, self.send_limit)
        self._add(client)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self._greet(client)
            tasks = [asyncio.create_task(self._send_loop(client)), asyncio.create_task(self._receive_loop(client)),
                     asyncio.create_task(client.gone.wait())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._remove(client)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if client.gone.is_set():
                # Bounded: a stalled peer cannot take the close frame either; the server's pings end it then.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(websocket.close(client.close_code, client.close_reason), 1.0)

    async def _greet(self, client: Client) -> None:
        client.send(_json({"type": "hello", "user": client.user.public()}))
        agent_id = client.user.agent_id
        if agent_id and client.user.role in CALL_TAKERS:
            presence = await self.directory.presence(agent_id)
            client.send(_json({"type": "presence", "agent": agent_id, **presence}))
            if presence.get("activity") == "ringing" and presence.get("call_id"):
                # The page was (re)loaded while the phone rings: show the pop now, not at the next call.
                raw = await self.redis.get(f"ivr:pop:{presence['call_id']}")
                stored = json.loads(raw) if raw else {}
                if stored.get("agent") == agent_id:
                    client.send(_json({"type": "pop", "pop": stored["pop"]}))
        if client.supervising:
            wall = self.last_wall or await self.wall.build()
            client.send(_json({"type": "wall", "wall": wall}))

    @staticmethod
    async def _send_loop(client: Client) -> None:
        while True:
            text = await client.queue.get()
            await client.websocket.send_text(text)

    @staticmethod
    async def _receive_loop(client: Client) -> None:
        while True:
            message = await client.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                data = json.loads(message.get("text") or "")
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("type") == "ping":
                client.send(_json({"type": "pong"}))
            else:
                client.send(_json({"type": "error", "detail": 'unknown message; the server knows {"type": "ping"}'}))

    # --- fan-out

    def _add(self, client: Client) -> None:
        if client not in self.clients:
            metrics.WEB_SOCKETS.inc()
        self.clients.add(client)
        if client.user.agent_id:
            self.by_agent[client.user.agent_id].add(client)
        if client.supervising:
            self.supervisors.add(client)

    def _remove(self, client: Client) -> None:
        if client in self.clients:
            metrics.WEB_SOCKETS.dec()
        self.clients.discard(client)
        self.supervisors.discard(client)
        mine = self.by_agent.get(client.user.agent_id or "")
        if mine is not None:
            mine.discard(client)
            if not mine:
                del self.by_agent[client.user.agent_id or ""]

    def broadcast(self, wanted: Callable[[Client], bool], message: dict[str, Any],
                  among: Iterable[Client] | None = None) -> int:
        """Queue ``message`` to every socket ``wanted`` accepts (looking only ``among`` these when given);
        returns how many. Never waits."""
        text, count = _json(message), 0
        for client in list(self.clients if among is None else among):
            if wanted(client):
                client.send(text)
                count += 1
        return count

    def _agent_sockets(self, agent_id: str) -> set[Client]:
        return self.by_agent.get(agent_id, set())

    def drop_session(self, token: str) -> None:
        """The session ended (logout): its sockets close."""
        for client in list(self.clients):
            if client.token == token:
                client.drop(CLOSE_UNAUTHORIZED, "signed out")

    async def handle(self, channel: str, data: dict[str, Any]) -> None:
        """One pub/sub message."""
        if channel == POPS_CHANNEL:
            agent, pop = str(data.get("agent", "")), data.get("pop") or {}
            if pop.get("call_id"):
                self._remember_offer(str(pop["call_id"]), agent)
            self.broadcast(lambda c: c.takes_calls_as(agent), {"type": "pop", "pop": pop}, self._agent_sockets(agent))
        elif channel == PRESENCE_CHANNEL:
            agent = str(data.get("agent", ""))
            if not agent:
                return
            # Messages carry only what changed (status, or activity): pages get the whole state.
            presence = await self.directory.presence(agent)
            self.broadcast(lambda c: c.supervising or c.user.agent_id == agent,
                           {"type": "presence", "agent": agent, **presence},
                           self.supervisors | self._agent_sockets(agent))
        elif channel == EVENTS_CHANNEL:
            call_id, kind = str(data.get("call_id", "")), str(data.get("type", ""))
            if self.wall.on_event(data):
                self._spawn(self.wall.record_outcome(call_id, kind))
            if data.get("agent"):
                self._remember_offer(call_id, str(data["agent"]))
            offered_to = self.offered.get(call_id)
            if offered_to:
                message: dict[str, Any] = {"type": "call", "call_id": call_id, "event": kind,
                                           **{k: data[k] for k in ("agent", "at") if k in data}}
                self.broadcast(lambda c: c.takes_calls_as(offered_to), message, self._agent_sockets(offered_to))
            if kind == "call.ended":
                self.offered.pop(call_id, None)

    def _remember_offer(self, call_id: str, agent: str) -> None:
        self.offered[call_id] = agent
        self.offered.move_to_end(call_id)
        while len(self.offered) > MAX_TRACKED:
            self.offered.popitem(last=False)

    async def _listen(self) -> None:
        """The process's one subscription; it comes back when Redis does."""
        async def subscribed() -> None:
            self.subscribed.set()

        await follow_channels(self.redis, CHANNELS, self.handle, "web hub", on_subscribed=subscribed)

    async def _watch(self) -> None:
        """Every 0.5 s: the wall to supervisors when it changed; now and then, sessions that ended."""
        since_recheck = 0.0
        while True:
            await asyncio.sleep(self.wall_every_s)
            since_recheck += self.wall_every_s
            try:
                if self.supervisors:
                    wall = await self.wall.build()
                    if changed(self.last_wall, wall):
                        self.last_wall = wall
                        self.broadcast(lambda c: c.supervising, {"type": "wall", "wall": wall}, self.supervisors)
                else:
                    self.last_wall = None  # nobody watching: the next watcher gets a fresh one
                if since_recheck >= self.recheck_sessions_s:
                    since_recheck = 0.0
                    for client in list(self.clients):
                        if await self.users.session_user(client.token) is None:
                            client.drop(CLOSE_UNAUTHORIZED, "session expired: sign in again")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("web hub: wall update failed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _json(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)

