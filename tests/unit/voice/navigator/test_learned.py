"""What the IVR learned of a caller, as channel variables (ivr.voice.navigator.learned), and when the navigator
tells it: the facts the dialplan's fallback and the agent's pop read if the controller dies mid-call."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.records.call import CallRecord, Turn
from ivr.records.customer import Customer
from ivr.voice.flow import TransferNode, load_flow
from ivr.voice.navigator import Learned
from ivr.voice.navigator.learned import (
    PRIORITY,
    QUEUE,
    VARIABLES,
    changes,
    learned_of,
    route_ahead,
    safe_value,
    summary_of,
)
from tests.unit.voice.navigator.fakes import FLOW, key, make, silence, speech, walk

HOTLINE = load_flow(FLOW)


# --- which queue the flow leads to from where the caller is -----------------------------------------------

@pytest.mark.parametrize(("node", "expected"), [
    ("main_menu", None),                 # a question: could lead anywhere
    ("to_cards", ("cards", 10)),         # a route node names queue and priority
    ("to_loans", ("loans", 0)),
    ("complaint_callback", ("complaints", 0)),  # an offer keeps a place in its queue
    ("balance", None),                   # self-service: served by the IVR, or not
    ("activate_card", None),             # a card entry: verified, refused, ... each its own way
    ("goodbye", None),
])
def test_route_ahead_in_the_hotline(node: str, expected: tuple[str, int] | None) -> None:
    assert route_ahead(HOTLINE, node) == expected


def test_route_ahead_goes_on_through_say_nodes_and_takes_a_transfers_queue() -> None:
    nodes = dict(HOTLINE.nodes)
    nodes["notice"] = HOTLINE.nodes["card_activated"].model_copy(update={"next": "to_cards"})
    nodes["loop"] = HOTLINE.nodes["card_activated"].model_copy(update={"next": "loop"})
    nodes["to_desk"] = TransferNode(type="transfer", target="1001", fallback_queue="payments")
    flow = HOTLINE.model_copy(update={"nodes": nodes})
    assert route_ahead(flow, "notice") == ("cards", 10)
    assert route_ahead(flow, "to_desk") == ("payments", 0)
    assert route_ahead(flow, "loop") is None  # a loop of say nodes ends the look-ahead, not the process


# --- the variables --------------------------------------------------------------------------------------

def test_each_fact_has_its_variable_and_an_unknown_queue_has_no_priority() -> None:
    known = Learned(customer="C1001", tier="vip", intent="lost_card", queue="cards", priority=10, language="ko",
                    dialect="gyeongsang", summary="카드 분실 신고: lost_card")
    assert known.variables() == {
        "IVR_CUSTOMER": "C1001", "IVR_TIER": "vip", "IVR_INTENT": "lost_card", "IVR_LEARNED_QUEUE": "cards",
        "IVR_LEARNED_PRIORITY": "10", "IVR_LANGUAGE": "ko", "IVR_DIALECT": "gyeongsang",
        "IVR_SUMMARY": "카드 분실 신고: lost_card"}
    assert list(known.variables()) == list(VARIABLES)
    nothing = Learned(language="ko").variables()
    assert (nothing[QUEUE], nothing[PRIORITY]) == ("", "")  # the dialplan then says 'general'
    assert Learned(queue="general").variables()[PRIORITY] == "0"


def test_variables_read_back_are_the_same_facts() -> None:
    known = Learned(customer="C1001", tier="gold", intent="loan", queue="loans", priority=5, language="ko",
                    dialect=None, summary="대출 상담: loan")
    assert Learned.from_variables(known.variables()) == known
    assert Learned.from_variables({}) == Learned()
    assert Learned.from_variables({PRIORITY: "ten", QUEUE: "Cards!"}) == Learned(queue="cards", priority=0)


@pytest.mark.parametrize("hostile", [
    'a"b', "a\\b", "a\r\nAction: Originate", "${SHELL(rm -rf /)}", "a,b;c", "x|y", "$[1+1]", "(a)", "<b>",
])
def test_values_keep_nothing_that_breaks_out_of_agi_ami_or_the_dialplan(hostile: str) -> None:
    value = safe_value(hostile)
    assert not set(value) & set('"\\\r\n${}[](),;|<>&\'`'), value
    assert value == " ".join(value.split())  # one line, no doubled blanks


def test_values_keep_korean_and_are_cut_to_length() -> None:
    assert safe_value("  카드   분실\t신고 ") == "카드 분실 신고"
    assert len(safe_value("가" * 500)) == 64
    queue = Learned(queue="Q_Cards; Dial(PJSIP/9)").variables()[QUEUE]
    assert queue == "q_cardsdialpjsip9" and queue.isascii()  # what FILTER(a-z0-9_) in the dialplan would leave


def test_the_summary_never_carries_card_data() -> None:
    turns = [
        Turn(node="main_menu", transcript="카드 분실 신고", intent="lost_card"),
        Turn(node="main_menu", kind="confirm", transcript="네", intent="lost_card"),
        Turn(node="activate_card", kind="secure", dtmf="4111111111111111", intent="verified"),
        Turn(node="main_menu", transcript="카드 번호 4111 1111 1111 1111 이요", intent=None),
        Turn(node="after_balance", dtmf="0", intent="agent"),
    ]
    summary = summary_of(turns)
    assert summary == "카드 분실 신고: lost_card / 네: lost_card / 카드 번호 이요 / key 0: agent"
    assert "verified" not in summary and not any(c.isdigit() for c in summary.replace("key 0", ""))
    assert len(summary_of([Turn(node="n", transcript="가나다 " * 100)])) <= 160


def test_changes_are_only_the_facts_that_differ() -> None:
    first = Learned(language="ko").variables()
    assert changes({}, first) == {"IVR_LANGUAGE": "ko"}  # unset and empty is the same to the dialplan
    later = Learned(language="ko", intent="loan", queue="loans").variables()
    assert changes(first, later) == {"IVR_INTENT": "loan", "IVR_LEARNED_QUEUE": "loans",
                                     "IVR_LEARNED_PRIORITY": "0"}
    assert changes(later, later) == {}
    assert changes(later, first) == {"IVR_INTENT": "", "IVR_LEARNED_QUEUE": "", "IVR_LEARNED_PRIORITY": ""}


def test_learned_of_a_call_record() -> None:
    call = CallRecord(call_id="1", caller="01012345678", customer="C1001", tier="vip", language="ko",
                      dialect="gyeongsang", intent="lost_card",
                      turns=[Turn(node="main_menu", transcript="카드 분실", intent="lost_card")])
    assert learned_of(call, ("cards", 10)) == Learned("C1001", "vip", "lost_card", "cards", 10, "ko", "gyeongsang",
                                                     "카드 분실: lost_card")
    assert learned_of(call, None).queue is None


# --- when the navigator tells -----------------------------------------------------------------------------

async def walk_telling(answers: list[Any], turns: list[bytes], **kwargs: Any) -> tuple[Any, list[Learned]]:
    nav, caller = make(answers, turns, **kwargs)
    told: list[Learned] = []

    async def on_learned(call: CallRecord, learned: Learned) -> None:
        told.append(learned)

    nav.on_learned = on_learned
    decision, _ = await walk(nav, caller)
    return decision, told


async def test_the_queue_is_told_as_soon_as_the_intent_leads_to_it() -> None:
    customer = Customer(id="C1001", name="김민준", phones=["01012345678"], tier="vip", dialect="gyeongsang")

    def tweak(flow: Any) -> Any:  # a notice between the menu and the route: the caller is still in the IVR
        nodes = dict(flow.nodes)
        nodes["notice"] = flow.nodes["card_activated"].model_copy(update={"next": "to_cards"})
        main = flow.nodes["main_menu"]
        nodes["main_menu"] = main.model_copy(update={"routes": {**main.routes, "lost_card": "notice"}})
        return flow.model_copy(update={"nodes": nodes})

    nav, caller = make([None], [key("2")], customer=customer, tweak=tweak)
    told: list[tuple[str, Learned]] = []

    async def on_learned(call: CallRecord, learned: Learned) -> None:
        told.append((call.path[-1], learned))

    nav.on_learned = on_learned
    call = CallRecord(call_id="c", caller="01012345678", customer="C1001", tier="vip", dialect="gyeongsang")
    decision = await nav.run(call, caller.session)
    await caller.session.close()
    assert decision.queue == "cards"
    nodes = [node for node, _ in told]
    assert nodes == ["main_menu", "notice"]  # once at the start, once when the intent is known; not per frame
    start, notice = told[0][1], told[1][1]
    assert (start.customer, start.tier, start.intent, start.queue) == ("C1001", "vip", None, None)
    assert (notice.intent, notice.queue, notice.priority, notice.summary) == ("lost_card", "cards", 10,
                                                                               "key 2: lost_card")


async def test_a_question_after_the_queue_was_learned_keeps_it() -> None:
    def tweak(flow: Any) -> Any:  # declining the complaints callback leads to a question, not to the route
        nodes = dict(flow.nodes)
        nodes["complaint_callback"] = flow.nodes["complaint_callback"].model_copy(update={"next": "after_balance"})
        return flow.model_copy(update={"nodes": nodes})

    nav, caller = make([None, None, None], [key("6"), key("2"), key("9")], tweak=tweak)
    told: list[tuple[str, Learned]] = []

    async def on_learned(call: CallRecord, learned: Learned) -> None:
        told.append((call.path[-1], learned))

    nav.on_learned = on_learned
    decision, _ = await walk(nav, caller)
    assert decision.kind == "hangup"
    queues = [(node, learned.queue) for node, learned in told]
    assert queues[0] == ("main_menu", None)
    assert ("complaint_callback", "complaints") in queues
    assert all(queue == "complaints" for node, queue in queues[1:])  # the question after it does not forget it


async def test_nothing_learned_tells_no_queue() -> None:
    decision, told = await walk_telling([None, None], [silence(0.5), silence(0.5)])
    assert decision.queue == "general"
    assert all(t.queue is None for t in told)


async def test_a_spoken_intent_and_its_dialect_are_told() -> None:
    decision, told = await walk_telling(["대출 좀 알아볼라꼬요"], [speech(0.6) + silence(0.4)])
    assert decision.queue == "loans"
    last = told[-1]
    assert (last.intent, last.queue, last.dialect) == ("loan", "loans", "gyeongsang")
    assert last.summary == "대출 좀 알아볼라꼬요: loan"


def test_facts_complete_a_record_saved_before_the_last_answer_but_never_overwrite_it() -> None:
    # The record is saved turn by turn, before the navigator sets the intent the turn chose: if the controller dies
    # at the next node, the intent is only in the facts.
    saved = CallRecord(call_id="1", caller="01012345678", customer="C1001", tier=None)
    Learned(customer="C9999", tier="vip", intent="loan", dialect="jeolla").fill(saved)
    assert (saved.customer, saved.tier, saved.intent, saved.dialect) == ("C1001", "vip", "loan", "jeolla")
