"""The trainer's API (``/api/trainer/...``; trainers and admins): clusters of failed turns, paged; labels for a
whole cluster or one turn; turn audio. Thin handlers over ``ivr.voice.training.service`` (run in a thread:
SQLite); what the page does with them is ivr/web/static/trainer.js.

Errors: a label that is not an intent of the turn's own flow (archive rows carry ``flow_id``) is 422 naming
``label``, the intent and the flow; a cluster someone labeled since the
trainer loaded it is 409 (reload and label again); an unknown cluster, turn or a turn without audio is 404.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ivr.config import Settings
from ivr.records.archive import Archive, ClusterChanged, NoSuchCluster, NoSuchTurn
from ivr.routing.policy_settings import service_level_targets
from ivr.voice.flow import Flow, load_flow, parse_flow
from ivr.voice.training.service import (
    MAX_PAGE,
    InvalidLabel,
    NoAudio,
    TrainerService,
    cluster_view,
    parse_since,
    turn_view,
)
from ivr.voice.versions import FlowStore
from ivr.web.auth import User, UserRole, require
from ivr.web.desk import Conflict, InvalidInput, NotFound

T = TypeVar("T")

#: The flow trainers label (the controller's hotline).
FLOW_ID = "hotline"
#: The live flow's intents are re-read this often (a publish adds intents).
INTENTS_TTL_S = 10.0

Trainer = Annotated[User, Depends(require(UserRole.TRAINER, UserRole.ADMIN))]
Since = Annotated[str, Query(max_length=20, description="a span back from now (7d, 12h) or a date (YYYY-MM-DD)")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
ClusterId = Annotated[int, PathParam(ge=1)]
CallId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
TurnIndex = Annotated[int, PathParam(ge=1, le=1000)]
DIALECT = r"^[a-z][a-z0-9_-]{0,31}$"
FLOW_ID_PATTERN = r"[a-z][a-z0-9_-]{0,63}"
FlowQuery = Annotated[str, Query(pattern=f"^{FLOW_ID_PATTERN}$", description="the flow whose labels (default hotline)")]


class ClusterLabel(BaseModel):
    """POST /api/trainer/clusters/{id}/label."""

    label: str | None = Field(max_length=64, description="an intent of the flow; null clears the labels")
    revision: int = Field(ge=0, description="the cluster's revision the trainer decided on (409 if it changed)")
    dialect: str | None = Field(default=None, pattern=DIALECT, description="the callers' dialect, if one")


class TurnLabel(BaseModel):
    """POST /api/trainer/turns/{call_id}/{index}/label."""

    label: str | None = Field(max_length=64)
    dialect: str | None = Field(default=None, pattern=DIALECT)


def since_of(text: str) -> float:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise InvalidInput("since", str(exc).removeprefix("since: ")) from None


async def call_service(work: Callable[[], T]) -> T:
    """The service's blocking work in a thread, its errors as the web app's (422, 409, 404)."""
    try:
        return await asyncio.to_thread(work)
    except InvalidLabel as exc:
        raise InvalidInput(exc.field, exc.message) from None
    except ClusterChanged as exc:
        raise Conflict(str(exc)) from None
    except (NoSuchCluster, NoSuchTurn, NoAudio) as exc:
        raise NotFound(str(exc)) from None


class FlowIntents:
    """Each flow's live intents and dialects (Redis; the flow file when Redis has none), cached a few seconds.

    A label is checked against the flow of the turn it is for (archive rows carry ``flow_id``), not the hotline's."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings, self.redis = settings, redis
        self._flows: dict[str, tuple[float, Flow]] = {}

    async def flow(self, flow_id: str = FLOW_ID) -> Flow:
        """The live version of ``flow_id`` (its file when nothing is published); InvalidLabel naming ``flow``
        when there is neither."""
        cached = self._flows.get(flow_id)
        if cached and time.monotonic() - cached[0] < INTENTS_TTL_S:
            return cached[1]
        flow: Flow | None = None
        try:
            live = await FlowStore(self.redis, settings=self.settings).live(flow_id)
            flow = parse_flow(live.text, f"{flow_id} v{live.number}") if live else None
        except Exception:  # Redis down or a version that does not parse: the file is what runs then
            flow = None
        if flow is None:
            path = self.settings.dialplans_dir / f"{flow_id}.yaml"
            if not re.fullmatch(FLOW_ID_PATTERN, flow_id) or not path.is_file():
                raise InvalidLabel("flow", f"flow {flow_id!r} has no live version and no file {path.name}: "
                                           "its turns cannot be labeled")
            flow = await asyncio.to_thread(load_flow, path)
        self._flows[flow_id] = (time.monotonic(), flow)
        return flow

    async def intents(self, flow_id: str = FLOW_ID) -> frozenset[str]:
        return frozenset((await self.flow(flow_id)).intents)


