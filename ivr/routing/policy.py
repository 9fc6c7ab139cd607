"""The routing policy a site tunes: widening, service-level targets, holding for a better agent, the value model.

Pure (no I/O, nothing of the project): the router reads it, the ACD builds it from the settings
(``policy_from_mapping``), the benchmark sweeps its knobs. Every value is checked when the policy is built;
a bad one raises :class:`PolicyError` naming the field, so a typo in a policy file is refused with a message a
person can act on, never half-applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


class PolicyError(ValueError):
    """A routing policy value is out of range or unknown; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"routing policy: {field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    """A queue's service-level target: ``share`` of callers answered within ``within_s`` seconds (80/20)."""

    share: float = 0.80
    """Target share of callers answered within ``within_s`` (0 < share ≤ 1)."""
    within_s: float = 20.0
    """The answer-time threshold, seconds (> 0)."""

    def check(self, name: str) -> None:
        if not (isinstance(self.share, int | float) and 0 < self.share <= 1):
            raise PolicyError(f"{name}.share", f"{self.share!r} is not a share in (0, 1] (80 % is 0.8)")
        if not (isinstance(self.within_s, int | float) and 0 < self.within_s < math.inf):
            raise PolicyError(f"{name}.within_s", f"{self.within_s!r} is not a positive number of seconds")

    def __str__(self) -> str:
        return f"{self.share:.0%} in {self.within_s:g} s"


@dataclass(frozen=True, slots=True)
class Coefficients:
    """The value model's coefficients (``ivr.routing.outcome``): logits for first-contact resolution, and weights.

    Defaults and where they come from are in README.md ("Routing: the value of a match"); a site replaces
    any of them in its settings (``IVR_ROUTING_OUTCOME``) once its own dispositions say otherwise.
    """

    base_fcr: float = 0.70
    """P(resolved first time) of a proficiency-5 agent in the caller's language, no dialect, not the owner."""
    proficiency: float = 0.12
    """Logit per proficiency point away from 5 (a 10 resolves ~11 points more than a 5 before learning)."""
    language_mismatch: float = -1.5
    """Logit when the agent does not speak the caller's language."""
    dialect_match: float = 0.30
    """Logit when the agent speaks the caller's dialect."""
    case_owner: float = 1.0
    """Logit when the agent owns the caller's open case (they know it; no re-telling)."""
    prior_contacts: float = 20.0
    """Weight of the proficiency prior in an agent's learned record, in contacts (Beta α+β)."""
    vip_weight: float = 2.0
    """A VIP caller's resolution is worth this many standard callers'."""
    gold_weight: float = 1.3
    """A gold caller's resolution weight."""
    urgency_per_threshold: float = 0.5
    """Score a caller gains per service-level threshold waited (20 s): keeps the line moving."""
    urgency_per_patience: float = 0.5
    """Score a caller gains per patience waited: the impatient come first among equals."""
    service_level_priority: float = 5.0
    """Score a caller gains while still inside their queue's service-level threshold, growing to twice that as the
    threshold nears (``ivr.routing.outcome.OutcomeModel.urgency``): a caller who can still be answered in time
    comes before one who cannot, the one with the least time left first. Above the largest value of a match
    (a VIP's, about 2), so it dominates value except between callers a few seconds apart. 0 = off."""

    def check(self) -> None:
        if not 0 < self.base_fcr < 1:
            raise PolicyError("outcome.base_fcr", f"{self.base_fcr!r} is not a probability strictly between 0 and 1")
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise PolicyError(f"outcome.{f.name}", f"{value!r} is not a finite number")
        for name in ("prior_contacts", "vip_weight", "gold_weight", "urgency_per_threshold", "urgency_per_patience",
                     "service_level_priority"):
            if getattr(self, name) < 0:
                raise PolicyError(f"outcome.{name}", f"{getattr(self, name)!r} is negative")


