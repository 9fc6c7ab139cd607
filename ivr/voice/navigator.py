"""Voice navigation: walk a flow with the caller over their AudioSocket session.

Each question is one turn: the prompt plays while we already listen (barge-in), the
caller's audio streams into a Vosk recognizer as it arrives, and a key counts at any
time. The understanding (ivr.voice.understanding) decides: act, confirm, or ask again.

Never a dead end, whatever the flow says: ``0`` or the agent intent reaches a person
from any question; after ``max_failures`` (at most 2) misses in a row the caller goes
to the fallback queue with what was heard; if recognition fails the question goes on
with keys only, and says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from num2words import num2words

from asr import Partial, Result, TurnRecognizer, build_grammar
from ivr.audio import write_wav
from ivr.records.call import CallRecord, Turn
from ivr.records.customer import Customer
from ivr.telephony.audiosocket import AudioSession, CallerAudio, CallerDtmf, CallerGone
from ivr.voice.flow import (
    AskNode,
    CallbackOfferNode,
    Flow,
    HangupNode,
    LanguageText,
    Listen,
    RouteNode,
    SayNode,
    SelfServiceNode,
    TransferNode,
)
from ivr.voice.understanding import (
    Action,
    Hypothesis,
    IntentPhrases,
    Thresholds,
    TurnContext,
    acoustic_support,
    understand,
    yes_or_no,
)
from tts import PromptRenderer

log = logging.getLogger(__name__)

#: Feed the recognizer 100 ms at a time: fewer thread hops, still well inside the barge-in budget.
FEED_BYTES = 5 * 320
#: RMS (16-bit) above which a 20 ms frame counts as voiced, for barge-in and endpointing.
VOICED_RMS = 400.0
AGENT_KEY = "0"
#: A flow with a loop of say nodes must still end: after this many nodes, a person takes over.
MAX_STEPS = 40
#: Rendered prompts kept in memory (a flow's static prompts are a few dozen).
PROMPT_MEMORY_CACHE = 512


class ModelSource(Protocol):
    def get(self, language: str, dialect: str | None = None) -> Any: ...

    def packs(self) -> list[Any]: ...


@dataclass(slots=True)
class Heard:
    """The outcome of one turn of listening."""

    result: Result | None = None
    """Recognizer output; None when nothing was recognized (or recognition failed)."""
    language: str = ""
    """Language whose recognizer produced the result."""
    dtmf: str = ""
    """Key pressed, if the turn ended on a key."""
    hung_up: bool = False
    """The caller left during the turn."""
    barged_in: bool = False
    """The caller interrupted the prompt."""
    error: str | None = None
    """Why recognition failed, when it did."""
    speech_started_at: float | None = None
    speech_ended_at: float | None = None
    voiced_s: float | None = None
    """Audio time from the first to the last voiced frame (not wall time: immune to load and bursts)."""
    grammar: frozenset[str] | None = None
    """The phrases the recognizer could return exactly (None: no grammar, or not known)."""
    audio: bytearray = field(default_factory=bytearray)
    """The caller's audio during the turn."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the walk ended."""

    kind: str
    """"queue", "transfer", "callback" or "hangup"."""
    queue: str | None = None
    """Queue to hand the call to (also the queue a callback keeps a place in)."""
    target: str | None = None
    """Extension for a transfer."""
    priority: int = 0
    """Queue priority from the route node."""
    skills: tuple[str, ...] = ()
    """Skills the route node asks of the agent (the router uses the first; none: the queue's name)."""
    reason: str = ""
    """Why, for the call record."""


ListenHook = Callable[[CallRecord, str, float], Awaitable[None]]
"""Called when a turn starts listening: (call, node id, prompt seconds)."""
TurnHook = Callable[[CallRecord, Turn], Awaitable[None]]
"""Called when a turn is decided (the turn log for trainers)."""


