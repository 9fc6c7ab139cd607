"""One redaction step for text the house writes: transcripts, notes, dispositions, tickets, exports.

Built on Microsoft Presidio's analyzer (``presidio-analyzer``) in a pattern-only configuration: its
no-op NLP engine loads no spaCy model (nothing is downloaded at run time), and every recognizer here is a pattern or
a checksum, so a text costs a fraction of a millisecond. What is found is replaced by a tag naming what it was
(overlapping finds merged into one span, tagged with the more specific; Presidio's anonymizer is not needed for that):

- ``<RRN>``: Korean resident (and foreigner) registration numbers, YYMMDD-NNNNNNN with or without the hyphen: a
  real date of birth and a gender/century digit (Presidio's ``KrRrnRecognizer``, ``KrFrnRecognizer``).
- ``<PHONE>``: phone numbers: Korean mobiles (010-1234-5678) and landlines (02-123-4567), +82 and other
  international numbers, validated by Google's libphonenumber (Presidio's ``PhoneRecognizer``).
- ``<CARD>``: card numbers, 13–19 digits, spaced or hyphenated, passing the Luhn check (any issuer prefix: Korean
  domestic cards start with 9).
- ``<ACCOUNT>``: bank account numbers: Korean hyphenated forms (110-123-456789, 123456-78-901234), bare runs of
  10–14 digits that are not an amount, and IBANs (Presidio's ``IbanRecognizer``).
- ``<EMAIL>``: e-mail addresses.
- ``<NUMBER>``: a number spoken as Korean digit words ("공일공 일이삼사 ..."), nine syllables or more.

Not redacted (near-misses): dates (2024-05-12, 20240512), amounts (1,000,000원, 50000원, ₩2,500,000), times, short
numbers (an extension, a 6-digit code said aloud in digits is left: it is not personal data by itself).

Texts are cached (a record is saved many times per call with the same turns); the cache lives in the process only.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ivr.privacy.cards import luhn_ok

TAGS = {
    "KR_RRN": "<RRN>", "KR_FRN": "<RRN>", "PHONE_NUMBER": "<PHONE>", "CARD_NUMBER": "<CARD>",
    "ACCOUNT_NUMBER": "<ACCOUNT>", "IBAN_CODE": "<ACCOUNT>", "EMAIL_ADDRESS": "<EMAIL>", "SPOKEN_NUMBER": "<NUMBER>",
}
"""Presidio entity -> the tag that replaces it."""

PHONE_REGIONS = ("KR", "US", "GB", "JP", "CN")
"""Regions whose national formats are recognized without a + prefix (any +country number is recognized anyway)."""

SCORE_THRESHOLD = 0.3
LANGUAGE = "ko"
"""Presidio's recognizers are registered per language; one registry serves Korean and English text alike."""

_DIGIT_WORD = "공영일이삼사오육륙칠팔구"
_SPOKEN = f"(?:[{_DIGIT_WORD}]\\s*){{8,}}[{_DIGIT_WORD}]"
_MAY_CONTAIN = re.compile(rf"\d|@|{_SPOKEN}")
"""A text with no digit, no @ and no run of digit words has nothing to find: skipped without Presidio."""
_SPOKEN_RUN = re.compile(_SPOKEN)
MIN_DIGITS = 7
"""The fewest digits any recognized number has (a local phone number, 123-4567): a text with fewer digits, no @
and no run of digit words has nothing to find (a report's day, version or count), and costs no Presidio import."""
_DATE_OR_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
"""A bare date or timestamp (a report's day column) is not personal data."""


class _Engines:
    """Presidio's analyzer, built once per process on first use (importing Presidio takes ~1 s)."""

    _lock = threading.Lock()
    _built: Any = None

    @classmethod
    def get(cls) -> Any:
        with cls._lock:
            if cls._built is None:
                cls._built = _build()
            return cls._built


