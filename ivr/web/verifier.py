"""The demo card verifier: ``POST /verify/card`` on the web app, for the flow's secure_digits nodes.

It answers ``{"verified": true}`` for an entry of the right shape (a card number passing Luhn, an expiry not past, a
PIN or code of the right length), else false: what a real verifier (the payment processor's verification or
tokenization service, ``IVR_CARD_VERIFIER_URL``) would answer, without a card system behind it. Why on the web app:
it already runs in every deployment, beside the controller, so the controller reaches it over real HTTP — the same
timeout and answer handling as a real verifier — with no extra process to start.

Loopback callers only. The body is read by hand, not by a pydantic model: FastAPI's validation errors echo the
input back, and this input is card data. No error names a value; nothing here logs or keeps the digits.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ivr.privacy.cards import SecretKind, entry_problem

MAX_BODY_BYTES = 1024
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def verifier_router() -> APIRouter:
    router = APIRouter()

    @router.post("/verify/card", include_in_schema=False)
    async def verify_card(request: Request) -> JSONResponse:
        if request.client is None or request.client.host not in LOOPBACK:
            return JSONResponse({"detail": "the demo card verifier answers loopback callers only"}, 403)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"body over {MAX_BODY_BYTES} bytes"}, 413)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"detail": "body: not JSON"}, 400)
        if not isinstance(data, dict):
            return JSONResponse({"detail": "body: a JSON object is expected"}, 400)
        what, digits = data.get("what"), data.get("digits")
        if what not in set(SecretKind):
            return JSONResponse({"detail": f"field 'what': one of {', '.join(SecretKind)}"}, 422)
        if not isinstance(digits, str):
            return JSONResponse({"detail": "field 'digits': a string of digits is expected"}, 422)
        return JSONResponse({"verified": entry_problem(SecretKind(what), digits) is None})

    return router
