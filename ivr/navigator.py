"""Voice navigation: walk a flow with the caller over their AudioSocket session.

Each ``ask`` is one turn: the prompt plays while we already listen (barge-in), the
caller's audio streams into a Vosk recognizer as it arrives, a key press counts at
any time. Whatever goes wrong, the walk ends with a queue of people: recognition
errors fall back to keys, and two failed turns in a row go to the fallback queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from asr import ModelRegistry, Partial, Result, TurnRecognizer, build_grammar
from ivr.audiosocket import AudioSession, CallerAudio, CallerDtmf, CallerGone
from ivr.calls import CallRecord, Turn
from ivr.flow import AskNode, Flow, HangupNode, RouteNode
from ivr.intents import match_dtmf, match_intent
from ivr.provision import write_wav
from tts import PromptRenderer

log = logging.getLogger(__name__)

#: Feed the recognizer 100 ms at a time: fewer thread hops, still well inside barge-in budgets.
FEED_FRAMES = 5
#: Intent score at or above which the engine acts without asking again.
ACT_THRESHOLD = 0.45
MAX_FAILED_TURNS = 2
AGENT_KEY = "0"
#: Rendered prompts kept in memory (static prompts of a flow are a few dozen).
PROMPT_MEMORY_CACHE = 512


@dataclass(slots=True)
class Heard:
    """The outcome of one turn of listening."""

    result: Result | None = None
    """Recognizer output; None when nothing was recognized (or recognition failed)."""
    dtmf: str = ""
    """Key pressed, if the turn ended on a key."""
    hung_up: bool = False
    """The caller left during the turn."""
    barged_in: bool = False
    """The caller interrupted the prompt."""
    error: str | None = None
    """Why recognition failed, when it did."""
    audio: bytearray = field(default_factory=bytearray)
    """The caller's audio during the turn."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the walk ended."""

    queue: str | None
    """Queue to hand the call to; None to hang up."""
    intent: str | None
    """The intent that led there."""
    reason: str
    """Why, for the call record."""


class Speech:
    """Shared speech resources: models (one per pack), prompt renderer, recognition threads."""

    def __init__(self, registry: ModelRegistry, renderer: PromptRenderer, threads: int = 2) -> None:
        self.registry = registry
        self.renderer = renderer
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="asr")
        self._prompts: dict[tuple[str, str], bytes] = {}

    def recognizer(self, language: str, phrases: list[str]) -> TurnRecognizer:
        model = self.registry.get(language)
        return TurnRecognizer(model, build_grammar(phrases, model) if phrases else None)

    async def prompt(self, text: str, language: str) -> bytes:
        key = (text, language)
        pcm = self._prompts.get(key)
        if pcm is None:
            path = await self.renderer.render_async(text, language)
            pcm = await asyncio.to_thread(Path(path).read_bytes)
            if len(self._prompts) >= PROMPT_MEMORY_CACHE:  # dynamic prompts (amounts) must not grow it forever
                self._prompts.pop(next(iter(self._prompts)))
            self._prompts[key] = pcm
        return pcm


ListenHook = Callable[[CallRecord, str, float], Awaitable[None]]
"""Called when a turn starts listening: (call, node id, prompt seconds)."""


