"""The publish gate: a replay's evidence travels with the text it was run on, and decides whether it may go live.

A replay result is kept in Redis under the flow and the SHA-256 of the candidate's text
(``ivr:replay:<flow>:<sha256>``, 30 days), by the CLI (``ivr dialplan replay``) and the trainer pages alike.
Publishing that exact text (``ivr.voice.versions.FlowStore.publish``) finds it, shows it, stores it with the
version and in the audit, and applies the rule (``check``): a version that breaks more turns than it fixes
(turns whose right intent is known: labeled, or acted on live and not corrected) needs an explicit override
with a comment. Without a stored replay a publish goes on as before (the version then keeps no replay).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivr.voice.training.replay import ReplayResult

if TYPE_CHECKING:
    import redis.asyncio as aioredis

#: How long a replay result is kept for the publish of its text.
RESULT_TTL_S = 30 * 24 * 3600


def result_key(flow_id: str, sha256: str) -> str:
    return f"ivr:replay:{flow_id}:{sha256}"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class GateRefused(Exception):
    """The replay says the version breaks more turns than it fixes and no override was given; nothing published."""

    def __init__(self, flow_id: str, result: ReplayResult) -> None:
        self.flow_id, self.result = flow_id, result
        super().__init__(
            f"flow {flow_id!r}: the replay of this version breaks {result.broken} turns that were right and fixes "
            f"only {result.fixed} ({result.summary()}); nothing was published. Fix the flow, or publish with an "
            "override and a comment saying why (field `override`; `ivr dialplan publish --override \"...\"`)")


@dataclass(frozen=True)
class GateDecision:
    """What the gate made of a publish."""

    result: ReplayResult | None
    """The replay of the published text, if one was run."""
    override: str | None
    """The override comment, when one was needed and given."""

    def audit_detail(self) -> str:
        """What the audit log adds to the publish's entry."""
        if self.result is None:
            return "no replay"
        text = f"replay: {self.result.summary()}"
        return f"{text}; OVERRIDE: {self.override}" if self.override else text

    def stored(self) -> dict[str, object] | None:
        """What the version keeps of the replay (its headline figures and the override)."""
        if self.result is None:
            return None
        keys = ("turns", "fixed", "broken", "now_act", "containment_before", "containment_after", "labeled",
                "fixed_labeled", "broken_labeled", "unreadable", "since", "sha256")
        return {**{k: getattr(self.result, k) for k in keys}, "override": self.override}


def needs_override(result: ReplayResult) -> bool:
    """The rule: more turns broken than fixed."""
    return result.broken > result.fixed


def check(flow_id: str, result: ReplayResult | None, override: str | None) -> GateDecision:
    """The gate's decision for a publish (pure); raises GateRefused."""
    comment = (override or "").strip() or None
    if result is None:
        return GateDecision(None, None)
    if needs_override(result):
        if comment is None:
            raise GateRefused(flow_id, result)
        return GateDecision(result, comment)
    return GateDecision(result, None)


async def save_result(redis: aioredis.Redis, result: ReplayResult) -> None:
    """Keep ``result`` for the publish of the text it was run on."""
    await redis.set(result_key(result.flow_id, result.sha256), json.dumps(result.to_dict(), ensure_ascii=False),
                    ex=RESULT_TTL_S)


async def result_for(redis: aioredis.Redis, flow_id: str, text: str) -> ReplayResult | None:
    """The replay of exactly ``text`` as flow ``flow_id``, if one was run (and kept)."""
    raw = await redis.get(result_key(flow_id, text_sha256(text)))
    if not raw:
        return None
    return ReplayResult.from_dict(json.loads(raw))
