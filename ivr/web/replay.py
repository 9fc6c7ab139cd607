"""Replays and suggestions for the trainer's and the admin's pages (trainers and admins): thin handlers over
``ivr.voice.training.loop``.

- ``POST /api/trainer/flows/{flow}/replays`` ``{text?, since?}``: start replaying a candidate (the live version
  without ``text``) in the background; 202 with the job, 409 while one of that flow runs, 422 for a text that is
  no flow of that id.
- ``GET /api/trainer/flows/{flow}/replays/current``: the running or last job (``done``/``total`` for the progress,
  ``result`` once done); 404 before any.
- ``POST /api/trainer/flows/{flow}/replays/lookup`` ``{text}``: the kept replay of exactly that text (the publish
  panel shows it), ``{"result": null}`` when none was run.
- ``POST /api/trainer/clusters/{id}/suggestion`` ``{label?, dialect?, phrase?, since?}``: the change to the live
  flow for a labeled cluster, with its diff; 422 naming the field when there is none to make.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ivr.config import Settings
from ivr.records.archive import Archive, NoSuchCluster
from ivr.voice.flow import FlowError
from ivr.voice.training.gate import result_for
from ivr.voice.training.loop import ReplayJobs, ReplayRunning, cluster_suggestion
from ivr.voice.training.replay import parse_since
from ivr.voice.training.suggest import SuggestionError
from ivr.voice.validation import MAX_FLOW_BYTES
from ivr.voice.versions import FlowStore
from ivr.web.auth import User, UserRole, require
from ivr.web.desk import Conflict, InvalidInput, NotFound

Trainer = Annotated[User, Depends(require(UserRole.TRAINER, UserRole.ADMIN))]
FlowId = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
ClusterId = Annotated[int, PathParam(ge=1)]
#: One suggestion at a time per process: hearing recordings without a grammar takes the cores for seconds.
SUGGESTING = 1


class ReplayRequest(BaseModel):
    text: str | None = Field(default=None, max_length=MAX_FLOW_BYTES, description="the candidate (default: live)")
    since: str = Field(default="30d", max_length=20, description="the turns of this last period: 30d, 12h")


class LookupRequest(BaseModel):
    text: str = Field(max_length=MAX_FLOW_BYTES)


class SuggestionRequest(BaseModel):
    label: str | None = Field(default=None, max_length=64, description="the intent (default: the cluster's label)")
    dialect: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    phrase: str | None = Field(default=None, max_length=200, description="the trainer's own phrase")
    since: str = Field(default="30d", max_length=20)
    flow_id: str = Field(default="hotline", pattern=r"^[a-z][a-z0-9_-]{0,63}$")


def _since(text: str) -> float:
    import time

    try:
        return time.time() - parse_since(text)
    except ValueError as exc:
        raise InvalidInput("since", str(exc)) from None


def replay_router(settings: Settings, redis: aioredis.Redis) -> APIRouter:
    router = APIRouter(prefix="/api/trainer", tags=["trainer"])
    suggesting = asyncio.Semaphore(SUGGESTING)

    def jobs_of(request: Request) -> ReplayJobs:
        jobs: ReplayJobs | None = getattr(request.app.state, "replays", None)
        if jobs is None:
            jobs = request.app.state.replays = ReplayJobs(settings.archive_file, settings.recordings_dir, redis)
        return jobs

    async def live_text(flow_id: str) -> str:
        live = await FlowStore(redis, settings=settings).live(flow_id)
        if live is not None:
            return live.text
        path = settings.dialplans_dir / f"{flow_id}.yaml"
        if not path.is_file():
            raise NotFound(f"no flow {flow_id!r}: nothing published and no {path.name}")
        return await asyncio.to_thread(path.read_text, encoding="utf-8")

    @router.post("/flows/{flow_id}/replays", status_code=202)
    async def start_replay(flow_id: FlowId, body: ReplayRequest, request: Request, user: Trainer) -> dict[str, Any]:
        """Replay a candidate version against the recorded turns (in the background; poll ``current``)."""
        since = _since(body.since)
        text = body.text if body.text is not None else await live_text(flow_id)
        try:
            job = jobs_of(request).start(flow_id, text, since, user.username)
        except FlowError as exc:
            raise InvalidInput("text", str(exc)) from None
        except ReplayRunning as exc:
            raise Conflict(str(exc)) from None
        return job.view()

    @router.get("/flows/{flow_id}/replays/current")
    async def current_replay(flow_id: FlowId, request: Request, _: Trainer) -> dict[str, Any]:
        job = jobs_of(request).current(flow_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no replay of {flow_id!r} was run here yet")
        return job.view()

    @router.post("/flows/{flow_id}/replays/lookup")
    async def lookup_replay(flow_id: FlowId, body: LookupRequest, _: Trainer) -> dict[str, Any]:
        """The replay kept for exactly this text, as publishing it would find it."""
        result = await result_for(redis, flow_id, body.text)
        return {"result": result.to_dict() if result else None}

    @router.post("/clusters/{cluster_id}/suggestion")
    async def suggestion(cluster_id: ClusterId, body: SuggestionRequest, _: Trainer) -> dict[str, Any]:
        """The change to the live flow that serves a labeled cluster: a phrase, a dialect variant or an example,
        as the candidate text and its diff. Nothing is published."""
        since = _since(body.since)
        text = await live_text(body.flow_id)

        def work() -> dict[str, Any]:
            archive = Archive(settings.archive_file)
            try:
                return cluster_suggestion(archive, settings.recordings_dir, text, cluster_id, since,
                                          label=body.label, dialect=body.dialect, phrase=body.phrase).to_dict()
            finally:
                archive.close()

        async with suggesting:
            try:
                return await asyncio.to_thread(work)
            except SuggestionError as exc:
                raise InvalidInput(exc.field, exc.message) from None
            except NoSuchCluster as exc:
                raise NotFound(str(exc)) from None

    return router

