"""Acoustic replay: a candidate flow version heard against the stored audio of real turns, before it is published.

Every replayable turn (an ask turn with the caller's speech: not a key, not silence, not a hang-up) is recognized
again from its recording with the candidate's grammar for that question, the way the live listening loop
(``ivr.voice.navigator.listening``) hears a caller: the same model pack, a recognizer at the turn's hearing rate
with the same n-best, fed 100 ms at a time, ended by Vosk's endpoint, a fresh recognizer after an empty result
before any speech. It is then understood with the candidate's intents by the same pure understanding and
evidence (word confidence times acoustic support over the voiced time measured on the recording) the engine
uses. What the replay does not reproduce: the caller's earlier words at the question (context) and language
detection; a turn is heard in the language it was recognized in live.

Each turn is compared with what it meant (``truth``: its label, trainer's or suggested; else, for a turn the
engine acted on or the caller confirmed live, that intent: the caller went along with it) and with what
happened live:

- ``fixed``: wrong live (no intent, or another one), right now (acted on or confirmed as the right intent);
- ``broken``: right live, wrong now;
- ``now_act``: confirmed live ("…, right?"), acted on at once now;
- ``containment_before`` / ``containment_after``: the share of the replayed turns' calls that ended in
  self-service, live and as estimated with the candidate (a fixed turn whose intent leads to self-service
  contains its call; a broken turn that had contained its call no longer does).

Recognition runs on every core: a process pool whose workers each load the Vosk model once. Missing or unreadable
audio is counted and named (``unreadable``), never a crash. Tests hand ``replay`` a fake ``Hearing`` instead
(run in this process).
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import multiprocessing
import os
import time
import wave
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from asr import NARROWBAND_RATE, Result
from ivr.voice.flow import AskNode, Flow, SayNode, SelfServiceNode
from ivr.voice.navigator.listening import FEED_BYTES, Heard, hearing_rate, voiced
from ivr.voice.navigator.turns import evidence, hypotheses, is_phrase
from ivr.voice.understanding import Action, IntentPhrases, Thresholds, TurnContext, understand

if TYPE_CHECKING:
    from ivr.records.archive import ArchivedTurn

log = logging.getLogger(__name__)

#: Turns handed to a worker at once: big enough to amortize the hop, small enough for a smooth progress bar.
CHUNK = 8
#: 20 ms frames, as AudioSocket delivers them: voice activity is judged per frame, as live.
FRAME_S = 0.02
#: A turn's live outcome -> the action the engine took then.
LIVE_ACTION = {"act": "act", "agent": "act", "confirmed": "confirm", "confirm_rejected": "confirm",
               "corrected": "confirm", "no_match": "reprompt", "error": "reprompt"}
"""Outcomes not listed ("key", "no_input", "hangup", "answer") are no spoken answer to replay."""

Progress = Callable[[int, int], None]
"""Called as turns are done: (done, total)."""


class Hearing(Protocol):
    """Recognizes one turn's audio with a grammar (the boundary the unit tests fake)."""

    def hear(self, pcm: bytes, rate: int, phrases: Sequence[str], language: str) -> tuple[Result, frozenset[str]]:
        """What the recognizer makes of ``pcm`` (16-bit mono at ``rate``) with a grammar of ``phrases``, and the
        phrases that grammar can return exactly (as built: out-of-vocabulary words dropped)."""
        ...


@dataclass(frozen=True)
class ReplayTurn:
    """One archived turn, as the replay needs it."""

    key: str
    """"<call id>#<index>": names the turn in results."""
    call_id: str
    audio: Path | None
    """The recording (absolute), None when it was not kept or was purged."""
    node: str
    language: str
    truth: str | None
    """The intent the caller meant, when known (see the module's doc)."""
    labeled: bool
    """``truth`` comes from a label (a trainer's or a suggested one), not from the live outcome."""
    live_intent: str | None
    """The intent the engine acted on or asked about live (None: no intent)."""
    live_action: str
    """"act", "confirm" or "reprompt"."""
    confirmed_live: bool = False
    """Live, the engine asked "…, right?" and the caller said yes."""
    corrections: bool = False
    """The question was asked again (after a miss): the grammar had the no-words, as live."""
    contained_live: bool = False
    """The call ended in self-service."""

    @classmethod
    def from_archive(cls, turn: ArchivedTurn, recordings_dir: Path, retry: bool = False) -> ReplayTurn | None:
        """The turn to replay, or None when it holds no spoken answer (a key, silence, a hang-up, a confirm)."""
        action = LIVE_ACTION.get(turn.live_outcome)
        if turn.kind != "ask" or action is None:
            return None
        outcome = turn.live_outcome
        truth, labeled = turn.label, turn.label is not None
        if truth is None and outcome in ("act", "agent", "confirmed"):
            truth = turn.intent
        live_intent = turn.intent if action != "reprompt" else None
        return cls(key=f"{turn.call_id}#{turn.index}", call_id=turn.call_id,
                   audio=recordings_dir / turn.audio if turn.audio else None, node=turn.node,
                   language=turn.language or "ko", truth=truth, labeled=labeled, live_intent=live_intent,
                   live_action=action, confirmed_live=outcome == "confirmed", corrections=retry,
                   contained_live=turn.call_outcome == "self_service")


