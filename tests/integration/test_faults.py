"""Faults under load, fast: bench/chaos.py's scenarios with 2-4 calls in flight each, against the real stack.

Each test places its calls (keys only), strikes with one fault, and checks what became of every call: none lost
(except in an Asterisk restart, which ends its channels by nature), each where what the IVR knew sends it, a new
call served afterwards, and what the fault must not lose (records, callbacks, dispositions) still there. The
harness undoes every fault in a ``finally`` and restores the stack (Redis, Asterisk, a serving controller) before
the next test. Recovery is checked to happen; how fast is the benchmark's (``make chaos``), not the suite's.

The order spreads the controller restarts: after one, the supervisor loads a new warm standby in the background.
"""

from __future__ import annotations

import pytest

from bench.chaos import FAST, Mix, Row, run_scenario
from ivr.config import Settings

pytestmark = pytest.mark.integration


async def scenario(settings: Settings, name: str, mix: Mix) -> Row:
    row = await run_scenario(settings, name, mix, FAST)
    print(f"{name}: {row}")  # shown with -rA or on failure: the whole row, every call's end
    return row


def no_call_lost(row: Row) -> None:
    assert row.calls_in_flight >= 2
    assert row.calls_lost == 0, row.lost
    assert row.kept_context, row.details["ends"]
    assert row.probe_ok, "a new call after the fault was not served end to end"
    assert row.recover_s is not None, row.notes


async def test_controller_killed_mid_call_loses_no_caller_and_comes_back(live_stack: Settings) -> None:
    row = await scenario(live_stack, "controller_kill", Mix(menu=1, offer=1, holding=1, agent=0))
    no_call_lost(row)


async def test_redis_restarted_loses_no_call_and_no_record(live_stack: Settings) -> None:
    row = await scenario(live_stack, "redis_restart", Mix(menu=1, offer=1, holding=1, agent=0))
    no_call_lost(row)
    assert row.calls_during_fault == 2
    assert row.details["records_missing"] == 0, "records of calls taken while Redis was down never reached it"


async def test_ami_dropped_by_a_firewall_is_noticed_and_made_again(live_stack: Settings) -> None:
    row = await scenario(live_stack, "ami_drop", Mix(menu=1, offer=1, holding=1, agent=0))
    no_call_lost(row)
    assert row.details["controller_saw_the_link_down"], "a silent AMI link still counted as up after 10 s"
    assert row.details["ami_relogins"] >= 1


async def test_full_recordings_disk_keeps_calls_going_and_says_so(live_stack: Settings) -> None:
    row = await scenario(live_stack, "disk_full", Mix(menu=1, offer=0, holding=1, agent=0))
    no_call_lost(row)
    assert row.details["during_still_up"] == 1, "a call placed while the disk was full did not go on"
    assert row.details["disk_alert_logged"], "the controller did not log that the recordings disk is full"
    assert row.details["call_not_recorded_logged"], "a call ended unrecorded without the log saying why"


async def test_fastagi_port_taken_at_restart_is_named_and_waited_for(live_stack: Settings) -> None:
    row = await scenario(live_stack, "port_busy", Mix(menu=1, offer=1, holding=0, agent=0))
    no_call_lost(row)
    assert row.details["during_in_fallback"] == 2, row.details["ends"]
    assert row.details["clear_error_logged"], row.notes


async def test_redis_killed_loses_no_callback_and_no_disposition(live_stack: Settings) -> None:
    row = await scenario(live_stack, "redis_kill", Mix(menu=1, offer=0, holding=1, agent=1))
    no_call_lost(row)
    assert (row.details["callbacks_written"], row.details["dispositions_written"]) == (1, 1), row.details
    assert row.details["callbacks_lost"] == 0
    assert row.details["dispositions_lost"] == 0


async def test_asterisk_restart_leaves_nothing_stale_and_serves_again(live_stack: Settings) -> None:
    row = await scenario(live_stack, "asterisk_restart", Mix(menu=1, offer=0, holding=1, agent=0))
    assert row.calls_lost == row.calls_in_flight == 2  # its channels end with it: lost by nature, and counted
    assert row.recover_s is not None, row.notes
    assert row.probe_ok
    assert row.details["stale_waiting"] == 0, "callers Asterisk dropped still wait in the ACD"
    assert row.details["stale_records"] == 0, "records of calls Asterisk dropped never got their end"