class Speech:
    """Shared speech resources: models (one per pack), prompts, recognition threads."""

    def __init__(self, registry: ModelSource, renderer: PromptRenderer, threads: int = 2) -> None:
        self.registry = registry
        self.renderer = renderer
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="asr")
        self._prompts: dict[tuple[str, str], bytes] = {}
        self.oov_reported: set[tuple[str, str]] = set()

    def languages_with_packs(self, languages: list[str]) -> list[str]:
        """The flow's languages that have a model pack on this machine, in the flow's order."""
        packs = getattr(self.registry, "packs", None)
        if packs is None:
            return languages[:1]
        loaded = {p.language for p in packs()}
        return [lang for lang in languages if lang in loaded]

    def recognizer(self, language: str, phrases: list[str]) -> TurnRecognizer:
        model = self.registry.get(language)
        grammar = build_grammar(phrases, model) if phrases else None
        if grammar is not None:
            for phrase, words in grammar.oov.items():
                if (language, phrase) not in self.oov_reported:  # once per process, not per call
                    self.oov_reported.add((language, phrase))
                    log.warning("phrase %r: %s not in the %s model's vocabulary (Vosk ignores them)",
                                phrase, ", ".join(words), language)
        return TurnRecognizer(model, grammar)

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


def hypotheses(result: Result) -> list[Hypothesis]:
    if result.alternatives:
        return [Hypothesis(a.text, a.confidence) for a in result.alternatives if a.text]
    return [Hypothesis(result.text, 1.0)] if result.text else []


def is_phrase(heard: Heard) -> Callable[[str], bool] | None:
    """Whether a string is exactly one of the grammar's phrases (None when there was no grammar)."""
    grammar = heard.grammar
    if not grammar:
        return None
    return lambda text: " ".join(text.lower().split()) in grammar


def evidence(heard: Heard, language: str) -> float:
    """How far to trust the recognition: word confidence times acoustic support."""
    assert heard.result is not None
    return word_confidence(heard.result) * acoustic_support(heard.result.text, heard.voiced_s, language)


def word_confidence(result: Result) -> float:
    """Mean word confidence when the recognizer gives one (not in n-best mode), else 1."""
    confs = [w.conf for w in result.words if w.conf is not None]
    return float(sum(confs) / len(confs)) if confs else 1.0


def voiced(pcm: bytes) -> bool:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return bool(samples.size) and float(np.sqrt(np.mean(samples * samples))) >= VOICED_RMS