def replay_turns(turns: Iterable[ArchivedTurn], recordings_dir: Path, flow_id: str | None = None) -> list[ReplayTurn]:
    """The replayable turns among archived ones (oldest first), each knowing whether its question was a retry."""
    out: list[ReplayTurn] = []
    missed_at: dict[str, str] = {}  # call id -> node whose last ask turn failed
    for turn in turns:
        if flow_id is not None and turn.flow_id != flow_id:
            continue
        retry = missed_at.get(turn.call_id) == turn.node
        if turn.kind == "ask":
            missed_at[turn.call_id] = turn.node if turn.failed else ""
        replayable = ReplayTurn.from_archive(turn, recordings_dir, retry)
        if replayable is not None:
            out.append(replayable)
    return out


class Verdict(enum.StrEnum):
    FIXED = "fixed"
    BROKEN = "broken"
    SAME = "same"
    UNKNOWN = "unknown"
    """No truth to judge against."""


@dataclass(frozen=True)
class TurnReplay:
    """What the candidate makes of one turn."""

    key: str
    heard: str = ""
    """The best hypothesis with the candidate's grammar."""
    action: str = "reprompt"
    """"act", "confirm" or "reprompt"."""
    intent: str | None = None
    """The intent acted on or asked about (None: re-prompt)."""
    score: float = 0.0
    audio_s: float = 0.0
    """Seconds of audio recognized."""
    error: str | None = None
    """Why the turn could not be replayed (missing or unreadable audio)."""


@dataclass
class ReplayResult:
    """The evidence a candidate version brings to its publish (see the module's doc)."""

    flow_id: str
    turns: int = 0
    """Turns replayed (readable audio)."""
    fixed: int = 0
    broken: int = 0
    now_act: int = 0
    containment_before: float = 0.0
    containment_after: float = 0.0
    labeled: int = 0
    """Replayed turns whose truth is a label."""
    fixed_labeled: int = 0
    broken_labeled: int = 0
    right_before: int = 0
    """Turns with a truth that were right live."""
    right_after: int = 0
    """Turns with a truth that are right now."""
    judged: int = 0
    """Turns with a truth."""
    calls: int = 0
    """Distinct calls of the replayed turns."""
    unreadable: int = 0
    """Turns whose audio is missing or unreadable (not replayed)."""
    unreadable_files: list[dict[str, str]] = field(default_factory=list)
    """The first of them: {turn, audio, error}."""
    by_label: dict[str, dict[str, int]] = field(default_factory=dict)
    """Confusion against the truth: truth -> what the candidate does ("<intent>" or "none") -> turns."""
    by_live: dict[str, dict[str, int]] = field(default_factory=dict)
    """Against what happened live: "<action>:<intent>" live -> "<action>:<intent>" now -> turns."""
    fixed_turns: list[str] = field(default_factory=list)
    broken_turns: list[str] = field(default_factory=list)
    audio_s: float = 0.0
    wall_s: float = 0.0
    workers: int = 1
    since: float | None = None
    """Start of the window the turns came from (epoch seconds), when known."""
    sha256: str = ""
    """Of the candidate's text."""

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def summary(self) -> str:
        return (f"{self.turns} turns replayed: {self.fixed} fixed, {self.broken} broken, {self.now_act} would act "
                f"instead of confirming; containment {self.containment_before:.1%} -> {self.containment_after:.1%}"
                + (f"; {self.unreadable} unreadable" if self.unreadable else ""))


# --- one turn (in a worker)


