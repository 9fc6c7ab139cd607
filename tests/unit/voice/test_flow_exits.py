"""A node's exits, declared once on the flow models (ivr.voice.flow), are what the validator and the diagram follow."""

from __future__ import annotations

from pathlib import Path

import yaml

from ivr.voice.flow import (
    NODE_MODELS,
    CallbackOfferNode,
    Exit,
    Flow,
    HangupNode,
    RouteNode,
    SayNode,
    TransferNode,
    node_exits,
    parse_flow,
)
from ivr.voice.validation import validate_text

HOTLINE = Path(__file__).resolve().parents[3] / "dialplans" / "hotline.yaml"
PROMPT = {"ko": "안내", "en": "Notice"}


def reachable(flow: Flow) -> set[str]:
    """The nodes a call can get to from the start, following nothing but the models' exits."""
    seen, todo = {flow.start}, [flow.start]
    while todo:
        for way in flow.nodes[todo.pop()].exits():
            if way.target in flow.nodes and way.target not in seen:
                seen.add(way.target)
                todo.append(way.target)
    return seen


def test_each_node_type_of_the_hotline_has_its_exits() -> None:
    flow = parse_flow(HOTLINE.read_text(encoding="utf-8"))
    nodes = flow.nodes
    assert nodes["after_balance"].exits() == (Exit("routes", "agent", "to_general", "agent"),
                                              Exit("routes", "finish", "goodbye", "finish"))
    assert [(way.path, way.target) for way in nodes["main_menu"].exits()][:2] == [
        (("routes", "balance"), "balance"), (("routes", "lost_card"), "to_cards")]
    assert nodes["balance"].exits() == (Exit("next", None, "after_balance", ""),
                                        Exit("on_unavailable", None, "to_general", "unavailable"))
    assert nodes["complaint_callback"].exits() == (Exit("next", None, "to_complaints", "declined"),)
    assert nodes["to_cards"].exits() == nodes["goodbye"].exits() == ()
    # The types the hotline does not use.
    assert SayNode(type="say", prompt=PROMPT, next="menu").exits() == (Exit("next", None, "menu", ""),)
    assert TransferNode(type="transfer", target="2001").exits() == ()


def test_where_a_call_can_end_and_what_goes_on_by_itself() -> None:
    assert {t for t, model in NODE_MODELS.items() if model.ends_call} == {"route", "transfer", "callback_offer",
                                                                          "hangup"}
    assert {t for t, model in NODE_MODELS.items() if model.advances_by_itself} == {"say", "self_service"}
    assert RouteNode.ends_call and HangupNode.ends_call and CallbackOfferNode.ends_call


def test_the_exits_reach_what_the_validator_finds_reachable() -> None:
    text = HOTLINE.read_text(encoding="utf-8")
    flow = parse_flow(text)
    assert reachable(flow) == set(flow.nodes)
    assert not [p for p in validate_text(text).problems if "cannot be reached" in p.message]
    # Without the complaint route, the exits leave the offer and its queue behind; the validator says the same.
    cut = text.replace("      complaint: complaint_callback\n", "")
    assert cut != text
    flow = Flow.model_validate(yaml.safe_load(cut))
    unreached = {p.path.removeprefix("nodes.") for p in validate_text(cut).errors if "cannot be reached" in p.message}
    assert unreached == set(flow.nodes) - reachable(flow) == {"complaint_callback", "to_complaints"}


def test_the_exits_of_the_text_are_the_exits_of_the_models() -> None:
    text = HOTLINE.read_text(encoding="utf-8")
    flow, data = parse_flow(text), yaml.safe_load(text)
    for node_id, node in flow.nodes.items():
        assert node_exits(data["nodes"][node_id]) == node.exits(), node_id
    # A node as written may be broken: a misspelt type still shows its ways out; targets that are not text do not.
    assert node_exits({"type": "aks", "routes": {"loan": "to_loans", "card": 3}, "next": "menu"}) == (
        Exit("routes", "loan", "to_loans", "loan"), Exit("next", None, "menu", ""))
    assert node_exits({"type": "say", "next": {"loan": "to_loans"}}) == ()
