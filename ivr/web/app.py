"""The web side: the agents', field managers' and supervisors' pages, their JSON API and WebSocket.

The contract is docs/web_api.md (with docs/web_testids.md for the pages). Routes are thin:
who may do what is in ``ivr.web.auth`` (sessions, roles) and ``ivr.web.desk`` (whose call is whose); what a
socket is pushed is in ``ivr.web.hub``; the wall in ``ivr.web.wall``.

Errors are always JSON ``{"detail": str, "status": int, "error_id": str}`` (422 adds ``field`` and
``errors``); an unexpected error is logged with its traceback under that id and the client sees only
"internal error" and the id, never a stack trace.

The controller serves this app inside its own event loop (``serve_web``): one process, one loop,
calls first. A busy port is logged and the controller goes on without pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import redis.asyncio as aioredis
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response, WebSocket, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr import metrics
from ivr.config import Settings
from ivr.routing.acd import Acd
from ivr.web.admin import admin_router
from ivr.web.app_calls import app_calls_router
from ivr.web.auth import BAD_CREDENTIALS, CALL_TAKERS, LoginThrottled, User, UserRole, UserStore, require
from ivr.web.desk import (
    TICKET_TEMPLATES,
    Conflict,
    Desk,
    DispositionRequest,
    InvalidInput,
    NotFound,
    PresenceChange,
)
from ivr.web.health import health_router
from ivr.web.hub import Hub
from ivr.web.phone import phone_router
from ivr.web.qa import qa_library, qa_router
from ivr.web.quality import quality_router
from ivr.web.replay import replay_router
from ivr.web.reports import reports_router
from ivr.web.trainer import trainer_router, trainer_service
from ivr.web.verifier import verifier_router
from ivr.web.wall import Wall
from ivr.webrtc.gateway import AppCallGateway

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"agent": "agent.html", "field": "field.html", "supervisor": "supervisor.html", "admin": "admin.html",
         "trainer": "trainer.html", "reports": "reports.html", "qa": "qa.html"}
ID = r"^[A-Za-z0-9_.-]{1,64}$"
"""Call and agent ids in paths (they become parts of Redis keys)."""

CallId = Annotated[str, PathParam(pattern=ID, description="the call's id (Asterisk uniqueid)")]
AgentId = Annotated[str, PathParam(pattern=ID, description="the agent's id in the directory")]
AnyUser = Annotated[User, Depends(require())]
Supervising = Annotated[User, Depends(require(UserRole.SUPERVISOR, UserRole.ADMIN))]
CallTaker = Annotated[User, Depends(require(UserRole.AGENT, UserRole.FIELD))]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    token: str
    role: UserRole
    agent_id: str | None
    name: str
    expires_at: float


class Me(BaseModel):
    username: str
    role: UserRole
    agent_id: str | None
    name: str


class TicketCreated(BaseModel):
    ticket_id: str | None


def create_app(settings: Settings, redis: aioredis.Redis, acd: Acd | None = None,
               static_dir: Path = STATIC_DIR, app_calls: AppCallGateway | None = None) -> FastAPI:
    """The web app over ``redis`` (and this process's ACD for the freshest wall, when given)."""
    users = UserStore(redis, settings.web_session_ttl_s)
    training = trainer_service(settings)  # the archive of finished calls: trainer's and reports' pages
    desk = Desk(redis, settings.call_record_ttl_s, archive=training.archive)
    wall = Wall(redis, acd, _flow_queues(settings))
    hub = Hub(redis, users, wall, settings.web_origins)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(title="ivr: agents' and supervisors' pages", version="1", lifespan=lifespan,
                  description="Screen pops, presence, dispositions and the supervisor wall (see web_api.md).")
    app.state.settings, app.state.users, app.state.desk = settings, users, desk
    app.state.wall, app.state.hub = wall, hub
    _install_error_handlers(app)
    app.add_middleware(_Guard)

    # --- auth

    @app.post("/api/login", response_model=LoginResponse, tags=["auth"])
    async def login(body: LoginRequest) -> LoginResponse:
        try:
            user = await users.verify(body.username, body.password)
        except LoginThrottled as exc:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc),
                                headers={"Retry-After": str(exc.retry_after_s)}) from None
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})
        token, expires_at = await users.open_session(user)
        return LoginResponse(token=token, role=user.role, agent_id=user.agent_id, name=user.name,
                             expires_at=round(expires_at, 3))

    @app.post("/api/logout", status_code=204, tags=["auth"])
    async def logout(request: Request, _: AnyUser) -> Response:
        await users.close_session(request.state.token)
        hub.drop_session(request.state.token)
        return Response(status_code=204)

    @app.get("/api/me", response_model=Me, tags=["auth"])
    async def me(user: AnyUser) -> dict[str, Any]:
        return user.public()

    # --- agents and presence

    @app.get("/api/agents", tags=["agents"])
    async def agents(_: Supervising) -> list[dict[str, Any]]:
        return await desk.agents()

    @app.get("/api/agents/me", tags=["agents"])
    async def my_agent(user: CallTaker) -> dict[str, Any]:
        return await desk.agent(user.agent_id or "")

    @app.post("/api/agents/{agent_id}/presence", status_code=204, tags=["agents"])
    async def set_presence(agent_id: AgentId, body: PresenceChange, user: AnyUser) -> Response:
        if user.role in CALL_TAKERS and agent_id != user.agent_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "you may set only your own presence")
        await desk.set_presence(agent_id, body)
        return Response(status_code=204)

    # --- calls

    @app.get("/api/calls/{call_id}/pop", tags=["calls"])
    async def pop(call_id: CallId, user: AnyUser) -> dict[str, Any]:
        return await desk.pop(call_id, user)

    @app.post("/api/calls/{call_id}/decline", status_code=202, tags=["calls"])
    async def decline(call_id: CallId, user: CallTaker) -> dict[str, Any]:
        await desk.decline(call_id, user)
        return {"call_id": call_id, "agent": user.agent_id}

    @app.post("/api/calls/{call_id}/disposition", status_code=201, response_model=TicketCreated, tags=["calls"])
    async def disposition(call_id: CallId, body: DispositionRequest, user: CallTaker) -> TicketCreated:
        return TicketCreated(ticket_id=await desk.disposition(call_id, user, body))

    @app.get("/api/ticket-templates", tags=["calls"])
    async def ticket_templates(_: AnyUser) -> dict[str, Any]:
        return TICKET_TEMPLATES

    # --- the wall

    @app.get("/api/wall", tags=["wall"])
    async def get_wall(_: Supervising) -> dict[str, Any]:
        return await wall.build()

    # --- the socket

    @app.websocket("/ws")
    async def socket_endpoint(websocket: WebSocket, token: str = "") -> None:
        await hub.serve(websocket, token)

    # --- the flow editor (admins): ivr/web/admin.py

    app.include_router(admin_router(settings, redis))

    # --- the trainer loop (trainers, admins) and reports (supervisors too): ivr/web/trainer.py, reports.py

    app.include_router(trainer_router(settings, redis, training))
    app.include_router(reports_router(training))
    app.include_router(replay_router(settings, redis))  # replays and suggestions: ivr/web/replay.py
    app.include_router(qa_router(qa_library(settings), redis))  # recordings for QA (qa, supervisors): ivr/web/qa.py
    app.include_router(quality_router(settings))  # quality checks' progress, review list: ivr/web/quality.py
    app.include_router(verifier_router())  # the demo card verifier (loopback only): ivr/web/verifier.py
    # customers calling from the bank's app (WHIP-style WebRTC offers): ivr/web/app_calls.py over ivr/webrtc/
    app.include_router(app_calls_router(app_calls, settings.app_call_max_sdp_bytes))
    app.include_router(phone_router(settings, redis))  # the pages' softphone credentials: ivr/web/phone.py
    app.include_router(health_router(settings, redis, acd))  # /healthz, /readyz, /metrics: ivr/web/health.py

    # --- pages

    for page, file in PAGES.items():
        app.add_api_route(f"/{page}", _page_handler(static_dir / file), methods=["GET"], include_in_schema=False,
                          name=f"page_{page}")
    app.mount("/static", _Static(directory=static_dir, check_dir=False), name="static")
    return app