def trainer_router(settings: Settings, redis: aioredis.Redis, service: TrainerService) -> APIRouter:
    router = APIRouter(prefix="/api/trainer", tags=["trainer"])
    flows = FlowIntents(settings, redis)

    async def flow_of(flow_id: str) -> Flow:
        try:
            return await flows.flow(flow_id)
        except InvalidLabel as exc:
            raise InvalidInput(exc.field, exc.message) from None

    @router.get("/intents")
    async def intents(_: Trainer, flow: FlowQuery = FLOW_ID) -> dict[str, Any]:
        """The labels a trainer may choose: the live flow's intents, with their keys, and the dialects it knows."""
        live = await flow_of(flow)
        dialects = sorted({v.dialect for i in live.intents.values() for v in i.variants if v.dialect})
        return {"flow_id": flow, "agent_intent": live.agent_intent, "dialects": dialects,
                "intents": [{"id": name, "dtmf": intent.dtmf} for name, intent in live.intents.items()]}

    @router.get("/clusters")
    async def clusters(_: Trainer, since: Since = "7d", offset: Offset = 0, limit: Limit = 50,
                       unlabeled: bool = False) -> dict[str, Any]:
        start = since_of(since)
        page = await call_service(lambda: service.clusters(start, offset, limit, unlabeled, FLOW_ID))
        return {"total": page.total, "offset": page.offset, "items": [cluster_view(c) for c in page.items]}

    @router.get("/clusters/{cluster_id}")
    async def cluster(cluster_id: ClusterId, _: Trainer, since: Since = "7d") -> dict[str, Any]:
        start = since_of(since)
        return cluster_view(await call_service(lambda: service.cluster(cluster_id, start)))

    @router.get("/clusters/{cluster_id}/turns")
    async def cluster_turns(cluster_id: ClusterId, _: Trainer, since: Since = "7d", offset: Offset = 0,
                            limit: Limit = 50) -> dict[str, Any]:
        start = since_of(since)
        page = await call_service(lambda: service.cluster_turns(cluster_id, start, offset, limit))
        return {"total": page.total, "offset": page.offset, "items": [turn_view(t) for t in page.items]}

    @router.post("/clusters/{cluster_id}/label")
    async def label_cluster(cluster_id: ClusterId, body: ClusterLabel, user: Trainer) -> dict[str, Any]:
        """Label every turn of the cluster; the label must be an intent of the cluster's own flow."""
        flow_id = (await call_service(lambda: service.cluster(cluster_id, 0.0))).flow_id
        known = (await flow_of(flow_id)).intents
        labeled = await call_service(lambda: service.label_cluster(cluster_id, body.label, body.revision, known,
                                                                   body.dialect, user.username, flow_id))
        summary = await call_service(lambda: service.cluster(cluster_id, 0.0))
        return {"labeled": labeled, "cluster": cluster_view(summary)}

    @router.post("/turns/{call_id}/{index}/label")
    async def label_turn(call_id: CallId, index: TurnIndex, body: TurnLabel, user: Trainer) -> dict[str, Any]:
        """Label one turn; the label must be an intent of the turn's own flow."""
        flow_id = (await call_service(lambda: service.archive.turn(call_id, index))).flow_id
        known = (await flow_of(flow_id)).intents
        turn = await call_service(lambda: service.label_turn(call_id, index, body.label, known, body.dialect,
                                                             user.username, flow_id))
        return turn_view(turn)

    @router.get("/turns/{call_id}/{index}/audio", response_class=FileResponse)
    async def audio(call_id: CallId, index: TurnIndex, _: Trainer) -> FileResponse:
        path = await call_service(lambda: service.audio_file(call_id, index))
        if path.suffix != ".wav":
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"turn {index} of call {call_id}: not a recording")
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "private, max-age=300"})

    return router


def trainer_service(settings: Settings) -> TrainerService:
    return TrainerService(Archive(settings.archive_file), settings.recordings_dir, service_level_targets(settings))
