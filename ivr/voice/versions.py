"""Flow versions in Redis: publish, hot reload, rollback, history, diffs, and the audit log.

Every publish is a new numbered version of the flow (content, author, time, comment), kept for good;
one version is live. Publishing validates the text (``ivr.voice.validation``; a flow with errors is refused and
the live version stays), pre-renders its prompts (so the first caller hears no delay), then makes it live
in one Redis transaction, records who did it in the audit log and announces it on the ``ivr:flows``
channel. Controllers take the new version for new calls at once; calls in progress finish on theirs.

Two admins editing at once: each publish names the version its edit started from (``base``). If
another version went live meanwhile the publish is refused with ``BaseChanged``, which carries the
refused text: nothing is lost and nothing is overwritten; the admin merges and publishes again.

Redis keys: ``ivr:flow:<id>:versions`` (hash: number -> JSON of the version), ``ivr:flow:<id>:live``
(the live number), ``ivr:flow:ids`` (set), ``ivr:audit`` (stream: at, who, action, target, detail).
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import WatchError

from ivr.records.redis_text import StreamFields, text, texts
from ivr.voice.flow import Flow
from ivr.voice.validation import Context, InvalidFlow, Problem, Report, validate_text

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.config import Settings
    from ivr.voice.training.gate import GateDecision
    from tts import PromptRenderer

log = logging.getLogger(__name__)

__all__ = ["FLOWS_CHANNEL", "AuditLog", "BaseChanged", "FlowStore", "InvalidFlow", "UnknownVersion", "Version",
           "current_user", "renderer_prerender"]

FLOWS_CHANNEL = "ivr:flows"
"""Pub/sub channel announcing a new live version: {"flow": id, "version": n}."""
FLOW_IDS = "ivr:flow:ids"
AUDIT_STREAM = "ivr:audit"
#: The audit log keeps this many entries (approximately); older ones are trimmed.
AUDIT_MAX_ENTRIES = 100_000

Prerender = Callable[[Flow], Awaitable[None]]
"""Renders a flow's static prompts before it goes live; raising refuses the publish."""
ContextSource = Callable[[], Awaitable[Context | None]]
"""What validation checks outside references against, read at each publish."""


def versions_key(flow_id: str) -> str:
    return f"ivr:flow:{flow_id}:versions"


def live_key(flow_id: str) -> str:
    return f"ivr:flow:{flow_id}:live"


def current_user() -> str:
    """Who runs a command, for the audit log: $SUDO_USER, else $USER, else "cli"."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "cli"


@dataclass(frozen=True)
class Version:
    """One published version of a flow."""

    flow_id: str
    number: int
    """1, 2, ... in publishing order."""
    author: str
    at: float
    """When it was published (epoch seconds)."""
    comment: str
    sha256: str
    """Of the text (UTF-8)."""
    text: str
    """The flow's YAML, exactly as published."""
    action: str = "publish"
    """How it came: "publish", "rollback" (the text of an earlier version) or "import" (seeded from a file)."""
    replay: dict[str, Any] | None = None
    """The replay of its text when it was published (``ivr.voice.training.gate``: headline figures, override)."""

    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        return f"{self.flow_id} v{self.number} ({self.author}, {when})"


class BaseChanged(Exception):
    """The live version is no longer the one the edit started from; nothing was published.

    ``text`` is the refused edit, kept for the admin to merge with the live version and publish again.
    """

    def __init__(self, flow_id: str, live: int | None, base: int | None, text: str = "",
                 live_author: str = "") -> None:
        self.flow_id, self.live, self.base, self.text = flow_id, live, base, text
        by = f" by {live_author}" if live_author else ""
        started = f"version {base}" if base else "no version"
        super().__init__(
            f"flow {flow_id!r} changed since your edit started: version {live}{by} is live now, your edit started "
            f"from {started}. Nothing was published and your text is kept: merge it with version {live} "
            f"(ivr dialplan diff {flow_id} {base or live} {live}) and publish again with base {live}")


class UnknownVersion(LookupError):
    """No such flow or version."""


