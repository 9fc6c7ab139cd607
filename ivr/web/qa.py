"""The QA API (``/api/qa/...``; role ``qa``, supervisors and admins): search call recordings, a call's timeline, play
or download it (HTTP Range for seeking), legal hold; the access log for admins. Thin handlers over
``ivr.recordings.library`` (run in a thread: SQLite and files).

Every play and download is audited (who, which call, when: the recordings' access log and the admin audit log),
and so is every refusal: a user without the role (403), a recording missing, damaged or purged (404, 409, 410;
the message names the call and what is wrong).
"""

# No ``from __future__ import annotations``: the handlers' ``QA`` dependency is made inside ``qa_router`` (it closes
# over the library), and FastAPI must see it as an object, not as a name to look up in the module.
import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ivr.config import Settings
from ivr.recordings.index import RecordingIndex, RecordingRow, Search
from ivr.recordings.library import NoRecording, RecordingError, RecordingLibrary
from ivr.recordings.manifest import Manifest
from ivr.voice.versions import AuditLog
from ivr.web.auth import User, UserRole, session_user
from ivr.web.desk import InvalidInput, NotFound
from ivr.web.trainer import since_of

log = logging.getLogger(__name__)
T = TypeVar("T")

QA_ROLES = frozenset({UserRole.QA, UserRole.SUPERVISOR, UserRole.ADMIN})
CallId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Text = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.@+-]*$")]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class HoldRequest(BaseModel):
    """POST /api/qa/recordings/{call_id}/hold and /release."""

    reason: str = Field(min_length=1, max_length=300, description="why: a case number, a complaint, a request")


class FlagsRequest(BaseModel):
    """PUT /api/qa/recordings/{call_id}/flags: the moments to hear, replacing the call's flags."""

    flags: list[dict[str, Any]] = Field(max_length=200)


def summary(row: RecordingRow) -> dict[str, Any]:
    """What a search result shows."""
    return {"call_id": row.call_id, "started_at": row.started_at, "duration_s": row.duration_s,
            "customer": row.customer, "agent": row.agent, "queue": row.queue, "outcome": row.outcome,
            "intent": row.intent, "state": row.state, "held": row.held, "flags": len(row.flags),
            "channels": row.channels, "has_audio": row.state == "ok"}