@dataclass(frozen=True, slots=True)
class Policy:
    """Routing parameters a site tunes (checked when built: :class:`PolicyError` names a bad field)."""

    min_proficiency: int = 5
    """Proficiency a call asks for before it widens."""
    widen_proficiency_after_s: float = 15.0
    """Wait after which any proficiency ≥ 1 in the skill is accepted."""
    widen_language_after_s: float = 45.0
    """Wait after which an agent who does not speak the caller's language is accepted."""
    overflow_after_s: float = 90.0
    """Wait after which any free agent is accepted, whatever their skills."""
    patience_share: tuple[float, float, float] = (0.25, 0.5, 0.75)
    """A caller whose patience is known widens by then at the latest: at these shares of it
    (a caller who hangs up at 40 s is better served by a good agent at 20 s than a perfect one never)."""
    service_level: ServiceLevel = field(default_factory=ServiceLevel)
    """The service-level target of every queue without its own."""
    queue_service_levels: Mapping[str, ServiceLevel] = field(default_factory=dict)
    """Per queue: its own target (a fraud line at 90/10)."""
    hold_max_s: float = 8.0
    """Longest a caller is held for a better agent (from joining the line): the one patience knob. 0 = never hold."""
    hold_patience_share: float = 0.25
    """A caller is never held past this share of their patience (well inside it)."""
    hold_default_patience_s: float = 90.0
    """Patience assumed for a caller whose own is unknown, for the share above."""
    vip_hold_max_s: float = 2.0
    """A VIP caller is held at most this long (VIP first: their wait matters more than the match)."""
    vip_overflow_after_s: float = 5.0
    """Wait after which a VIP caller takes any free agent (VIP-eligible first), whatever their skills."""
    hold_min_gain: float = 0.03
    """Value gain (weighted resolution probability) that justifies holding a caller."""
    service_level_window: int = 200
    """Calls per queue the service level guard looks back over."""
    outcome: Coefficients = field(default_factory=Coefficients)
    """The value model's coefficients."""
    shortlist: int = 24
    """Candidates the router scores per decision (agents for a call, calls per line for an agent)."""

    def __post_init__(self) -> None:
        if not isinstance(self.min_proficiency, int) or not 0 <= self.min_proficiency <= 10:
            raise PolicyError("min_proficiency", f"{self.min_proficiency!r} is not a proficiency 0..10")
        waits = ("widen_proficiency_after_s", "widen_language_after_s", "overflow_after_s", "hold_max_s",
                 "hold_default_patience_s", "vip_hold_max_s", "vip_overflow_after_s")
        for name in waits:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise PolicyError(name, f"{value!r} is not a wait in seconds (a number ≥ 0)")
        if not (self.widen_proficiency_after_s <= self.widen_language_after_s <= self.overflow_after_s):
            raise PolicyError("overflow_after_s", "the widening waits must not decrease: proficiency ≤ language "
                              f"≤ overflow, got {self.widen_proficiency_after_s:g}, "
                              f"{self.widen_language_after_s:g}, {self.overflow_after_s:g}")
        if len(self.patience_share) != 3 or not all(0 < s <= 1 for s in self.patience_share):
            raise PolicyError("patience_share", f"{self.patience_share!r}: three shares in (0, 1]")
        if not 0 <= self.hold_patience_share <= 1:
            raise PolicyError("hold_patience_share", f"{self.hold_patience_share!r} is not a share in [0, 1]")
        if not isinstance(self.hold_min_gain, int | float) or self.hold_min_gain < 0:
            raise PolicyError("hold_min_gain", f"{self.hold_min_gain!r} is negative")
        if not isinstance(self.service_level_window, int) or self.service_level_window < 1:
            raise PolicyError("service_level_window", f"{self.service_level_window!r} is not a count ≥ 1")
        if not isinstance(self.shortlist, int) or self.shortlist < 1:
            raise PolicyError("shortlist", f"{self.shortlist!r} is not a count ≥ 1")
        self.service_level.check("service_level")
        for queue, target in self.queue_service_levels.items():
            target.check(f"queue_service_levels.{queue}")
        self.outcome.check()

    def target(self, queue: str) -> ServiceLevel:
        """The queue's service-level target."""
        return self.queue_service_levels.get(queue, self.service_level)

    def level(self, waited_s: float, patience_s: float | None = None) -> int:
        """The widening level (0..3, ``ivr.routing.router.Level``) a call has reached after ``waited_s``."""
        thresholds = [self.widen_proficiency_after_s, self.widen_language_after_s, self.overflow_after_s]
        if patience_s:
            thresholds = [min(t, share * patience_s) for t, share in zip(thresholds, self.patience_share, strict=True)]
        return sum(1 for t in thresholds if waited_s >= t)

    def hold_limit_s(self, patience_s: float | None, vip: bool = False) -> float:
        """Longest wait (from joining the line) a caller may be held for a better agent, before the service-level
        guard: the knob (``vip_hold_max_s`` at most for a VIP), and never past ``hold_patience_share`` of their
        patience."""
        patience = patience_s if patience_s else self.hold_default_patience_s
        knob = min(self.hold_max_s, self.vip_hold_max_s) if vip else self.hold_max_s
        return max(0.0, min(knob, self.hold_patience_share * patience))

    def with_changes(self, **changes: Any) -> Policy:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)


