"""The redaction step: Korean and international formats found and tagged; near-misses (dates, amounts) left."""

from __future__ import annotations

import pytest

from ivr.privacy.redaction import redact, redact_texts, redact_words


@pytest.mark.parametrize(("text", "expected"), [
    ("제 주민번호는 900101-1234567 입니다", "제 주민번호는 <RRN> 입니다"),
    ("주민번호 9001011234567", "주민번호 <RRN>"),
    ("외국인등록번호 900101-5234567", "외국인등록번호 <RRN>"),
    ("010-1234-5678로 전화 주세요", "<PHONE>로 전화 주세요"),
    ("01012345678", "<PHONE>"),
    ("+82 10 1234 5678", "<PHONE>"),
    ("+82-2-123-4567", "<PHONE>"),
    ("사무실 02-123-4567 입니다", "사무실 <PHONE> 입니다"),
    ("call me on +1 415 555 2671", "call me on <PHONE>"),
    ("+44 20 7946 0958", "<PHONE>"),
    ("카드 4111 1111 1111 1111 분실", "카드 <CARD> 분실"),
    ("카드 9410-1234-5678-0001", "카드 <CARD>"),
    ("card 5555555555554444", "card <CARD>"),
    ("신한 110-123-456789 계좌", "신한 <ACCOUNT> 계좌"),
    ("국민 123456-78-901234", "국민 <ACCOUNT>"),
    ("계좌 1234567890123", "계좌 <ACCOUNT>"),
    ("IBAN DE89370400440532013000", "IBAN <ACCOUNT>"),
    ("kim.minjun+bank@example.co.kr 로 보내주세요", "<EMAIL> 로 보내주세요"),
    ("send it to alex@example.com.", "send it to <EMAIL>."),
    ("번호는 공일공 일이삼사 오육칠팔", "번호는 <NUMBER>"),
])
def test_each_format_is_tagged(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "2024-05-12에 1,000,000원 이체했어요",  # a date and an amount
    "20240512",  # a date written solid
    "잔액 50000원",
    "1000000000원",  # ten digits, but money
    "₩1000000000",
    "$ 4155552671",
    "오후 3시 30분",
    "2024년 5월 12일",
    "카드 4111 1111 1111 1112",  # 16 digits that fail Luhn: not a card (and too long for an account)
    "내선 1234",
    "인증번호 123456",
    "대출 상담",
    "오늘 일이 많아요 사이 오일",  # digit syllables in ordinary words
    "version 2.2.366",
])
def test_near_misses_are_left(text):
    assert redact(text) == text


def test_cards_can_keep_first_six_and_last_four_for_agents_notes():
    assert redact("lost 4111 1111 1111 1111, call 010-1234-5678", mask_cards=True) == \
        "lost 411111******1111, call <PHONE>"


def test_words_and_nbest():
    words = [{"word": w, "start": i, "end": i + 1} for i, w in enumerate(["번호는", "공일공", "일이삼사", "오육칠팔"])]
    out = redact_words(words)
    assert [w["word"] for w in out] == ["번호는", "<NUMBER>", "<NUMBER>", "<NUMBER>"]
    assert out[1]["start"] == 1  # timings kept
    assert redact_words(words[:1]) == words[:1]
    assert redact_texts([{"text": "010-1234-5678", "confidence": 0.5}]) == [{"text": "<PHONE>", "confidence": 0.5}]


def test_redaction_is_idempotent():
    once = redact("900101-1234567 / 010-1234-5678 / a@b.co")
    assert redact(once) == once



@pytest.mark.parametrize("text", ["2026-12-01", "2026-12-01 09:30:00", "3", "general", "v12 node 4 of 6"])
def test_report_cells_with_nothing_to_find_skip_presidio(text: str) -> None:
    # A report's day, version or count: fewer digits than any recognized number (or a bare date), so a fresh
    # `ivr report` process never pays Presidio's ~1 s import for its table.
    from ivr.privacy.redaction import spans
    assert spans(text) == [] and redact(text) == text


def test_the_fast_path_still_redacts_a_number_beside_a_date() -> None:
    assert redact("2026-12-01 전화 010-1234-5678") == "2026-12-01 전화 <PHONE>"
    assert redact("mail kim@example.com") == "mail <EMAIL>"
