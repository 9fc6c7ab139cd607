"""The screen pop: complete for the person answering, and never a full card or account number."""

from __future__ import annotations

from ivr.records.call import CallRecord, Turn
from ivr.records.customer import Case, Contact, Customer
from ivr.routing.screenpop import build_pop, mask_numbers


def test_long_numbers_keep_only_first_six_and_last_four() -> None:
    assert mask_numbers("card 4111 1111 1111 1111 lost") == "card 411111******1111 lost"
    assert mask_numbers("account 110-123456-781234") == "account 110123*****1234"  # dashes do not hide it
    assert mask_numbers("call 01012345678") == "call 01012345678"  # 11 digits: a phone number stays


def test_pop_of_a_known_vip_caller() -> None:
    customer = Customer(id="C1", name="김민준", phones=["01012345678"], tier="vip", accounts=["110-***-**1234"],
                        language="ko", dialect="gyeongsang", patience_s=30,
                        cases=[Case(id="L-1", skill="loans", owner="F2001", summary="mortgage renewal"),
                               Case(id="K-9", skill="cards", owner="A1", status="closed")])
    call = CallRecord(call_id="c1", caller="01012345678", customer="C1", language="ko", dialect="gyeongsang",
                      path=["main_menu", "to_loans"], intent="loan", queue="loans", queued_at=100.0)
    call.turns.append(Turn(node="main_menu", transcript="대출 상담 카드 4111111111111111", confidence=0.81,
                           intent="loan", score=0.9, dtmf="4111111111111111"))
    call.routing.append({"rule": "case owner", "why": ["F2001 owns the caller's open case"], "agent": "F2001"})
    history = [Contact(at=50.0, channel="voice", intent="balance", outcome="self_service")]
    pop = build_pop(call, customer, history, "F2001", now=112.5)
    assert pop["customer"]["vip"] is True and pop["customer"]["name"] == "김민준"
    assert [c["id"] for c in pop["customer"]["cases"]] == ["L-1"]
    assert pop["waited_s"] == 12.5 and pop["routing"]["rule"] == "case owner"
    turn = pop["ivr"]["turns"][0]
    assert turn["transcript"] == "대출 상담 카드 411111******1111" and turn["keys"] == "*" * 16
    assert pop["history"][0]["outcome"] == "self_service"
    assert "4111111111111111" not in repr(pop)


def test_unknown_caller_pops_with_what_the_ivr_heard() -> None:
    call = CallRecord(call_id="c2", caller="01099990000", path=["main_menu"], intent="agent")
    call.turns.append(Turn(node="main_menu", transcript="상담원 연결", confidence=0.7, intent="agent"))
    pop = build_pop(call, None, [], "A1", now=1.0)
    assert (pop["known"], pop["customer"], pop["caller"]) == (False, None, "01099990000")
    assert pop["ivr"]["turns"][0]["transcript"] == "상담원 연결"