def _page_handler(path: Path) -> Any:
    def page() -> FileResponse:  # plain def: FastAPI runs it in a worker thread (it stats a file)
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"page not built yet: ivr/web/static/{path.name} is missing")
        return FileResponse(path, media_type="text/html; charset=utf-8")
    return page


class _Static(StaticFiles):
    """Static files; before the pages exist, a clear 404 instead of a server error."""

    async def check_config(self) -> None:
        try:
            await super().check_config()
        except RuntimeError:  # the directory does not exist (yet)
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no static files yet: ivr/web/static/ is missing") from None


def _flow_queues(settings: Settings) -> list[str]:
    """The flow's queues (always on the wall, waiting or not); none if the flow cannot be read."""
    from ivr.voice.flow import load_flow

    try:
        flow = load_flow(settings.dialplans_dir / "hotline.yaml")
    except Exception as exc:  # the wall then shows the queues it sees calls in
        log.debug("wall: flow not read (%s)", exc)
        return [settings.fallback_queue]
    queues = [getattr(node, "queue", None) for node in flow.nodes.values()]
    return list(dict.fromkeys([flow.fallback_queue, *(q for q in queues if q)]))


# --- errors: always JSON with a status and an id, never a traceback


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None, error_id: str | None = None,
           **extra: Any) -> JSONResponse:
    error_id = error_id or uuid.uuid4().hex[:12]
    return JSONResponse({"detail": detail, "status": status_code, "error_id": error_id, **extra},
                        status_code=status_code, headers=headers)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """("body", "ticket", "template") -> "ticket.template"; the request part alone when that is all there is."""
    parts = [str(p) for p in loc]
    return ".".join(parts[1:]) if len(parts) > 1 and parts[0] in ("body", "query", "path", "header") else \
        ".".join(parts) or "request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"not found: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, detail, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_of(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]
        first = errors[0] if errors else {"field": "request", "message": "invalid"}
        return _error(422, f"{first['field']}: {first['message']}", field=first["field"], errors=errors)

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        return _error(422, str(exc), field=exc.field, errors=[{"field": exc.field, "message": exc.message}])

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return _error(409, str(exc))


