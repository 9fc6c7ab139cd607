"""Voice navigation: walk a flow with the caller over their AudioSocket session.

Each question is one turn: the prompt plays while we already listen (barge-in), the caller's audio streams into a
Vosk recognizer as it arrives, and a key counts at any time. The understanding (ivr.voice.understanding) decides:
act, confirm, or ask again. Never a dead end: a person is always one key or one word away.

Split where the work changes hands:

- ``speech``: what every call shares — model packs, rendered prompts, the recognition threads (``Speech``).
- ``listening``: one turn of listening — prompt playback and barge-in, voice activity, feeding the recognizers,
  the end of the turn, all timed by the caller's audio (``listen``, ``Heard``). It knows no flow and keeps no
  state between turns.
- ``learned``: what the IVR has learned of a caller (customer, intent, queue and priority, language, dialect, what
  they said) as the channel variables the dialplan's fallback and the agent's pop read (``Learned``); pure.
- ``turns``: the turn logic — walking the flow's nodes through their declared exits, understanding, confirming,
  offers, self-service, the call's language, saving turns (``Navigator``, ``Decision``); one call's changing
  state lives in its ``Conversation``, never on the navigator that serves every call.

Everything is importable from here, as before the split (``from ivr.voice.navigator import Navigator``).
"""

from ivr.voice.navigator.learned import Learned
from ivr.voice.navigator.listening import (
    FEED_BYTES,
    VOICED_RMS,
    CallerClock,
    Heard,
    ListenHook,
    PromptDoneHook,
    listen,
    voiced,
    wall_backstop,
)
from ivr.voice.navigator.speech import PROMPT_MEMORY_CACHE, ModelSource, Speech
from ivr.voice.navigator.turns import (
    AGENT_KEY,
    MAX_STEPS,
    Conversation,
    Decision,
    DecisionKind,
    LearnedHook,
    Navigator,
    TurnHook,
    evidence,
    exit_to,
    hypotheses,
    is_phrase,
    word_confidence,
)

__all__ = [
    "AGENT_KEY", "FEED_BYTES", "MAX_STEPS", "PROMPT_MEMORY_CACHE", "VOICED_RMS", "CallerClock", "Conversation",
    "Decision", "DecisionKind", "Heard", "Learned", "LearnedHook", "ListenHook", "ModelSource", "Navigator",
    "PromptDoneHook", "Speech", "TurnHook", "evidence", "exit_to", "hypotheses", "is_phrase", "listen", "voiced",
    "wall_backstop", "word_confidence",
]