class Navigator:
    offer_listen = Listen(no_input_s=4.0)
    """How a callback offer listens (no answer within it: the caller holds in the queue)."""

    def __init__(
        self,
        flow: Flow,
        speech: Speech,
        recordings_dir: Path,
        customers: Callable[[str], Awaitable[Customer | None]] | None = None,
        on_listen: ListenHook | None = None,
        on_turn: TurnHook | None = None,
    ) -> None:
        self.flow = flow
        self.speech = speech
        self.recordings_dir = recordings_dir
        self.customers = customers
        self.on_listen = on_listen
        self.on_turn = on_turn
        self.thresholds = Thresholds(act=flow.thresholds.act, confirm=flow.thresholds.confirm)

    def prompts(self) -> list[tuple[str, str]]:
        """Every static prompt of the flow, for pre-rendering when the flow loads."""
        return self.flow.static_prompts()

    # --- the walk

    def choose_language(self, call: CallRecord) -> list[str]:
        """Set the call's language when it is known; return the candidates when it is not.

        Order: the flow's explicit choice, the caller's stored preference (set by the
        controller), else the first utterance is recognized with every loaded pack.
        """
        if self.flow.language:
            call.language, call.language_source = self.flow.language, "flow"
            return [call.language]
        if call.language_source == "customer":
            return [call.language]
        candidates = self.speech.languages_with_packs(self.flow.languages)
        if len(candidates) <= 1:
            call.language = candidates[0] if candidates else self.flow.languages[0]
            return [call.language]
        return candidates

    async def run(self, call: CallRecord, session: AudioSession) -> Decision:
        self._candidates = self.choose_language(call)
        node_id = self.flow.start
        failures = 0
        keys_only = False
        context = TurnContext()
        for _ in range(MAX_STEPS):
            call.path.append(node_id)
            node = self.flow.nodes[node_id]
            if isinstance(node, RouteNode):
                await self._say(session, node.prompt, call)
                return Decision("queue", queue=node.queue, priority=node.priority, skills=tuple(node.skills),
                                reason=f"flow node {node_id}")
            if isinstance(node, TransferNode):
                await self._say(session, node.prompt, call)
                return Decision("transfer", queue=node.fallback_queue, target=node.target,
                                reason=f"flow node {node_id}")
            if isinstance(node, HangupNode):
                await self._say(session, node.prompt, call)
                return Decision("hangup", reason=f"flow node {node_id}")
            if isinstance(node, SayNode):
                if not await self._say(session, node.prompt, call):
                    return Decision("hangup", reason="caller hung up")
                node_id = node.next
                continue
            if isinstance(node, SelfServiceNode):
                node_id = await self._self_service(node, call, session)
                continue
            if isinstance(node, CallbackOfferNode):
                accepted = await self._offer(node, call, session)
                if accepted is None:
                    return Decision("hangup", reason="caller hung up")
                if accepted:
                    await self._say(session, node.accepted, call)
                    return Decision("callback", queue=node.queue, reason="caller accepted a callback")
                node_id = node.next
                continue
            assert isinstance(node, AskNode)
            if failures == 0:
                prompt = node.prompt.get(call.language, "")
            else:
                prompt = " ".join(filter(None, [self.flow.messages.not_understood.get(call.language),
                                                self._reprompt(node, call.language)]))
            if keys_only:
                prompt = " ".join(filter(None, [self.flow.messages.keys_only.get(call.language), prompt]))
            turn = Turn(node=node_id)
            corrections = failures > 0 or bool(context.pending)
            heard = await self.listen(session, node.listen, prompt, call, node_id, [] if keys_only else
                                      self.flow.grammar_phrases(node, call.language, corrections))
            self._fill(turn, heard)
            if heard.error and not keys_only:
                keys_only = True  # say so at once and go on with keys: ASR trouble never holds a caller
                call.note(f"speech recognition failed at {node_id}: {heard.error}; keys only")
            if heard.hung_up:
                await self._decided(call, turn, heard.audio)
                return Decision("hangup", reason="caller hung up")
            intent, unsure = self._understand(node, heard, turn, context, call)
            await self._decided(call, turn, heard.audio)
            if unsure:
                intent = await self._confirm(node, unsure, context, call, session)
            if intent == self.flow.agent_intent or heard.dtmf == AGENT_KEY:
                call.intent = call.intent or self.flow.agent_intent
                await self._say(session, self.flow.messages.to_person, call)
                return Decision("queue", queue=self.flow.fallback_queue, reason="caller asked for a person")
            if intent is not None and intent in node.routes:
                call.intent = intent
                node_id = node.routes[intent]
                failures = 0
                context.clear()
                continue
            if heard.hung_up or session.closed.is_set():
                return Decision("hangup", reason="caller hung up")
            failures += 1
            if failures >= self.flow.max_failures:
                call.note(f"{failures} turns without a usable answer at {node_id}: to a person")
                await self._say(session, self.flow.messages.to_person, call)
                return Decision("queue", queue=self.flow.fallback_queue, reason="not understood twice")
        call.note(f"flow did not end within {MAX_STEPS} steps: to a person")
        return Decision("queue", queue=self.flow.fallback_queue, reason="flow too long")

    def _reprompt(self, node: AskNode, language: str) -> str:
        if node.reprompt and node.reprompt.get(language):
            return node.reprompt[language]
        examples = [self.flow.intents[i].examples.get(language, "") for i in self.flow.intent_ids(node)]
        return ", ".join(e for e in examples if e)

    def _intent_phrases(self, node: AskNode, language: str) -> list[IntentPhrases]:
        out = []
        for intent_id in self.flow.intent_ids(node):
            intent = self.flow.intents[intent_id]
            out.append(IntentPhrases(
                intent_id, tuple(intent.phrases.get(language, [])),
                tuple((v.dialect, v.phrase) for v in intent.variants if v.language == language),
            ))
        return out

    def _understand(self, node: AskNode, heard: Heard, turn: Turn, context: TurnContext,
                    call: CallRecord) -> tuple[str | None, str | None]:
        """(the intent the caller chose, or None; the intent to confirm when unsure, or None)."""
        if heard.dtmf:
            if heard.dtmf == AGENT_KEY:
                turn.intent, turn.score = self.flow.agent_intent, 1.0
                return self.flow.agent_intent, None
            for intent_id in self.flow.intent_ids(node):
                if self.flow.intents[intent_id].dtmf == heard.dtmf:
                    turn.intent, turn.score = intent_id, 1.0
                    return intent_id, None
            return None, None
        if heard.result is None or not heard.result.text:
            return None, None
        language = heard.language or call.language
        phrases = self._intent_phrases(node, language)
        decision = understand(hypotheses(heard.result), phrases, context, evidence(heard, language),
                              self.thresholds, is_phrase(heard))
        if decision.best:
            turn.intent, turn.score, turn.dialect = decision.best.intent, decision.best.score, decision.best.dialect
            if decision.best.dialect and not call.dialect:
                call.dialect = decision.best.dialect  # which variant matched tells trainers and routing
            turn.used_context, turn.correction = decision.best.used_context, decision.correction
        if decision.action is Action.ACT and decision.best:
            return decision.best.intent, None
        if decision.action is Action.CONFIRM and decision.best:
            return None, decision.best.intent
        return None, None

    async def _confirm(self, node: AskNode, intent_id: str, context: TurnContext, call: CallRecord,
                       session: AudioSession) -> str | None:
        """'You want X, right?' Yes/1 -> X; no/2 -> a miss (or the intent the correction names)."""
        question = self.flow.intents[intent_id].confirm.get(call.language)
        if not question:
            return None
        language = call.language
        yes, no = self.flow.confirmation.yes, self.flow.confirmation.no
        grammar = yes.get(language, []) + self.flow.grammar_phrases(node, language, corrections=True)
        turn = Turn(node=call.path[-1], kind="confirm")
        heard = await self.listen(session, node.listen, question, call, call.path[-1], grammar)
        self._fill(turn, heard)
        text = heard.result.text if heard.result else ""
        answer = yes_or_no(text, heard.dtmf, yes, no, language)
        chosen: str | None = None
        if answer is True:
            chosen = intent_id
        elif not heard.hung_up and text:
            # "아니요, 대출이요" corrects; an answer that is neither yes nor no is a new answer.
            decision = understand(hypotheses(heard.result), self._intent_phrases(node, language), context,
                                  evidence(heard, language), self.thresholds, is_phrase(heard)) \
                if heard.result else None
            if decision and decision.action is Action.ACT and decision.best:
                chosen = decision.best.intent
                turn.correction = decision.correction
        turn.intent, turn.score = chosen, 1.0 if chosen else 0.0
        await self._decided(call, turn, heard.audio)
        return chosen

    async def _offer(self, node: CallbackOfferNode, call: CallRecord, session: AudioSession) -> bool | None:
        """True: accepted; False: declined (or no answer: the call holds in the queue); None: hung up."""
        language = call.language
        yes, no = self.flow.confirmation.yes, self.flow.confirmation.no
        turn = Turn(node=call.path[-1], kind="offer")
        heard = await self.listen(session, self.offer_listen, node.prompt.get(language, ""), call,
                                  call.path[-1], yes.get(language, []) + no.get(language, []))
        self._fill(turn, heard)
        answer = yes_or_no(heard.result.text if heard.result else "", heard.dtmf, yes, no, language)
        turn.intent = {True: "callback", False: "hold", None: None}[answer]
        await self._decided(call, turn, heard.audio)
        if heard.hung_up:
            return None
        return bool(answer)

    async def _self_service(self, node: SelfServiceNode, call: CallRecord, session: AudioSession) -> str:
        customer = await self.customers(call.caller) if self.customers and call.caller else None
        if customer is None or customer.balance is None:
            call.note(f"self-service {node.action}: caller unknown or no data")
            await self._say(session, node.unavailable, call)
            return node.on_unavailable
        values = {
            "balance": f"{customer.balance:,}",
            "balance_words": num2words(customer.balance, lang=call.language)
            if call.language in ("ko", "en") else str(customer.balance),
            "name": customer.name,
        }
        template = node.prompt.get(call.language, "")
        if await self._say(session, {call.language: template.format(**values)}, call):
            call.self_served = True
        return node.next

    async def _say(self, session: AudioSession, texts: LanguageText | None, call: CallRecord) -> bool:
        """Play a prompt to the end; False if the caller hung up meanwhile."""
        text = (texts or {}).get(call.language)
        if not text or session.closed.is_set():
            return not session.closed.is_set()
        playback = session.play(await self.speech.prompt(text, call.language))
        closed = asyncio.ensure_future(session.closed.wait())
        try:
            await asyncio.wait([playback.done, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        return not session.closed.is_set()

    # --- one turn of listening

    async def listen(self, session: AudioSession, settings: Listen, prompt_text: str, call: CallRecord,
                     node_id: str, phrases: list[str]) -> Heard:
        heard = Heard(language=call.language)
        loop = asyncio.get_running_loop()
        recognizer: TurnRecognizer | None = None
        # While the language is unknown, the same audio also goes to the other packs' recognizers.
        others: dict[str, TurnRecognizer] = {}
        detecting = [lang for lang in getattr(self, "_candidates", []) if lang != call.language]
        if phrases:
            try:
                recognizer = self.speech.recognizer(call.language, phrases)
            except Exception as exc:  # model missing, bad grammar: keys still work
                heard.error = f"speech recognition unavailable: {exc}"
                log.error("call %s: %s; listening for keys only", session.call_id, heard.error)
            for lang in detecting:
                node = self.flow.nodes.get(node_id)
                other_phrases = self.flow.grammar_phrases(node, lang) if isinstance(node, AskNode) else []
                try:
                    if other_phrases:
                        others[lang] = self.speech.recognizer(lang, other_phrases)
                except Exception as exc:
                    log.warning("call %s: no %s recognizer for language detection: %s", session.call_id, lang, exc)
        playback = session.play(await self.speech.prompt(prompt_text, call.language)) if prompt_text else None
        if self.on_listen:
            await self.on_listen(call, node_id, playback.seconds if playback else 0.0)
        prompt_over_at: float | None = None if playback else loop.time()
        voiced_ms = 0
        last_voice: float | None = None
        frame_index = 0
        first_voiced: int | None = None
        pending = bytearray()

        async def feed(chunk: bytes) -> Result | Partial | None:
            nonlocal recognizer
            assert recognizer is not None
            try:
                return await loop.run_in_executor(self.speech.executor, recognizer.feed, chunk)
            except Exception as exc:
                heard.error = f"recognizer failed: {exc}"
                log.error("call %s: %s; listening for keys only", session.call_id, heard.error)
                recognizer = None
                return None

        while True:
            if playback and prompt_over_at is None and playback.done.done():
                prompt_over_at = loop.time()
            now = loop.time()
            if heard.speech_started_at is None and prompt_over_at is not None and now - prompt_over_at > \
                    settings.no_input_s:
                break  # no input
            if heard.speech_started_at is not None:
                if now - heard.speech_started_at > settings.max_speech_s:
                    break
                if last_voice is not None and now - last_voice >= settings.endpoint_silence_s:
                    break  # our own endpoint, configurable per node
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
            if session.playing and not settings.barge_in:
                continue  # the prompt must be heard out: its audio is not the caller's answer
            heard.audio += event.pcm
            frame_index += 1
            if voiced(event.pcm):
                voiced_ms += 20
                last_voice = loop.time()
                first_voiced = frame_index if first_voiced is None else first_voiced
                heard.voiced_s = (frame_index - first_voiced + 1) * len(event.pcm) / 16000
                if heard.speech_started_at is None and voiced_ms >= 60:
                    heard.speech_started_at = time.time() - voiced_ms / 1000
            else:
                voiced_ms = max(0, voiced_ms - 10)  # decay: clicks and coughs do not add up
            if session.playing and voiced_ms >= settings.barge_in_min_speech_ms:
                heard.barged_in = True
                session.stop_playback()
            if recognizer is None:
                continue
            pending += event.pcm
            if len(pending) < FEED_BYTES:
                continue
            chunk, pending = bytes(pending), bytearray()
            for other in others.values():
                await loop.run_in_executor(self.speech.executor, other.feed, chunk)
            out = await feed(chunk)
            if isinstance(out, Partial) and out.text and session.playing and voiced_ms >= 100:
                heard.barged_in = True  # a recognized word over real voice cuts the prompt too
                session.stop_playback()
            elif isinstance(out, Result):
                if out.text or heard.speech_started_at is not None:
                    heard.result = out
                    heard.grammar = getattr(recognizer, "grammar_phrases", None)
                    break
                # Vosk's endpointer also fires on long silence (during a long prompt, say): an empty
                # final is not an answer. Listen on with a fresh recognizer until our own no-input.
                try:
                    recognizer = self.speech.recognizer(call.language, phrases)
                except Exception as exc:
                    heard.error, recognizer = f"recognizer failed: {exc}", None
        if last_voice is not None:
            heard.speech_ended_at = time.time() - (loop.time() - last_voice)
        if recognizer is not None and heard.result is None and not heard.dtmf and not heard.hung_up:
            if pending:
                await feed(bytes(pending))
            if recognizer is not None:
                try:
                    heard.result = await loop.run_in_executor(self.speech.executor, recognizer.finish)
                    heard.grammar = getattr(recognizer, "grammar_phrases", None)
                except Exception as exc:
                    heard.error = f"recognizer failed: {exc}"
        elif recognizer is not None and heard.hung_up and heard.audio:
            # The caller hung up mid-utterance: what was said still goes on the record.
            try:
                heard.result = await loop.run_in_executor(self.speech.executor, recognizer.finish)
            except Exception as exc:
                heard.error = f"recognizer failed: {exc}"
        if others and heard.result is not None:
            self._detect_language(call, heard, others)
        session.stop_playback()
        return heard

    def _detect_language(self, call: CallRecord, heard: Heard, others: dict[str, TurnRecognizer]) -> None:
        """Keep the language whose recognizer was most sure of a phrase of the flow."""

        def strength(result: Result) -> float:
            return result.phrase_confidence if result.phrase else 0.5 * result.confidence

        assert heard.result is not None
        best_lang, best = call.language, heard.result
        for lang, recognizer in others.items():
            try:
                result = recognizer.finish()
            except Exception:
                continue
            if result.text and strength(result) > strength(best):
                best_lang, best = lang, result
        self._candidates = [best_lang]
        if best_lang != call.language:
            call.note(f"language detected from the first utterance: {best_lang} (was {call.language})")
        call.language, call.language_source = best_lang, "detected"
        heard.result, heard.language = best, best_lang

    # --- the turn record

    def _fill(self, turn: Turn, heard: Heard) -> None:
        turn.language = heard.language
        turn.dtmf = heard.dtmf
        turn.error = heard.error
        turn.barged_in = heard.barged_in
        turn.speech_started_at = heard.speech_started_at
        turn.speech_ended_at = heard.speech_ended_at
        if heard.result:
            turn.transcript = heard.result.text
            turn.confidence = round(heard.result.confidence, 3)
            turn.alternatives = [{"text": a.text, "confidence": round(a.confidence, 3)}
                                 for a in heard.result.alternatives]
            turn.words = [{"word": w.word, "start": w.start, "end": w.end, "conf": w.conf}
                          for w in heard.result.words]

    async def _decided(self, call: CallRecord, turn: Turn, audio: bytearray) -> None:
        turn.decided_at = time.time()
        call.turns.append(turn)
        turn.audio = await asyncio.to_thread(self._save_turn_audio, call, len(call.turns), audio)
        if self.on_turn:
            await self.on_turn(call, turn)

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
