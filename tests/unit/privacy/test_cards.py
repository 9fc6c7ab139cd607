"""What a secure capture accepts: Luhn, expiry, lengths per kind; what a record may keep."""

from __future__ import annotations

import calendar

import pytest

from ivr.privacy.cards import SecretKind, entry_problem, expiry_ok, last4, luhn_ok

NOW = calendar.timegm((2026, 11, 24, 12, 0, 0))


@pytest.mark.parametrize(("number", "ok"), [
    ("4111111111111111", True), ("4111111111111112", False), ("5555555555554444", True),
    ("378282246310005", True), ("9410123456780001", True), ("", False), ("41111111111111a1", False),
])
def test_luhn(number, ok):
    assert luhn_ok(number) is ok


@pytest.mark.parametrize(("mmyy", "ok"), [
    ("1126", True), ("1226", True), ("1026", False), ("0027", False), ("1327", False), ("0146", True),
    ("0147", False), ("112", False), ("11a6", False),
])
def test_expiry(mmyy, ok):
    assert expiry_ok(mmyy, NOW) is ok


@pytest.mark.parametrize(("kind", "digits", "problem"), [
    (SecretKind.CARD, "4111111111111111", None),
    (SecretKind.CARD, "4111111111111112", "Luhn"),
    (SecretKind.CARD, "411111111111", "12 digits keyed, 13 to 19 expected"),
    (SecretKind.CARD, "4" * 20, "20 digits keyed"),
    (SecretKind.CARD, "", "nothing keyed"),
    (SecretKind.EXPIRY, "1126", None),
    (SecretKind.EXPIRY, "1326", "not a valid expiry"),
    (SecretKind.PIN, "1234", None), (SecretKind.PIN, "123456", None), (SecretKind.PIN, "123", "4 to 6 expected"),
    (SecretKind.OTP, "123456", None), (SecretKind.OTP, "12345", "6 expected"),
])
def test_entry_problem_names_what_is_wrong_never_the_digits(kind, digits, problem):
    found = entry_problem(kind, digits, NOW)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        assert not digits or digits not in found


def test_only_a_cards_last_four_are_kept():
    assert last4(SecretKind.CARD, "4111111111111111") == "1111"
    assert last4(SecretKind.PIN, "123456") is None and last4(SecretKind.OTP, "123456") is None
    assert last4(SecretKind.EXPIRY, "1126") is None