class AuditLog:
    """Who did what, when: publishes, rollbacks, imports, role changes (Redis stream ``ivr:audit``)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    @staticmethod
    def fields(who: str, action: str, target: str, detail: str = "") -> StreamFields:
        return {"at": f"{time.time():.3f}", "who": who or "unknown", "action": action, "target": target,
                "detail": detail}

    async def record(self, who: str, action: str, target: str, detail: str = "") -> None:
        await self.redis.xadd(AUDIT_STREAM, self.fields(who, action, target, detail),
                              maxlen=AUDIT_MAX_ENTRIES, approximate=True)

    async def entries(self, count: int = 100) -> list[dict[str, Any]]:
        """The last ``count`` entries, newest first: {id, at, who, action, target, detail}."""
        rows = await self.redis.xrevrange(AUDIT_STREAM, count=count) or []
        out: list[dict[str, Any]] = []
        for entry_id, fields in rows:
            entry: dict[str, Any] = {text(k): text(v) for k, v in (fields or {}).items()}
            out.append({"id": text(entry_id or ""), **entry, "at": float(entry.get("at", 0))})
        return out


def renderer_prerender(renderer: PromptRenderer, sample_rates: tuple[int, ...] = (8000,)) -> Prerender:
    """A Prerender that renders the flow's static prompts with ``renderer`` at each of ``sample_rates``
    (16000 too when wideband callers are heard in HD), in a thread: espeak-ng is slow."""

    async def prerender(flow: Flow) -> None:
        rendered = await asyncio.to_thread(renderer.prerender, flow.static_prompts(), sample_rates)
        log.info("flow %s: %d prompts rendered new before going live", flow.id, rendered)

    return prerender


class FlowStore:
    """Versions of flows in Redis; see the module's doc.

    ``prerender`` and ``context`` default to this installation's: prompts rendered into the settings'
    prompt cache, validation against queues.conf, the agent directory and the model packs.
    """

    def __init__(self, redis: aioredis.Redis, *, prerender: Prerender | None = None,
                 context: ContextSource | Context | None = None, settings: Settings | None = None,
                 audit: AuditLog | None = None) -> None:
        self.redis = redis
        self.audit = audit or AuditLog(redis)
        self._settings = settings
        self._prerender = prerender
        self._context = context

    # --- reading

    async def flows(self) -> list[dict[str, Any]]:
        """[{"id", "live", "versions", "updated_at"}] for every flow with a version."""
        out = []
        for flow_id in sorted(texts(await self.redis.smembers(FLOW_IDS))):
            live = await self._live_number(flow_id)
            count = await self.redis.hlen(versions_key(flow_id))
            current = await self.version(flow_id, live) if live else None
            out.append({"id": flow_id, "live": live, "versions": count,
                        "updated_at": current.at if current else None})
        return out

    async def live(self, flow_id: str) -> Version | None:
        number = await self._live_number(flow_id)
        return await self.version(flow_id, number) if number else None

    async def version(self, flow_id: str, number: int) -> Version | None:
        raw = await self.redis.hget(versions_key(flow_id), str(number))
        return _version(flow_id, number, text(raw)) if raw else None

    async def history(self, flow_id: str) -> list[Version]:
        """Every version, newest first (with its text)."""
        raw = await self.redis.hgetall(versions_key(flow_id))
        return sorted((_version(flow_id, int(n), text(data)) for n, data in raw.items()), key=lambda v: -v.number)

    async def diff(self, flow_id: str, a: int, b: int) -> str:
        """A unified diff from version ``a`` to version ``b`` ("" when the texts are the same)."""
        first, second = await self.version(flow_id, a), await self.version(flow_id, b)
        for number, found in ((a, first), (b, second)):
            if found is None:
                raise UnknownVersion(f"flow {flow_id!r} has no version {number}")
        assert first is not None and second is not None
        return "".join(difflib.unified_diff(first.text.splitlines(keepends=True), second.text.splitlines(keepends=True),
                                            fromfile=first.label(), tofile=second.label()))

    # --- changing

    async def publish(self, flow_id: str, text: str, author: str, comment: str, base: int | None,
                      override: str | None = None) -> Version:
        """Validate, pre-render, make live for new calls, audit, announce.

        ``base``: the live version the edit started from (0: there was none); None publishes over whatever is
        live. The replay of this exact text, if one was run (``ivr.voice.training.gate``), is stored with the
        version and in the audit; when it breaks more turns than it fixes, ``override`` (a comment saying why)
        is required. Raises InvalidFlow (with the Report), BaseChanged or GateRefused; the live version is then
        untouched.
        """
        from ivr.voice.training import gate

        decision = gate.check(flow_id, await gate.result_for(self.redis, flow_id, text), override)
        return await self._commit(flow_id, text, author, comment, base, action="publish", gate=decision)

    async def rollback(self, flow_id: str, number: int, author: str, comment: str = "") -> Version:
        """Make the text of version ``number`` live again, as a new version (validated again: a queue it names
        may have gone since)."""
        old = await self.version(flow_id, number)
        if old is None:
            raise UnknownVersion(f"flow {flow_id!r} has no version {number}")
        note = f"rollback to version {number}" + (f": {comment}" if comment else "")
        return await self._commit(flow_id, old.text, author, note, None, action="rollback", rolled_back_to=number)

    async def seed(self, flow_id: str, path: Path) -> Version | None:
        """The first version from a file (dialplans/<id>.yaml) when the flow has none; None if it has some."""
        if await self.redis.exists(live_key(flow_id)):
            return None
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        try:
            return await self._commit(flow_id, text, "seed", f"first version, from {path.name}", 0, action="import")
        except BaseChanged:  # another process seeded it at the same moment
            return None

    async def _commit(self, flow_id: str, text: str, author: str, comment: str, base: int | None, *,
                      action: str, rolled_back_to: int | None = None, gate: GateDecision | None = None) -> Version:
        report = await self.validate(flow_id, text)
        if not report.ok or report.flow is None:
            raise InvalidFlow(report, f"flow {flow_id!r}")
        await self._check_base(flow_id, base, text)  # before the slow part: fail fast
        await self._render(report.flow)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        vkey, lkey = versions_key(flow_id), live_key(flow_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(lkey, vkey)
                    live = await pipe.get(lkey)
                    live_number = int(live) if live else 0
                    if base is not None and base != live_number:
                        await pipe.reset()
                        await self._check_base(flow_id, base, text)
                    number = int(await pipe.hlen(vkey)) + 1
                    at = time.time()
                    version = Version(flow_id, number, author, at, comment, digest, text, action,
                                      gate.stored() if gate is not None else None)
                    detail = {"publish": f"version {number} live (was {live_number or 'none'}): {comment}",
                              "rollback": f"version {number} live with the text of version {rolled_back_to} "
                                          f"(was {live_number or 'none'}): {comment}",
                              "import": f"version {number} live: {comment}"}[action]
                    if gate is not None and gate.result is not None:  # the replay's evidence stays with it
                        detail += f" [{gate.audit_detail()}]"
                    pipe.multi()
                    pipe.hset(vkey, str(number), json.dumps(
                        {"author": author, "at": at, "comment": comment, "sha256": digest, "text": text,
                         "action": action, "base": base, "rolled_back_to": rolled_back_to,
                         "replay": gate.stored() if gate is not None else None}, ensure_ascii=False))
                    pipe.set(lkey, str(number))
                    pipe.sadd(FLOW_IDS, flow_id)
                    pipe.xadd(AUDIT_STREAM, AuditLog.fields(author, action, f"flow:{flow_id}", detail),
                              maxlen=AUDIT_MAX_ENTRIES, approximate=True)
                    pipe.publish(FLOWS_CHANNEL, json.dumps({"flow": flow_id, "version": number}))
                    await pipe.execute()
                    break
                except WatchError:
                    continue  # another publish got in between: look again (base check included)
        log.info("flow %s: version %d live (%s by %s)", flow_id, number, action, author)
        return version

    async def validate(self, flow_id: str, text: str) -> Report:
        """The validation report of ``text`` as flow ``flow_id`` (its ``id:`` must be ``flow_id``)."""
        context = await self._load_context()
        report = await asyncio.to_thread(validate_text, text, f"{flow_id} (flow)", context)
        if report.flow is not None and report.flow.id != flow_id:
            problem = Problem("error", f"the flow's id is {report.flow.id!r}, but it is published as {flow_id!r}: "
                              f"write `id: {flow_id}`", f"{flow_id} (flow)", None, "id")
            report = Report(flow=None, problems=[problem, *report.problems])
        return report

    async def _check_base(self, flow_id: str, base: int | None, text: str) -> None:
        if base is None:
            return
        live = await self._live_number(flow_id)
        if (live or 0) != base:
            current = await self.version(flow_id, live) if live else None
            raise BaseChanged(flow_id, live, base, text, current.author if current else "")

    async def _live_number(self, flow_id: str) -> int | None:
        raw = await self.redis.get(live_key(flow_id))
        return int(raw) if raw else None

    async def _render(self, flow: Flow) -> None:
        prerender = self._prerender
        if prerender is None:
            from tts import PromptRenderer

            prerender = self._prerender = renderer_prerender(PromptRenderer(self.settings.prompts_dir))
        try:
            await prerender(flow)
        except Exception as exc:  # espeak-ng missing, a disk full: nobody would hear these prompts
            log.exception("flow %s: prompts not rendered", flow.id)
            problem = Problem("error", f"the prompts could not be rendered ({type(exc).__name__}: {exc}); nothing "
                              "was published: fix the speech synthesis (ivr doctor) and publish again",
                              f"{flow.id} (flow)", None, "")
            raise InvalidFlow(Report(flow=None, problems=[problem]), f"flow {flow.id!r}") from exc

    async def _load_context(self) -> Context | None:
        if isinstance(self._context, Context):
            return self._context
        if self._context is not None:
            return await self._context()
        from ivr.voice.validation import load_context

        return await load_context(self.settings, self.redis)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ivr.config import load_settings

            self._settings = load_settings()
        return self._settings


def _version(flow_id: str, number: int, raw: str) -> Version:
    data = json.loads(raw)
    return Version(flow_id, number, data["author"], float(data["at"]), data.get("comment", ""), data["sha256"],
                   data["text"], data.get("action", "publish"), data.get("replay"))
