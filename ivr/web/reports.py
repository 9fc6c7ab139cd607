"""Reports (``/api/reports/...``): navigation analytics and KPIs from the archive, as JSON and as SVG charts drawn
on the server (matplotlib; the pages load no chart library). Supervisors, admins and trainers.

Thin handlers over ``ivr.voice.training.service`` and ``ivr.voice.training.charts``, run in a thread (SQLite,
drawing); errors as the web app's (a bad ``since`` or ``by`` is 422 naming it).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from ivr.voice.training.charts import kpi_chart, navigation_chart
from ivr.voice.training.service import TrainerService
from ivr.web.auth import User, UserRole, require
from ivr.web.trainer import Since, since_of

Reader = Annotated[User, Depends(require(UserRole.SUPERVISOR, UserRole.ADMIN, UserRole.TRAINER))]
By = Annotated[Literal["version", "node", "language", "dialect"], Query(description="what to break down by")]
Per = Annotated[Literal["day", "day,queue", "day,queue,version", "queue", "version"],
                Query(description="groupings of the KPI rows")]
SVG = "image/svg+xml"


def reports_router(service: TrainerService) -> APIRouter:
    router = APIRouter(prefix="/api/reports", tags=["reports"])

    @router.get("/navigation")
    async def navigation(_: Reader, since: Since = "7d", by: By = "node") -> dict[str, Any]:
        start = since_of(since)
        rows = await asyncio.to_thread(service.navigation, start, None, by)
        return {"since": start, "by": by, "rows": [r.to_dict() for r in rows]}

    @router.get("/navigation.svg", response_class=Response)
    async def navigation_svg(_: Reader, since: Since = "7d", by: By = "node") -> Response:
        start = since_of(since)

        def draw() -> str:
            return navigation_chart(service.navigation(start, None, by), f"Navigation by {by}, since {since}")

        return Response(await asyncio.to_thread(draw), media_type=SVG)

    @router.get("/kpi")
    async def kpi(_: Reader, since: Since = "7d", per: Per = "day,queue,version") -> dict[str, Any]:
        start = since_of(since)
        rows = await asyncio.to_thread(service.kpis, start, None, per.split(","))
        return {"since": start, "per": per, "rows": [r.to_dict() for r in rows]}

    @router.get("/kpi.svg", response_class=Response)
    async def kpi_svg(_: Reader, since: Since = "7d") -> Response:
        start = since_of(since)

        def draw() -> str:
            return kpi_chart(service.kpis(start, None, ("day",)), f"KPIs per day, since {since}")

        return Response(await asyncio.to_thread(draw), media_type=SVG)

    return router
