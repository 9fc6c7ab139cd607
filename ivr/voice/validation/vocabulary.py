"""Phrase words the speech model does not know: Vosk silently ignores them, so each is a warning naming it.

The word lists come from the ``Context`` (``context.vocabulary``, a lookup per language); reading them from
the model packs is ``ivr.voice.validation.context``'s business.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from asr.text import normalize_phrase, phrase_words
from ivr.voice.flow import Flow
from ivr.voice.validation.problems import Checker

if TYPE_CHECKING:
    from ivr.voice.validation.context import Context

log = logging.getLogger(__name__)


def check_vocabulary(checker: Checker, flow: Flow, context: Context | None) -> None:
    if context is None or context.vocabulary is None:
        return
    for language in flow.languages:
        try:
            vocabulary = context.vocabulary(language)
        except Exception as exc:  # a broken model folder: the other checks still count
            log.warning("vocabulary of %s not read: %s", language, exc)
            vocabulary = None
        if not vocabulary:
            continue
        phrases: list[tuple[tuple[str | int, ...], str]] = []
        for intent_id, intent in flow.intents.items():
            phrases += [(("intents", intent_id, "phrases", language, i), p)
                        for i, p in enumerate(intent.phrases.get(language, []))]
            phrases += [(("intents", intent_id, "variants", i, "phrase"), v.phrase)
                        for i, v in enumerate(intent.variants) if v.language == language]
        for word in ("yes", "no"):
            phrases += [(("confirmation", word, language, i), p)
                        for i, p in enumerate(getattr(flow.confirmation, word).get(language, []))]
        for where, phrase in phrases:
            words = phrase_words(phrase)
            unknown = [w for w in words if w not in vocabulary]
            if not unknown:
                continue
            kept = [w for w in words if w in vocabulary]
            listed = ", ".join(repr(w) for w in unknown)
            effect = (f"the phrase is heard as {' '.join(kept)!r}" if kept
                      else "the phrase can never be recognized" + (" (only keys reach it)"
                                                                   if where[0] == "intents" else ""))
            checker.at("warning", where,
                       f"{listed} {'is' if len(unknown) == 1 else 'are'} not in the {language} speech model's "
                       f"vocabulary: Vosk ignores {'it' if len(unknown) == 1 else 'them'}, so {effect}; "
                       f"rephrase with known words (phrase {normalize_phrase(phrase)!r})")
