"""The app's hint in the flow and on the agent's screen: an app call from the card screen is asked about its card
first (not the whole menu), and the pop says who the app authenticated."""

from __future__ import annotations

import asyncio

from ivr.records.call import CallRecord
from ivr.routing.screenpop import build_pop
from tests.unit.voice.navigator.fakes import key, make


def app_call(caller_id: str, intent: str | None) -> CallRecord:
    return CallRecord(call_id=caller_id, caller="", via="app", app_customer="C1001", app_screen="card",
                      app_intent=intent)


async def run(intent: str | None, turns: list[bytes]) -> tuple[object, CallRecord, list[str]]:
    nav, caller = make([None] * len(turns), turns)
    call = app_call(caller.session.call_id, intent)
    decision = await asyncio.wait_for(nav.run(call, caller.session), 20)
    await caller.session.close()
    return decision, call, nav.speech.prompts_said  # type: ignore[attr-defined]


async def test_a_confirmed_hint_skips_the_menu() -> None:
    decision, call, prompts = await run("lost_card", [key("1")])
    assert (decision.queue, call.intent, call.path) == ("cards", "lost_card", ["main_menu", "to_cards"])  # type: ignore[attr-defined]
    assert prompts[0] == "카드 분실 신고를 원하십니까?" and call.turns[0].kind == "confirm"
    assert "the app's hint lost_card confirmed at main_menu" in call.notes


async def test_a_declined_hint_asks_the_flows_own_question() -> None:
    decision, call, prompts = await run("lost_card", [key("2"), key("3")])
    assert (decision.queue, call.intent) == ("loans", "loan")  # type: ignore[attr-defined]
    assert prompts[:2] == ["카드 분실 신고를 원하십니까?", "안녕하십니까. 무엇을 도와드릴까요?"]
    assert call.path[:2] == ["main_menu", "to_loans"]


async def test_a_hint_the_first_question_has_no_exit_for_is_ignored() -> None:
    decision, call, prompts = await run("finish", [key("3")])
    assert prompts[0] == "안녕하십니까. 무엇을 도와드릴까요?" and call.intent == "loan"


def test_the_pop_says_the_app_authenticated_the_customer_and_where_they_called_from() -> None:
    call = app_call("app-1", "lost_card")
    pop = build_pop(call, None, [], "A1001", now=1.0)
    assert pop["authenticated"] == {"by": "app", "label": "authenticated in app", "customer_id": "C1001",
                                    "screen": "card", "intent_hint": "lost_card"}
    assert build_pop(CallRecord(call_id="1.2", caller="0101"), None, [], "A1001", now=1.0)["authenticated"] is None
