"""``validate_text``: the checks of the package, in order, on one flow text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from ivr.voice.flow import MAX_FLOW_BYTES, Flow
from ivr.voice.validation.problems import Checker, Report
from ivr.voice.validation.semantics import (
    check_conflicts,
    check_languages,
    check_misc,
    check_outside,
    check_secure,
)
from ivr.voice.validation.structure import check_graph, check_person, compose, schema_error
from ivr.voice.validation.vocabulary import check_vocabulary

if TYPE_CHECKING:
    from ivr.voice.validation.context import Context


def validate_text(text: str, file: str = "<editor>", context: Context | None = None) -> Report:
    """Every problem of a flow text; ``Report.ok`` says whether it may be published."""
    checker = Checker(file)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FLOW_BYTES:
        checker.error(None, (), f"the flow is {size:,} bytes; a flow may be at most {MAX_FLOW_BYTES:,} bytes: "
                      "split it into several flows or remove what is not used")
        return checker.report(None)
    root = compose(checker, text)
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
            schema_error(checker, error)
        return checker.report(None)
    for where, message in flow.reference_problems():
        checker.error(checker.line_of(where), where, message)
    references_ok = not checker.problems
    check_graph(checker, flow)
    check_person(checker, flow, context)
    check_outside(checker, flow, context)
    check_languages(checker, flow)
    check_conflicts(checker, flow)
    check_vocabulary(checker, flow, context)
    check_misc(checker, flow)
    check_secure(checker, flow)
    return checker.report(flow if references_ok else None)