class Navigator:
    def __init__(self, flow: Flow, speech: Speech, recordings_dir: Path, on_listen: ListenHook | None = None) -> None:
        self.flow = flow
        self.speech = speech
        self.recordings_dir = recordings_dir
        self.on_listen = on_listen

    def prompts(self) -> list[tuple[str, str]]:
        """Every static prompt of the flow, for pre-rendering when the flow loads."""
        items: list[tuple[str, str]] = []
        for node in self.flow.nodes.values():
            for texts in (getattr(node, "prompt", None), getattr(node, "reprompt", None)):
                for language, text in (texts or {}).items():
                    items.append((text, language))
        return items

    async def run(self, call: CallRecord, session: AudioSession) -> Decision:
        node_id = self.flow.start
        failures = 0
        while True:
            call.path.append(node_id)
            node = self.flow.nodes[node_id]
            if isinstance(node, RouteNode):
                return Decision(node.queue, call.intent, f"flow node {node_id}")
            if isinstance(node, HangupNode):
                if node.prompt:
                    await self._say(session, node.prompt, call.language)
                return Decision(None, call.intent, f"flow node {node_id}")
            assert isinstance(node, AskNode)
            prompt = node.prompt if failures == 0 or not node.reprompt else node.reprompt
            turn = Turn(node=node_id)
            call.turns.append(turn)
            heard = await self.listen(session, node, prompt.get(call.language, ""), call)
            turn.dtmf = heard.dtmf
            turn.error = heard.error
            turn.decided_at = time.time()
            turn.audio = self._save_turn_audio(call, len(call.turns), heard.audio)
            if heard.result:
                turn.transcript = heard.result.text
                turn.confidence = round(heard.result.confidence, 3)
            if heard.hung_up:
                return Decision(None, call.intent, "caller hung up")
            intent = self._intent(node, heard, turn, call.language)
            if intent == "agent" or heard.dtmf == AGENT_KEY:
                call.intent = call.intent or "agent"
                return Decision(self.flow.fallback_queue, call.intent, "caller asked for a person")
            if intent:
                call.intent = intent
                node_id = node.routes[intent]
                failures = 0
                continue
            failures += 1
            if failures >= MAX_FAILED_TURNS:
                call.note(f"{failures} turns without a usable answer at {node_id}: to a person")
                return Decision(self.flow.fallback_queue, call.intent, "not understood twice")

    def _intent(self, node: AskNode, heard: Heard, turn: Turn, language: str) -> str | None:
        offered = list(node.routes)
        if heard.dtmf:
            intent = match_dtmf(heard.dtmf, {i: self.flow.intents[i].dtmf for i in offered})
            turn.intent, turn.score = intent, 1.0 if intent else 0.0
            return intent
        result = heard.result
        if not result or not result.text:
            return None
        # Vosk's grammar is a bigram model: it can return word strings that are no phrase at all.
        # An n-best entry that is exactly a grammar phrase is the trustworthy one; plain text is
        # only half-trusted.
        text, confidence = (result.phrase, result.phrase_confidence) if result.phrase else (
            result.text, result.confidence * 0.5)
        match = match_intent(text, confidence, self.flow.phrases(offered, language))
        if match is None:
            return None
        turn.intent, turn.score = match.intent, match.score
        return match.intent if match.score >= ACT_THRESHOLD else None

    async def _say(self, session: AudioSession, texts: dict[str, str], language: str) -> None:
        text = texts.get(language)
        if text:
            playback = session.play(await self.speech.prompt(text, language))
            await asyncio.wait([playback.done, asyncio.ensure_future(session.closed.wait())],
                               return_when=asyncio.FIRST_COMPLETED)

    async def listen(self, session: AudioSession, node: AskNode, prompt_text: str, call: CallRecord) -> Heard:
        heard = Heard()
        language = call.language
        loop = asyncio.get_running_loop()
        phrases = [p for i in node.routes for p in self.flow.intents[i].phrases.get(language, [])]
        recognizer: TurnRecognizer | None = None
        try:
            recognizer = self.speech.recognizer(language, phrases)
        except Exception as exc:  # model missing, bad grammar: keys still work
            heard.error = f"speech recognition unavailable: {exc}"
            log.error("call %s: %s; listening for keys only", session.call_id, heard.error)
        playback = session.play(await self.speech.prompt(prompt_text, language)) if prompt_text else None
        if self.on_listen:
            await self.on_listen(call, call.path[-1], playback.seconds if playback else 0.0)
        prompt_over_at: float | None = None if playback else loop.time()
        speech_started_at: float | None = None
        pending = bytearray()
        while True:
            if playback and prompt_over_at is None and playback.done.done():
                prompt_over_at = loop.time()
            now = loop.time()
            if speech_started_at is None and prompt_over_at is not None and now - prompt_over_at > node.no_input_s:
                break  # no input
            if speech_started_at is not None and now - speech_started_at > node.max_speech_s:
                break
            event = await session.next_event(timeout=0.05)
            if event is None:
                continue
            if isinstance(event, CallerGone):
                heard.hung_up = True
                break
            if isinstance(event, CallerDtmf):
                heard.dtmf = event.digit
                heard.barged_in = session.playing
                session.stop_playback()
                break
            assert isinstance(event, CallerAudio)
            heard.audio += event.pcm
            if recognizer is None:
                continue
            pending += event.pcm
            if len(pending) < FEED_FRAMES * len(event.pcm):
                continue
            chunk, pending = bytes(pending), bytearray()
            try:
                out = await loop.run_in_executor(self.speech.executor, recognizer.feed, chunk)
            except Exception as exc:
                heard.error = f"recognizer failed: {exc}"
                log.error("call %s: %s; listening for keys only", session.call_id, heard.error)
                recognizer = None
                continue
            if isinstance(out, Partial) and out.text and speech_started_at is None:
                speech_started_at = loop.time()
                if session.playing:  # barge-in: a recognized word, not mere noise, cuts the prompt
                    heard.barged_in = True
                    session.stop_playback()
            elif isinstance(out, Result):
                heard.result = out
                break
        if heard.result is None and recognizer is not None and not heard.dtmf:
            try:
                heard.result = await loop.run_in_executor(self.speech.executor, recognizer.finish)
            except Exception as exc:
                heard.error = f"recognizer failed: {exc}"
        session.stop_playback()
        return heard

    def _save_turn_audio(self, call: CallRecord, index: int, pcm: bytearray) -> str | None:
        if not pcm:
            return None
        rel = Path("turns") / time.strftime("%Y-%m-%d") / f"{call.call_id}-{index}.wav"
        try:
            write_wav(self.recordings_dir / rel, bytes(pcm))
        except OSError as exc:
            log.error("call %s: turn audio not saved: %s", call.call_id, exc)
            return None
        return str(rel)
