"""The turn logic: walk a flow's nodes with one caller, turn by turn, until the call is decided.

What lives here is what to make of each turn: which node comes next (through the exits the flow's models
declare, ``BaseNode.exits()``, the same ones the validator and the diagram follow), the prompt of a question
or of a second try, understanding the answer (``ivr.voice.understanding``, pure), confirming when unsure,
callback offers, self-service, the call's language, and saving each turn for trainers. How a turn is heard
(playback, barge-in, endpointing, recognizers) is the listening loop's, in ``listening``.

One ``Navigator`` serves every call of its flow at once; whatever changes from turn to turn of one call (its
misses in a row, keys only, what was half-said, the languages it may still be in) lives in that call's
``Conversation``, created by ``run`` and passed down, never on the navigator.

Never a dead end, whatever the flow says: ``0`` or the agent intent reaches a person from any question; after
``max_failures`` (at most 2) misses in a row the caller goes to the fallback queue with what was heard; if
recognition fails the question goes on with keys only, and says so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from num2words import num2words

from asr import Result
from ivr import metrics
from ivr.audio import write_wav
from ivr.privacy.cards import SecretKind
from ivr.privacy.verifier import Verdict, Verify
from ivr.records.call import CallRecord, Turn
from ivr.records.customer import Customer
from ivr.telephony.audiosocket import AudioSession, SessionEnd
from ivr.voice.flow import (
    AskNode,
    BaseNode,
    CallbackOfferNode,
    Flow,
    HangupNode,
    LanguageText,
    Listen,
    RouteNode,
    SayNode,
    SecureDigitsNode,
    SelfServiceNode,
    TransferNode,
)
from ivr.voice.navigator import secure
from ivr.voice.navigator.learned import Learned, learned_of, route_ahead
from ivr.voice.navigator.listening import Heard, ListenHook, PromptDoneHook, listen
from ivr.voice.navigator.secure import RecordingPause
from ivr.voice.navigator.speech import Speech
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

log = logging.getLogger(__name__)

AGENT_KEY = "0"
#: A flow with a loop of say nodes must still end: after this many nodes, a person takes over.
MAX_STEPS = 40

# What takes a call along a node's exit, as the flow's models label their exits (ivr.voice.flow, exit_fields);
# an ask node's routes are taken by their intents.
GOES_ON = ""
"""A say or self-service node's ``next``."""
DECLINED = "declined"
"""A callback offer's ``next``: the caller declined (or did not answer)."""
UNAVAILABLE = "unavailable"
"""A self-service node's ``on_unavailable``: the lookup gave nothing."""


class DecisionKind(StrEnum):
    """How the walk ended (a StrEnum: records and events keep the same strings)."""

    QUEUE = "queue"
    """To a person, through the ACD (or Asterisk's queue)."""
    TRANSFER = "transfer"
    """To an extension."""
    CALLBACK = "callback"
    """The caller accepted a call back: the ACD calls them when a person is free."""
    HANGUP = "hangup"
    """The call ends: the flow said goodbye, or the caller hung up (``Decision.caller_left``)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the walk ended."""

    kind: DecisionKind
    """What happens to the call next."""
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
    caller_left: bool = False
    """The caller hung up (not the flow): nothing was self-served to the end, nobody to hand over."""
    line_failed: bool = False
    """The audio line broke (not the caller, not the flow): a person takes the call if the caller is still
    there. Only the controller can tell: a caller hanging up mid-prompt can reset the socket too."""

    @classmethod
    def caller_hung_up(cls) -> Decision:
        return cls(DecisionKind.HANGUP, reason="caller hung up", caller_left=True)


TurnHook = Callable[[CallRecord, Turn], Awaitable[None]]
"""Called when a turn is decided (the turn log for trainers)."""
LearnedHook = Callable[[CallRecord, Learned], Awaitable[None]]
"""Called when what the IVR knows of the caller changed (``learned``): the controller puts it on the channel."""


@dataclass(slots=True)
class Conversation:
    """One call's walk through the flow: everything that changes from turn to turn of that call."""

    call: CallRecord
    session: AudioSession
    languages: list[str]
    """The languages the caller's next words may be in: one when known, several until the first utterance
    decides among the loaded packs (then only that one)."""
    failures: int = 0
    """Questions in a row without a usable answer."""
    keys_only: bool = False
    """Speech recognition failed during the call: it goes on with keys."""
    context: TurnContext = field(default_factory=TurnContext)
    """What the caller half-said, read together with their next words."""
    route: tuple[str, int] | None = None
    """The queue and priority the flow last led to (``learned.route_ahead``); kept through later questions."""
    learned: Learned | None = None
    """What the navigator last told ``on_learned``."""


