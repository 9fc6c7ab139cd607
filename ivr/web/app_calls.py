"""App calls over HTTP, WHIP-style (RFC 9725): thin handlers over ``ivr.webrtc.gateway``.

- ``POST /api/app-calls[?screen=card]`` with ``Authorization: Bearer <app token>``, ``Content-Type:
  application/sdp`` and the SDP offer: ``201`` with the SDP answer, ``Location: /api/app-calls/<id>`` and
  ``Link: <...>; rel="ice-server"`` for each STUN/TURN server. Refusals are the house's JSON errors with a status:
  401 (token), 413 (offer over the size cap), 415 (not SDP, or no codec we speak), 422 (no audio, not WebRTC),
  429 (the customer's bounds, with ``Retry-After``), 503 (the gateway is full or not configured).
- ``DELETE /api/app-calls/<id>``: hang up (204). ``POST /api/app-calls/<id>/dtmf`` ``{"digits": "1"}``: keys (202).
  ``GET /api/app-calls/<id>``: the app call's record (state, and when it ended, by whom and why).

The app may also send keys and hang up over a data channel it opens (``{"type": "dtmf", "digits": "1"}``,
``{"type": "hangup"}``); the gateway tells it ``{"type": "ended", "by", "reason"}`` there.
The body is read in chunks and never past the cap: a 1 MB offer costs 16 KB of reading, not a megabyte.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ivr.webrtc.gateway import AppCallGateway, AppCallRefused

AppCallId = Annotated[str, PathParam(pattern=r"^app-[0-9a-f]{32}$", description="the app call's id")]
SDP_TYPE = "application/sdp"


class DtmfRequest(BaseModel):
    digits: str = Field(pattern=r"^[0-9*#A-D]{1,20}$", description="keys to press: 0-9, *, #, A-D (1 to 20)")


def app_calls_router(gateway: AppCallGateway | None, max_sdp_bytes: int) -> APIRouter:
    router = APIRouter(prefix="/api/app-calls", tags=["app calls"])

    def served() -> AppCallGateway:
        if gateway is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "app calls are not served by this process")
        return gateway

    @router.post("", status_code=201, response_class=Response,
                 responses={201: {"content": {SDP_TYPE: {}}, "description": "the SDP answer"}})
    async def offer(request: Request, screen: str | None = None) -> Response:
        gw = served()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_sdp_bytes:
            _refuse(413, f"the SDP offer is {declared} bytes, over the gateway's limit of {max_sdp_bytes} bytes")
        token = _bearer(request)
        try:
            gw.authenticate(token)  # before the body is read: nothing is done for a caller without a valid token
        except AppCallRefused as exc:
            _refuse(exc.status, str(exc), exc.headers)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != SDP_TYPE:
            _refuse(415, f"an app call's offer is {SDP_TYPE}, not {content_type or 'untyped'}")
        body = await _read_capped(request, max_sdp_bytes)
        try:
            answer = await gw.offer(token, body, screen)
        except AppCallRefused as exc:
            _refuse(exc.status, str(exc), exc.headers)
        headers = {"Location": f"/api/app-calls/{answer.call_id}", "ETag": f'"{answer.call_id}"'}
        response = Response(answer.sdp, status_code=201, media_type=SDP_TYPE, headers=headers)
        for link in answer.links:
            response.headers.append("Link", link)
        return response

    @router.delete("/{call_id}", status_code=204)
    async def hang_up(call_id: AppCallId, request: Request) -> Response:
        try:
            await served().hang_up(_bearer(request), call_id)
        except AppCallRefused as exc:
            _refuse(exc.status, str(exc), exc.headers)
        return Response(status_code=204)

    @router.post("/{call_id}/dtmf", status_code=202)
    async def dtmf(call_id: AppCallId, body: DtmfRequest, request: Request) -> dict[str, Any]:
        try:
            await served().dtmf(_bearer(request), call_id, body.digits)
        except AppCallRefused as exc:
            _refuse(exc.status, str(exc), exc.headers)
        return {"call_id": call_id, "keys": len(body.digits)}

    @router.get("/{call_id}")
    async def record(call_id: AppCallId, request: Request) -> dict[str, Any]:
        try:
            return (await served().status(_bearer(request), call_id)).to_dict()
        except AppCallRefused as exc:
            _refuse(exc.status, str(exc), exc.headers)

    return router


def _refuse(status_code: int, detail: str, headers: dict[str, str] | None = None) -> NoReturn:
    raise HTTPException(status_code, detail, headers=headers or None)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _refuse(401, "an app call needs the app's token: Authorization: Bearer <token>",
                {"WWW-Authenticate": 'Bearer realm="app-calls"'})
    return token.strip()


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, or a 413 as soon as it passes ``limit`` bytes (a chunked upload has no Content-Length)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            _refuse(413, f"the SDP offer is over the gateway's limit of {limit} bytes")
    return bytes(body)