def read_turn_audio(path: Path | None) -> tuple[bytes, int]:
    """A turn's recording: 16-bit mono PCM and its rate. Raises ValueError naming what is wrong."""
    if path is None:
        raise ValueError("no recording kept for this turn")
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise ValueError(f"not 16-bit mono PCM ({wav.getnchannels()} channels, "
                                 f"{8 * wav.getsampwidth()}-bit)")
            rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise ValueError("missing") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise ValueError(f"unreadable WAV ({exc})") from None
    if rate < 1000:
        raise ValueError(f"unreadable WAV (rate {rate} Hz)")
    return pcm[: len(pcm) // 2 * 2], rate


def voiced_seconds(pcm: bytes, rate: int) -> float | None:
    """From the first to the last voiced 20 ms frame, as the listening loop measures it (None: no voice)."""
    frame = int(rate * FRAME_S) * 2
    first = last = None
    for index in range(0, len(pcm) - frame + 1, frame):
        if voiced(pcm[index:index + frame]):
            first = index if first is None else first
            last = index + frame
    if first is None or last is None:
        return None
    return (last - first) / 2 / rate


def intent_phrases(flow: Flow, node: AskNode, language: str) -> list[IntentPhrases]:
    """The intents a question listens for, as the understanding takes them (as the navigator builds them)."""
    out = []
    for intent_id in flow.intent_ids(node):
        intent = flow.intents[intent_id]
        out.append(IntentPhrases(intent_id, tuple(intent.phrases.get(language, [])),
                                 tuple((v.dialect, v.phrase) for v in intent.variants if v.language == language)))
    return out


def replay_turn(turn: ReplayTurn, flow: Flow, hearing: Hearing) -> TurnReplay:
    """Hear and understand one turn with the candidate ``flow``."""
    try:
        pcm, rate = read_turn_audio(turn.audio)
    except ValueError as exc:
        return TurnReplay(turn.key, error=str(exc))
    node = flow.nodes.get(turn.node)
    audio_s = len(pcm) / 2 / rate
    if not isinstance(node, AskNode):  # the candidate dropped the question: nobody is asked it any more
        return TurnReplay(turn.key, audio_s=audio_s)
    phrases = flow.grammar_phrases(node, turn.language, corrections=turn.corrections)
    result, grammar = hearing.hear(pcm, rate, phrases, turn.language)
    heard = Heard(result=result, language=turn.language, voiced_s=voiced_seconds(pcm, rate), grammar=grammar,
                  rate=rate)
    if not result.text:
        return TurnReplay(turn.key, audio_s=audio_s)
    decision = understand(hypotheses(result), intent_phrases(flow, node, turn.language), TurnContext(),
                          evidence(heard, turn.language), Thresholds(flow.thresholds.act, flow.thresholds.confirm),
                          is_phrase(heard))
    action = decision.action.value if decision.best else Action.REPROMPT.value
    intent = decision.best.intent if decision.best and action != Action.REPROMPT.value else None
    return TurnReplay(turn.key, heard=result.text, action=action, intent=intent,
                      score=decision.best.score if decision.best else 0.0, audio_s=audio_s)


class VoskHearing:
    """The live recognizer's way of hearing a turn, over a recording (one per worker process)."""

    def __init__(self) -> None:
        from asr import default_registry

        self.registry = default_registry()
        self._grammars: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _grammar(self, phrases: Sequence[str], language: str) -> Any:
        from asr import build_grammar

        key = (language, tuple(phrases))
        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = self._grammars[key] = build_grammar(phrases, self.registry.get(language))
        return grammar

    def hear(self, pcm: bytes, rate: int, phrases: Sequence[str], language: str) -> tuple[Result, frozenset[str]]:
        from asr import TurnRecognizer

        model = self.registry.get(language)
        grammar = self._grammar(phrases, language) if phrases else None
        turn_rate = hearing_rate(rate)
        if turn_rate != rate:
            from tts.pcm import resample_pcm

            pcm = resample_pcm(pcm, rate, turn_rate)
        chunk = FEED_BYTES * turn_rate // NARROWBAND_RATE
        frame = int(turn_rate * FRAME_S) * 2
        recognizer = TurnRecognizer(model, grammar, sample_rate=turn_rate)
        voiced_ms, speaking = 0, False
        built = frozenset(grammar.phrases) if grammar is not None else frozenset()
        for offset in range(0, len(pcm), chunk):
            piece = pcm[offset:offset + chunk]
            for index in range(0, len(piece), frame):  # speech start as the loop tells it: 60 ms of voice
                voiced_ms = voiced_ms + 20 if voiced(piece[index:index + frame]) else max(0, voiced_ms - 10)
                speaking = speaking or voiced_ms >= 60
            out = recognizer.feed(piece)
            if isinstance(out, Result):
                if out.text or speaking:
                    return out, built
                recognizer = TurnRecognizer(model, grammar, sample_rate=turn_rate)  # an empty final is no answer
        return recognizer.finish(), built


# --- the pool: each worker loads the flow and the model once

_worker: dict[str, Any] = {}


def _start_worker(flow_text: str) -> None:
    import vosk

    from ivr.voice.flow import parse_flow

    vosk.SetLogLevel(-1)
    _worker["flow"] = parse_flow(flow_text, "candidate")
    _worker["hearing"] = VoskHearing()


def _replay_chunk(turns: list[ReplayTurn]) -> list[TurnReplay]:
    flow: Flow = _worker["flow"]
    hearing: VoskHearing = _worker["hearing"]
    return [_replay_one(turn, flow, hearing) for turn in turns]


def _replay_one(turn: ReplayTurn, flow: Flow, hearing: VoskHearing) -> TurnReplay:
    try:
        return replay_turn(turn, flow, hearing)
    except Exception as exc:  # one turn's trouble (a model missing for its language) never ends the replay
        log.warning("replay: turn %s not replayed: %s", turn.key, exc)
        return TurnReplay(turn.key, error=f"not recognized ({type(exc).__name__}: {exc})")


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_pool(flow_text: str, turns: Sequence[ReplayTurn], workers: int, progress: Progress | None
             ) -> list[TurnReplay]:
    """Replay ``turns`` on ``workers`` processes (forkserver: the caller may be a threaded server)."""
    chunks = [list(turns[i:i + CHUNK]) for i in range(0, len(turns), CHUNK)]
    done, out = 0, []
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                initializer=_start_worker, initargs=(flow_text,)) as pool:
        futures = [pool.submit(_replay_chunk, chunk) for chunk in chunks]
        for future in concurrent.futures.as_completed(futures):
            replays = future.result()
            out += replays
            done += len(replays)
            if progress is not None:
                progress(done, len(turns))
    return out


