"""What the flow means: its names exist outside it, every language is spoken, no answer is claimed twice.

- outside the flow (``check_outside``): queues in asterisk_conf/queues.conf, skills of the agent directory,
  transfer targets among the extensions (all from the ``Context``), placeholders a prompt may fill in;
- languages (``check_languages``): every declared language has every prompt;
- conflicts (``check_conflicts``): no key or phrase claimed by two intents of the same question;
- the rest (``check_misc``): thresholds in order, intents some question routes.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from ivr.voice.flow import Flow, RouteNode, SecureDigitsNode, SelfServiceNode, TransferNode
from ivr.voice.understanding import compact
from ivr.voice.validation.problems import Checker, did_you_mean, listing
from ivr.voice.validation.structure import ask_nodes

if TYPE_CHECKING:
    from ivr.voice.validation.context import Context

#: What a self-service prompt may fill in (ivr.voice.navigator), and the hold announcement (ivr.routing.acd).
SELF_SERVICE_PLACEHOLDERS = frozenset({"balance", "balance_words", "name"})
HOLD_POSITION_PLACEHOLDERS = frozenset({"position", "minutes"})


# --- what exists outside the flow


def check_outside(checker: Checker, flow: Flow, context: Context | None) -> None:
    for node_id, node in flow.nodes.items():
        where = ("nodes", node_id)
        if context is not None:
            for field_name in ("queue", "fallback_queue"):
                queue = getattr(node, field_name, None)
                if queue is not None and queue not in context.queues:
                    checker.at("error", (*where, field_name),
                               f"queue {queue!r} does not exist in Asterisk (asterisk_conf/queues.conf has "
                               f"{listing(context.queues)})" + did_you_mean(queue, context.queues)
                               + ": add [q_" + queue + "] there or pick an existing queue")
            if isinstance(node, RouteNode) and context.skills is not None:
                for index, skill in enumerate(node.skills):
                    if skill not in context.skills:
                        checker.at("error", (*where, "skills", index),
                                   f"skill {skill!r}: no agent of the directory has it (skills: "
                                   f"{listing(context.skills)})" + did_you_mean(skill, context.skills))
            if isinstance(node, TransferNode) and context.agents is not None and node.target not in context.agents:
                checker.at("error", (*where, "target"),
                           f"extension {node.target!r} is no agent's desk or mobile extension (known: "
                           f"{listing(context.agents)})")
        if isinstance(node, SelfServiceNode):
            for language, text in node.prompt.items():
                _check_placeholders(checker, (*where, "prompt", language), text, SELF_SERVICE_PLACEHOLDERS)
    for language, text in flow.hold.position.items():
        _check_placeholders(checker, ("hold", "position", language), text, HOLD_POSITION_PLACEHOLDERS)


def _check_placeholders(checker: Checker, where: tuple[str, ...], text: str, allowed: frozenset[str]) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        checker.at("error", where, f"{exc} in {text!r}: placeholders are written {{name}}, a brace as {{{{ or }}}}")
        return
    for name in sorted(names):
        if name not in allowed:
            checker.at("error", where, f"placeholder {{{name}}} is not filled in here (available: "
                       f"{', '.join('{' + a + '}' for a in sorted(allowed))})" + did_you_mean(name, allowed))


# --- languages


def check_languages(checker: Checker, flow: Flow) -> None:
    declared = list(flow.languages)
    required: list[tuple[tuple[str, ...], dict[str, str] | None]] = [
        (("messages", "not_understood"), flow.messages.not_understood),
        (("messages", "to_person"), flow.messages.to_person),
        (("messages", "keys_only"), flow.messages.keys_only),
        (("hold", "position"), flow.hold.position),
        (("hold", "callback_offer"), flow.hold.callback_offer),
        (("hold", "callback_accepted"), flow.hold.callback_accepted),
    ]
    optional: list[tuple[tuple[str, ...], dict[str, str] | None]] = []
    for node_id, node in flow.nodes.items():
        for name in ("prompt", "unavailable", "accepted", "reprompt", "invalid"):
            value = getattr(node, name, None)
            fields = type(node).model_fields
            must = name in fields and fields[name].is_required()
            (required if must else optional).append((("nodes", node_id, name), value))
    for intent_id, intent in flow.intents.items():
        optional.append((("intents", intent_id, "confirm"), intent.confirm or None))
        optional.append((("intents", intent_id, "examples"), intent.examples or None))
    for where, texts in required + [(w, t) for w, t in optional if t]:
        texts = texts or {}
        for language in declared:
            if not (texts.get(language) or "").strip():
                checker.at("error", where, f"no {language!r} text: callers in {language} would hear nothing here"
                           + (" (every prompt needs each of the flow's languages)" if texts else ""))
        for language in texts:
            if language not in declared:
                checker.at("warning", (*where, language),
                           f"text in {language!r}, which is not one of the flow's languages {declared}")
    for word in ("yes", "no"):
        answers = getattr(flow.confirmation, word)
        for language in declared:
            if not answers.get(language):
                checker.at("warning", ("confirmation", word),
                           f"no {language!r} words for {word!r}: callers in {language} can answer only with keys")


# --- conflicts within a question


def check_conflicts(checker: Checker, flow: Flow) -> None:
    for node_id, node in ask_nodes(flow):
        intents = [i for i in flow.intent_ids(node) if i in flow.intents]
        keys: dict[str, str] = {}
        for intent_id in intents:
            key = flow.intents[intent_id].dtmf
            if key is None:
                continue
            if key in keys:
                checker.at("error", ("nodes", node_id, "routes", intent_id),
                           f"key {key} is claimed by intents {keys[key]!r} and {intent_id!r} at {node_id!r}: "
                           "a key may choose only one intent in a question")
            else:
                keys[key] = intent_id
        for language in flow.languages:
            said: dict[str, tuple[str, str]] = {}
            for intent_id in intents:
                intent = flow.intents[intent_id]
                entries: list[tuple[tuple[str | int, ...], str]] = [
                    (("intents", intent_id, "phrases", language, i), p)
                    for i, p in enumerate(intent.phrases.get(language, []))]
                entries += [(("intents", intent_id, "variants", i, "phrase"), v.phrase)
                            for i, v in enumerate(intent.variants) if v.language == language]
                for where, phrase in entries:
                    form = compact(phrase)
                    if not form:
                        continue
                    other = said.get(form)
                    if other is not None and other[0] != intent_id:
                        checker.at("error", where,
                                   f"phrase {phrase!r} ({language}) is claimed by intents {other[0]!r} "
                                   f"({other[1]!r}) and {intent_id!r} at {node_id!r}: callers saying it would get "
                                   "either; keep it in one intent")
                    else:
                        said.setdefault(form, (intent_id, phrase))


# --- the rest


def check_misc(checker: Checker, flow: Flow) -> None:
    if flow.thresholds.confirm > flow.thresholds.act:
        checker.at("error", ("thresholds", "confirm"),
                   f"confirm ({flow.thresholds.confirm}) is above act ({flow.thresholds.act}): the engine would "
                   "act on intents it should confirm; keep confirm at or below act")
    used = {intent for _, node in ask_nodes(flow) for intent in node.routes} | {flow.agent_intent}
    for intent_id in flow.intents:
        if intent_id not in used:
            checker.at("warning", ("intents", intent_id),
                       f"intent {intent_id!r} is not routed by any ask node (callers cannot choose it)")


# --- secure card capture


def check_secure(checker: Checker, flow: Flow) -> None:
    """A secure node that cannot check the entry (verifier down) must offer a person, and says so."""
    for node_id, node in flow.nodes.items():
        if not isinstance(node, SecureDigitsNode):
            continue
        target = flow.nodes.get(node.on_unavailable)
        if target is not None and not isinstance(target, RouteNode | TransferNode):
            kind = getattr(target, "type", "?")
            checker.at("warning", ("nodes", node_id, "on_unavailable"),
                       f"when the card verifier gives no answer the caller is told so and should be offered a "
                       f"person, but on_unavailable leads to {node.on_unavailable!r}, a {kind} node: "
                       "lead it to a route or transfer node")
        if node.what in ("card", "pin") and not any("#" in text for text in node.prompt.values()) and \
                not any(word in text for text in node.prompt.values() for word in ("우물정", "hash", "pound")):
            checker.at("warning", ("nodes", node_id, "prompt"),
                       f"a {node.what} entry of varying length ends with # (or after {node.inter_digit_s:g} s "
                       "without a key): tell the caller to press # (우물정자) in the prompt")
