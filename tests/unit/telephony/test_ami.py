"""AMI header-injection guard: no CR/LF may reach the wire in any action value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.telephony.ami import check_action


def test_normal_action_returned_unchanged_as_a_copy() -> None:
    action = {
        "Action": "Originate",
        "Channel": "Local/s@sim-inbound/n",
        "Priority": "1",
        "Variable": ["SIM_CALLER=01012345678", "X=y"],
        "Timeout": 30000,
    }
    clean = check_action(action)
    assert clean == action
    assert clean is not action
    assert clean["Variable"] == ["SIM_CALLER=01012345678", "X=y"]


@pytest.mark.parametrize("bad", ["a\r\nAction: Command", "a\nCommand: core stop now", "a\rb"])
def test_line_break_in_plain_value_refused_naming_field(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        check_action({"Action": "Setvar", "Channel": "PJSIP/1", "Value": bad})
    assert str(info.value) == "AMI Setvar field 'Value' contains a line break"


def test_line_break_in_list_value_refused() -> None:
    with pytest.raises(ValueError) as info:
        check_action({"Action": "Originate", "Variable": ["A=1", "B=2\r\nAction: Command"]})
    assert str(info.value) == "AMI Originate field 'Variable' contains a line break"


def test_line_break_in_tuple_value_refused() -> None:
    with pytest.raises(ValueError, match="field 'Variable'"):
        check_action({"Action": "Originate", "Variable": ("A=1", "B=\n")})


def test_line_break_in_action_name_refused_without_action_key() -> None:
    with pytest.raises(ValueError) as info:
        check_action({"Channel": "x\n"})
    assert str(info.value) == "AMI ? field 'Channel' contains a line break"


def test_non_string_values_are_checked_by_their_text() -> None:
    class Sneaky:
        def __str__(self) -> str:
            return "1\r\nAction: Command"

    with pytest.raises(ValueError, match="field 'Cause'"):
        check_action({"Action": "Hangup", "Cause": Sneaky()})


@given(st.dictionaries(st.sampled_from(["Action", "Channel", "Value", "Variable"]),
                       st.text(alphabet=st.characters(blacklist_characters="\r\n")), min_size=1))
def test_values_without_line_breaks_always_pass(action: dict[str, str]) -> None:
    assert check_action(action) == action
