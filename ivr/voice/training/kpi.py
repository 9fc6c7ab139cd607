"""The KPIs a financial contact center reports, per day, queue and flow version (pure, over archived calls).

Definitions (rates 0..1, None when nothing was counted; times in seconds):

- ``containment``: calls finished in self-service, of calls.
- ``ivr_abandonment``: calls the caller left while still in the IVR, of calls.
- ``transfer_rate``: calls handed to a person (a queue, a transfer or a callback), of calls.
- ``service_level``: calls a person answered within their queue's threshold (:class:`ServiceLevelTargets`: the
  routing policy's, ``IVR_ROUTING_SERVICE_LEVEL_S`` and ``IVR_ROUTING_QUEUE_SERVICE_LEVELS``) of joining the line,
  of calls that joined it (answered or not; callbacks excluded: their wait is not the caller's). A row of all
  queues judges each call by its own queue's threshold.
- ``asa``: average speed of answer, joining the line to a person answering, over answered calls.
- ``queue_abandonment``: calls that joined the line and hung up before a person answered, of calls that joined it.
- ``aht``: average handle time: talk (answer to hangup) plus after-call work (hangup to the agent's disposition,
  when it came within an hour), over answered calls that ended.
- ``repeat_7d``: calls from a known number followed by another call from it within 7 days (a first-contact
  resolution proxy: lower is better), of calls from known numbers. Later calls are looked for in everything
  passed in, so pass 7 more days than the window when it matters.
- ``callbacks_kept``: callbacks that reached the customer, of callbacks accepted.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from ivr.records.archive import ArchivedCall

REPEAT_WINDOW_S = 7 * 24 * 3600
#: After-call work longer than this is not after-call work (a disposition given the next morning).
MAX_AFTER_CALL_WORK_S = 3600
KPI_FIELDS = ("calls", "containment", "ivr_abandonment", "transfer_rate", "service_level", "asa",
              "queue_abandonment", "aht", "repeat_7d", "callbacks_kept")


@dataclass(frozen=True, slots=True)
class ServiceLevelTargets:
    """Seconds within which a person must answer a queue's caller for the call to count inside the service level:
    the routing policy's thresholds (ivr.routing.policy ``Policy.target(queue).within_s``), so that the KPIs and
    the router judge a queue by the same number."""

    default_s: float = 20.0
    """The threshold of every queue without its own."""
    per_queue: Mapping[str, float] = field(default_factory=dict)
    """Queue name -> its own threshold (a fraud line at 10 s)."""

    def within_s(self, queue: str | None) -> float:
        return self.per_queue.get(queue or "", self.default_s)


@dataclass(frozen=True, slots=True)
class KpiRow:
    """The KPIs of one day, queue and flow version (see the module's doc for each)."""

    day: str
    """Local date, YYYY-MM-DD ("all" in the totals row)."""
    queue: str
    """The queue the calls went to, "-" for calls that never reached one, "all" in the totals row."""
    flow_version: str
    """"v3", "file" (run from the flow file) or "all"."""
    calls: int
    containment: float | None
    ivr_abandonment: float | None
    transfer_rate: float | None
    service_level: float | None
    asa: float | None
    queue_abandonment: float | None
    aht: float | None
    repeat_7d: float | None
    callbacks_kept: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def repeats(calls: Iterable[ArchivedCall], window_s: float = REPEAT_WINDOW_S) -> set[str]:
    """Ids of calls from a known number that the same number called again within ``window_s``."""
    by_caller: dict[str, list[ArchivedCall]] = defaultdict(list)
    for call in calls:
        if call.caller:
            by_caller[call.caller].append(call)
    out: set[str] = set()
    for history in by_caller.values():
        history.sort(key=lambda c: c.started_at)
        for earlier, later in pairwise(history):
            if later.started_at - earlier.started_at <= window_s:
                out.add(earlier.call_id)
    return out


def day_of(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(at))


def _kpis(day: str, queue: str, version: str, calls: Sequence[ArchivedCall], repeated: set[str],
          targets: ServiceLevelTargets) -> KpiRow:
    queued = [c for c in calls if c.queued_at is not None and c.outcome != "callback"]
    answered = [c for c in calls if c.answered_at is not None and c.queued_at is not None]
    handled = []
    for c in calls:
        if c.answered_at is None or c.ended_at is None or c.ended_at < c.answered_at:
            continue
        after = 0.0
        if c.disposition_at is not None and 0 <= c.disposition_at - c.ended_at <= MAX_AFTER_CALL_WORK_S:
            after = c.disposition_at - c.ended_at
        handled.append(c.ended_at - c.answered_at + after)
    known = [c for c in calls if c.caller]
    callbacks = [c for c in calls if c.callback_requested]
    return KpiRow(
        day=day, queue=queue, flow_version=version, calls=len(calls),
        containment=_rate(sum(c.outcome == "self_service" for c in calls), len(calls)),
        ivr_abandonment=_rate(sum(c.left_in_ivr for c in calls), len(calls)),
        transfer_rate=_rate(sum(bool(c.queue) or c.callback_requested for c in calls), len(calls)),
        service_level=_rate(sum(c.answered_at is not None
                                and c.answered_at - (c.queued_at or 0) <= targets.within_s(c.queue)
                                for c in queued), len(queued)),
        asa=_mean([c.answered_at - c.queued_at for c in answered
                   if c.answered_at is not None and c.queued_at is not None]),
        queue_abandonment=_rate(sum(c.answered_at is None and c.outcome == "abandoned" for c in queued), len(queued)),
        aht=_mean(handled),
        repeat_7d=_rate(sum(c.call_id in repeated for c in known), len(known)),
        callbacks_kept=_rate(sum(c.callback_kept for c in callbacks), len(callbacks)))


GROUPINGS = ("day", "queue", "version")


def kpis(calls: Sequence[ArchivedCall], since: float, until: float | None = None, *,
         targets: ServiceLevelTargets | None = None, per: Sequence[str] = GROUPINGS) -> list[KpiRow]:
    """KPIs per (day, queue, flow version) of the calls that started in [since, until), sorted, then a totals row.

    ``per`` leaves out groupings (("day",): one row a day, queue and version "all"). Calls outside the window count
    only as later contacts for ``repeat_7d``."""
    unknown = set(per) - set(GROUPINGS)
    if unknown:
        raise ValueError(f"per: {', '.join(sorted(unknown))} is not one of {', '.join(GROUPINGS)}")
    targets = targets or ServiceLevelTargets()
    repeated = repeats(calls)
    inside = [c for c in calls if c.started_at >= since and (until is None or c.started_at < until)]
    groups: dict[tuple[str, str, str], list[ArchivedCall]] = defaultdict(list)
    for call in inside:
        version = f"v{call.flow_version}" if call.flow_version is not None else "file"
        groups[(day_of(call.started_at) if "day" in per else "all", (call.queue or "-") if "queue" in per else "all",
                version if "version" in per else "all")].append(call)
    rows = [_kpis(day, queue, version, group, repeated, targets)
            for (day, queue, version), group in sorted(groups.items())]
    return [*rows, _kpis("all", "all", "all", inside, repeated, targets)]
