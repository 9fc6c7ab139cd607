"""The value of a match: how likely a caller's contact is resolved first time by an agent, and what that is worth.

A small Bayesian model, inspectable by hand (numpy only):

- every agent has a record per skill, a Beta(α, β) of first-contact resolution. Its prior is their proficiency:
  mean ``logistic(logit(base_fcr) + proficiency × (p − 5))``, weighing ``prior_contacts`` contacts; each
  disposition of theirs in the contact history adds one (resolved → α, follow-up or escalated → β). Cold start
  (no history) is the proficiency alone; a strong record moves the estimate as it grows;
- the pair's probability moves that record's mean on the logit scale for what the pair shares: the caller's
  dialect spoken (+), their language not spoken (−), the agent owning the caller's open case (+);
- the pair's *value* is that probability weighted by who the caller is (VIP, gold: their coefficients), and a
  caller's *score* for an agent adds urgency (the wait, against the service-level threshold and the caller's
  own patience), so a line never starves for the sake of a better match; callers still inside the threshold
  come first, the least time left first (the service-level priority), so value never costs the service level.

Coefficients live in the settings (``ivr.routing.policy.Coefficients``); every routing decision carries its
estimate (``Estimate.describe``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ivr.routing.policy import Coefficients

DISPOSITIONS: dict[str, bool | None] = {
    "resolved": True,
    "follow_up": False,
    "escalated": False,
    "no_action": None,
}
"""What each disposition says about first-contact resolution: resolved, not resolved, or nothing (no_action:
a wrong number, a silent line)."""


class UnknownDisposition(ValueError):
    """A disposition the model does not know (field ``disposition``)."""

    def __init__(self, disposition: object) -> None:
        super().__init__(f"disposition {disposition!r} is not one of {', '.join(DISPOSITIONS)}: not learned from")
        self.field = "disposition"


def resolution_of(disposition: str) -> bool | None:
    """True (resolved first time), False (not), None (says nothing); :class:`UnknownDisposition` otherwise."""
    try:
        return DISPOSITIONS[disposition]
    except (KeyError, TypeError):
        raise UnknownDisposition(disposition) from None


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def logistic(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@dataclass(frozen=True, slots=True)
class Pair:
    """What the model needs of a (caller, agent) pair."""

    proficiency: int
    """The agent's proficiency in the caller's skill, 0..10 (0 = the agent lacks the skill)."""
    language_ok: bool
    """The agent speaks the caller's language."""
    dialect_match: bool
    """The caller has a dialect and the agent speaks it."""
    owner: bool
    """The agent owns the caller's open case."""
    resolved: int = 0
    """The agent's first-contact resolutions in this skill (from dispositions)."""
    contacts: int = 0
    """Their dispositions in this skill that say resolved or not."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """The model's estimate for one pair, as a decision's explanation shows it."""

    fcr: float
    """P(first-contact resolution)."""
    weight: float
    """The caller's value weight (tier)."""
    learned_from: int
    """Dispositions behind the agent's record (0 = cold start, proficiency alone)."""

    @property
    def value(self) -> float:
        return self.weight * self.fcr

    def describe(self) -> str:
        source = f"record of {self.learned_from} contacts" if self.learned_from else "proficiency prior"
        return f"value {self.value:.2f} (first-contact resolution {self.fcr:.0%} from {source}, weight {self.weight:g})"