# --- the whole replay


def replay(flow_text: str, turns: Sequence[ReplayTurn], *, hearing: Hearing | None = None,
           workers: int | None = None, progress: Progress | None = None, since: float | None = None) -> ReplayResult:
    """Replay ``turns`` against the candidate flow ``flow_text``; raises FlowError for a text that is no flow.

    ``hearing`` given (tests): in this process, one turn after another. Otherwise a pool of ``workers``
    processes (default: every core), each loading the Vosk model once.
    """
    import hashlib

    from ivr.voice.flow import parse_flow

    flow = parse_flow(flow_text, "candidate")
    started = time.monotonic()
    if progress is not None:
        progress(0, len(turns))
    if hearing is not None or not turns:
        replays = []
        for index, turn in enumerate(turns, 1):
            replays.append(replay_turn(turn, flow, hearing) if hearing is not None else TurnReplay(turn.key))
            if progress is not None:
                progress(index, len(turns))
        used = 1
    else:
        used = max(1, min(workers or default_workers(), len(turns)))
        replays = run_pool(flow_text, turns, used, progress)
    result = summarize(flow, turns, replays)
    result.wall_s = round(time.monotonic() - started, 3)
    result.workers, result.since = used, since
    result.sha256 = hashlib.sha256(flow_text.encode("utf-8")).hexdigest()
    return result


