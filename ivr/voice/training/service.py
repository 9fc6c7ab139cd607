"""What the trainer's and reports' pages and ``ivr report`` ask of the archive: numbers, clusters, labels, audio.

Blocking (SQLite): the web handlers run these in a thread. Errors name what is wrong: :class:`InvalidLabel`
(a label that is not an intent of the flow: 422), ``ClusterChanged`` (409), ``NoSuchCluster``/``NoSuchTurn`` and
:class:`NoAudio` (404).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.records.archive import Archive, ArchivedTurn, ClusterSummary
from ivr.voice.training.analytics import (
    CALL_FACTS_SQL,
    DIMENSIONS,
    TURN_FACTS_SQL,
    CallFact,
    NavigationRow,
    TurnFact,
    navigation,
)
from ivr.voice.training.kpi import GROUPINGS, REPEAT_WINDOW_S, KpiRow, ServiceLevelTargets, kpis

DAY_S = 24 * 3600
#: Page sizes the pages may ask for (server-side paging: a 50,000-turn cluster is never sent at once).
MAX_PAGE = 200


class InvalidLabel(ValueError):
    """A label the flow cannot take (an unknown intent): nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class NoAudio(LookupError):
    """The turn has no recording (none was kept, it was purged, or the file is gone)."""


def parse_since(text: str, now: float | None = None) -> float:
    """"7d", "12h", "30m", "90s" or an ISO date ("2026-11-01") -> epoch seconds; ValueError naming the format."""
    now = time.time() if now is None else now
    text = text.strip()
    units = {"d": DAY_S, "h": 3600, "m": 60, "s": 1}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%d"))
    except ValueError:
        raise ValueError(f"since: {text!r} is neither a span (7d, 12h, 30m) nor a date (YYYY-MM-DD)") from None


def check_label(label: str | None, intents: Collection[str], field: str = "label", flow_id: str = "") -> None:
    """A label must be an intent of the turn's flow (or None: clear it)."""
    if label is None:
        return
    if label not in intents:
        flow = f"the flow {flow_id!r}" if flow_id else "the flow"
        raise InvalidLabel(field, f"{label!r} is not an intent of {flow}; one of {', '.join(sorted(intents))}")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a paged list."""

    total: int
    """How many in all."""
    offset: int
    items: list[Any]


class TrainerService:
    """The archive as the trainer loop reads and labels it."""

    def __init__(self, archive: Archive, recordings_dir: Path,
                 service_levels: ServiceLevelTargets | None = None) -> None:
        self.archive = archive
        self.recordings_dir = recordings_dir
        self.service_levels = service_levels or ServiceLevelTargets()
        """The routing policy's service-level thresholds, per queue (``service_level_targets`` in the web/CLI)."""

    # --- numbers

    def turn_facts(self, since: float, until: float | None = None) -> list[TurnFact]:
        rows = self.archive.query(TURN_FACTS_SQL, (since, until if until is not None else float("inf")))
        return [TurnFact(c, int(i), v, n, k, lang, d, o, bool(f), dt) for c, i, v, n, k, lang, d, o, f, dt in rows]

    def navigation(self, since: float, until: float | None = None, by: str = "node") -> list[NavigationRow]:
        if by not in DIMENSIONS:
            raise ValueError(f"by: one of {', '.join(DIMENSIONS)}, not {by!r}")
        return navigation(self.turn_facts(since, until), self.call_facts(since, until), by)

    def call_facts(self, since: float, until: float | None = None) -> list[CallFact]:
        rows = self.archive.query(CALL_FACTS_SQL, (since, until if until is not None else float("inf")))
        return [CallFact(c, v, lang, d, bool(s), bool(a), bool(left), ivr) for c, v, lang, d, s, a, left, ivr in rows]

    def kpis(self, since: float, until: float | None = None, per: Sequence[str] = GROUPINGS) -> list[KpiRow]:
        # Calls up to 7 days after the window tell whether its callers called again.
        later = until + REPEAT_WINDOW_S if until is not None else None
        return kpis(self.archive.calls(since, later), since, until, targets=self.service_levels, per=per)

    # --- clusters and labels

    def clusters(self, since: float, offset: int = 0, limit: int = 50, unlabeled_only: bool = False,
                 flow_id: str | None = None) -> Page:
        total, items = self.archive.clusters(since, flow_id, offset, min(limit, MAX_PAGE), unlabeled_only)
        return Page(total, offset, items)

    def cluster(self, cluster_id: int, since: float) -> ClusterSummary:
        return self.archive.cluster(cluster_id, since)

    def cluster_turns(self, cluster_id: int, since: float, offset: int = 0, limit: int = 50) -> Page:
        summary = self.archive.cluster(cluster_id, since)
        return Page(summary.size, offset, self.archive.cluster_turns(cluster_id, since, offset, min(limit, MAX_PAGE)))

    def label_cluster(self, cluster_id: int, label: str | None, revision: int, intents: Collection[str],
                      dialect: str | None = None, by: str = "", flow_id: str = "") -> int:
        """``intents``: those of the cluster's flow (``flow_id``, named in the error)."""
        check_label(label, intents, flow_id=flow_id)
        return self.archive.label_cluster(cluster_id, label, revision, dialect, by)

    def label_turn(self, call_id: str, index: int, label: str | None, intents: Collection[str],
                   dialect: str | None = None, by: str = "", flow_id: str = "") -> ArchivedTurn:
        """``intents``: those of the turn's flow (``flow_id``, named in the error)."""
        check_label(label, intents, flow_id=flow_id)
        self.archive.set_label(call_id, index, label, dialect, by)
        return self.archive.turn(call_id, index)

    # --- audio

    def audio_file(self, call_id: str, index: int) -> Path:
        """The turn's recording, only ever a file inside the recordings directory."""
        turn = self.archive.turn(call_id, index)
        if not turn.audio:
            raise NoAudio(f"turn {index} of call {call_id} has no recording (none kept, or purged)")
        root = self.recordings_dir.resolve()
        path = (root / turn.audio).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise NoAudio(f"turn {index} of call {call_id}: recording {turn.audio} is not there")
        return path


def turn_view(turn: ArchivedTurn) -> dict[str, Any]:
    """A turn as the pages show it."""
    return {"call_id": turn.call_id, "index": turn.index, "node": turn.node, "kind": turn.kind,
            "language": turn.language, "flow_version": turn.flow_version, "transcript": turn.transcript,
            "alternatives": [{"text": t, "confidence": c} for t, c in turn.alternatives],
            "intent": turn.intent, "score": turn.score, "dtmf": turn.dtmf, "has_audio": bool(turn.audio),
            "audio_rate": turn.audio_rate, "started_at": turn.started_at, "live_outcome": turn.live_outcome,
            "next_step": turn.next_step, "call_outcome": turn.call_outcome, "label": turn.label,
            "label_source": turn.label_source, "label_dialect": turn.label_dialect, "labeled_by": turn.labeled_by,
            "cluster": turn.cluster}


def cluster_view(cluster: ClusterSummary) -> dict[str, Any]:
    return {"id": cluster.id, "flow_id": cluster.flow_id, "language": cluster.language, "heard": cluster.heard,
            "size": cluster.size, "labeled": cluster.labeled, "suggested": cluster.suggested,
            "suggested_source": cluster.suggested_source, "nodes": list(cluster.nodes),
            "revision": cluster.revision, "label": cluster.label}