class _Guard:
    """Outermost (pure ASGI): unexpected errors become a JSON 500 with an id, logged with the traceback under
    that id; every response gets headers that keep the pages out of frames and the API out of caches."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if scope["path"].startswith("/api/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            metrics.error(metrics.ErrorKind.WEB)
            log.exception("web: internal error %s on %s %s", error_id, scope.get("method"), scope.get("path"))
            if started:
                raise  # part of the response is out: nothing sensible to add; the server closes the connection
            await _error(500, "internal error", error_id=error_id)(scope, receive, send_with_headers)


# --- serving inside the controller's loop


class _EmbeddedServer(uvicorn.Server):
    """uvicorn in someone else's event loop: the controller owns SIGTERM and SIGINT, so no signal handling here.

    uvicorn >= 0.29 installs handlers in ``capture_signals()`` (older ones in ``install_signal_handlers``).
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:
        return


_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")


class _RedactTokens(logging.Filter):
    """uvicorn logs WebSocket paths with their query (``/ws?token=...``): the token must not reach the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_URL.sub(r"\1<redacted>", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_URL.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def _listen_socket(host: str, port: int) -> socket.socket:
    """Bound here, not by uvicorn: a busy port is then an OSError to log, not uvicorn's sys.exit()."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def web_redis(settings: Settings) -> aioredis.Redis:
    """The web side's own Redis connections: a storm of pages reconnecting waits for a free connection
    (instead of failing its handshakes) and cannot take the connections call handling needs."""
    from ivr.records.store import reconnecting

    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=64, timeout=5, socket_timeout=2, socket_connect_timeout=1,
        decode_responses=True, retry=reconnecting()))


def serve_web(settings: Settings, redis: aioredis.Redis, acd: Acd | None = None, app: FastAPI | None = None,
              app_calls: AppCallGateway | None = None) -> asyncio.Task[None]:
    """Serve the web app on ``settings.http_host:http_port`` in the running loop; cancel the task to stop.

    Cancelling shuts down gracefully (open sockets closed, the app's shutdown run, at most a few
    seconds). If the port cannot be bound, the error is logged and the task ends: the controller
    carries on with calls, without pages.
    """
    app = app or create_app(settings, redis, acd, app_calls=app_calls)
    for name in ("uvicorn.error", "uvicorn.access"):
        if not any(isinstance(f, _RedactTokens) for f in logging.getLogger(name).filters):
            logging.getLogger(name).addFilter(_RedactTokens())
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, lifespan="on",
                            log_config=None,  # the controller's logging, untouched
                            access_log=False, server_header=False, proxy_headers=False,
                            ws_max_size=64 * 1024, timeout_graceful_shutdown=3)
    server = _EmbeddedServer(config)

    async def run() -> None:
        try:
            sock = _listen_socket(settings.http_host, settings.http_port)
        except OSError as exc:
            log.error("web pages NOT served: cannot listen on %s:%d (%s); calls are not affected",
                      settings.http_host, settings.http_port, exc)
            return
        log.info("web pages on http://%s:%d/agent, /field, /supervisor", settings.http_host, settings.http_port)
        try:
            await server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits the process when the app's start-up fails; here only the pages stop
            log.error("web pages NOT served: the web app did not start (see above); calls are not affected")
        except asyncio.CancelledError:
            server.should_exit = True
            if server.started:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.shutdown(sockets=[sock]), 5)
            raise
        finally:
            sock.close()

    return asyncio.create_task(run(), name="web")
