"""One turn of listening: the prompt plays while we already listen, and the turn ends on the caller's answer.

What lives here is everything between "ask this" and "this is what the caller did": the prompt's playback
and barge-in (voice, or a recognized word, cuts it; a cough does not), telling voice from silence, feeding
the caller's audio to the recognizer as it arrives (and, while the call's language is unknown, to the other
packs' recognizers too), and the end of the turn: a key, the caller's own endpoint, too long an utterance,
no input after the prompt, or a hang-up. It knows nothing of flows: the turn logic (``turns``) hands it a
prompt, the phrases to expect and the node's ``Listen`` settings, and gets back a ``Heard``. It keeps no state
between turns, so one listening loop serves every call at once.

Time is the caller's audio. Endpoint silence, the longest utterance and no input after the prompt are
measured in seconds of caller audio received since the turn started (each frame adds its own length at its
own rate), not by the wall clock when a frame is processed: recognition runs inline, so on a loaded machine
processing lags behind the audio, and wall time between two voiced frames of one word would pass for the
caller's silence and cut them off. The moment the prompt ended is stamped in that audio time when the loop
sees the playback done. The wall clock stands in only when no audio arrives at all (a stalled line, or a
line that sends none, like the text simulation's): then a limit also counts as reached after
``wall_backstop(limit)`` of wall time without a single frame.

Rate is the caller's leg. A turn hears the caller at the rate of the first frame it gets: 16 kHz from a
wideband leg (G.722, Opus: the AudioSocket dial asked for slin16), 8 kHz from a phone line. Its recognizers,
its recording and its prompt are at that rate. A frame at another rate (the call moved to another leg
mid-turn, a trunk sending 48 kHz) is resampled to the turn's rate with soxr and the turn goes on; the next
turn takes the new rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import soxr

from asr import NARROWBAND_RATE, WIDEBAND_RATE, Partial, Result, TurnRecognizer
from ivr import metrics
from ivr.records.call import CallRecord
from ivr.telephony.audiosocket import AudioSession, CallerAudio, CallerDtmf, CallerGone, Playback
from ivr.voice.flow import Listen
from ivr.voice.navigator.speech import Speech

log = logging.getLogger(__name__)

#: Feed the recognizer 100 ms at a time: fewer thread hops, still well inside the barge-in budget.
FEED_SECONDS = 0.1
FEED_BYTES = int(FEED_SECONDS * NARROWBAND_RATE) * 2
"""FEED_SECONDS of 8 kHz audio (twice that many bytes at 16 kHz)."""
#: RMS (16-bit) above which a 20 ms frame counts as voiced, for barge-in and endpointing.
VOICED_RMS = 400.0
#: How long the loop waits for a caller event before looking at the prompt and the limits again.
POLL_S = 0.05
#: How long the first prompt waits for the caller's first frame (which tells the leg's rate).
FIRST_FRAME_WAIT_S = 0.2
#: The most the wall-clock backstop adds to a limit (see wall_backstop).
BACKSTOP_GRACE_S = 1.0

ListenHook = Callable[[CallRecord, str, float], Awaitable[None]]
"""Called when a turn starts listening: (call, node id, prompt seconds)."""
PromptDoneHook = Callable[[CallRecord, str], Awaitable[None]]
"""Called once per turn when its prompt has finished playing or was cut (at once without a prompt), before the
caller's answer is recognized to the end: (call, node id)."""


@dataclass(slots=True)
class Heard:
    """The outcome of one turn of listening."""

    result: Result | None = None
    """Recognizer output; None when nothing was recognized (or recognition failed)."""
    language: str = ""
    """Language whose recognizer produced the result."""
    detected: bool = False
    """The turn chose ``language`` among several packs' recognizers (the call's language was unknown)."""
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
    """The caller's audio during the turn, 16-bit mono at ``rate``."""
    rate: int = NARROWBAND_RATE
    """The rate the turn heard the caller at (its recognizers' and ``audio``'s)."""


def hearing_rate(frame_rate: int) -> int:
    """The rate to hear a caller whose frames come at `frame_rate`: 8 kHz stays 8 kHz, anything wider is 16 kHz.

    The models are 16 kHz models: above 16 kHz adds nothing they hear (and costs features), and 8 kHz is
    upsampled inside Vosk as well as we could.
    """
    return NARROWBAND_RATE if frame_rate <= NARROWBAND_RATE else WIDEBAND_RATE