class OutcomeModel:
    """First-contact resolution per (caller, agent) pair, and the agents' learned records per skill."""

    def __init__(self, coefficients: Coefficients | None = None) -> None:
        self.c = coefficients or Coefficients()
        self.records: dict[tuple[str, str], list[int]] = {}
        """(agent id, skill) -> [resolved, contacts] from dispositions."""
        self._base = logit(self.c.base_fcr)

    # --- learning

    def learn(self, agent_id: str, skill: str, disposition: str) -> bool | None:
        """Count one disposition in the agent's record for the skill; returns what it said (None: nothing).

        Raises :class:`UnknownDisposition` (nothing counted) for a disposition the model does not know."""
        resolved = resolution_of(disposition)
        if resolved is not None and agent_id and skill:
            record = self.records.setdefault((agent_id, skill), [0, 0])
            record[0] += int(resolved)
            record[1] += 1
        return resolved

    def learn_all(self, contacts: Iterable[tuple[str | None, str | None, str | None]]) -> list[str]:
        """Learn from (agent, skill, disposition) triples of a contact history; returns what was skipped and why.

        A contact without an agent, skill or disposition says nothing (skipped quietly); an unknown
        disposition is skipped with a message naming the field."""
        problems: list[str] = []
        for agent_id, skill, disposition in contacts:
            if not agent_id or not skill or not disposition:
                continue
            try:
                self.learn(agent_id, skill, disposition)
            except UnknownDisposition as exc:
                problems.append(f"{agent_id}/{skill}: {exc}")
        return problems

    def record(self, agent_id: str, skill: str) -> tuple[int, int]:
        """(resolved, contacts) of the agent in the skill."""
        resolved, contacts = self.records.get((agent_id, skill), (0, 0))
        return resolved, contacts

    # --- estimating

    def prior(self, proficiency: int) -> float:
        """The cold-start estimate: proficiency alone."""
        return logistic(self._base + self.c.proficiency * (min(max(proficiency, 0), 10) - 5))

    def fcr(self, pair: Pair) -> float:
        """P(first-contact resolution) for one pair."""
        return float(self.fcr_many([pair])[0])

    def fcr_many(self, pairs: Sequence[Pair]) -> np.ndarray:
        """P(first-contact resolution) for many pairs at once (one numpy pass)."""
        if not pairs:
            return np.zeros(0)
        c = self.c
        table = np.array([(p.proficiency, p.language_ok, p.dialect_match, p.owner, p.resolved, p.contacts)
                          for p in pairs], dtype=float)
        proficiency = np.clip(table[:, 0], 0, 10)
        prior = 1 / (1 + np.exp(-(self._base + c.proficiency * (proficiency - 5))))
        # Beta posterior mean: the prior weighs prior_contacts contacts, each disposition one.
        record = (c.prior_contacts * prior + table[:, 4]) / np.maximum(c.prior_contacts + table[:, 5], 1e-9)
        record = np.clip(record, 1e-4, 1 - 1e-4)
        shift = (c.language_mismatch * (1 - table[:, 1]) + c.dialect_match * table[:, 2] + c.case_owner * table[:, 3])
        return 1 / (1 + np.exp(-(np.log(record / (1 - record)) + shift)))

    def weight(self, vip: bool, tier: str | None = None) -> float:
        """The caller's value weight: VIP, gold, else 1 (an unknown or missing tier is standard)."""
        if vip or tier == "vip":
            return self.c.vip_weight
        if tier == "gold":
            return self.c.gold_weight
        return 1.0

    def urgency(self, waited_s: float, threshold_s: float, patience_s: float | None) -> float:
        """Score from waiting: per service-level threshold waited, and per patience waited (when known); and,
        while the caller is still inside the threshold, the service-level priority, growing as the threshold nears.

        Why the step at the threshold: a caller answered at 19 s counts for the service level, one answered at
        25 s does not, whoever answers them. When an agent frees up with both waiting, taking the one who can
        still make it (the least time left first: earliest deadline) keeps more callers inside the target than
        first-come-first-served, let alone most-value-first; callers past the threshold come next, by value and
        wait, and the patience widening and the callback offer protect them from waiting too long."""
        waited = max(0.0, waited_s)
        share = waited / max(threshold_s, 1e-9)
        score = self.c.urgency_per_threshold * share
        if patience_s:
            score += self.c.urgency_per_patience * waited / patience_s
        if share < 1:
            score += self.c.service_level_priority * (1 + share)
        return score

    def estimate(self, pair: Pair, weight: float) -> Estimate:
        return Estimate(self.fcr(pair), weight, pair.contacts)
