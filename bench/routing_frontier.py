"""The frontier: each strategy's one patience knob swept over the realistic day, service level against first-contact
resolution, drawn in one chart (``bench/out/routing_frontier.png``).

Knobs: the router's ``hold_max_s`` (how long a caller may be held for a better agent, within the service-level
guard and their patience share); app_queue's queue rule (how long a caller rings only members of proficiency ≥ 5,
``penaltychange => <knob>,10`` in queuerules.conf; 0 = no rule, the lowest penalty free member at once).
Every point is the mean over the same days (seeds) for every strategy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.routing_day import BASELINES, STRATEGIES, DayParams, day_metrics, make_day, simulate
from ivr.routing.policy import Policy

KNOBS: dict[str, tuple[float, ...]] = {
    "router": (0.0, 4.0, 8.0, 15.0, 30.0),
    **{s: (0.0, 5.0, 10.0, 20.0, 40.0) for s in BASELINES},
}
"""The knob values swept, seconds."""
DEFAULT_KNOB: dict[str, float] = {"router": Policy().hold_max_s, **{s: 0.0 for s in BASELINES}}
"""Each strategy's default: the router's policy default; app_queue without a queue rule (as configured now)."""
FIELDS = ("service_level", "fcr", "vip_wait_p95_s", "owner_rate", "abandon_rate")
"""The figures of a frontier point (besides its knob)."""
SEEDS = (1, 2, 3)
QUICK_SEEDS = (1,)


def quick() -> bool:
    """``ROUTING_BENCH_QUICK=1``: one seed and a shorter day (tests, a quick look)."""
    return os.environ.get("ROUTING_BENCH_QUICK", "") not in ("", "0")


def _point(knob: float, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    point: dict[str, Any] = {"knob": knob}
    for name in FIELDS:
        values = [r[name] for r in runs if r[name] == r[name]]  # NaN-free
        point[name] = round(sum(values) / len(values), 4) if values else float("nan")
    return point


def frontier(params: DayParams | None = None, seeds: Sequence[int] | None = None,
             knobs: dict[str, tuple[float, ...]] | None = None) -> dict[str, Any]:
    """{"frontier": strategy -> [point], "defaults": strategy -> point, "days": [...], "router_cold_start": point}."""
    params = params or (DayParams(hours=3) if quick() else DayParams())
    seeds = seeds or (QUICK_SEEDS if quick() else SEEDS)
    knobs = knobs or KNOBS
    runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
    cold: list[dict[str, Any]] = []
    days = []
    for seed in seeds:
        day = make_day(replace(params, seed=seed))
        days.append({"seed": seed, "first_contacts": len(day.calls), "agents_by_hour": day.shifts})
        wanted = {(s, k) for s in STRATEGIES for k in knobs[s]} | {(s, DEFAULT_KNOB[s]) for s in STRATEGIES}
        for strategy, knob in sorted(wanted):
            run = simulate(strategy, day.agents, day.calls, wrap_s=params.wrap_s, day=day, seed=seed, knob=knob)
            runs.setdefault((strategy, knob), []).append(day_metrics(run, day.agents))
        cold_day = replace(day, params=replace(day.params, history_contacts=0))
        run = simulate("router", day.agents, day.calls, wrap_s=params.wrap_s, day=cold_day, seed=seed,
                       knob=DEFAULT_KNOB["router"])
        cold.append(day_metrics(run, day.agents))
    return {
        "frontier": {s: [_point(k, runs[(s, k)]) for k in knobs[s]] for s in STRATEGIES},
        "defaults": {s: {**_point(DEFAULT_KNOB[s], runs[(s, DEFAULT_KNOB[s])]),
                         **{m: round(sum(r[m] for r in runs[(s, DEFAULT_KNOB[s])]) / len(seeds), 4)
                            for m in ("wait_avg_s", "wait_p95_s", "dialect_match_rate", "proficiency_match_rate",
                                      "utilisation", "calls", "repeats")}}
                     for s in STRATEGIES},
        "router_cold_start": _point(DEFAULT_KNOB["router"], cold),
        "seeds": list(seeds),
        "days": days,
        "params": {"hours": params.hours, "calls_per_hour": params.calls_per_hour, "quick": quick()},
    }


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """Point 5 of the issue at the defaults: each target, the figure, and whether it is met."""
    d = result["defaults"]
    best = {m: (max if m in ("service_level", "fcr", "owner_rate") else min)(d[s][m] for s in BASELINES)
            for m in FIELDS}
    router = d["router"]
    # FCR at equal service level: the best baseline point within ±1 point of the router's service level.
    near = [p for s in BASELINES for p in result["frontier"][s]
            if abs(p["service_level"] - router["service_level"]) <= 0.01]
    fcr_equal = max((p["fcr"] for p in near), default=best["fcr"])
    return {
        "service_level_at_least_0.80": {"value": router["service_level"], "met": router["service_level"] >= 0.80},
        "fcr_gain_points_at_equal_sl": {"value": round(100 * (router["fcr"] - fcr_equal), 1),
                                        "target": 8.0, "met": router["fcr"] - fcr_equal >= 0.08,
                                        "baseline_fcr": fcr_equal, "baseline_points_within_1pt": len(near)},
        "vip_wait_p95_ratio": {"value": round(router["vip_wait_p95_s"] / best["vip_wait_p95_s"], 2)
                               if best["vip_wait_p95_s"] else float("nan"), "target": 0.6,
                               "met": router["vip_wait_p95_s"] <= 0.6 * best["vip_wait_p95_s"]},
        "owner_rate_ratio": {"value": round(router["owner_rate"] / best["owner_rate"], 2) if best["owner_rate"]
                             else float("inf"), "target": 3.0, "met": router["owner_rate"] >= 3 * best["owner_rate"]},
        "abandon_rate_not_higher": {"value": router["abandon_rate"], "best": best["abandon_rate"],
                                    "met": router["abandon_rate"] <= best["abandon_rate"]},
    }


def chart(result: dict[str, Any], path: Path) -> Path:
    """Service level (x) against first-contact resolution (y), one line per strategy, defaults ringed."""
    import matplotlib

    matplotlib.use("Agg")  # no screen on a server
    import matplotlib.pyplot as plt

    colours = {"router": "#c0392b", "ringall": "#4878a8", "leastrecent": "#6a9f58", "fewestcalls": "#8e6bb0"}
    figure, axes = plt.subplots(figsize=(6.4, 4.6))
    try:
        for strategy, points in result["frontier"].items():
            xs = [100 * p["service_level"] for p in points]
            ys = [100 * p["fcr"] for p in points]
            axes.plot(xs, ys, marker="o", color=colours.get(strategy), label=strategy,
                      linewidth=2.4 if strategy == "router" else 1.4)
            for p, x, y in zip(points, xs, ys, strict=True):
                axes.annotate(f"{p['knob']:g}s", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                              color=colours.get(strategy))
            default = result["defaults"][strategy]
            axes.scatter([100 * default["service_level"]], [100 * default["fcr"]], s=160, facecolors="none",
                         edgecolors=colours.get(strategy), linewidths=1.6)
        axes.axvline(80, color="#888", linestyle="--", linewidth=1)
        axes.text(80.2, axes.get_ylim()[0], " 80/20 target", fontsize=8, color="#666", va="bottom")
        axes.set_xlabel("service level: callers answered within 20 s (%)")
        axes.set_ylabel("first-contact resolution (%)")
        axes.set_title("Routing frontier: each strategy's patience knob swept\n(ringed: default; labels: knob)",
                       fontsize=10)
        axes.legend(loc="lower left", fontsize=8)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path
