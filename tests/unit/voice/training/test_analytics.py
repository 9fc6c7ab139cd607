"""Navigation analytics and KPIs over archive rows (pure: built in memory, computed in microseconds)."""

from __future__ import annotations

import dataclasses
from functools import partial

import pytest

from ivr.records.call import Outcome
from ivr.voice.training.analytics import CallFact, TurnFact, navigation
from ivr.voice.training.kpi import ServiceLevelTargets, kpis, repeats
from ivr.voice.training.labels import archive_rows
from tests.unit.voice.training.builders import call, failed_then_key, pressed, said

DAY = 24 * 3600.0
T0 = 1_800_000_000.0
#: Rates are rounded to 4 decimals.
approx = partial(pytest.approx, abs=1e-4)


def rows(*records):  # type: ignore[no-untyped-def]
    calls, facts = [], []
    for record in records:
        archived, turns = archive_rows(record, "hotline", ivr_ended_at=record.started_at + 20)
        calls.append(CallFact.of(archived))
        facts += [TurnFact.of(t) for t in turns]
    return facts, calls


def test_navigation_per_node_counts_first_tries_reprompts_confirms_and_keys_after_failure() -> None:
    facts, calls = rows(
        failed_then_key(),  # menu: miss, then key 1
        call(said("menu", "잔액", "balance", 0.9), outcome=Outcome.SELF_SERVICE, intent="balance", self_served=True),
        call(said("menu", "대출", "loan", 0.6), said("menu", "아니요", None, kind="confirm"), said("menu", "어"),
             pressed("menu", "0", "agent"), intent="agent", queue="general"),
        call(said("menu", ""), outcome=Outcome.ABANDONED))
    by_node = {r.value: r for r in navigation(facts, calls, "node")}
    menu = by_node["menu"]
    assert (menu.calls, menu.spoken) == (4, 5)
    assert menu.first_try == 0.25  # 1 of 4 first answers acted on
    assert menu.reprompt == 0.2  # the third call's second spoken try
    assert menu.confirm == 0.2 and menu.confirm_rejected == 1.0
    assert menu.no_match == 0.4  # "자나 조회" and "어"; the silence is the caller leaving
    assert menu.keys_after_failure == approx(2 / 3)  # key 1 after a miss, key 0 after "어"; not after silence
    assert menu.containment == 0.5 and menu.asks_person == 0.25 and menu.hangup_in_ivr == 0.25
    assert menu.ivr_s == 20.0
    overall = navigation(facts, calls, "node")[-1]
    assert (overall.dimension, overall.calls, overall.spoken) == ("all", 4, 5)


def test_navigation_per_version_language_and_dialect_groups_by_the_calls_values() -> None:
    a, b = failed_then_key(), failed_then_key()
    b.flow_version, b.dialect = 4, "gyeongsang"
    facts, calls = rows(a, b)
    assert {r.value: r.calls for r in navigation(facts, calls, "version")} == {"v3": 1, "v4": 1, "all": 2}
    assert {r.value for r in navigation(facts, calls, "dialect")} == {"-", "gyeongsang", "all"}
    assert navigation([], [], "language") == [navigation([], [], "language")[0]]
    with pytest.raises(ValueError, match="by must be one of"):
        navigation(facts, calls, "queue")


def _answered(queue: str, at: float, wait: float, talk: float, caller: str = "010") -> object:
    record = call(said("menu", "대출", "loan", 0.9), queue=queue, intent="loan", outcome=Outcome.ANSWERED,
                  started_at=at, caller=caller, queued_at=at + 20, answered_at=at + 20 + wait, agent="A1")
    record.ended_at = at + 20 + wait + talk
    return record


def test_kpis_per_day_queue_and_version() -> None:
    quick = _answered("loans", T0, wait=10, talk=100, caller="0101")
    slow = _answered("loans", T0 + 60, wait=50, talk=200, caller="0102")
    abandoned = call(said("menu", "대출", "loan", 0.9), queue="loans", outcome=Outcome.ABANDONED, started_at=T0 + 120,
                     caller="0103", queued_at=T0 + 140)
    served = call(said("menu", "잔액", "balance", 0.9), outcome=Outcome.SELF_SERVICE, self_served=True,
                  started_at=T0 + 200, caller="0104")
    left = call(said("menu", ""), outcome=Outcome.ABANDONED, started_at=T0 + 300, caller="0101")  # 0101 again
    callback = call(said("menu", "대출", "loan", 0.9), queue="loans", outcome=Outcome.CALLBACK, started_at=T0 + DAY,
                    caller="", notes=["callback: customer reached"])
    archived = [archive_rows(r, "hotline")[0] for r in (quick, slow, abandoned, served, left, callback)]  # type: ignore[arg-type]
    archived[0] = dataclasses.replace(archived[0], disposition_at=quick.ended_at + 30)  # type: ignore[attr-defined]
    rows_ = kpis(archived, T0 - 1, targets=ServiceLevelTargets(20.0))
    by = {(r.day, r.queue): r for r in rows_}
    total = rows_[-1]
    assert (total.day, total.calls) == ("all", 6)
    loans = next(r for r in rows_ if r.queue == "loans" and r.calls == 3)
    assert loans.service_level == approx(1 / 3)  # quick (10 s) in 20 s; slow (50 s) not; abandoned not
    assert loans.asa == 30.0 and loans.queue_abandonment == approx(1 / 3)
    assert loans.aht == approx((100 + 30 + 200) / 2)  # talk, plus the after-call work of quick
    assert total.containment == approx(1 / 6) and total.ivr_abandonment == approx(1 / 6)
    assert total.transfer_rate == approx(4 / 6)
    assert total.repeat_7d == approx(1 / 5)  # 0101 called again; the withheld number is not counted
    assert total.callbacks_kept == 1.0
    assert len({day for day, _ in by}) == 3  # two days and "all"
    assert repeats(archived, window_s=1) == set()
    per_day = kpis(archived, T0 - 1, per=("day",))
    assert [r.queue for r in per_day] == ["all", "all", "all"]
    with pytest.raises(ValueError, match="per: agent"):
        kpis(archived, 0, per=("agent",))


def test_service_level_uses_each_queues_own_threshold() -> None:
    """The routing policy's per-queue targets: a fraud line at 10 s, the others at the default."""
    fraud = _answered("fraud", T0, wait=15, talk=60, caller="0201")
    loans = _answered("loans", T0 + 60, wait=15, talk=60, caller="0202")
    archived = [archive_rows(r, "hotline")[0] for r in (fraud, loans)]  # type: ignore[arg-type]
    targets = ServiceLevelTargets(20.0, {"fraud": 10.0})
    assert (targets.within_s("fraud"), targets.within_s("loans"), targets.within_s(None)) == (10.0, 20.0, 20.0)
    rows_ = kpis(archived, T0 - 1, targets=targets, per=("queue",))
    by = {r.queue: r.service_level for r in rows_[:-1]}
    assert by == {"fraud": 0.0, "loans": 1.0}  # the same 15 s wait: late on the fraud line, in time on loans
    assert rows_[-1].service_level == approx(1 / 2)  # all queues: each call by its own queue's threshold
    assert kpis(archived, T0 - 1, per=("queue",))[-1].service_level == 1.0  # the default 20 s for both