def qa_router(library: RecordingLibrary, redis: aioredis.Redis) -> APIRouter:
    router = APIRouter(prefix="/api/qa", tags=["qa"])
    audit_log = AuditLog(redis)

    async def audit(who: str, action: str, call_id: str, detail: str) -> None:
        """The admin audit log (Redis); the recordings' own access log (SQLite) has it already or next."""
        try:
            await audit_log.record(who, action, call_id, detail)
        except Exception as exc:  # Redis down: the access log in the index stands
            log.warning("recording access not in the audit log (%s): %s %s %s", exc, who, action, call_id)

    async def run(work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise InvalidInput(field, message or str(exc)) from None
        except NoRecording as exc:
            raise NotFound(str(exc)) from None
        except RecordingError as exc:
            raise HTTPException(exc.status, str(exc)) from None

    async def qa_user(request: Request, user: Annotated[User, Depends(session_user)]) -> User:
        """The session user if QA may see recordings; else 403, in the access log and the audit log."""
        if user.role in QA_ROLES:
            return user
        call_id = str(request.path_params.get("call_id", ""))
        what = f"{request.method} {request.url.path}"
        await asyncio.to_thread(library.index.log_access, user.username, user.role.value, call_id or "-", "denied",
                                what)
        await audit(user.username, "recording-denied", call_id or "-", f"{what} as {user.role.value}")
        wanted = " or ".join(sorted(r.value for r in QA_ROLES))
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"recordings need the {wanted} role; you are {user.role.value} (this request is logged)")

    QA = Annotated[User, Depends(qa_user)]

    @router.get("/recordings")
    async def search(_: QA, call_id: Text = None, customer: Text = None, agent: Text = None, queue: Text = None,
                     outcome: Text = None, since: Annotated[str, Query(max_length=20)] = "30d",
                     until: Annotated[str | None, Query(max_length=20)] = None, held: bool | None = None,
                     flagged: bool | None = None, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        start = since_of(since) if since else None
        end = None
        if until:
            try:
                end = since_of(until) + (24 * 3600 if re.fullmatch(r"\d{4}-\d{2}-\d{2}", until) else 0)
            except InvalidInput:
                raise InvalidInput("until", "a date (YYYY-MM-DD) or a span back from now (7d, 12h)") from None
        q = Search(call_id=call_id or None, customer=customer or None, agent=agent or None, queue=queue or None,
                   outcome=outcome or None, since=start, until=end, held=held, flagged=flagged, offset=offset,
                   limit=limit)
        total, rows = await run(lambda: library.search(q))
        return {"total": total, "offset": offset, "items": [summary(r) for r in rows]}

    @router.get("/recordings/{call_id}")
    async def recording(call_id: CallId, _: QA) -> dict[str, Any]:
        row = await run(lambda: library.entry(call_id))
        access = await run(lambda: library.index.access(call_id, 20))
        return {**summary(row), "ended_at": row.ended_at, "rate": row.rate, "bytes": row.bytes,
                "sha256": row.sha256, "encrypted": row.encrypted, "problem": row.problem,
                "purged_at": row.purged_at, "hold_reason": row.hold_reason, "held_by": row.held_by,
                "held_at": row.held_at, "timeline": library.timeline(row),
                "access": [{"at": a.at, "who": a.who, "action": a.action} for a in access]}

    @router.get("/recordings/{call_id}/audio", response_class=Response)
    async def audio(call_id: CallId, request: Request, user: QA, download: bool = False) -> Response:
        action = "download" if download else "play"
        wanted = request.headers.get("range")
        # A player seeking sends many ranges: the first request of a listening (no range, or from byte 0) is the
        # one audited; every request still passes every check.
        first = wanted is None or wanted.strip().startswith("bytes=0-")
        try:
            playable = await asyncio.to_thread(library.play, call_id, user.username, user.role.value, action, first)
        except RecordingError as exc:
            await audit(user.username, f"recording-{action}-refused", call_id, str(exc))
            if isinstance(exc, NoRecording):
                raise NotFound(str(exc)) from None
            raise HTTPException(exc.status, str(exc)) from None
        if first:
            await audit(user.username, f"recording-{action}", call_id,
                        f"{playable.row.path} as {user.role.value} at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        data, size = playable.data, len(playable.data)
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{call_id}.wav"'
        if wanted is None:
            return Response(data, media_type=playable.media_type, headers=headers)
        match = _RANGE.match(wanted.strip())
        if match is None or (not match[1] and not match[2]):
            raise HTTPException(416, f"range: one bytes=a-b range, not "
                                f"{wanted[:40]!r}", headers={"Content-Range": f"bytes */{size}"})
        if match[1]:
            first_byte, last_byte = int(match[1]), min(int(match[2]) if match[2] else size - 1, size - 1)
        else:  # bytes=-N: the last N bytes
            first_byte, last_byte = max(0, size - int(match[2])), size - 1
        if first_byte >= size or first_byte > last_byte:
            raise HTTPException(416,
                                f"range: {wanted[:40]} is outside the recording's {size} bytes",
                                headers={"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {first_byte}-{last_byte}/{size}"
        return Response(data[first_byte:last_byte + 1], status_code=206, media_type=playable.media_type,
                        headers=headers)

    @router.post("/recordings/{call_id}/hold")
    async def hold(call_id: CallId, body: HoldRequest, user: QA) -> dict[str, Any]:
        row = await run(lambda: library.hold(call_id, user.username, user.role.value, body.reason))
        await audit(user.username, "recording-hold", call_id, body.reason)
        return summary(row) | {"hold_reason": row.hold_reason, "held_by": row.held_by, "held_at": row.held_at}

    @router.post("/recordings/{call_id}/release")
    async def release(call_id: CallId, body: HoldRequest, user: QA) -> dict[str, Any]:
        row = await run(lambda: library.release(call_id, user.username, user.role.value, body.reason))
        await audit(user.username, "recording-release", call_id, body.reason)
        return summary(row)

    @router.put("/recordings/{call_id}/flags")
    async def set_flags(call_id: CallId, body: FlagsRequest, user: QA) -> dict[str, Any]:
        row = await run(lambda: library.set_flags(call_id, body.flags))
        await audit(user.username, "recording-flags", call_id, f"{len(row.flags)} flags")
        return {"call_id": call_id, "timeline": library.timeline(row)}

    @router.get("/access")
    async def access(user: QA, call_id: Text = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Who played, downloaded, held or was refused which recording, newest first (admins only)."""
        if user.role is not UserRole.ADMIN:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the access log is for admins")
        entries = await run(lambda: library.index.access(call_id or None, limit))
        return {"items": [{"at": e.at, "who": e.who, "role": e.role, "call_id": e.call_id, "action": e.action,
                           "detail": e.detail} for e in entries]}

    return router


def qa_library(settings: Settings) -> RecordingLibrary:
    """The recordings as the pages see them; a bad IVR_RECORDINGS_KEY is logged (encrypted recordings then say
    so when played) instead of keeping the pages from starting."""
    try:
        return RecordingLibrary.from_settings(settings)
    except ValueError as exc:
        log.error("recordings: %s; encrypted recordings cannot be played", exc)
        return RecordingLibrary(settings.recordings_dir, RecordingIndex(settings.recordings_index_file),
                                Manifest(settings.recordings_manifest_file))