def _service_level(name: str, raw: Any) -> ServiceLevel:
    """A target from ``{"share": 0.8, "within_s": 20}``, ``[0.8, 20]`` or ``"80/20"``."""
    try:
        if isinstance(raw, ServiceLevel):
            return raw
        if isinstance(raw, str) and "/" in raw:
            percent, seconds = raw.split("/", 1)
            return ServiceLevel(float(percent) / 100, float(seconds))
        if isinstance(raw, list | tuple) and len(raw) == 2:
            return ServiceLevel(float(raw[0]), float(raw[1]))
        if isinstance(raw, Mapping):
            unknown = set(raw) - {"share", "within_s"}
            if unknown:
                raise PolicyError(f"{name}.{sorted(unknown)[0]}", "unknown field (share, within_s)")
            return ServiceLevel(float(raw.get("share", 0.8)), float(raw.get("within_s", 20.0)))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(name, f"{raw!r} is not a service level (\"80/20\", [0.8, 20] or {{share, within_s}})") \
            from None
    raise PolicyError(name, f"{raw!r} is not a service level (\"80/20\", [0.8, 20] or {{share, within_s}})")


def policy_from_mapping(data: Mapping[str, Any], base: Policy | None = None) -> Policy:
    """A policy from plain data (a settings value, a JSON policy file): unknown keys and bad values are refused
    with a :class:`PolicyError` naming the field; keys left out keep ``base``'s (the defaults)."""
    base = base or Policy()
    known = {f.name for f in fields(Policy)}
    changes: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            raise PolicyError(key, f"unknown field (known: {', '.join(sorted(known))})")
        if key == "service_level":
            changes[key] = _service_level(key, raw)
        elif key == "queue_service_levels":
            if not isinstance(raw, Mapping):
                raise PolicyError(key, "a mapping of queue -> service level")
            changes[key] = {str(q): _service_level(f"{key}.{q}", v) for q, v in raw.items()}
        elif key == "outcome":
            if not isinstance(raw, Mapping):
                raise PolicyError(key, "a mapping of coefficient -> number")
            names = {f.name for f in fields(Coefficients)}
            for name in raw:
                if name not in names:
                    raise PolicyError(f"outcome.{name}", f"unknown coefficient (known: {', '.join(sorted(names))})")
            changes[key] = replace(base.outcome, **{k: _number(f"outcome.{k}", v) for k, v in raw.items()})
        elif key == "patience_share":
            if not isinstance(raw, list | tuple) or len(raw) != 3:
                raise PolicyError(key, f"{raw!r}: three shares in (0, 1]")
            changes[key] = tuple(_number(key, v) for v in raw)
        elif key in ("min_proficiency", "service_level_window", "shortlist"):
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise PolicyError(key, f"{raw!r} is not a whole number")
            changes[key] = raw
        else:
            changes[key] = _number(key, raw)
    return replace(base, **changes)


def _number(name: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PolicyError(name, f"{raw!r} is not a number")
    return float(raw)
