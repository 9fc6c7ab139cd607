"""The flow editor's API (``/api/admin/...``, the admin role only): thin handlers over the flows services.

What the handlers do is in ``ivr.voice.validation`` (checks), ``ivr.voice.versions`` (versions, publish, rollback, the
audit log) and ``ivr.voice.simulation`` (simulated calls without Asterisk); see docs/flows_api.md.
Here: who may call (admins), request limits, and the shape of the answers the page (ivr/web/static/admin.js) reads:

- ``POST validate`` answers ``{"ok", "problems": [{severity, message, line, path}], "graph"}``; ``graph`` is
  the flow's diagram, ``{"nodes": [{id, type, label, ...}], "edges": [{from, to, label}]}``, built from the
  validated flow, or best-effort from the YAML when the flow has errors (a route to a missing node is drawn
  to a ``missing`` node, so the diagram shows where it breaks).
- Request bodies are bounded before they are parsed: a flow text over ``MAX_FLOW_BYTES`` (1 MB) is 413
  with a message that says so (a body over the limit plus room for the other fields is refused while it is
  read, a larger Content-Length at once).
- Validation is CPU work on text of up to 1 MB: it runs in a worker thread, at most two at a time, so the
  controller's event loop (which carries calls' audio) never waits for it.

Errors have the web app's shape ``{"detail", "status", "error_id"}``; 422 for an invalid flow adds
``"problems"`` (and ``field``/``errors`` like every 422), 409 for a stale base adds ``"live"``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

import redis.asyncio as aioredis
import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from ivr.config import Settings
from ivr.voice.flow import node_exits
from ivr.voice.training.gate import GateRefused
from ivr.voice.validation import MAX_FLOW_BYTES, Context, InvalidFlow, Problem, Report, load_context
from ivr.voice.versions import BaseChanged, FlowStore, UnknownVersion, Version
from ivr.web.auth import User, UserRole, require

log = logging.getLogger(__name__)

#: A request body may carry a whole flow plus the other fields (comment, inputs, caller).
MAX_BODY_BYTES = MAX_FLOW_BYTES + 64 * 1024
#: Simulated calls: how many answers, how long each, and how long a simulation may run.
MAX_INPUTS = 30
MAX_INPUT_CHARS = 300
SIMULATE_TIMEOUT_S = 15.0
#: What validation may assume exists outside the flow (queues, skills, agents, vocabulary) is re-read this often.
CONTEXT_TTL_S = 10.0

FlowId = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="the flow's id, e.g. hotline")]

_admin_only = require(UserRole.ADMIN)
Admin = Annotated[User, Depends(_admin_only)]


# --- requests


class FlowText(BaseModel):
    text: str = Field(description="the flow's YAML as edited")


class SimulateRequest(FlowText):
    caller: str = Field(default="", max_length=20, pattern=r"^[0-9+*#-]*$", description="the caller's number")
    inputs: list[str] = Field(default_factory=list, max_length=MAX_INPUTS,
                              description='answers in order: an utterance, or "key:3" / digits for keys')


class PublishRequest(FlowText):
    comment: str = Field(min_length=1, max_length=500, description="what changed and why (kept in the history)")
    base: int | None = Field(default=None, ge=0, description="the live version the edit started from")
    override: str | None = Field(default=None, max_length=500,
                                 description="why to publish although the replay breaks more turns than it fixes")


class RollbackRequest(BaseModel):
    version: int = Field(ge=1, description="the version whose text becomes live again (as a new version)")
    comment: str = Field(default="", max_length=500)


# --- bounded bodies


def _too_large(size: int, exact: bool = True, what: str = "flow") -> HTTPException:
    size_text = f"{size:,} bytes" if exact else f"more than {size:,} bytes"
    return HTTPException(
        413,  # Content Too Large
        f"the {what} is too large ({size_text}): a flow may be at most {MAX_FLOW_BYTES:,} bytes (1 MB); "
        "split it into several flows or remove what is not used")


class _BoundedBody(APIRoute):
    """Reads a request body only up to MAX_BODY_BYTES, before FastAPI parses it; beyond that, 413."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH"):
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                    raise _too_large(int(declared), what="request")
                body = bytearray()
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise _too_large(MAX_BODY_BYTES, exact=False, what="request")
                request._body = bytes(body)  # what FastAPI's body parsing then reads
            return await handler(request)

        return bounded


