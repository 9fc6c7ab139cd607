"""The flow's structure: YAML that parses, the format, and a graph a caller can always get through.

- YAML: syntax, duplicate keys, aliases that expand without bound (``compose``);
- the format: pydantic's errors of ``ivr.voice.flow`` reworded at their lines (``schema_error``);
- the graph (``check_graph``): every node reachable from the start, an end reachable from every node, no
  loop of nodes that go on by themselves. The ways between nodes are the models' ``exits()``;
- a person within two failures (``check_person``): the fallback queue exists, key 0 is left to it, the agent
  intent can be said in every language.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.voice import flow as flow_models
from ivr.voice.flow import NODE_MODELS, AskNode, Flow, RouteNode
from ivr.voice.validation.problems import Checker, did_you_mean, listing, locate

if TYPE_CHECKING:
    from ivr.voice.validation.context import Context

#: A YAML document whose aliases expand to more values than this is refused (a "billion laughs" flow).
MAX_EXPANDED_VALUES = 200_000
NODE_TYPES = tuple(NODE_MODELS)
#: The key that always reaches a person (the navigator's agent key).
AGENT_KEY = "0"


# --- YAML


def compose(checker: Checker, text: str) -> Node | None:
    """The YAML's node tree, or None with the syntax error added; duplicates and expansion are checked."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(filter(None, [exc.context, exc.problem]))
        checker.error(line, (), f"YAML syntax error: {what}"
                      + (f" (line {line}, column {mark.column + 1})" if mark else ""))
        return None
    except yaml.YAMLError as exc:
        checker.error(None, (), f"YAML syntax error: {exc}")
        return None
    if root is None:
        return None
    _duplicates(checker, root, ())
    if _expanded_size(root, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        checker.error(None, (), f"the YAML expands to more than {MAX_EXPANDED_VALUES:,} values through its "
                      "aliases (&anchor / *alias): write the values out")
    return root


def _duplicates(checker: Checker, node: Node, where: tuple[str | int, ...], seen: set[int] | None = None) -> None:
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
                    checker.error(key.start_mark.line + 1, (*where, name),
                                  f"{name!r} is given twice (also on line {lines[name]}); YAML would keep only "
                                  "the last one: merge them or rename one")
                lines.setdefault(name, key.start_mark.line + 1)
            _duplicates(checker, value, (*where, name if name is not None else "?"), seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _duplicates(checker, item, (*where, index), seen)


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


# --- the format


def schema_error(checker: Checker, error: Any) -> None:
    """One of pydantic's errors, reworded for the admin and located at its line."""
    root = checker.root
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "invalid_key" and loc:  # pydantic locates a bad key by its index
        loc = (*loc[:-1], error.get("input"))
    line, where = locate(root, loc) if root is not None else (None, loc)
    kind = error.get("type", "")
    name = str(where[-1]) if where else ""
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        message = (f"unknown node type {ctx.get('tag')!r}: a node's type is one of {', '.join(NODE_TYPES)}"
                   + did_you_mean(str(ctx.get("tag")), NODE_TYPES))
        where = (*where, "type")
        line = locate(root, where)[0] if root is not None else line
    elif kind == "union_tag_not_found":
        message = f"the node has no type: add `type:` with one of {', '.join(NODE_TYPES)}"
    elif kind == "missing":
        message = f"required field {name!r} is missing"
    elif kind == "extra_forbidden":
        message = f"unknown field {name!r}" + did_you_mean(name, _FIELD_NAMES)
    elif kind in ("string_type", "dict_type", "list_type", "int_type", "float_type", "bool_type"):
        message = f"{error['msg']} (got {_show(value)})"
    else:
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if isinstance(value, bool) or any(isinstance(part, bool) for part in loc):
        message += " — YAML reads unquoted yes/no/on/off as true/false: write \"yes\" in quotes"
    checker.error(line, where, message)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_fields() -> frozenset[str]:
    names: set[str] = set()
    for value in vars(flow_models).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            names |= set(value.model_fields)
    return frozenset(names)


_FIELD_NAMES = _model_fields()


# --- the graph


def check_graph(checker: Checker, flow: Flow) -> None:
    nodes = flow.nodes
    outs = {node_id: [way.target for way in node.exits() if way.target in nodes] for node_id, node in nodes.items()}
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
    can_end = {n for n, node in nodes.items() if node.ends_call}
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
    automatic = {n: [t for t in outs[n] if nodes[t].advances_by_itself]
                 for n, node in nodes.items() if node.advances_by_itself}
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


def ask_nodes(flow: Flow) -> list[tuple[str, AskNode]]:
    """The questions of the flow, in the order of the text."""
    return [(n, node) for n, node in flow.nodes.items() if isinstance(node, AskNode)]


def check_person(checker: Checker, flow: Flow, context: Context | None) -> None:
    asks = ask_nodes(flow)
    if not asks:
        return
    if context is not None and flow.fallback_queue not in context.queues:
        checker.at("error", ("fallback_queue",),
                   f"fallback_queue {flow.fallback_queue!r} is not a queue of Asterisk, yet callers who ask for a "
                   f"person or are not understood {flow.max_failures} times go there (from "
                   f"{', '.join(n for n, _ in asks)}): use one of {listing(context.queues)}"
                   + did_you_mean(flow.fallback_queue, context.queues))
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
