"""The card verifier client: a verdict, or "unavailable" for a timeout or garbage, never echoing the digits.
And the demo verifier on the web app."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from ivr.privacy.cards import SecretKind
from ivr.privacy.verifier import HttpVerifier, demo_verify
from ivr.web.verifier import verifier_router

CARD = "4111111111111111"
URL = "http://verifier.test/verify"


def verifier(handler) -> HttpVerifier:  # type: ignore[no-untyped-def]
    return HttpVerifier(URL, 0.2, transport=httpx.MockTransport(handler))


async def test_a_verdict_is_read_and_the_digits_are_sent_only_in_the_body():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"verified": True})

    verdict = await verifier(handler)(SecretKind.CARD, CARD)
    assert verdict.verified is True and verdict.problem == ""
    assert json.loads(seen[0].content) == {"what": "card", "digits": CARD}
    assert CARD not in str(seen[0].url) and all(CARD not in v for v in seen[0].headers.values())
    refused = await verifier(lambda r: httpx.Response(200, json={"verified": False}))(SecretKind.CARD, CARD)
    assert refused.verified is False


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"cannot connect for {CARD}", request=request)


@pytest.mark.parametrize(("handler", "problem"), [
    (_timeout, "did not answer within 0.2 s"),
    (_unreachable, "could not be reached (ConnectError)"),
    (lambda r: httpx.Response(500, text=f"error for {CARD}"), "HTTP 500"),
    (lambda r: httpx.Response(200, text=f"<html>{CARD}</html>"), "not JSON"),
    (lambda r: httpx.Response(200, json={"verified": "yes", "echo": CARD}), 'no boolean "verified"'),
    (lambda r: httpx.Response(200, json=[True]), 'no boolean "verified"'),
    (lambda r: httpx.Response(200, content=b"{" + b" " * 5000 + b"}"), "not a verdict"),
])
async def test_timeout_or_garbage_is_no_verdict_and_the_problem_holds_no_digits(handler, problem):
    verdict = await verifier(handler)(SecretKind.CARD, CARD)
    assert verdict.verified is None and problem in verdict.problem
    assert CARD not in verdict.problem and "1111" not in verdict.problem


async def test_no_url_is_no_verdict():
    assert (await HttpVerifier("", 1.0)(SecretKind.CARD, CARD)).verified is None


async def test_demo_rule():
    assert (await demo_verify(SecretKind.CARD, CARD)).verified is True
    assert (await demo_verify(SecretKind.CARD, "4111111111111112")).verified is False


async def test_the_demo_verifier_endpoint_answers_loopback_callers_and_echoes_nothing():
    app = FastAPI()
    app.include_router(verifier_router())
    local = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)), base_url="http://t")
    async with local:
        ok = await local.post("/verify/card", json={"what": "card", "digits": CARD})
        assert ok.status_code == 200 and ok.json() == {"verified": True}
        bad = await local.post("/verify/card", json={"what": "card", "digits": "4111111111111112"})
        assert bad.json() == {"verified": False}
        wrongs = (({"what": "cvv", "digits": CARD}, "'what'"), ({"what": "card", "digits": 4111}, "'digits'"))
        for body, field in wrongs:
            wrong = await local.post("/verify/card", json=body)
            assert wrong.status_code == 422 and field in wrong.text and CARD not in wrong.text
        garbage = await local.post("/verify/card", content=f"digits={CARD}")
        assert garbage.status_code == 400 and CARD not in garbage.text
    remote = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.9", 5000)), base_url="http://t")
    async with remote:
        assert (await remote.post("/verify/card", json={"what": "card", "digits": CARD})).status_code == 403
