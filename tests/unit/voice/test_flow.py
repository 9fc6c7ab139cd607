"""Flow files: the shipped hotline loads; broken files fail with the file and the problem named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.config import PROJECT_DIR
from ivr.voice.flow import AskNode, Flow, FlowError, HangupNode, RouteNode, load_flow

HOTLINE = PROJECT_DIR / "dialplans" / "hotline.yaml"

MINIMAL: dict[str, Any] = {
    "id": "test",
    "languages": ["en"],
    "start": "menu",
    "confirmation": {"yes": {"en": ["yes"]}, "no": {"en": ["no"]}},
    "messages": {"not_understood": {"en": "Sorry."}, "to_person": {"en": "Hold on."},
                 "keys_only": {"en": "Use keys."}},
    "intents": {"yes": {"phrases": {"en": ["yes"]}, "dtmf": "1"}, "agent": {"phrases": {"en": ["agent"]}}},
    "nodes": {
        "menu": {"type": "ask", "prompt": {"en": "Say yes"}, "routes": {"yes": "done"}},
        "done": {"type": "hangup"},
    },
}


def write_flow(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = copy.deepcopy(MINIMAL)
    change(data)
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_shipped_hotline_loads() -> None:
    flow = load_flow(HOTLINE)
    assert flow.id == "hotline"
    assert flow.start == "main_menu"
    assert flow.languages == ["ko", "en"]
    assert flow.fallback_queue == "general"
    assert {"main_menu", "balance", "after_balance", "complaint_callback", "to_cards", "to_loans", "to_payments",
            "to_complaints", "to_general", "goodbye", "activate_card", "card_activated"} == set(flow.nodes)
    menu = flow.nodes["main_menu"]
    assert isinstance(menu, AskNode)
    assert menu.routes["lost_card"] == "to_cards"
    cards = flow.nodes["to_cards"]
    assert isinstance(cards, RouteNode)
    assert (cards.queue, cards.skills, cards.priority) == ("cards", ["cards"], 10)
    assert {i: intent.dtmf for i, intent in flow.intents.items()} == {
        "balance": "1", "lost_card": "2", "loan": "3", "transfer": "4",
        "password": "5", "complaint": "6", "agent": "0", "finish": "9", "card_activation": "7",
    }
    # Every intent has the canonical Korean phrase of the demo and an English one.
    canonical = {"balance": "잔액 조회", "lost_card": "카드 분실 신고", "loan": "대출 상담", "transfer": "계좌 이체",
                 "password": "비밀번호 변경", "agent": "상담원 연결"}
    for intent, phrase in canonical.items():
        assert phrase in flow.intents[intent].phrases["ko"]
        assert flow.intents[intent].phrases["en"]
    assert flow.phrases(["complaint"], "fr") == {"complaint": []}
    # The way to a person is offered at every question, even where the flow does not route it.
    after = flow.nodes["after_balance"]
    assert isinstance(after, AskNode)
    assert "agent" in flow.intent_ids(after)
    assert "상담원 연결" in flow.grammar_phrases(after, "ko")
    assert "아니요" not in flow.grammar_phrases(after, "ko")
    assert "아니요" in flow.grammar_phrases(after, "ko", corrections=True)  # corrections begin with a no


def test_minimal_flow_loads(tmp_path: Path) -> None:
    flow = load_flow(write_flow(tmp_path, lambda d: None))
    assert isinstance(flow.nodes["done"], HangupNode)
    assert flow.nodes["menu"].listen.no_input_s == 6.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(
            lambda d: d["nodes"]["done"].update(type="play"),
            "nodes.done: Input tag 'play' found using 'type' does not match any of the expected tags: "
            "'ask', 'say', 'self_service', 'route', 'transfer', 'callback_offer', 'hangup', 'secure_digits'",
            id="unknown-node-type",
        ),
        pytest.param(
            lambda d: d["nodes"]["menu"]["routes"].update(yes="nowhere"),
            "(top): Value error, node 'menu' routes 'yes' to unknown node 'nowhere'",
            id="route-to-unknown-node",
        ),
        pytest.param(
            lambda d: d["nodes"]["menu"]["routes"].update(maybe="done"),
            "(top): Value error, node 'menu' routes unknown intent 'maybe'",
            id="unknown-intent",
        ),
        pytest.param(lambda d: d.pop("start"), "start: Field required", id="missing-start"),
        pytest.param(
            lambda d: d.update(start="nowhere"),
            "(top): Value error, start node 'nowhere' is not defined",
            id="undefined-start",
        ),
        pytest.param(
            lambda d: d["intents"]["yes"].update(dtmf="12"),
            "intents.yes.dtmf: String should match pattern '^[0-9*#]$'",
            id="bad-dtmf",
        ),
        pytest.param(
            lambda d: d.update(colour="blue"),
            "colour: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            lambda d: d["nodes"].update(q={"type": "route", "queue": "Cards Desk"}),
            "nodes.q.route.queue: String should match pattern '^[a-z][a-z0-9_]*$'",
            id="bad-queue-name",
        ),
    ],
)
def test_invalid_flow_names_file_and_problem(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    path = write_flow(tmp_path, change)
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value) == f"{path}: {problem}"


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: [unclosed\nnodes: {\n", encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "expected ',' or ']'" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value) == f"{path}: (top): Input should be a valid dictionary or instance of Flow"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "No such file or directory" in str(info.value)


def test_flow_error_is_a_value_error() -> None:
    assert issubclass(FlowError, ValueError)


def test_json_schema() -> None:
    schema = Flow.model_json_schema()
    assert isinstance(schema, dict)
    assert {"id", "languages", "start", "fallback_queue", "agent_intent", "max_failures", "language", "thresholds",
            "confirmation", "messages", "hold", "intents", "nodes"} == set(schema["properties"])
    assert set(schema["required"]) == {"id", "languages", "start", "confirmation", "messages", "intents", "nodes"}
    node_types = {ref["$ref"].rsplit("/", 1)[1] for ref in
                  schema["properties"]["nodes"]["additionalProperties"]["oneOf"]}
    assert node_types == {"AskNode", "SayNode", "SelfServiceNode", "RouteNode", "TransferNode", "CallbackOfferNode",
                          "HangupNode", "SecureDigitsNode"}
    assert schema["additionalProperties"] is False
