"""Charts for the pages, drawn on the server with matplotlib as SVG (no chart library in the browser, no CDN).

matplotlib's object API (``Figure``, no pyplot): no global state, so two requests can draw at once in threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.figure import Figure

from ivr.voice.training.analytics import NavigationRow
from ivr.voice.training.kpi import KpiRow

NAVIGATION_SERIES = (("first_try", "first try"), ("confirm", "confirm"), ("no_match", "no match"),
                     ("reprompt", "reprompt"), ("containment", "containment"))
KPI_SERIES = (("containment", "containment"), ("transfer_rate", "to a person"), ("service_level", "service level"),
              ("queue_abandonment", "abandoned in queue"), ("repeat_7d", "repeat in 7 days"))


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight")
    return out.getvalue()


def _empty(title: str) -> str:
    fig = Figure(figsize=(6, 1.2))
    fig.text(0.5, 0.5, f"{title}: nothing archived in this window yet", ha="center", va="center")
    return _svg(fig)


def navigation_chart(rows: Sequence[NavigationRow], title: str = "Navigation") -> str:
    """Grouped bars: the main rates of each group (the "all" row left out)."""
    groups = [r for r in rows if r.dimension != "all"][:12]
    if not groups:
        return _empty(title)
    fig = Figure(figsize=(7.5, 0.9 + 0.45 * len(groups) * 1.2))
    ax = fig.subplots()
    height = 0.8 / len(NAVIGATION_SERIES)
    for k, (name, label) in enumerate(NAVIGATION_SERIES):
        values = [getattr(r, name) or 0.0 for r in groups]
        ax.barh([i + k * height for i in range(len(groups))], values, height=height, label=label)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(groups))], [f"{r.value} ({r.calls})" for r in groups])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return _svg(fig)


def kpi_chart(rows: Sequence[KpiRow], title: str = "KPIs per day") -> str:
    """Lines per day of the main rates (rows one a day: ``kpis(..., per=("day",))``)."""
    days = [r for r in rows if r.day != "all"]
    if not days:
        return _empty(title)
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.subplots()
    x = list(range(len(days)))
    for name, label in KPI_SERIES:
        ax.plot(x, [getattr(r, name) for r in days], marker="o", label=label)
    ax.set_xticks(x, [r.day[5:] for r in days], rotation=45 if len(days) > 8 else 0)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize="small", ncols=3, frameon=False)
    return _svg(fig)