class ToRate:
    """The caller's frames at one rate, whatever rate each arrives at (a soxr stream per source rate)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._streams: dict[int, soxr.ResampleStream] = {}

    def __call__(self, audio: CallerAudio) -> bytes:
        if audio.rate == self.rate:
            return audio.pcm
        stream = self._streams.get(audio.rate)
        if stream is None:
            stream = self._streams[audio.rate] = soxr.ResampleStream(audio.rate, self.rate, 1, dtype="int16")
        out: np.ndarray = stream.resample_chunk(np.frombuffer(audio.pcm, dtype="<i2"))
        return out.astype("<i2").tobytes()


def voiced(pcm: bytes) -> bool:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return bool(samples.size) and float(np.sqrt(np.mean(samples * samples))) >= VOICED_RMS


def wall_backstop(limit_s: float) -> float:
    """Wall time without any caller audio after which a limit of `limit_s` counts as reached anyway.

    Generous (twice the limit, at most BACKSTOP_GRACE_S more): it is for lines that send nothing, never a
    second clock racing the caller's audio.
    """
    return limit_s + min(limit_s, BACKSTOP_GRACE_S)


class CallerClock:
    """A turn's time as the caller's audio tells it, with the wall time of the last frame for the backstop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.now = 0.0
        """Seconds of caller audio received since the turn started."""
        self.last_audio_wall = loop.time()
        """Loop time when the last frame arrived (the turn's start before any)."""

    def heard(self, audio: CallerAudio) -> None:
        self.now += audio.seconds
        self.last_audio_wall = self._loop.time()

    def silent_for(self, since_wall: float) -> float:
        """Wall time without a frame since `since_wall` (loop time) or the last frame, whichever came later."""
        return self._loop.time() - max(since_wall, self.last_audio_wall)


async def listen(speech: Speech, session: AudioSession, settings: Listen, prompt_text: str, call: CallRecord,
                 node_id: str, phrases: list[str], *, detect: Mapping[str, list[str]] | None = None,
                 on_listen: ListenHook | None = None, on_prompt_done: PromptDoneHook | None = None) -> Heard:
    """One turn: play `prompt_text` (if any) while listening for `phrases` in the call's language and for keys.

    No phrases: keys only. `detect`: other languages the caller may speak, with their phrases; their
    recognizers hear the same audio, and the most confident one's result and language are kept
    (``Heard.detected``). The call itself is not changed here: what to make of the answer is the turn logic's.
    """
    turn = _Turn(speech, session, settings, call, node_id, on_prompt_done)
    return await turn.run(prompt_text, phrases, detect or {}, on_listen)


