"""The timeline the player shows, built from the call record (pure)."""

from __future__ import annotations

import re

import pytest

from ivr.recordings.timeline import Flag, build_timeline, parse_flags
from tests.unit.recordings.builders import answered_call, call_dict


def test_turns_wait_agent_offers_and_the_muted_card_span() -> None:
    call = answered_call(at=1000.0)
    spans = [{"node": "card", "started_at": 1012.0, "ended_at": 1015.5, "what": "card number", "verified": True,
              "last4": "1234"}]
    timeline = build_timeline(call_dict(call, spans), 20.0, [Flag(14.0, "forbidden_phrase", "guaranteed return")])
    got = [(s.kind, s.start_s, s.end_s) for s in timeline.segments]
    assert got == [("ivr", 0.0, 6.0), ("turn", 0.5, 5.0), ("queue", 6.0, 10.0), ("agent", 10.0, 20.0),
                   ("secure", 12.0, 15.5)]
    secure = timeline.segments[-1]
    assert secure.label == "card number captured: recording muted, verified" and "1234" not in secure.label
    assert [(m.kind, m.at_s, m.label) for m in timeline.marks] == [("offer", 8.0, "offered to A1002: answered")]
    assert timeline.to_dict()["flags"] == [{"at_s": 14.0, "kind": "forbidden_phrase", "text": "guaranteed return"}]


def test_times_are_kept_inside_the_recording() -> None:
    call = answered_call(at=1000.0)
    timeline = build_timeline(call_dict(call), 15.0)  # the recording is shorter than the record says
    assert max(s.end_s for s in timeline.segments) == 15.0


@pytest.mark.parametrize(("flags", "field"), [
    ([{"kind": "note", "text": "x"}], "flags[0].at_s"),
    ([{"at_s": 1, "kind": "nonsense", "text": "x"}], "flags[0].kind"),
    ([{"at_s": 1, "kind": "note", "text": ""}], "flags[0].text"),
    ([{"at_s": -1, "kind": "note", "text": "x"}], "flags[0].at_s"),
])
def test_a_bad_flag_names_its_field(flags: list[dict[str, object]], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}"):
        parse_flags(flags)