def _check_text_size(text: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FLOW_BYTES:
        raise _too_large(size)


# --- answers


def _error(status_code: int, detail: str, **extra: Any) -> JSONResponse:
    """The web app's error shape (ivr/web/app.py), with extra keys."""
    return JSONResponse({"detail": detail, "status": status_code, "error_id": uuid.uuid4().hex[:12], **extra},
                        status_code=status_code)


def problem_dict(problem: Problem) -> dict[str, Any]:
    return {"severity": problem.severity, "message": problem.message, "line": problem.line, "path": problem.path}


def _invalid(problems: list[Problem]) -> JSONResponse:
    errors = [p for p in problems if p.severity == "error"]
    first = errors[0] if errors else None
    where = f"line {first.line}: " if first and first.line else ""
    count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    detail = f"the flow has {count}" + (f"; first: {where}{first.message}" if first else "")
    return _error(422, detail, field="text", problems=[problem_dict(p) for p in problems],
                  errors=[{"field": f"text.{p.path}" if p.path else "text", "message": p.message} for p in errors])


def version_dict(version: Version, live: int | None = None, text: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"flow_id": version.flow_id, "number": version.number, "author": version.author,
                           "at": version.at, "comment": version.comment, "sha256": version.sha256}
    if live is not None:
        out["live"] = version.number == live
    if version.replay is not None:
        out["replay"] = version.replay
    if text:
        out["text"] = version.text
    return out


# --- the diagram


def _first_text(value: Any) -> str:
    """The first language's text of a {lang: text} mapping (or the value itself), on one line."""
    if isinstance(value, Mapping):
        value = next((v for v in value.values() if isinstance(v, str)), "")
    return " ".join(str(value or "").split())


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _node_label(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    if kind == "route":
        skills = node.get("skills") or []
        return f"queue {node.get('queue', '?')}" + (f" · {', '.join(map(str, skills))}" if skills else "")
    if kind == "transfer":
        return f"extension {node.get('target', '?')}"
    if kind == "callback_offer":
        return f"callback · queue {node.get('queue', '?')}"
    if kind == "self_service":
        return f"look up: {node.get('action', '?')}"
    if kind == "hangup":
        return "end the call"
    if kind == "secure_digits":
        return f"secure keys: {node.get('what', '?')} (recording paused)"
    return _short(_first_text(node.get("prompt")))


def flow_graph(data: Mapping[str, Any], problems: list[Problem] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """Nodes and edges of a flow (a validated Flow's dump, or the YAML as parsed), for the diagram.

    Edges are the nodes' exits as ``ivr.voice.flow.node_exits`` reads them from the text, labelled with what
    takes the call along them: an ask node's intents (with their keys) — several intents to one node make one
    edge — or ``next`` / ``unavailable`` / ``declined``. A target that is not a node
    becomes a node of type ``missing``; nodes with errors are flagged ``error``.
    """
    raw_nodes = data.get("nodes")
    nodes_in = raw_nodes if isinstance(raw_nodes, Mapping) else {}
    intents = data.get("intents") if isinstance(data.get("intents"), Mapping) else {}
    start = data.get("start")
    erroneous = {p.path.split(".")[1] for p in problems
                 if p.severity == "error" and p.path.startswith("nodes.") and p.path.count(".") >= 1}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    missing: dict[str, dict[str, Any]] = {}

    def edge(source: str, target: Any, label: str) -> None:
        if not isinstance(target, str) or not target:
            return
        if target not in nodes_in and target not in missing:
            missing[target] = {"id": target, "type": "missing", "label": "not defined", "error": True}
        for existing in edges:
            if existing["from"] == source and existing["to"] == target:
                existing["label"] = f"{existing['label']}, {label}" if label else existing["label"]
                return
        edges.append({"from": source, "to": target, "label": label})

    for node_id, node in nodes_in.items():
        node_id = str(node_id)
        if not isinstance(node, Mapping):
            nodes.append({"id": node_id, "type": "invalid", "label": "not a mapping", "error": True})
            continue
        entry: dict[str, Any] = {"id": node_id, "type": str(node.get("type", "?")), "label": _node_label(node)}
        if node_id == start:
            entry["start"] = True
        if node_id in erroneous:
            entry["error"] = True
        nodes.append(entry)
        for way in node_exits(node):
            intent = intents.get(way.intent) if way.intent is not None and isinstance(intents, Mapping) else None
            key = intent.get("dtmf") if isinstance(intent, Mapping) else None
            edge(node_id, way.target, f"{way.label} · {key}" if key else way.label)
    return {"start": start if isinstance(start, str) else None, "nodes": [*nodes, *missing.values()],
            "edges": edges}


# --- validation (in a worker thread)


def _line_of_key(text: str, key: str) -> int | None:
    match = re.search(rf"^{re.escape(key)}\s*:", text, flags=re.M)
    return text.count("\n", 0, match.start()) + 1 if match else None


def with_graph(text: str, report: Report) -> tuple[Report, dict[str, Any] | None]:
    """The report (problems without a line located where the text allows) and the flow's diagram (None when
    the YAML does not even parse into a mapping)."""
    problems = [Problem(p.severity, p.message, p.file, _line_of_key(text, p.path), p.path)
                if p.line is None and p.path in ("id", "start", "languages") else p for p in report.problems]
    report = Report(flow=report.flow, problems=problems)
    if report.flow is not None:
        return report, flow_graph(report.flow.model_dump(mode="json"), problems)
    try:
        data = yaml.safe_load(text)  # the flow has errors: draw what the YAML says, broken edges included
    except yaml.YAMLError:
        return report, None
    if not isinstance(data, Mapping):
        return report, None
    return report, {**flow_graph(data, problems), "partial": True}


class _ContextCache:
    """The validation context, re-read at most every CONTEXT_TTL_S (validation runs as the admin types)."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings, self.redis = settings, redis
        self._value: Context | None = None
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Context | None:
        async with self._lock:
            if self._at is None or time.monotonic() - self._at > CONTEXT_TTL_S:
                try:
                    self._value = await load_context(self.settings, self.redis)
                except Exception as exc:  # checks of what exists outside the flow are then skipped
                    log.warning("admin: validation context not loaded (%s); outside references not checked", exc)
                    self._value = None
                self._at = time.monotonic()
            return self._value


# --- the router


def admin_router(settings: Settings, redis: aioredis.Redis) -> APIRouter:
    """The admin API over ``redis``; create_app (ivr/web/app.py) includes it.

    The flow store is ``app.state.flows`` when the app has one (tests give theirs), else this router's:
    prompts pre-rendered into the settings' prompt cache, validation against this installation's context.
    """
    contexts = _ContextCache(settings, redis)
    own_store = FlowStore(redis, settings=settings, context=contexts.get)
    validating = asyncio.Semaphore(2)
    router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(_admin_only)],
                       route_class=_BoundedBody)

    def store_of(request: Request) -> FlowStore:
        return getattr(request.app.state, "flows", None) or own_store

    # (a default, not an Annotated alias: the alias would live in this function, out of FastAPI's sight)
    store = Depends(store_of)

    async def validated(flows: FlowStore, flow_id: str, text: str) -> tuple[Report, dict[str, Any] | None]:
        _check_text_size(text)
        async with validating:
            report = await flows.validate(flow_id, text)  # the same checks as publishing (id included)
            return await asyncio.to_thread(with_graph, text, report)

    async def live_or_404(flows: FlowStore, flow_id: str) -> Version:
        version = await flows.live(flow_id)
        if version is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no flow {flow_id!r}: publish a first version")
        return version

    async def version_or_404(flows: FlowStore, flow_id: str, number: int) -> Version:
        version = await flows.version(flow_id, number)
        if version is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"flow {flow_id!r} has no version {number}")
        return version

    @router.get("/flows")
    async def list_flows(_: Admin, flows: FlowStore = store) -> list[dict[str, Any]]:
        """Every flow with a version; a dialplans/<id>.yaml never published becomes its version 1 here."""
        known = {item["id"] for item in await flows.flows()}
        files = await asyncio.to_thread(lambda: sorted(settings.dialplans_dir.glob("*.yaml")))
        for path in files:
            if path.stem not in known and not path.name.endswith(".cases.yaml"):
                try:
                    await flows.seed(path.stem, path)
                except Exception as exc:  # an invalid file stays out of the list; `ivr dialplan validate` says why
                    log.info("admin: %s not seeded (%s)", path.name, exc)
        return await flows.flows()

    @router.get("/flows/{flow_id}")
    async def get_flow(flow_id: FlowId, _: Admin, flows: FlowStore = store) -> dict[str, Any]:
        """The live version, with its text."""
        version = await live_or_404(flows, flow_id)
        return {"id": flow_id, "version": version.number, **version_dict(version, text=True)}

    @router.post("/flows/{flow_id}/validate")
    async def validate(flow_id: FlowId, body: FlowText, _: Admin, flows: FlowStore = store) -> dict[str, Any]:
        """Every problem of the text (as publishing would find them) and the flow's diagram."""
        report, graph = await validated(flows, flow_id, body.text)
        return {"ok": report.ok, "problems": [problem_dict(p) for p in report.problems], "graph": graph}

    @router.post("/flows/{flow_id}/simulate", response_model=None)
    async def simulate_call(flow_id: FlowId, body: SimulateRequest, _: Admin,
                            flows: FlowStore = store) -> dict[str, Any] | JSONResponse:
        """A call through the edited text (not published), with the caller's answers given."""
        report, _graph = await validated(flows, flow_id, body.text)
        if not report.ok or report.flow is None:
            return _invalid(report.problems)
        for index, item in enumerate(body.inputs):
            if len(item) > MAX_INPUT_CHARS:
                raise HTTPException(422, f"inputs.{index}: at most {MAX_INPUT_CHARS} characters")
        from ivr.routing.customers import CustomerStore
        from ivr.voice.simulation import simulate  # the Navigator and its speech stack: loaded when first needed

        try:
            result = await asyncio.wait_for(
                simulate(report.flow, list(body.inputs), caller=body.caller,
                         customers=CustomerStore(redis, timeout_s=1.0)), SIMULATE_TIMEOUT_S)
        except TimeoutError:
            raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT,
                                f"the simulation did not finish within {SIMULATE_TIMEOUT_S:g} s") from None
        except ValueError as exc:  # an input the simulator cannot use
            raise HTTPException(422, f"inputs: {exc}") from None
        return {"steps": [dataclasses.asdict(step) for step in result.steps], "decision": result.decision,
                "record": result.record, "warnings": [problem_dict(p) for p in report.warnings]}

    @router.post("/flows/{flow_id}/publish", status_code=201, response_model=None)
    async def publish(flow_id: FlowId, body: PublishRequest, user: Admin,
                      flows: FlowStore = store) -> dict[str, Any] | JSONResponse:
        """A new live version (201); 409 when another went live since ``base``; 422 with the problems."""
        _check_text_size(body.text)
        try:
            version = await flows.publish(flow_id, body.text, user.username, body.comment.strip(), body.base,
                                          override=body.override)
        except GateRefused as exc:  # the replay's evidence is against it and nobody said why to go on
            return _error(422, str(exc), field="override", replay=exc.result.to_dict(),
                          errors=[{"field": "override", "message": "the replay breaks more turns than it fixes: "
                                                                   "an override comment is required"}])
        except BaseChanged as exc:
            live = await flows.version(flow_id, exc.live) if exc.live else None
            by = f" by {live.author}" if live else ""
            return _error(409, f"the live flow changed since you opened it (version {exc.live}{by}): "
                               "reload and merge", live=exc.live, base=exc.base)
        except InvalidFlow as exc:
            report, _graph = await asyncio.to_thread(with_graph, body.text, exc.report)
            return _invalid(report.problems)
        return version_dict(version, live=version.number)

    @router.get("/flows/{flow_id}/versions")
    async def versions(flow_id: FlowId, _: Admin, flows: FlowStore = store) -> list[dict[str, Any]]:
        """Every version, newest first (without the texts)."""
        live = await live_or_404(flows, flow_id)
        return [version_dict(v, live=live.number) for v in await flows.history(flow_id)]

    @router.get("/flows/{flow_id}/versions/{number}")
    async def get_version(flow_id: FlowId, number: Annotated[int, PathParam(ge=1)], _: Admin,
                          flows: FlowStore = store) -> dict[str, Any]:
        live = await live_or_404(flows, flow_id)
        return version_dict(await version_or_404(flows, flow_id, number), live=live.number, text=True)

    @router.get("/flows/{flow_id}/diff")
    async def diff(flow_id: FlowId, a: Annotated[int, Query(ge=1)], b: Annotated[int, Query(ge=1)],
                   _: Admin, flows: FlowStore = store) -> dict[str, Any]:
        """A unified diff from version ``a`` to version ``b``."""
        try:
            return {"flow_id": flow_id, "a": a, "b": b, "diff": await flows.diff(flow_id, a, b)}
        except UnknownVersion as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None

    @router.post("/flows/{flow_id}/rollback", status_code=201, response_model=None)
    async def rollback(flow_id: FlowId, body: RollbackRequest, user: Admin,
                       flows: FlowStore = store) -> dict[str, Any] | JSONResponse:
        """The text of an earlier version live again, as a new version (validated again)."""
        try:
            version = await flows.rollback(flow_id, body.version, user.username, body.comment.strip())
        except UnknownVersion as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except InvalidFlow as exc:
            return _invalid(list(exc.report.problems))
        return version_dict(version, live=version.number)

    @router.get("/audit")
    async def audit(_: Admin, count: Annotated[int, Query(ge=1, le=1000)] = 100,
                    flows: FlowStore = store) -> list[dict[str, Any]]:
        """Publishes, rollbacks, imports and role changes, newest first."""
        return await flows.audit.entries(count)

    return router
