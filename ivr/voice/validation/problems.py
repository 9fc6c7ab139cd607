"""What validation reports and where: ``Problem`` and ``Report``, and locating a problem in the admin's YAML.

``Checker`` collects the problems of one flow text; each check module adds to it. A problem's line comes from
PyYAML's composed nodes (``locate``), so it points at the text the admin typed even when pydantic's location
of it differs (a discriminated union's tag, a key located by its index).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.voice.flow import Flow

Severity = Literal["error", "warning"]
"""Errors keep a flow from being published; warnings do not."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a look) in a flow."""

    severity: Severity
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


class Checker:
    """The problems of one flow text as the checks find them, each located in the text."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.root: Node | None = None
        """The composed YAML, once it parsed: what problems are located in."""

    def report(self, flow: Flow | None) -> Report:
        ordered = sorted(self.problems, key=lambda p: (p.line is None, p.line or 0, p.severity != "error"))
        return Report(flow=flow, problems=ordered)

    def add(self, severity: Severity, line: int | None, where: Sequence[str | int], message: str) -> None:
        problem = Problem(severity, message, self.file, line, path_text(where))
        if problem not in self.problems:
            self.problems.append(problem)

    def error(self, line: int | None, where: Sequence[str | int], message: str) -> None:
        self.add("error", line, where, message)

    def warn(self, line: int | None, where: Sequence[str | int], message: str) -> None:
        self.add("warning", line, where, message)

    def at(self, severity: Severity, where: Sequence[str | int], message: str) -> None:
        """A problem at a place of the flow, located in the text."""
        self.add(severity, self.line_of(where), where, message)

    def line_of(self, where: Sequence[str | int]) -> int | None:
        return locate(self.root, where)[0] if self.root is not None else None


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


# --- wording shared by the checks


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint naming the closest of ``choices`` (" (did you mean 'cards'?)"), or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def listing(names: Iterable[str]) -> str:
    """Names sorted and comma-separated, or "none"."""
    ordered = sorted(names)
    return ", ".join(ordered) if ordered else "none"
