"""The quality checks' API for /qa (``/api/qa/quality/...``; role ``qa``, supervisors and admins): progress of the
queue, the review list of flagged calls, one call's result, and the checklist with a validation endpoint that
answers like the flow editor's (problems with line, path and message; nothing is saved). Thin handlers over
``ivr.recordings.quality.service`` (in a thread: SQLite and files)."""

# No ``from __future__ import annotations``: FastAPI reads the ``QA`` dependency made inside the router function.
import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ivr.config import Settings
from ivr.recordings.quality.checklist import MAX_CHECKLIST_BYTES, validate_checklist
from ivr.recordings.quality.service import QualityService
from ivr.web.auth import User, session_user
from ivr.web.desk import NotFound
from ivr.web.qa import QA_ROLES, qa_library

CallId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class ChecklistText(BaseModel):
    """POST /api/qa/quality/checklist/validate."""

    text: str = Field(max_length=MAX_CHECKLIST_BYTES, description="the checklist's YAML")


async def qa_only(user: Annotated[User, Depends(session_user)]) -> User:
    if user.role not in QA_ROLES:
        wanted = " or ".join(sorted(r.value for r in QA_ROLES))
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"quality checks need the {wanted} role; you are "
                            f"{user.role.value}")
    return user


def quality_router(settings: Settings, service: QualityService | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/qa/quality", tags=["qa"])
    quality = service or QualityService.from_settings(settings, qa_library(settings))
    QA = Annotated[User, Depends(qa_only)]

    @router.get("")
    async def progress(_: QA) -> dict[str, Any]:
        """Queued, running, done, flagged, skipped, failed; the checklist's state (checks pause on a broken one)."""
        data = await asyncio.to_thread(quality.progress)
        return {**data, "workers": settings.qa_workers}

    @router.get("/review")
    async def review(_: QA, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        """Flagged calls, the most recently checked first, with the moments to hear."""
        total, items = await asyncio.to_thread(quality.jobs.review, limit, offset)
        return {"total": total, "offset": offset, "items": [
            {"call_id": i.call_id, "started_at": i.call_started_at, "queue": i.queue, "agent": i.agent,
             "score": i.score, "findings": i.findings, "checked_at": i.finished_at} for i in items]}

    @router.get("/calls/{call_id}")
    async def call_result(call_id: CallId, _: QA) -> dict[str, Any]:
        state = await asyncio.to_thread(quality.jobs.state, call_id)
        if state is None:
            raise NotFound(f"call {call_id} is not in the quality checks' queue")
        return state

    @router.get("/checklist")
    async def checklist(_: QA) -> dict[str, Any]:
        path = quality.checklist.path
        text = await asyncio.to_thread(lambda: path.read_text(encoding="utf-8") if path.exists() else "")
        report = validate_checklist(text, path.name, quality.checklist.queues)
        return {"file": str(path), "text": text, "ok": report.ok, "problems": [p.to_dict() for p in report.problems]}

    @router.post("/checklist/validate")
    async def validate(body: ChecklistText, _: QA) -> dict[str, Any]:
        """Problems of a checklist text (the editor's check): nothing is saved."""
        report = await asyncio.to_thread(validate_checklist, body.text, "<editor>", quality.checklist.queues)
        return {"ok": report.ok, "problems": [p.to_dict() for p in report.problems]}

    return router
