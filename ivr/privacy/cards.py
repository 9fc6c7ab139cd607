"""What a secure capture accepts, per kind of secret. Pure: no I/O, no project imports.

The digits checked here are never kept: the caller of these functions passes them on to the verifier and drops them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum


class SecretKind(StrEnum):
    """What a ``secure_digits`` node collects."""

    CARD = "card"
    EXPIRY = "expiry"
    PIN = "pin"
    OTP = "otp"


@dataclass(frozen=True, slots=True)
class DigitRule:
    """How many digits a kind takes, and when the entry is complete without a terminator."""

    min_digits: int
    """Fewest digits that can be valid."""
    max_digits: int
    """Most digits: the entry ends by itself when it reaches this many."""


RULES: dict[SecretKind, DigitRule] = {
    SecretKind.CARD: DigitRule(13, 19),
    SecretKind.EXPIRY: DigitRule(4, 4),
    SecretKind.PIN: DigitRule(4, 6),
    SecretKind.OTP: DigitRule(6, 6),
}


def luhn_ok(digits: str) -> bool:
    """The Luhn check of a card number (ISO/IEC 7812): every second digit from the right doubled."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def expiry_ok(digits: str, now: float | None = None) -> bool:
    """MMYY, a real month, not in the past (a card is good through the end of its month), at most 20 years ahead."""
    if len(digits) != 4 or not digits.isdigit():
        return False
    month, year = int(digits[:2]), 2000 + int(digits[2:])
    if not 1 <= month <= 12:
        return False
    today = time.gmtime(time.time() if now is None else now)
    current = today.tm_year * 12 + today.tm_mon
    return current <= year * 12 + month <= current + 20 * 12


def entry_problem(kind: SecretKind, digits: str, now: float | None = None) -> str | None:
    """Why an entry cannot be right, without repeating it (None: it may be; the verifier decides)."""
    rule = RULES[kind]
    if not digits:
        return "nothing keyed"
    if not digits.isdigit():
        return "only digits are accepted"
    if not rule.min_digits <= len(digits) <= rule.max_digits:
        want = (f"{rule.min_digits}" if rule.min_digits == rule.max_digits
                else f"{rule.min_digits} to {rule.max_digits}")
        return f"{len(digits)} digits keyed, {want} expected"
    if kind is SecretKind.CARD and not luhn_ok(digits):
        return "the card number's check digit does not match (Luhn)"
    if kind is SecretKind.EXPIRY and not expiry_ok(digits, now):
        return "not a valid expiry date (MMYY, not past)"
    return None


def last4(kind: SecretKind, digits: str) -> str | None:
    """The last four digits a record may keep: a card's only (PCI DSS allows them; never a PIN's or a code's)."""
    return digits[-4:] if kind is SecretKind.CARD and len(digits) >= 13 else None