def summarize(flow: Flow, turns: Sequence[ReplayTurn], replays: Sequence[TurnReplay]) -> ReplayResult:
    """The comparison of each turn's replay with its truth and with what happened live (pure)."""
    by_key = {r.key: r for r in replays}
    result = ReplayResult(flow.id)
    by_label: dict[str, Counter[str]] = defaultdict(Counter)
    by_live: dict[str, Counter[str]] = defaultdict(Counter)
    contained: dict[str, bool] = {}
    lost: set[str] = set()
    won: set[str] = set()
    for turn in turns:
        now = by_key.get(turn.key)
        if now is None or now.error is not None:
            result.unreadable += 1
            if len(result.unreadable_files) < 50:
                result.unreadable_files.append({"turn": turn.key, "audio": str(turn.audio or ""),
                                                "error": (now.error if now else None) or "not replayed"})
            continue
        result.turns += 1
        result.audio_s += now.audio_s
        contained.setdefault(turn.call_id, turn.contained_live)
        right_now_intent = now.intent if now.action in ("act", "confirm") else None
        by_live[f"{turn.live_action}:{turn.live_intent or '-'}"][f"{now.action}:{right_now_intent or '-'}"] += 1
        if turn.truth is None:
            continue
        result.judged += 1
        result.labeled += turn.labeled
        by_label[turn.truth][right_now_intent or "none"] += 1
        before = turn.live_action in ("act", "confirm") and turn.live_intent == turn.truth
        after = right_now_intent == turn.truth
        result.right_before += before
        result.right_after += after
        if after and not before:
            result.fixed += 1
            result.fixed_labeled += turn.labeled
            result.fixed_turns.append(turn.key)
            if leads_to_self_service(flow, turn.node, turn.truth):
                won.add(turn.call_id)
        elif before and not after:
            result.broken += 1
            result.broken_labeled += turn.labeled
            result.broken_turns.append(turn.key)
            if turn.contained_live and leads_to_self_service(flow, turn.node, turn.truth):
                lost.add(turn.call_id)
        if turn.confirmed_live and now.action == "act" and now.intent == turn.truth:
            result.now_act += 1
    result.calls = len(contained)
    if contained:
        before_calls = sum(contained.values())
        after_calls = sum((was or call in won) and call not in lost for call, was in contained.items())
        result.containment_before = round(before_calls / len(contained), 4)
        result.containment_after = round(after_calls / len(contained), 4)
    result.audio_s = round(result.audio_s, 2)
    result.by_label = {k: dict(v) for k, v in sorted(by_label.items())}
    result.by_live = {k: dict(v) for k, v in sorted(by_live.items())}
    return result


def leads_to_self_service(flow: Flow, node_id: str, intent: str) -> bool:
    """Whether ``intent`` at question ``node_id`` takes the call to a self-service node (before any person)."""
    node = flow.nodes.get(node_id)
    target = node.routes.get(intent) if isinstance(node, AskNode) else None
    seen: set[str] = set()
    while target is not None and target not in seen:
        seen.add(target)
        step = flow.nodes.get(target)
        if isinstance(step, SelfServiceNode):
            return True
        target = step.next if isinstance(step, SayNode) else None
    return False


# --- what the model hears without a grammar (the evidence of suggestions)


def _start_free_worker() -> None:
    import vosk

    vosk.SetLogLevel(-1)
    _worker["hearing"] = VoskHearing()


def _hear_freely_one(item: tuple[Path | None, str]) -> str | None:
    path, language = item
    try:
        pcm, rate = read_turn_audio(path)
    except ValueError:
        return None
    hearing: VoskHearing = _worker["hearing"]
    try:
        result, _ = hearing.hear(pcm, rate, (), language)
    except Exception as exc:
        log.warning("hearing %s freely failed: %s", path, exc)
        return None
    return result.text


def hear_freely(audio: Sequence[Path | None], language: str, workers: int | None = None) -> list[str | None]:
    """What the model hears in each recording without a grammar (its whole vocabulary); None for a recording that
    is missing or unreadable. Slow (about 0.4 s per second of audio per core): for a cluster's sample, not a day."""
    if not audio:
        return []
    context = multiprocessing.get_context("forkserver")
    used = max(1, min(workers or default_workers(), len(audio)))
    with concurrent.futures.ProcessPoolExecutor(max_workers=used, mp_context=context,
                                                initializer=_start_free_worker) as pool:
        return list(pool.map(_hear_freely_one, [(path, language) for path in audio]))


# --- from the archive


def parse_since(text: str) -> float:
    """"30d", "12h", "90m" or a number of days -> seconds. Raises ValueError naming the accepted forms."""
    value = text.strip().lower()
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    try:
        if value and value[-1] in units:
            seconds = float(value[:-1]) * units[value[-1]]
        else:
            seconds = float(value) * 86400.0
    except ValueError:
        raise ValueError(f"since {text!r}: give a duration such as 30d, 12h or 90m") from None
    if not 0 < seconds <= 366 * 86400:
        raise ValueError(f"since {text!r}: between a minute and a year")
    return seconds


def archived_turns(archive_file: Path, recordings_dir: Path, flow_id: str, since: float) -> list[ReplayTurn]:
    """The replayable turns of ``flow_id`` since ``since`` (epoch seconds) from the archive at ``archive_file``."""
    from ivr.records.archive import Archive

    if not archive_file.exists():
        return []
    archive = Archive(archive_file)
    try:
        return replay_turns(archive.iter_turns(since, flow_id=flow_id), recordings_dir, flow_id)
    finally:
        archive.close()