def exit_to(node: BaseNode, taken_by: str) -> str | None:
    """Where the exit of `node` that `taken_by` takes leads: an intent for an ask node's routes, else GOES_ON,
    DECLINED or UNAVAILABLE. None when the node has no such exit."""
    return next((way.target for way in node.exits() if way.label == taken_by), None)


def _follow(node: BaseNode, taken_by: str) -> str:
    target = exit_to(node, taken_by)
    if target is None:  # a model's exit_fields changed its labels: the navigator must change with them
        raise LookupError(f"{type(node).__name__} has no exit taken by {taken_by!r}: {node.exits()}")
    return target


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
        on_prompt_done: PromptDoneHook | None = None,
        verify: Verify | None = None,
        recording: RecordingPause | None = None,
        on_learned: LearnedHook | None = None,
    ) -> None:
        self.flow = flow
        self.speech = speech
        self.recordings_dir = recordings_dir
        self.customers = customers
        self.on_listen = on_listen
        self.on_turn = on_turn
        self.on_prompt_done = on_prompt_done
        self.verify: Verify = verify or _no_verifier
        """Where a secure node's digits go (ivr.privacy.verifier); none configured: no verdict (a person)."""
        self.recording = recording
        """Pauses the call recording during a secure node; None where there is no recording (text simulation)."""
        self.on_learned = on_learned
        """Told each time what the IVR knows of the caller changes (at most once per node visited)."""
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
        conv = Conversation(call, session, self.choose_language(call))
        node_id = self.flow.start
        if call.app_intent:  # an app call from a screen that names its subject (ivr/webrtc): confirm it first
            node_id = await self._app_hint(conv, node_id, call.app_intent)
        for _ in range(MAX_STEPS):
            call.path.append(node_id)
            await self._learned(conv, node_id)
            with metrics.CALLS_IN_NODE.labels(node_id).track_inprogress():  # ivr_calls_in_ivr{node}
                step = await self._visit(node_id, conv)
            if isinstance(step, Decision):
                return self._line_failure(step, conv)
            node_id = step
        call.note(f"flow did not end within {MAX_STEPS} steps: to a person")
        return Decision(DecisionKind.QUEUE, queue=self.flow.fallback_queue, reason="flow too long")

    async def _app_hint(self, conv: Conversation, node_id: str, intent: str) -> str:
        """The app's hint (the screen the customer called from names a subject): the start question's confirmation
        of that intent instead of its open question. Yes (or a correction naming another of its intents): on as if
        the caller had said it; no, silence or a hint the question has no exit for: the question as usual."""
        node = self.flow.nodes.get(node_id)
        if not isinstance(node, AskNode) or intent not in self.flow.intents or exit_to(node, intent) is None:
            return node_id
        conv.call.path.append(node_id)
        chosen = await self._confirm(node, intent, conv)
        target = exit_to(node, chosen) if chosen is not None else None
        if target is None or conv.session.closed.is_set():
            conv.call.path.pop()  # asked again as the flow's own question (the loop records the visit)
            return node_id
        conv.call.intent = chosen
        conv.call.note(f"the app's hint {intent} confirmed at {node_id}" if chosen == intent
                       else f"the app's hint {intent} corrected to {chosen} at {node_id}")
        return target

    async def _learned(self, conv: Conversation, node_id: str) -> None:
        """Before each node: what the caller has told so far (their turns up to here), and where the flow now leads
        them (kept from earlier when it leads nowhere yet), to ``on_learned`` if any of it changed."""
        conv.route = route_ahead(self.flow, node_id) or conv.route
        learned = learned_of(conv.call, conv.route)
        if learned != conv.learned and self.on_learned is not None:
            conv.learned = learned
            await self.on_learned(conv.call, learned)

    def _line_failure(self, decision: Decision, conv: Conversation) -> Decision:
        """A line that broke (a protocol error, an error frame, a socket fault) is not a caller who hung up:
        the caller may still be there, and goes to a person with what the IVR learned."""
        end = conv.session.end
        if not decision.caller_left or end is None or end.caller_left or end is SessionEnd.BY_CONTROLLER:
            return decision
        reason = f"the audio line failed ({conv.session.close_reason})"
        conv.call.note(f"{reason}: to a person")
        log.warning("call %s: %s; handing the call to a person", conv.call.call_id, reason)
        return Decision(DecisionKind.QUEUE, queue=self.flow.fallback_queue, reason=reason, line_failed=True)

    async def _visit(self, node_id: str, conv: Conversation) -> Decision | str:
        """One node: where the call ends (a Decision), or the id of the node it goes on to."""
        node = self.flow.nodes[node_id]
        if isinstance(node, RouteNode):
            await self._say(conv, node.prompt)
            return Decision(DecisionKind.QUEUE, queue=node.queue, priority=node.priority, skills=tuple(node.skills),
                            reason=f"flow node {node_id}")
        if isinstance(node, TransferNode):
            await self._say(conv, node.prompt)
            return Decision(DecisionKind.TRANSFER, queue=node.fallback_queue, target=node.target,
                            reason=f"flow node {node_id}")
        if isinstance(node, HangupNode):
            await self._say(conv, node.prompt)
            return Decision(DecisionKind.HANGUP, reason=f"flow node {node_id}")
        if isinstance(node, SayNode):
            if not await self._say(conv, node.prompt):
                return Decision.caller_hung_up()
            return _follow(node, GOES_ON)
        if isinstance(node, SelfServiceNode):
            return _follow(node, await self._self_service(node, conv))
        if isinstance(node, CallbackOfferNode):
            accepted = await self._offer(node, conv)
            if accepted is None:
                return Decision.caller_hung_up()
            if accepted:
                await self._say(conv, node.accepted)
                return Decision(DecisionKind.CALLBACK, queue=node.queue, reason="caller accepted a callback")
            return _follow(node, DECLINED)
        if isinstance(node, SecureDigitsNode):
            return await self._secure(node_id, node, conv)
        assert isinstance(node, AskNode)
        return await self._ask(node_id, node, conv)

    async def _ask(self, node_id: str, node: AskNode, conv: Conversation) -> Decision | str:
        """A question: the node its answer routes to, the same node to ask again, or a person."""
        call, session = conv.call, conv.session
        if conv.failures == 0:
            prompt = node.prompt.get(call.language, "")
        else:
            prompt = " ".join(filter(None, [self.flow.messages.not_understood.get(call.language),
                                            self._reprompt(node, call.language)]))
        if conv.keys_only:
            prompt = " ".join(filter(None, [self.flow.messages.keys_only.get(call.language), prompt]))
        turn = Turn(node=node_id)
        corrections = conv.failures > 0 or bool(conv.context.pending)
        heard = await self._listen(conv, node.listen, prompt, node_id, [] if conv.keys_only else
                                   self.flow.grammar_phrases(node, call.language, corrections))
        self._fill(turn, heard)
        if heard.error and not conv.keys_only:
            conv.keys_only = True  # say so at once and go on with keys: ASR trouble never holds a caller
            call.note(f"speech recognition failed at {node_id}: {heard.error}; keys only")
        if heard.hung_up:
            await self._decided(call, turn, heard.audio, heard.rate)
            return Decision.caller_hung_up()
        intent, unsure = self._understand(node, heard, turn, conv.context, call)
        await self._decided(call, turn, heard.audio, heard.rate)
        if unsure:
            intent = await self._confirm(node, unsure, conv)
        if intent == self.flow.agent_intent or heard.dtmf == AGENT_KEY:
            call.intent = call.intent or self.flow.agent_intent
            await self._say(conv, self.flow.messages.to_person)
            return Decision(DecisionKind.QUEUE, queue=self.flow.fallback_queue, reason="caller asked for a person")
        target = exit_to(node, intent) if intent is not None else None
        if target is not None:
            call.intent = intent
            conv.failures = 0
            conv.context.clear()
            return target
        if heard.hung_up or session.closed.is_set():
            return Decision.caller_hung_up()
        conv.failures += 1
        if conv.failures >= self.flow.max_failures:
            call.note(f"{conv.failures} turns without a usable answer at {node_id}: to a person")
            await self._say(conv, self.flow.messages.to_person)
            return Decision(DecisionKind.QUEUE, queue=self.flow.fallback_queue, reason="not understood twice")
        return node_id

    async def _secure(self, node_id: str, node: SecureDigitsNode, conv: Conversation) -> Decision | str:
        """Card data by keys with the recording paused for exactly this node (see ``secure``)."""
        call, kind = conv.call, SecretKind(node.what)
        turn = Turn(node=node_id, kind="secure")
        if self.recording is not None and not await self._pause(call):
            call.note(f"secure entry at {node_id}: the call recording could not be paused, so no {kind} was taken")
            result = secure.UNAVAILABLE
        else:
            span = secure.new_span(node_id, kind)
            call.secure_spans.append(span)
            result = secure.NO_INPUT
            try:
                result = await self._secure_entries(node_id, node, kind, conv, span)
            finally:  # every way out, an error or a cancelled task included
                await self._resume(call, node_id)
                span["ended_at"] = round(time.time(), 3)
        turn.intent = result
        await self._decided(call, turn, bytearray(), conv.session.rate)  # no audio: nothing saved
        if result == secure.HUNG_UP:
            return Decision.caller_hung_up()
        if result == secure.PERSON:
            call.intent = call.intent or self.flow.agent_intent
            await self._say(conv, self.flow.messages.to_person)
            return Decision(DecisionKind.QUEUE, queue=self.flow.fallback_queue, reason="caller asked for a person")
        if result == secure.UNAVAILABLE:
            await self._say(conv, node.unavailable)
        return _follow(node, result)

    async def _secure_entries(self, node_id: str, node: SecureDigitsNode, kind: SecretKind, conv: Conversation,
                              span: dict[str, Any]) -> str:
        """Up to ``node.attempts`` entries: VERIFIED, FAILED, NO_INPUT, UNAVAILABLE, PERSON or HUNG_UP."""
        call, session = conv.call, conv.session
        refused = False
        for attempt in range(node.attempts):
            texts = [node.prompt.get(call.language, "")]
            if refused:
                texts.insert(0, node.invalid.get(call.language, ""))
            text = " ".join(t for t in texts if t)
            playback = session.play(await self.speech.prompt(text, call.language)) if text else None
            if self.on_listen:
                await self.on_listen(call, node_id, playback.seconds if playback else 0.0)
            entry = await secure.key_entry(session, kind, playback, node.first_digit_s, node.inter_digit_s,
                                           functools.partial(self._prompt_done, call, node_id))
            if entry.ended in (secure.HUNG_UP, secure.PERSON):
                return entry.ended
            if entry.ended == secure.NO_INPUT:
                continue
            outcome, why = await secure.verify_entry(self.verify, kind, entry, span)
            if why:
                call.note(f"secure entry at {node_id}, try {attempt + 1}: {why}")
            if outcome != secure.FAILED:
                return outcome
            refused = True
        return secure.FAILED if refused else secure.NO_INPUT

    async def _prompt_done(self, call: CallRecord, node_id: str) -> None:
        if self.on_prompt_done:
            await self.on_prompt_done(call, node_id)

    async def _pause(self, call: CallRecord) -> bool:
        assert self.recording is not None
        try:
            return await self.recording.pause(call)
        except Exception as exc:
            log.error("call %s: recording not paused: %s", call.call_id, exc)
            return False

    async def _resume(self, call: CallRecord, node_id: str) -> None:
        if self.recording is None:
            return
        try:
            resumed = await self.recording.resume(call)
        except Exception as exc:
            log.error("call %s: recording not resumed: %s", call.call_id, exc)
            resumed = False
        if not resumed:
            call.note(f"after the secure entry at {node_id} the controller could not resume the recording: "
                      "the dialplan resumes it when the call leaves the IVR")

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

    async def _confirm(self, node: AskNode, intent_id: str, conv: Conversation) -> str | None:
        """'You want X, right?' Yes/1 -> X; no/2 -> a miss (or the intent the correction names)."""
        call = conv.call
        question = self.flow.intents[intent_id].confirm.get(call.language)
        if not question:
            return None
        language = call.language
        yes, no = self.flow.confirmation.yes, self.flow.confirmation.no
        grammar = yes.get(language, []) + self.flow.grammar_phrases(node, language, corrections=True)
        turn = Turn(node=call.path[-1], kind="confirm")
        heard = await self._listen(conv, node.listen, question, call.path[-1], grammar)
        self._fill(turn, heard)
        text = heard.result.text if heard.result else ""
        answer = yes_or_no(text, heard.dtmf, yes, no, language)
        chosen: str | None = None
        if answer is True:
            chosen = intent_id
        elif not heard.hung_up and text:
            # "아니요, 대출이요" corrects; an answer that is neither yes nor no is a new answer.
            decision = understand(hypotheses(heard.result), self._intent_phrases(node, language), conv.context,
                                  evidence(heard, language), self.thresholds, is_phrase(heard)) \
                if heard.result else None
            if decision and decision.action is Action.ACT and decision.best:
                chosen = decision.best.intent
                turn.correction = decision.correction
        turn.intent, turn.score = chosen, 1.0 if chosen else 0.0
        await self._decided(call, turn, heard.audio, heard.rate)
        return chosen

    async def _offer(self, node: CallbackOfferNode, conv: Conversation) -> bool | None:
        """True: accepted; False: declined (or no answer: the call holds in the queue); None: hung up."""
        call = conv.call
        language = call.language
        yes, no = self.flow.confirmation.yes, self.flow.confirmation.no
        turn = Turn(node=call.path[-1], kind="offer")
        heard = await self._listen(conv, self.offer_listen, node.prompt.get(language, ""), call.path[-1],
                                   yes.get(language, []) + no.get(language, []))
        self._fill(turn, heard)
        answer = yes_or_no(heard.result.text if heard.result else "", heard.dtmf, yes, no, language)
        turn.intent = {True: "callback", False: "hold", None: None}[answer]
        await self._decided(call, turn, heard.audio, heard.rate)
        if heard.hung_up:
            return None
        return bool(answer)

    async def _self_service(self, node: SelfServiceNode, conv: Conversation) -> str:
        """Look it up and say it; what takes the call on: GOES_ON, or UNAVAILABLE when there was nothing to say."""
        call = conv.call
        customer = await self.customers(call.caller) if self.customers and call.caller else None
        if customer is None or customer.balance is None:
            call.note(f"self-service {node.action}: caller unknown or no data")
            await self._say(conv, node.unavailable)
            return UNAVAILABLE
        values = {
            "balance": f"{customer.balance:,}",
            "balance_words": num2words(customer.balance, lang=call.language)
            if call.language in ("ko", "en") else str(customer.balance),
            "name": customer.name,
        }
        template = node.prompt.get(call.language, "")
        if await self._say(conv, {call.language: template.format(**values)}):
            call.self_served = True
        return GOES_ON

    async def _say(self, conv: Conversation, texts: LanguageText | None) -> bool:
        """Play a prompt to the end; False if the caller hung up meanwhile."""
        session, language = conv.session, conv.call.language
        text = (texts or {}).get(language)
        if not text or session.closed.is_set():
            return not session.closed.is_set()
        playback: asyncio.Future[Any] = session.play(await self.speech.prompt(text, language)).done
        closed: asyncio.Future[Any] = asyncio.ensure_future(session.closed.wait())
        try:
            await asyncio.wait((playback, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        return not session.closed.is_set()

    # --- a turn of listening, and the language it was in

    async def listen(self, session: AudioSession, settings: Listen, prompt_text: str, call: CallRecord,
                     node_id: str, phrases: list[str], detect: dict[str, list[str]] | None = None) -> Heard:
        """One turn of listening with this navigator's speech and hooks (see ``listening.listen``)."""
        return await listen(self.speech, session, settings, prompt_text, call, node_id, phrases, detect=detect,
                            on_listen=self.on_listen, on_prompt_done=self.on_prompt_done)

    async def _listen(self, conv: Conversation, settings: Listen, prompt_text: str, node_id: str,
                      phrases: list[str]) -> Heard:
        call = conv.call
        heard = await self.listen(conv.session, settings, prompt_text, call, node_id, phrases,
                                  detect=self._detect(conv, node_id))
        if heard.detected:  # the first utterance decided the language: the call keeps it
            conv.languages = [heard.language]
            if heard.language != call.language:
                call.note(f"language detected from the first utterance: {heard.language} (was {call.language})")
            call.language, call.language_source = heard.language, "detected"
        return heard

    def _detect(self, conv: Conversation, node_id: str) -> dict[str, list[str]]:
        """While the call's language is unknown: the other languages' phrases for the question at `node_id`."""
        node = self.flow.nodes.get(node_id)
        if not isinstance(node, AskNode):
            return {}
        return {lang: self.flow.grammar_phrases(node, lang) for lang in conv.languages if lang != conv.call.language}

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
        turn.redact()  # personal data never reaches a record, a stream or the archive

    async def _decided(self, call: CallRecord, turn: Turn, audio: bytearray, rate: int) -> None:
        turn.decided_at = time.time()
        call.turns.append(turn)
        metrics.count_turn(turn.kind, turn.intent, turn.transcript, turn.dtmf, turn.error)
        turn.audio = await asyncio.to_thread(self._save_turn_audio, call, len(call.turns), audio, rate)
        if self.on_turn:
            await self.on_turn(call, turn)

    def _save_turn_audio(self, call: CallRecord, index: int, pcm: bytearray, rate: int) -> str | None:
        """The turn's audio as the recognizer heard it (16 kHz for a wideband caller), for trainers and QA."""
        if not pcm:
            return None
        rel = Path("turns") / time.strftime("%Y-%m-%d") / f"{call.call_id}-{index}.wav"
        try:
            write_wav(self.recordings_dir / rel, bytes(pcm), rate)
        except OSError as exc:
            log.error("call %s: turn audio not saved: %s", call.call_id, exc)
            return None
        return str(rel)


async def _no_verifier(_what: SecretKind, _digits: str) -> Verdict:
    return Verdict(None, "no card verifier configured")
