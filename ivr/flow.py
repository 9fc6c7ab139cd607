"""IVR flows as data: the YAML files in dialplans/ that admins edit.

A flow is a graph of nodes. The models below are the format; their JSON Schema
(``Flow.model_json_schema()``) is what editors validate against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LanguageText = dict[str, str]
"""Text per language code, e.g. {"ko": "...", "en": "..."}."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Intent(_Strict):
    """Something a caller may want, with the ways they say it."""

    phrases: dict[str, list[str]] = Field(default_factory=dict, description="example phrases per language")
    dtmf: str | None = Field(default=None, pattern=r"^[0-9*#]$", description="key that selects this intent")


class AskNode(_Strict):
    """Prompt, then listen for speech and keys at once."""

    type: Literal["ask"]
    prompt: LanguageText
    reprompt: LanguageText | None = None
    routes: dict[str, str] = Field(description="intent id -> next node id")
    no_input_s: float = Field(default=6.0, gt=0, le=30, description="silence before a no-input turn")
    max_speech_s: float = Field(default=10.0, gt=0, le=60)


class RouteNode(_Strict):
    """Hand the call to a queue of people."""

    type: Literal["route"]
    queue: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    skills: list[str] = Field(default_factory=list)
    priority: int = Field(default=0, ge=0, le=100)
    prompt: LanguageText | None = None


class HangupNode(_Strict):
    """Say goodbye and end the call."""

    type: Literal["hangup"]
    prompt: LanguageText | None = None


Node = Annotated[AskNode | RouteNode | HangupNode, Field(discriminator="type")]


class Flow(_Strict):
    """One IVR flow."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    languages: list[str] = Field(min_length=1)
    start: str
    fallback_queue: str = Field(default="general", pattern=r"^[a-z][a-z0-9_]*$")
    intents: dict[str, Intent]
    nodes: dict[str, Node]

    @model_validator(mode="after")
    def _references_exist(self) -> Flow:
        if self.start not in self.nodes:
            raise ValueError(f"start node {self.start!r} is not defined")
        for node_id, node in self.nodes.items():
            if isinstance(node, AskNode):
                for intent_id, target in node.routes.items():
                    if intent_id not in self.intents:
                        raise ValueError(f"node {node_id!r} routes unknown intent {intent_id!r}")
                    if target not in self.nodes:
                        raise ValueError(f"node {node_id!r} routes {intent_id!r} to unknown node {target!r}")
        return self

    def phrases(self, intent_ids: list[str], language: str) -> dict[str, list[str]]:
        return {i: self.intents[i].phrases.get(language, []) for i in intent_ids}


class FlowError(ValueError):
    """A flow file that cannot be used; the message names the file and the problem."""


def load_flow(path: Path) -> Flow:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FlowError(f"{path}: {exc}") from None
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise FlowError(f"{path}: {problems}") from None