def _build() -> Any:
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import IbanRecognizer, PhoneRecognizer
    from presidio_analyzer.predefined_recognizers.country_specific.korea.kr_frn_recognizer import KrFrnRecognizer
    from presidio_analyzer.predefined_recognizers.country_specific.korea.kr_rrn_recognizer import KrRrnRecognizer

    class CardRecognizer(PatternRecognizer):  # type: ignore[misc]
        """Any 13–19 digit run (issuer prefixes vary: Korean domestic cards start with 9) that passes Luhn."""

        def validate_result(self, pattern_text: str) -> bool:
            return luhn_ok(re.sub(r"\D", "", pattern_text))

    class AccountRecognizer(PatternRecognizer):  # type: ignore[misc]
        """Korean account numbers: 10–14 digits in 2–4 hyphenated groups, or a bare run that is not an amount."""

        def validate_result(self, pattern_text: str) -> bool:
            return 10 <= sum(c.isdigit() for c in pattern_text) <= 14

    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.add_recognizer(KrRrnRecognizer(supported_language=LANGUAGE))
    registry.add_recognizer(KrFrnRecognizer(supported_language=LANGUAGE))
    registry.add_recognizer(PhoneRecognizer(supported_language=LANGUAGE, supported_regions=PHONE_REGIONS, leniency=1))
    registry.add_recognizer(IbanRecognizer(supported_language=LANGUAGE))
    registry.add_recognizer(CardRecognizer(
        supported_entity="CARD_NUMBER", supported_language=LANGUAGE, name="CardRecognizer",
        patterns=[Pattern("card", r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])", 0.3)]))
    amount_after = r"(?!\s*(?:원|만|억|won|krw|usd|달러|불|%))"
    registry.add_recognizer(AccountRecognizer(
        supported_entity="ACCOUNT_NUMBER", supported_language=LANGUAGE, name="AccountRecognizer",
        patterns=[Pattern("hyphenated", r"(?<![\d-])\d{2,6}(?:-\d{2,7}){1,3}(?![\d-])" + amount_after, 0.35),
                  Pattern("bare", r"(?<![\d,.₩$-])\d{10,14}(?![\d,.-])" + amount_after, 0.35)]))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="EMAIL_ADDRESS", supported_language=LANGUAGE, name="EmailRecognizer",
        patterns=[Pattern("email", r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?![\w-])", 0.9)]))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="SPOKEN_NUMBER", supported_language=LANGUAGE, name="SpokenNumberRecognizer",
        patterns=[Pattern("korean digit words", _SPOKEN, 0.5)]))
    nlp = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=[LANGUAGE])
    return analyzer


def warm_up() -> None:
    """Build Presidio now (about 1 s): a process that redacts on its event loop must not pay that mid-call."""
    _Engines.get()
    spans("warm-up 010-0000-0000")


def spans(text: str) -> list[tuple[int, int, str]]:
    """What in `text` is personal data: (start, end, tag), in order, overlaps merged to the widest."""
    if not text or not _MAY_CONTAIN.search(text):
        return []
    if "@" not in text and not _SPOKEN_RUN.search(text) and (
            sum(c.isdigit() for c in text) < MIN_DIGITS or _DATE_OR_TIME.fullmatch(text.strip())):
        return []
    analyzer = _Engines.get()
    found = sorted((r.start, r.end, TAGS.get(r.entity_type, "<PII>"))
                   for r in analyzer.analyze(text=text, language=LANGUAGE, score_threshold=SCORE_THRESHOLD)
                   if not _is_amount(text, r.start, r.end))
    merged: list[tuple[int, int, str]] = []
    for start, end, tag in found:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            # Overlapping finds: one span covering both, tagged with the more specific of the two.
            keep = min(tag, last[2], key=_PRIORITY.index)
            merged[-1] = (last[0], max(end, last[1]), keep)
        else:
            merged.append((start, end, tag))
    return merged


_PRIORITY = ["<RRN>", "<CARD>", "<PHONE>", "<EMAIL>", "<ACCOUNT>", "<NUMBER>", "<PII>"]
_AMOUNT_AFTER = re.compile(r"\s*(?:원|만|억|천|won|krw|usd|달러|불|%)", re.IGNORECASE)
_AMOUNT_BEFORE = re.compile(r"(?:₩|\$|krw|usd)\s*$", re.IGNORECASE)


def _is_amount(text: str, start: int, end: int) -> bool:
    """A number written as money ("1000000000원", "₩ 25000000") is an amount, whatever else its digits could be."""
    return bool(_AMOUNT_AFTER.match(text, end) or _AMOUNT_BEFORE.search(text[max(0, start - 5):start]))


@functools.lru_cache(maxsize=4096)
def redact(text: str, mask_cards: bool = False) -> str:
    """`text` with every personal number and address replaced by its tag (the same text when there is none).

    `mask_cards`: a card number keeps its first 6 and last 4 digits (``411111******1111``, what PCI DSS lets a
    screen show) instead of ``<CARD>``: for an agent's notes and tickets, where the card matters to the case.
    """
    out, at = [], 0
    for start, end, tag in spans(text):
        out += [text[at:start], mask_card(text[start:end]) if mask_cards and tag == "<CARD>" else tag]
        at = end
    return "".join(out) + text[at:] if out else text


def mask_card(text: str) -> str:
    """A card number's first 6 and last 4 digits, the rest starred."""
    digits = re.sub(r"\D", "", text)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


def redact_words(words: list[dict[str, Any]], key: str = "word") -> list[dict[str, Any]]:
    """A recognizer's word list with every word that is part of a redacted span replaced by the span's tag.

    Numbers are often split over several words ("공일공 일이삼사 오육칠팔"): the words are read together.
    """
    texts = [str(w.get(key, "")) for w in words]
    joined = " ".join(texts)
    found = spans(joined)
    if not found:
        return words
    out, at = [], 0
    for word, text in zip(words, texts, strict=True):
        start, end = at, at + len(text)
        at = end + 1
        tag = next((t for s, e, t in found if s < end and start < e), None)
        out.append({**word, key: tag} if tag else word)
    return out


def redact_texts(items: Iterable[Mapping[str, Any]], key: str = "text") -> list[dict[str, Any]]:
    """Each mapping's `key` redacted (n-best lists: [{text, confidence}])."""
    return [{**item, key: redact(item[key])} if isinstance(item.get(key), str) else dict(item) for item in items]
