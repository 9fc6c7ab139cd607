"""Who an agent is: the directory entry (``Agent``, ``Role``), its Redis keys and how rows of agents are imported.

Plain data, like the customer profile beside it (``ivr.records.customer``): every concern that needs to know the
agents reads them from here, so flow validation (``ivr.voice.validation``) can check transfer targets and skills
without importing routing. What an agent is doing now (presence) and the directory's writes and change
notifications live a layer up, in ``ivr.routing.agents``.

Redis keys: ``ivr:agent:<id>`` (the directory entry, JSON) and ``ivr:agents`` (the set of ids).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from ivr.records.importing import Importer, split_mapping

if TYPE_CHECKING:
    import redis.asyncio as aioredis

AGENTS_SET = "ivr:agents"
"""Set of the directory's agent ids."""


def agent_key(agent_id: str) -> str:
    """The Redis key of an agent's directory entry (JSON)."""
    return f"ivr:agent:{agent_id}"


class Role(enum.StrEnum):
    DESK = "desk"
    """A desk agent on a softphone."""
    FIELD = "field"
    """A field manager (loan officer, engineer) on a mobile extension."""
    SUPERVISOR = "supervisor"
    """Watches queues; takes calls only if given skills."""


class Agent(BaseModel):
    """One person in the directory."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1)
    role: Role = Role.DESK
    skills: dict[str, int] = Field(default_factory=dict, description="skill -> proficiency 0..10")
    languages: list[str] = Field(default_factory=lambda: ["ko"])
    dialects: list[str] = Field(default_factory=list)
    vip: bool = Field(default=False, description="may take VIP callers")
    device: str = Field(pattern=r"^(PJSIP|SIP|IAX2|Local)/[A-Za-z0-9_.@+][A-Za-z0-9_.@+-]*$",
                        description="Asterisk dial string: a desk softphone (PJSIP/1001), the page phone "
                                    "(PJSIP/webrtc-1001, ivr.telephony.pagephone) or a mobile extension")
    mobile: str | None = Field(default=None, pattern=r"^\+?[0-9]{3,20}$",
                               description="mobile number reached through the trunk when the extension is away")
    max_offers: int = Field(default=1, ge=1, le=5, description="calls offered at once")

    @field_validator("skills")
    @classmethod
    def _proficiency_range(cls, skills: dict[str, int]) -> dict[str, int]:
        for skill, level in skills.items():
            if not 0 <= level <= 10:
                raise ValueError(f"skill {skill!r}: proficiency {level} is outside 0..10")
            if not skill or not skill.replace("_", "").isalnum():
                raise ValueError(f"skill {skill!r}: letters, digits and _ only")
        return skills


async def read_agents(redis: aioredis.Redis) -> list[Agent]:
    """Every agent in the directory, by id (an id whose entry is gone is skipped)."""
    ids = sorted(i.decode() if isinstance(i, bytes) else i for i in await redis.smembers(AGENTS_SET))
    if not ids:
        return []
    raws = await redis.mget([agent_key(i) for i in ids])
    return [Agent.model_validate_json(raw) for raw in raws if raw]


#: How ``ivr agents import`` reads agents (CSV lists and the ``skills`` mapping).
AGENTS: Importer[Agent] = Importer(Agent, list_columns=frozenset({"languages", "dialects"}),
                                   columns={"skills": split_mapping})