class _Turn:
    """The state of one turn of listening (a new one every turn; nothing outlives it)."""

    def __init__(self, speech: Speech, session: AudioSession, settings: Listen, call: CallRecord, node_id: str,
                 on_prompt_done: PromptDoneHook | None) -> None:
        self.speech = speech
        self.session = session
        self.settings = settings
        self.call = call
        self.node_id = node_id
        self.on_prompt_done = on_prompt_done
        self.loop = asyncio.get_running_loop()
        self.heard = Heard(language=call.language)
        self.phrases: list[str] = []
        self.recognizer: TurnRecognizer | None = None
        # While the language is unknown, the same audio also goes to the other packs' recognizers.
        self.others: dict[str, TurnRecognizer] = {}
        self.clock = CallerClock(self.loop)
        self.prompt_done = False
        self.prompt_over_at: float | None = None
        """Audio time when the loop saw the prompt over (0 without a prompt)."""
        self.prompt_over_wall = 0.0
        self.speech_start: float | None = None
        """Audio time the caller's speech started (None: not yet)."""
        self.last_voice: float | None = None
        """Audio time at the end of the last voiced frame."""
        self.last_voice_wall: float | None = None
        self.first_voiced: float | None = None
        """Audio time at the start of the first voiced frame."""
        self.voiced_ms = 0
        self.pending = bytearray()
        self.rate = hearing_rate(session.rate)
        """The turn's hearing rate: the session's at the start, the first frame's once one arrives."""
        self.fed = False
        """Audio went to the recognizer: from then on the turn's rate is fixed."""
        self.to_rate = ToRate(self.rate)
        self.rates_logged: set[int] = set()
        self.heard.rate = self.rate
        self.detect: Mapping[str, list[str]] = {}

    async def run(self, prompt_text: str, phrases: list[str], detect: Mapping[str, list[str]],
                  on_listen: ListenHook | None) -> Heard:
        heard, session, settings = self.heard, self.session, self.settings
        self.detect = detect
        self._recognizers(phrases, detect)
        playback = await self._play(prompt_text)
        if on_listen:
            await on_listen(self.call, self.node_id, playback.seconds if playback else 0.0)
        if playback is None:
            await self._prompt_over()
        idle = False  # the last wait found no caller event: only then may the wall clock stand in
        while True:
            if playback and not self.prompt_done and playback.done.done():
                await self._prompt_over()
            if self._limit_reached(idle):
                break
            event = await session.next_event(timeout=POLL_S)
            idle = event is None
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
            self.clock.heard(event)
            if session.playing and not settings.barge_in:
                continue  # the prompt must be heard out: its audio is not the caller's answer
            pcm = self._at_turn_rate(event)
            heard.audio += pcm
            self._voicing(event)
            if session.playing and self.voiced_ms >= settings.barge_in_min_speech_ms:
                heard.barged_in = True
                session.stop_playback()
            if self.recognizer is None:
                continue
            self.pending += pcm
            if len(self.pending) < FEED_BYTES * self.rate // NARROWBAND_RATE:
                continue
            chunk, self.pending = bytes(self.pending), bytearray()
            self.fed = True
            for other in self.others.values():
                await self.loop.run_in_executor(self.speech.executor, other.feed, chunk)
            out = await self._feed(chunk)
            if isinstance(out, Partial) and out.text and session.playing and self.voiced_ms >= 100:
                heard.barged_in = True  # a recognized word over real voice cuts the prompt too
                session.stop_playback()
            elif isinstance(out, Result):
                if out.text or heard.speech_started_at is not None:
                    heard.result = out
                    heard.grammar = getattr(self.recognizer, "grammar_phrases", None)
                    break
                # Vosk's endpointer also fires on long silence (during a long prompt, say): an empty
                # final is not an answer. Listen on with a fresh recognizer until our own no-input.
                try:
                    self.recognizer = self.speech.recognizer(self.call.language, self.phrases, self.rate)
                except Exception as exc:
                    heard.error, self.recognizer = f"recognizer failed: {exc}", None
        if self.last_voice_wall is not None:
            heard.speech_ended_at = time.time() - (self.loop.time() - self.last_voice_wall)
        session.stop_playback()
        await self._prompt_over()
        await self._finish()
        if heard.result is not None and self.last_voice_wall is not None:  # ivr_asr_latency_seconds
            metrics.observe_asr_latency(self.loop.time() - self.last_voice_wall - settings.endpoint_silence_s)
        return heard

    def _recognizers(self, phrases: list[str], detect: Mapping[str, list[str]]) -> None:
        if not phrases:
            return
        self.phrases = phrases
        self.others.clear()
        try:
            self.recognizer = self.speech.recognizer(self.call.language, phrases, self.rate)
        except Exception as exc:  # model missing, bad grammar: keys still work
            self.heard.error = f"speech recognition unavailable: {exc}"
            metrics.error(metrics.ErrorKind.ASR)
            log.error("call %s: %s; listening for keys only", self.session.call_id, self.heard.error)
        for lang, other_phrases in detect.items():
            if lang == self.call.language or not other_phrases:
                continue
            try:
                self.others[lang] = self.speech.recognizer(lang, other_phrases, self.rate)
            except Exception as exc:
                log.warning("call %s: no %s recognizer for language detection: %s", self.session.call_id, lang, exc)

    async def _play(self, prompt_text: str) -> Playback | None:
        if not prompt_text:
            return None
        if not self.session.rate_known.is_set():
            # The call's first prompt: Asterisk's first frame (within 20 ms of connecting) tells the leg's
            # rate, so a wideband caller hears the greeting in HD too.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.session.rate_known.wait(), FIRST_FRAME_WAIT_S)
        rate = self.session.rate if self.session.rate in (NARROWBAND_RATE, WIDEBAND_RATE) else NARROWBAND_RATE
        return self.session.play(await self.speech.prompt(prompt_text, self.call.language, rate), rate)

    async def _prompt_over(self) -> None:
        """Stamp the prompt's end in audio time and tell the hook, once per turn."""
        if self.prompt_done:
            return
        self.prompt_done = True
        self.prompt_over_at, self.prompt_over_wall = self.clock.now, self.loop.time()
        if self.on_prompt_done:
            await self.on_prompt_done(self.call, self.node_id)

    def _limit_reached(self, idle: bool) -> bool:
        """No input after the prompt, too long an utterance, or the caller's endpoint: in audio time."""
        settings, now = self.settings, self.clock.now
        if self.speech_start is None:
            if self.prompt_over_at is None:
                return False  # no input counts only once the prompt is over
            if now - self.prompt_over_at > settings.no_input_s:
                return True
            return idle and self.clock.silent_for(self.prompt_over_wall) > wall_backstop(settings.no_input_s)
        if now - self.speech_start > settings.max_speech_s:
            return True
        assert self.last_voice is not None and self.last_voice_wall is not None  # speech starts on a voiced frame
        if now - self.last_voice >= settings.endpoint_silence_s:
            return True  # our own endpoint, configurable per node
        return idle and self.clock.silent_for(self.last_voice_wall) > wall_backstop(settings.endpoint_silence_s)

    def _at_turn_rate(self, audio: CallerAudio) -> bytes:
        """The frame's audio at the turn's rate; the first frame sets that rate if nothing was heard yet."""
        rate = hearing_rate(audio.rate)
        if rate != self.rate and not self.fed and not self.heard.audio:
            # The session's first frames: the leg is wider (or narrower) than the session assumed.
            self.rate, self.to_rate = rate, ToRate(rate)
            if self.phrases:
                self._recognizers(self.phrases, self.detect)
        elif audio.rate != self.rate and audio.rate not in self.rates_logged:
            self.rates_logged.add(audio.rate)
            log.warning("call %s: caller audio at %d Hz in a turn heard at %d Hz: resampled",
                        self.session.call_id, audio.rate, self.rate)
        self.heard.rate = self.rate
        return self.to_rate(audio)

    def _voicing(self, audio: CallerAudio) -> None:
        """Voice or silence: barge-in, the endpoint and the voiced length follow it."""
        heard, frame_ms = self.heard, round(audio.seconds * 1000)
        if voiced(audio.pcm):
            self.voiced_ms += frame_ms
            self.last_voice, self.last_voice_wall = self.clock.now, self.loop.time()
            if self.first_voiced is None:
                self.first_voiced = self.clock.now - audio.seconds
            heard.voiced_s = self.clock.now - self.first_voiced
            if heard.speech_started_at is None and self.voiced_ms >= 60:
                heard.speech_started_at = time.time() - self.voiced_ms / 1000
                self.speech_start = self.clock.now - self.voiced_ms / 1000
        else:
            self.voiced_ms = max(0, self.voiced_ms - frame_ms // 2)  # decay: clicks and coughs do not add up

    async def _feed(self, chunk: bytes) -> Result | Partial | None:
        assert self.recognizer is not None
        try:
            return await self.loop.run_in_executor(self.speech.executor, self.recognizer.feed, chunk)
        except Exception as exc:
            self.heard.error = f"recognizer failed: {exc}"
            metrics.error(metrics.ErrorKind.ASR)
            log.error("call %s: %s; listening for keys only", self.session.call_id, self.heard.error)
            self.recognizer = None
            return None

    async def _finish(self) -> None:
        """What the recognizer makes of the turn's audio when the turn ended without its final result."""
        heard = self.heard
        if self.recognizer is not None and heard.result is None and not heard.dtmf and not heard.hung_up:
            if self.pending:
                await self._feed(bytes(self.pending))
            if self.recognizer is not None:
                try:
                    heard.result = await self.loop.run_in_executor(self.speech.executor, self.recognizer.finish)
                    heard.grammar = getattr(self.recognizer, "grammar_phrases", None)
                except Exception as exc:
                    heard.error = f"recognizer failed: {exc}"
        elif self.recognizer is not None and heard.hung_up and heard.audio:
            # The caller hung up mid-utterance: what was said still goes on the record.
            try:
                heard.result = await self.loop.run_in_executor(self.speech.executor, self.recognizer.finish)
            except Exception as exc:
                heard.error = f"recognizer failed: {exc}"
        if self.others and heard.result is not None:
            self._detect_language()

    def _detect_language(self) -> None:
        """Keep the language whose recognizer was most sure of a phrase of the flow."""

        def strength(result: Result) -> float:
            return result.phrase_confidence if result.phrase else 0.5 * result.confidence

        heard = self.heard
        assert heard.result is not None
        best_lang, best = self.call.language, heard.result
        for lang, recognizer in self.others.items():
            try:
                result = recognizer.finish()
            except Exception:
                continue
            if result.text and strength(result) > strength(best):
                best_lang, best = lang, result
        heard.result, heard.language, heard.detected = best, best_lang, True
