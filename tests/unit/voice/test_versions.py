"""Flow versions (ivr.voice.versions) on a private redis-server: publish, conflicts, rollback, diffs, the audit log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from typer.testing import CliRunner

from ivr.voice.flow import Flow
from ivr.voice.validation import Context
from ivr.voice.versions import (
    FLOWS_CHANNEL,
    AuditLog,
    BaseChanged,
    FlowStore,
    InvalidFlow,
    UnknownVersion,
    current_user,
    live_key,
)

ROOT = Path(__file__).resolve().parents[3]
HOTLINE = ROOT / "dialplans" / "hotline.yaml"
TEXT = HOTLINE.read_text(encoding="utf-8")
CONTEXT = Context(queues=frozenset({"general", "cards", "payments", "complaints", "loans"}))
#: The hotline with key 2 (lost card) routed to payments instead of cards (the cards node, now unreachable, goes).
EDITED = (TEXT.replace("      lost_card: to_cards\n", "      lost_card: to_payments\n")
          .replace("  to_cards: {type: route, queue: cards, skills: [cards], priority: 10}\n", ""))
assert EDITED.count("to_cards") == 0


class Renderer:
    """Records what was pre-rendered, and what was live at that moment."""

    def __init__(self, redis_db: aioredis.Redis, fail: bool = False) -> None:
        self.redis = redis_db
        self.fail = fail
        self.calls: list[tuple[str, str | None, int]] = []

    async def __call__(self, flow: Flow) -> None:
        if self.fail:
            raise RuntimeError("espeak-ng: not found")
        self.calls.append((flow.id, await self.redis.get(live_key(flow.id)), len(flow.static_prompts())))


@pytest.fixture
def renderer(redis_db: aioredis.Redis) -> Renderer:
    return Renderer(redis_db)


@pytest.fixture
def store(redis_db: aioredis.Redis, renderer: Renderer) -> FlowStore:
    return FlowStore(redis_db, prerender=renderer, context=CONTEXT)


async def test_publish_makes_a_version_live_renders_first_audits_and_announces(
        store: FlowStore, renderer: Renderer, redis_db: aioredis.Redis) -> None:
    listener = redis_db.pubsub()
    await listener.subscribe(FLOWS_CHANNEL)
    await listener.get_message(timeout=1)  # the subscription's confirmation
    version = await store.publish("hotline", TEXT, "kim", "first version", base=0)
    assert (version.number, version.author, version.comment, version.text) == (1, "kim", "first version", TEXT)
    assert (await store.live("hotline")) == version
    # Rendered before it went live: at that moment nothing was live yet.
    assert renderer.calls == [("hotline", None, renderer.calls[0][2])] and renderer.calls[0][2] > 20
    message = await listener.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None and json.loads(message["data"]) == {"flow": "hotline", "version": 1}
    await listener.aclose()
    [entry] = await store.audit.entries()
    assert (entry["who"], entry["action"], entry["target"]) == ("kim", "publish", "flow:hotline")
    assert "version 1 live (was none): first version" == entry["detail"]
    assert await store.flows() == [{"id": "hotline", "live": 1, "versions": 1, "updated_at": version.at}]


async def test_versions_history_and_diff(store: FlowStore) -> None:
    await store.publish("hotline", TEXT, "kim", "first", base=0)
    second = await store.publish("hotline", EDITED, "lee", "key 2 to payments", base=1)
    assert second.number == 2
    history = await store.history("hotline")
    assert [(v.number, v.author, v.comment) for v in history] == [(2, "lee", "key 2 to payments"), (1, "kim", "first")]
    assert history[1].text == TEXT and history[0].text == EDITED
    diff = await store.diff("hotline", 1, 2)
    assert "-      lost_card: to_cards\n" in diff and "+      lost_card: to_payments\n" in diff
    assert diff.startswith("--- hotline v1 (kim, ") and "+++ hotline v2 (lee, " in diff
    assert await store.diff("hotline", 2, 2) == ""
    with pytest.raises(UnknownVersion, match="has no version 7"):
        await store.diff("hotline", 1, 7)


async def test_a_stale_base_is_refused_and_nothing_is_lost(store: FlowStore) -> None:
    await store.publish("hotline", TEXT, "kim", "first", base=0)
    await store.publish("hotline", EDITED, "kim", "kim's edit", base=1)
    lee_text = TEXT.replace("priority: 10", "priority: 20")
    with pytest.raises(BaseChanged) as info:
        await store.publish("hotline", lee_text, "lee", "lee's edit", base=1)
    assert (info.value.live, info.value.base, info.value.text) == (2, 1, lee_text)
    assert "version 2 by kim is live now" in str(info.value) and "Nothing was published" in str(info.value)
    live = await store.live("hotline")
    assert live is not None and (live.number, live.text) == (2, EDITED)  # kim's edit stands
    assert len(await store.history("hotline")) == 2
    # Lee merges and publishes on top of kim's version.
    merged = EDITED.replace("loans, skills: [loans]}", "loans, skills: [loans], priority: 5}")
    assert merged != EDITED
    assert (await store.publish("hotline", merged, "lee", "merged", base=2)).number == 3


async def test_two_admins_publishing_at_once(store: FlowStore) -> None:
    await store.publish("hotline", TEXT, "kim", "first", base=0)
    texts = {"kim": EDITED, "lee": TEXT.replace("priority: 10", "priority: 20")}
    results = await asyncio.gather(*(store.publish("hotline", text, who, f"{who}'s edit", base=1)
                                     for who, text in texts.items()), return_exceptions=True)
    published = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseChanged)]
    assert len(published) == 1 and len(refused) == 1, results
    winner, loser = published[0], refused[0]
    assert winner.number == 2 and (await store.live("hotline")) == winner
    assert loser.live == 2 and loser.text == texts["lee" if winner.author == "kim" else "kim"]
    assert [v.number for v in await store.history("hotline")] == [2, 1]


async def test_rollback_in_one_step(store: FlowStore) -> None:
    await store.publish("hotline", TEXT, "kim", "first", base=0)
    await store.publish("hotline", EDITED, "kim", "key 2 to payments", base=1)
    back = await store.rollback("hotline", 1, "lee", "cards complained")
    assert (back.number, back.action, back.text, back.author) == (3, "rollback", TEXT, "lee")
    assert back.comment == "rollback to version 1: cards complained"
    assert (await store.live("hotline")) == back
    entry = (await store.audit.entries())[0]
    assert (entry["action"], entry["who"]) == ("rollback", "lee")
    assert "text of version 1 (was 2)" in entry["detail"]
    with pytest.raises(UnknownVersion):
        await store.rollback("hotline", 9, "lee")


async def test_an_invalid_flow_is_refused_and_the_live_one_stays(store: FlowStore, renderer: Renderer) -> None:
    first = await store.publish("hotline", TEXT, "kim", "first", base=0)
    broken = {
        "yaml syntax": TEXT.replace("nodes:\n", "nodes: [\n", 1),
        "unknown node type": TEXT.replace("type: hangup", "type: goodbye"),
        "cycle with no exit": TEXT.replace("      loan: to_loans\n", "      loan: loop_a\n")
        + "  loop_a: {type: say, prompt: {ko: 가, en: a}, next: loop_b}\n"
        + "  loop_b: {type: say, prompt: {ko: 나, en: b}, next: loop_a}\n",
        "deleted queue": TEXT.replace("queue: loans", "queue: mortgages"),
        "wrong id": TEXT.replace("id: hotline", "id: other"),
    }
    renders = len(renderer.calls)
    for what, text in broken.items():
        with pytest.raises(InvalidFlow) as info:
            await store.publish("hotline", text, "kim", what, base=1)
        assert info.value.report.errors, what
        assert (await store.live("hotline")) == first, what
    assert len(renderer.calls) == renders  # nothing invalid is even rendered
    assert [e["action"] for e in await store.audit.entries()] == ["publish"]
    with pytest.raises(InvalidFlow) as info:
        await store.publish("hotline", TEXT.replace("queue: loans", "queue: mortgages"), "kim", "x", base=1)
    assert "queue 'mortgages' does not exist in Asterisk" in str(info.value)


async def test_a_rollback_to_a_version_that_names_a_deleted_queue_is_refused(
        redis_db: aioredis.Redis, renderer: Renderer) -> None:
    store = FlowStore(redis_db, prerender=renderer, context=CONTEXT)
    await store.publish("hotline", TEXT, "kim", "first", base=0)
    await store.publish("hotline", EDITED, "kim", "second", base=1)
    without_loans = FlowStore(redis_db, prerender=renderer,
                              context=Context(queues=CONTEXT.queues - {"loans"}))
    with pytest.raises(InvalidFlow, match="queue 'loans' does not exist"):
        await without_loans.rollback("hotline", 1, "lee")
    assert (await store.live("hotline")).number == 2  # type: ignore[union-attr]


async def test_a_5_mb_flow_is_refused(store: FlowStore) -> None:
    await store.publish("hotline", TEXT, "kim", "first", base=0)
    huge = TEXT + "# " + "x" * (5 * 1024 * 1024) + "\n"
    with pytest.raises(InvalidFlow, match="a flow may be at most 1,000,000 bytes"):
        await store.publish("hotline", huge, "kim", "huge", base=1)
    assert (await store.live("hotline")).number == 1  # type: ignore[union-attr]
    assert await store.redis.hlen("ivr:flow:hotline:versions") == 1


async def test_prompts_that_cannot_be_rendered_refuse_the_publish(redis_db: aioredis.Redis) -> None:
    store = FlowStore(redis_db, prerender=Renderer(redis_db, fail=True), context=CONTEXT)
    with pytest.raises(InvalidFlow, match="prompts could not be rendered"):
        await store.publish("hotline", TEXT, "kim", "first", base=0)
    assert await store.live("hotline") is None


async def test_seed_once_from_the_file(store: FlowStore) -> None:
    first = await store.seed("hotline", HOTLINE)
    assert first is not None and (first.number, first.action, first.author, first.text) == (1, "import", "seed", TEXT)
    assert await store.seed("hotline", HOTLINE) is None
    [entry] = await store.audit.entries()
    assert (entry["action"], entry["target"]) == ("import", "flow:hotline")


async def test_audit_log_newest_first(redis_db: aioredis.Redis) -> None:
    audit = AuditLog(redis_db)
    await audit.record("kim", "import", "customers", "demo.json: imported 3, failed 0")
    await audit.record("lee", "role_change", "user:park", "created with role admin")
    entries = await audit.entries(10)
    assert [(e["who"], e["action"], e["target"]) for e in entries] == [
        ("lee", "role_change", "user:park"), ("kim", "import", "customers")]
    assert entries[0]["at"] >= entries[1]["at"] > 0
    assert len(await audit.entries(1)) == 1


def test_who_runs_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "kim")
    monkeypatch.setenv("USER", "root")
    assert current_user() == "kim"
    monkeypatch.delenv("SUDO_USER")
    assert current_user() == "root"
    monkeypatch.delenv("USER")
    assert current_user() == "cli"


# --- the command line records imports and role changes


def test_imports_and_role_changes_are_audited(redis_url: str, tmp_path: Path) -> None:
    from ivr.cli import app

    client = redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    env = {"IVR_REDIS_URL": redis_url, "SUDO_USER": "auditor", "USER": "root"}
    runner = CliRunner()
    try:
        for args in (["customers", "import", str(ROOT / "dialplans" / "demo_customers.json")],
                     ["agents", "import", str(ROOT / "dialplans" / "demo_agents.json")]):
            result = runner.invoke(app, args, env=env)
            assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["users", "add", "park", "--role", "supervisor", "--password-stdin"],
                               input="long-enough-password\n", env=env)
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["users", "add", "park", "--role", "admin", "--password-stdin"],
                               input="long-enough-password\n", env=env)
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["audit", "--json"], env=env)
        assert result.exit_code == 0, result.output
        entries: list[dict[str, Any]] = json.loads(result.output)
        assert [(e["who"], e["action"], e["target"]) for e in entries] == [
            ("auditor", "role_change", "user:park"), ("auditor", "role_change", "user:park"),
            ("auditor", "import", "agents"), ("auditor", "import", "customers")]
        assert entries[0]["detail"] == "role supervisor -> admin (password set)"
        assert entries[1]["detail"] == "created with role supervisor"
        assert entries[3]["detail"] == "demo_customers.json: imported 3, failed 0"
        text = runner.invoke(app, ["audit"], env=env).output
        assert "auditor" in text and "role_change" in text
    finally:
        client.flushdb()
        client.close()


def test_cli_publish_history_diff_rollback(redis_url: str, tmp_path: Path) -> None:
    from ivr.cli import app

    client = redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    env = {"IVR_REDIS_URL": redis_url, "USER": "kim", "SUDO_USER": "",
           "IVR_RUN_DIR": str(tmp_path / "run")}  # prompts rendered into a scratch cache
    runner = CliRunner()
    first, second = tmp_path / "hotline.yaml", tmp_path / "edited.yaml"
    first.write_text(TEXT, encoding="utf-8")
    second.write_text(EDITED, encoding="utf-8")
    try:
        result = runner.invoke(app, ["dialplan", "publish", str(first), "-m", "first", "--base", "0"], env=env)
        assert result.exit_code == 0, result.output
        assert "published hotline version 1 (was none)" in result.output
        assert any((tmp_path / "run" / "prompts").iterdir())  # pre-rendered before it went live
        result = runner.invoke(app, ["dialplan", "publish", str(second), "-m", "key 2", "--base", "1"], env=env)
        assert "published hotline version 2 (was 1)" in result.output
        stale = runner.invoke(app, ["dialplan", "publish", str(first), "-m", "late", "--base", "1"], env=env)
        assert stale.exit_code == 1 and "version 2 by kim is live now" in stale.output
        history = runner.invoke(app, ["dialplan", "history", "hotline"], env=env).output.splitlines()
        assert history[0].startswith("* v2") and "key 2" in history[0] and history[1].startswith("  v1")
        diff = runner.invoke(app, ["dialplan", "diff", "hotline", "1", "2"], env=env).output
        assert "+      lost_card: to_payments" in diff
        result = runner.invoke(app, ["dialplan", "rollback", "hotline", "1", "-m", "undo"], env=env)
        assert result.exit_code == 0 and "version 3 live (the text of version 1)" in result.output
        bad = tmp_path / "bad.yaml"
        bad.write_text(TEXT.replace("type: hangup", "type: goodbye"), encoding="utf-8")
        result = runner.invoke(app, ["dialplan", "publish", str(bad), "-m", "bad"], env=env)
        assert result.exit_code == 1 and "unknown node type 'goodbye'" in result.output
        assert client.get("ivr:flow:hotline:live") == "3"
    finally:
        client.flushdb()
        client.close()
