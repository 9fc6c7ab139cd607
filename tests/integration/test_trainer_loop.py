"""The trainer loop end to end, through the real Asterisk, controller, archive and Vosk (issue 11's evidence).

A batch of callers say "송금 해주세요" (send money) at the main menu: the hotline has no such phrase and the small
model hears something else (it is confirmed as another intent, declined, or asked again); each caller then
presses 4 (transfer). The archive labels those failed turns "transfer" from the key (a free label); the loop
suggests a phrase from what the model hears in their recordings, replays the candidate against every turn of the
test's calls (the failed ones and a set heard right: "상담원 연결", "계좌 이체"), and the candidate is published with
that evidence. A fresh call with the same audio then reaches payments on its first answer, and the turns that were
right stay right. The hotline's original text is live again at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from asr.text import normalize_phrase
from ivr.config import Settings
from ivr.records.archive import Archive, ArchivedTurn
from ivr.records.store import call_key
from ivr.sim.simulator import SimulatedCall, Simulator, to_caller_audio
from ivr.telephony.ami import AmiClient
from ivr.voice.training.gate import save_result
from ivr.voice.training.loop import cluster_suggestion
from ivr.voice.training.replay import archived_turns, hear_freely, replay
from ivr.voice.training.suggest import Suggestion, SuggestionError
from ivr.voice.versions import FlowStore
from tests.integration.conftest import RECOGNITION_MARGIN, YES
from tests.integration.test_hot_reload import controller_runs

pytestmark = pytest.mark.integration

CALLER = "01099990011"  # nobody in the demo customers
AUTHOR = "test_trainer_loop"
SAID = "송금 해주세요"
FAILING_CALLS = 3
#: The turns heard right before the change, which must stay right: (text, espeak voice and pace, queue).
RIGHT = [("상담원 연결", {}, "general"), ("계좌 이체", {"voice": "ko+f1", "rate": 140}, "payments")]


class KeyAfterMiss(Simulator):
    """A caller who wants ``intent``: says their words at the menu first; declines (2) a confirmation of another
    intent and accepts (1) one of theirs; presses ``key`` when asked again. Prepared turns: the audio, "1", "2",
    the key."""

    def __init__(self, settings: Settings, intent: str, confirm_threshold: float) -> None:
        super().__init__(settings)
        self.intent, self.confirm_threshold = intent, confirm_threshold

    async def answer_when_asked(self, ami: AmiClient, sim: SimulatedCall, turn: tuple[str, str],
                                prompt_over: asyncio.Event, prompt_s: float, barge_in: bool) -> None:
        client = aioredis.from_url(self.settings.redis_url, decode_responses=True)
        try:
            raw = await client.get(call_key(sim.call_id))
        finally:
            await client.aclose()
        turns = (json.loads(raw).get("turns") or []) if raw else []
        if not turns:
            choice = 0
        elif (turns[-1].get("kind", "ask") == "ask" and turns[-1].get("intent")
              and float(turns[-1].get("score") or 0) >= self.confirm_threshold and not turns[-1].get("dtmf")):
            choice = 1 if turns[-1]["intent"] == self.intent else 2  # "…, right?"
        else:
            choice = 3
        await super().answer_when_asked(ami, sim, sim.turns[choice], prompt_over, prompt_s, barge_in)


async def wait_archived(archive: Archive, call_ids: list[str], timeout: float = 20.0) -> None:
    """The controller archives a call in a thread once its IVR part is over."""
    for _ in range(int(timeout / 0.2)):
        if all(archive.call(c) is not None for c in call_ids):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"calls {call_ids} not archived within {timeout} s")


def heard_offline_as(wav: Path, phrases: list[str], rate: int = 8000) -> list[tuple[str, float]]:
    """What the product's recognizer makes of ``wav`` with a grammar of ``phrases`` over the lead-ins and frame
    offsets a call varies (as the ``recognizable`` fixture checks): the worst top hypothesis per variation."""
    from asr.grammar import build_grammar
    from asr.packs import default_registry
    from asr.stream import TurnRecognizer

    model = default_registry().get("ko")
    grammar = build_grammar(phrases, model)
    heard_as = wav.with_name(f"{wav.stem}-{rate // 1000}k-candidate.wav")
    to_caller_audio(wav, heard_as, rate)
    with wave.open(str(heard_as), "rb") as audio:
        speech = audio.readframes(audio.getnframes())
    frame, per_ms = rate // 50 * 2, rate // 1000 * 2
    tops = []
    for lead_s in (0.0, 0.5, 1.0, 2.0, 4.0):
        for shift_ms in range(0, 20, 4):
            pcm = bytes(int(lead_s * 1000) * per_ms + shift_ms * per_ms) + speech + bytes(600 * per_ms)
            recognizer = TurnRecognizer(model, grammar, sample_rate=rate)
            for offset in range(0, len(pcm), frame):
                recognizer.feed(pcm[offset:offset + frame])
            result = recognizer.finish()
            top = result.alternatives[0] if result.alternatives else None
            tops.append((top.text, top.confidence) if top else ("", 0.0))
    return tops


def recognizable_candidate(archive: Archive, recordings: Path, flow_text: str, cluster: int, since: float,
                           turns: list[ArchivedTurn], suggested: Suggestion, wav: Path) -> Suggestion:
    """The suggestion, or the first other phrase the model heard in the cluster's recordings, whose candidate flow
    hears ``wav`` as that phrase with the recognition margin at every lead-in and frame offset."""
    from ivr.voice.flow import AskNode, parse_flow

    heard = hear_freely([recordings / t.audio for t in turns if t.audio], "ko", workers=2)
    votes = Counter(normalize_phrase(" ".join(w for w in (text or "").split() if not w.startswith(("[", "<"))))
                    for text in heard)
    tried: list[str] = []
    candidates = [suggested] + [text for text, _ in votes.most_common() if text and text != suggested.heard]
    for candidate in candidates:
        try:
            suggestion = candidate if isinstance(candidate, Suggestion) else cluster_suggestion(
                archive, recordings, flow_text, cluster, since, label="transfer", phrase=candidate, listen=False)
        except SuggestionError as exc:  # another intent's phrase, or nothing the model knows
            tried.append(f"{candidate!r}: {exc.message}")
            continue
        flow = parse_flow(suggestion.text)
        menu = flow.nodes["main_menu"]
        assert isinstance(menu, AskNode)
        tops = heard_offline_as(wav, flow.grammar_phrases(menu, "ko"))
        if all(text == suggestion.phrase and conf >= RECOGNITION_MARGIN for text, conf in tops):
            return suggestion
        tried.append(f"{suggestion.phrase!r}: heard as {sorted(set(tops))[:4]}")
    raise AssertionError(f"no phrase the model heard in {SAID!r} makes a candidate that surely hears it: "
                         + "; ".join(tried))


async def test_failed_turns_become_a_published_phrase_that_routes_the_next_caller(
        live_stack: Settings, call: Any, say: Any, recognizable: Any) -> None:
    started = time.time() - 1
    redis = aioredis.from_url(live_stack.redis_url, decode_responses=True)
    store = FlowStore(redis, settings=live_stack)
    original = await store.live("hotline")
    assert original is not None, "the controller seeds the hotline's first version when it starts"
    archive = Archive(live_stack.archive_file)
    failing = say(SAID)
    try:
        # 1. The batch: speech fails, then the caller presses 4; and the turns heard right.
        placed = []
        for _ in range(FAILING_CALLS):
            caller = KeyAfterMiss(live_stack, "transfer", 0.3)
            record = await caller.run(CALLER, [failing], ["1", "2", "4"], timeout=90)
            assert (record["intent"], record["queue"]) == ("transfer", "payments"), record
            assert record["turns"][0]["intent"] != "transfer" or record["turns"][0]["score"] < 0.6, record
            placed.append(record["call_id"])
        for text, voice, queue in RIGHT:
            recognizable(say(text, **voice), text)
            record = await call(caller=CALLER, audio=[say(text, **voice)], dtmf=[YES])
            assert record["queue"] == queue, record
            placed.append(record["call_id"])
        await wait_archived(archive, placed)

        # 2. Free labels: each failed first turn is labeled "transfer" from the key.
        turns = [t for t in archive.turns(started) if t.call_id in placed[:FAILING_CALLS] and t.failed]
        assert turns and all(t.label == "transfer" and t.label_source == "key" for t in turns), turns
        clusters = [t.cluster for t in turns if t.cluster is not None]
        cluster = max(set(clusters), key=clusters.count)

        # 3. The suggestion, from what the model hears in those recordings (nothing published yet).
        suggestion = await asyncio.to_thread(cluster_suggestion, archive, live_stack.recordings_dir,
                                             original.text, cluster, started)
        assert suggestion.intent == "transfer" and suggestion.kind.value in ("phrase", "variant"), suggestion
        assert suggestion.diff and suggestion.phrase in suggestion.text
        assert (await store.live("hotline")) == original  # suggestions leave the live flow alone

        # What the model freely hears in espeak-ng audio through a call varies from run to run: of what it heard
        # (the suggestion first), the first phrase whose candidate grammar surely hears the synthetic caller as
        # it (the recognition margin, before relying on it). None at all is a real regression.
        suggestion = await asyncio.to_thread(recognizable_candidate, archive, live_stack.recordings_dir,
                                             original.text, cluster, started, turns, suggestion, failing)

        # 4. The replay: the failed turns fixed, the right ones kept; kept for the publish.
        replayable = archived_turns(live_stack.archive_file, live_stack.recordings_dir, "hotline", started)
        result = await asyncio.to_thread(replay, suggestion.text, replayable, workers=2, since=started)
        assert result.unreadable == 0 and result.broken == 0, result
        assert result.fixed >= len(turns) and result.right_after >= result.right_before + len(turns), result
        await save_result(redis, result)
        assert (await store.live("hotline")) == original  # replays too

        # 5. Published with its evidence; a fresh caller with the same audio is routed at once.
        version = await store.publish("hotline", suggestion.text, AUTHOR, f"{SAID}: {suggestion.phrase}",
                                      base=original.number)
        assert version.replay is not None and version.replay["fixed"] == result.fixed
        assert await controller_runs(redis, version.number)
        fresh = await KeyAfterMiss(live_stack, "transfer", 0.3).run(CALLER, [failing], ["1", "2", "4"], timeout=90)
        assert (fresh["queue"], fresh["flow_version"]) == ("payments", version.number), fresh
        assert fresh["turns"][0]["transcript"] == suggestion.phrase and fresh["turns"][0]["intent"] == "transfer"
        assert fresh["turns"][0]["dtmf"] == "", fresh  # by voice, not by the key
    finally:
        live = await store.live("hotline")
        if live is not None and live.text != original.text:
            live = await store.rollback("hotline", original.number, AUTHOR, "restore after test_trainer_loop")
        if live is not None:
            await controller_runs(redis, live.number)
        archive.close()
        with contextlib.suppress(Exception):
            await redis.aclose()
