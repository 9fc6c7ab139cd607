"""HD voice through the product (issue 10, item 5): the same utterances as 16 kHz and as 8 kHz telephone-band calls.

The demo flow's main menu (dialplans/hotline.yaml) routes intents to places; each routed intent's canonical
phrase (its ``examples``) is rendered once by espeak-ng at 22,050 Hz per voice and speaking rate (light white
noise optional, seeded), then placed as a call through the real Asterisk (ivr.sim.simulator) twice:

- 16 kHz arm: the rendering resampled to 16 kHz (soxr, in the simulator), the caller a wideband Local channel
  in slin16; the controller hears it over AudioSocket at 16 kHz;
- 8 kHz arm: the same rendering band-limited to the telephone band, 300-3,400 Hz (scipy's Butterworth band-pass,
  zero-phase), then resampled to 8 kHz (soxr): what a narrowband phone line carries.

The caller says its phrase once and then listens (``Caller``: the simulator's Local-channel caller, answering
by what was asked): when the IVR is unsure and asks "..., right?", it answers "네" if the question names its
intent and "아니요" if it names another (``--always-yes``: "네" to every confirmation); asked again after a
miss, it presses 0 for a person (as the re-prompt offers); at any other question (after a balance, at a
callback offer) it presses 9 ("that is all"; "hold"). Its spoken answers are rendered in the same voice and
rate, at the arm's rate. Every call's record (Redis ivr:call:<id>, as the simulator returns it) is classified:

- exact: the first turn's transcript is the phrase said;
- heard intent: the first turn's intent is the phrase's intent (acted on or asked about);
- confirmed: a confirm turn happened;
- routed right: the call reached the intent's place with the intent, by speech (its queue; the IVR's own answer
  for a self-service intent, after which the caller may go on; "상담원 연결" reaches the general queue by
  design, with the intent agent; a caller who pressed 0 at the menu was not routed by what it said);
- misrouted: it reached ANOTHER intent's place (a queue other than the intent's and the general one, or a
  self-service answer the caller did not ask for): the product should never do this;
- to person: it ended in the general (fallback) queue without being routed right;
- lost: none of these (no queue: an error, a hang-up, the simulator's timeout).

Target: 16 kHz routes at least twice as many calls right as 8 kHz on the same utterances, with 0 misroutes in
either arm. The verdict is printed; the run does not fail on it.

Writes bench/out/hd_voice.json (``"8000"`` and ``"16000"``: calls, routed_right, confirmed, misrouted,
to_person, and more) and bench/out/hd_voice.svg.

    flock /tmp/ivr-integration.lock .venv/bin/python -m bench.hd_voice            # 48 calls per arm, ~12 min
    flock /tmp/ivr-integration.lock .venv/bin/python -m bench.hd_voice --quick    # 3 calls per arm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
import wave
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from bench.common import OUT, bar_chart, report
from bench.common import rate_table as common_rate_table
from ivr.records.store import call_key
from ivr.sim.simulator import SimulatedCall, Simulator
from ivr.telephony.ami import AmiClient

FLOW_FILE = Path(__file__).resolve().parents[1] / "dialplans" / "hotline.yaml"
MENU = "main_menu"
VOICES = ("ko", "ko+f2", "ko+m3", "ko+f4")
WPMS = (120, 150)
"""espeak-ng speaking rates (words per minute)."""
SKIPPED_INTENTS = ("complaint",)
"""Left out by default: its route is a callback offer (a second question) before any queue; `--intents all`
takes it in. Without it the default is 6 phrases x 4 voices x 2 rates = 48 calls per arm."""
NARROWBAND, WIDEBAND = 8000, 16000
ARMS = (NARROWBAND, WIDEBAND)
TELEPHONE_BAND = (300.0, 3400.0)
"""Hz: the voice band of a narrowband (G.711) line."""
BAND_ORDER = 8
"""Order of the Butterworth band-pass (applied forward and backward: twice the attenuation, no phase shift)."""
RENDER_RATE = 22050
"""espeak-ng's own output rate."""
YES, NO = "네", "아니요"
PERSON_KEY = "0"
"""What the caller presses when the menu asks again after a miss: a person (the flow's agent key)."""
KEYS = "9"
"""What the caller presses at a question that is not the menu's: "that is all" after a balance, "hold" (not a
callback) at a callback offer."""
ANSWERS = 8
"""Answers a caller has ready (more than any path through the menu asks for)."""
CALLERS = ("01099990510", "01099990511")
BENCH_CUSTOMER = "BENCH-HD"
"""The bench's own known caller, on two phones (two calls at a time), with a balance to hear; replaced at every
run (its contact history grows with every call)."""
CALL_TIMEOUT_S = 90.0
TARGET_FACTOR = 2.0
OUTCOMES = ("routed_right", "misrouted", "to_person", "lost")


# --- what is said, and where it should go ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A routed intent of the main menu, the phrase a caller says for it, and the place it must reach."""

    intent: str
    phrase: str
    queue: str | None
    """The queue the intent reaches (None: the IVR serves it itself)."""
    self_service: str | None = None
    """The self-service node the intent reaches, when it does."""


def menu_targets(flow: Any, language: str = "ko") -> list[Target]:
    """One Target per intent the flow's main menu routes, in the order of its routes.

    The phrase is the intent's example (what the re-prompt offers), else its first phrase. The agent intent
    reaches the fallback queue whatever its route (the navigator sends it to a person directly).
    """
    from ivr.voice.flow import AskNode, CallbackOfferNode, RouteNode, SelfServiceNode

    menu = flow.nodes[MENU]
    assert isinstance(menu, AskNode)
    out: list[Target] = []
    for intent_id, node_id in menu.routes.items():
        intent = flow.intents[intent_id]
        phrase = intent.examples.get(language) or next(iter(intent.phrases.get(language, [])), "")
        if not phrase:
            continue
        node = flow.nodes[node_id]
        if intent_id == flow.agent_intent:
            out.append(Target(intent_id, phrase, flow.fallback_queue))
        elif isinstance(node, RouteNode):
            out.append(Target(intent_id, phrase, node.queue))
        elif isinstance(node, CallbackOfferNode):
            out.append(Target(intent_id, phrase, node.queue))
        elif isinstance(node, SelfServiceNode):
            out.append(Target(intent_id, phrase, None, node_id))
    return out


def normalized(text: str | None) -> str:
    return " ".join((text or "").split())


@dataclass(frozen=True)
class Verdict:
    """What became of one call."""

    outcome: str
    """One of OUTCOMES."""
    exact: bool
    heard_intent: bool
    confirmed: bool
    reached: str
    """Where it ended: "queue:<name>", "self_service:<node>", or the record's outcome."""


def classify(record: dict[str, Any], target: Target, targets: Sequence[Target], fallback_queue: str) -> Verdict:
    """The call record (as ivr.sim.simulator returns it) judged against what the caller asked for."""
    turns = record.get("turns") or []
    first = turns[0] if turns else {}
    exact = normalized(first.get("transcript")) == normalized(target.phrase)
    heard_intent = first.get("intent") == target.intent
    confirmed = any(t.get("kind") == "confirm" for t in turns)
    path = record.get("path") or []
    queue = record.get("queue")
    keyed = any(t.get("node") == MENU and t.get("dtmf") for t in turns)
    served = [t.self_service for t in targets if t.self_service and t.self_service in path]
    served_right = bool(record.get("self_served")) and target.self_service in served
    if served:
        reached = f"self_service:{served[0]}"
    elif queue:
        reached = f"queue:{queue}"
    else:
        reached = str(record.get("outcome") or "none")
    # A self-service node is reached from the menu by its intent alone; what the caller does next there (the
    # finish intent after a balance) becomes the call's intent, so only a queue's arrival is judged by it.
    if not keyed and (served_right if target.self_service
                      else record.get("intent") == target.intent and queue == target.queue and not served):
        outcome = "routed_right"
    elif any(node != target.self_service for node in served) or (
            queue and queue != fallback_queue and queue != target.queue):
        outcome = "misrouted"
    elif queue == fallback_queue:
        outcome = "to_person"
    else:
        outcome = "lost"
    return Verdict(outcome, exact, heard_intent, confirmed, reached)


def answer_for(node: str, turns: Sequence[dict[str, Any]], intent: str, confirm_threshold: float,
               confirmable: Iterable[str], always_yes: bool = False) -> str:
    """What a caller who wants `intent` does at a question of `node`, given the call's turns so far (the record's):
    "phrase" (says it), "yes", "no", "person" (presses PERSON_KEY) or "keys" (presses KEYS).

    At the menu: the first question gets the phrase. Right after a menu turn whose intent scored at or above the
    flow's confirm threshold (and the intent has a confirm question) the navigator asks "<intent>, right?" (had
    it acted, the call would have left the menu): yes when that is the caller's intent (or `always_yes`), else
    no. Any other question at the menu asks again after a miss: a person. Any other node: keys.
    """
    if node != MENU:
        return "keys"
    at_menu = [t for t in turns if t.get("node") == MENU]
    if not at_menu:
        return "phrase"
    last = turns[-1]
    if (last.get("node") == MENU and last.get("kind", "ask") == "ask"
            and last.get("intent") in set(confirmable) and float(last.get("score") or 0.0) >= confirm_threshold):
        return "yes" if always_yes or last.get("intent") == intent else "no"
    return "person"


SAYS = ("phrase", "yes", "no")
"""The caller's spoken answers, in the order their audio is handed to the simulator (then PERSON_KEY, KEYS...)."""


class Caller(Simulator):
    """The simulator's Local-channel caller, answering each question by what was asked (``answer_for``) rather
    than in a fixed order. Its turns are SAYS' audio, PERSON_KEY, then KEYS (repeated); it picks one for every
    question when the question starts (the record then holds every earlier turn), and presses 0 over the
    re-prompt, as the flow allows, rather than after hearing it out."""

    def __init__(self, settings: Any, intent: str, confirm_threshold: float, confirmable: Iterable[str],
                 always_yes: bool = False) -> None:
        super().__init__(settings)
        self.intent, self.confirm_threshold = intent, confirm_threshold
        self.confirmable, self.always_yes = frozenset(confirmable), always_yes
        self.said: list[str] = []
        """What it answered, question by question ("phrase", "yes", "no", "person", "keys")."""

    async def answer_when_asked(self, ami: AmiClient, sim: SimulatedCall, turn: tuple[str, str],
                                prompt_over: asyncio.Event, prompt_s: float, barge_in: bool) -> None:
        role = await self._choose(sim)
        self.said.append(role)
        chosen = sim.turns[SAYS.index(role) if role in SAYS else len(SAYS) + (role == "keys")]
        await super().answer_when_asked(ami, sim, chosen, prompt_over, prompt_s, barge_in or role == "person")

    async def _choose(self, sim: SimulatedCall) -> str:
        listening = [e for e in sim.events if e.get("type") == "call.listening"]
        node = str(listening[-1].get("node", MENU)) if listening else MENU
        client = aioredis.from_url(self.settings.redis_url, decode_responses=True)
        try:
            raw = await client.get(call_key(sim.call_id))
        finally:
            await client.aclose()
        turns = (json.loads(raw).get("turns") or []) if raw else []
        return answer_for(node, turns, self.intent, self.confirm_threshold, self.confirmable, self.always_yes)


def tally(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Counts of one arm: calls, each outcome, exact, heard intent, confirmed."""
    counted = Counter[str]()
    for v in verdicts:
        counted["calls"] += 1
        counted[v.outcome] += 1
        counted["exact_right"] += v.exact
        counted["heard_intent_right"] += v.heard_intent
        counted["confirmed"] += v.confirmed
    keys = ("calls", "routed_right", "confirmed", "misrouted", "to_person", "lost", "exact_right",
            "heard_intent_right")
    return {key: counted[key] for key in keys}


def verdict_line(by_rate: dict[str, dict[str, Any]], factor: float = TARGET_FACTOR) -> tuple[bool, str]:
    """(met, sentence): 16 kHz routes at least `factor` times the calls right that 8 kHz does, 0 misroutes."""
    narrow, wide = by_rate[str(NARROWBAND)], by_rate[str(WIDEBAND)]
    need = factor * narrow["routed_right"]
    enough = wide["routed_right"] >= need and wide["routed_right"] > 0
    misroutes = narrow["misrouted"] + wide["misrouted"]
    met = enough and misroutes == 0
    return met, (f"target {'MET' if met else 'NOT MET'}: 16 kHz routed {wide['routed_right']}/{wide['calls']} right, "
                 f"8 kHz {narrow['routed_right']}/{narrow['calls']} (need >= {need:g}: "
                 f"{'yes' if enough else 'no'}); misroutes {misroutes} (need 0: {'yes' if misroutes == 0 else 'no'})")


# --- audio ------------------------------------------------------------------------------------------------------


def render(text: str, voice: str, wpm: int, work: Path) -> tuple[npt.NDArray[np.int16], int]:
    """espeak-ng's rendering of `text`: (16-bit mono samples, their rate)."""
    path = work / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True)
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy(), wav.getframerate()


def add_noise(samples: npt.NDArray[np.int16], snr_db: float, seed: int) -> npt.NDArray[np.int16]:
    """White noise at `snr_db` below the speech's RMS (seeded: the same noise for both arms)."""
    audio = samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    noise = np.random.default_rng(seed).normal(0.0, rms / 10 ** (snr_db / 20), audio.size)
    return np.clip(np.round(audio + noise), -32768, 32767).astype("<i2")


def telephone_band(samples: npt.NDArray[np.int16], rate: int, band: tuple[float, float] = TELEPHONE_BAND,
                   out_rate: int = NARROWBAND, order: int = BAND_ORDER) -> npt.NDArray[np.int16]:
    """What a narrowband line carries: band-passed to `band` (Butterworth, zero-phase), resampled to `out_rate`."""
    import soxr
    from scipy import signal

    sos = signal.butter(order, band, btype="bandpass", fs=rate, output="sos")
    passed = signal.sosfiltfilt(sos, samples.astype(np.float64))
    resampled = soxr.resample(passed, rate, out_rate, quality="HQ") if rate != out_rate else passed
    return np.clip(np.round(resampled), -32768, 32767).astype("<i2")


@dataclass(frozen=True)
class Utterance:
    target: Target
    voice: str
    wpm: int

    @property
    def label(self) -> str:
        return f"{self.target.intent}/{self.voice}/{self.wpm}"


def prepare_audio(utterances: Sequence[Utterance], work: Path, snr_db: float | None,
                  seed: int) -> dict[tuple[str, int], list[Path]]:
    """Per (utterance label, arm rate): the caller's WAV files, SAYS in order (same voice and rate)."""
    from ivr.audio import write_wav

    files: dict[tuple[str, int], list[Path]] = {}
    for k, utt in enumerate(utterances):
        turns: dict[int, list[Path]] = {NARROWBAND: [], WIDEBAND: []}
        for j, text in enumerate((utt.target.phrase, YES, NO)):
            samples, rate = render(text, utt.voice, utt.wpm, work)
            if snr_db is not None:
                samples = add_noise(samples, snr_db, seed * 100_003 + 2 * k + j)
            stem = work / f"{k:03d}-{j}"
            wide = stem.with_name(stem.name + "-wide.wav")  # the simulator resamples it to 16 kHz (soxr)
            write_wav(wide, samples.tobytes(), rate)
            narrow = stem.with_name(stem.name + "-narrow.wav")
            write_wav(narrow, telephone_band(samples, rate).tobytes(), NARROWBAND)
            turns[WIDEBAND].append(wide)
            turns[NARROWBAND].append(narrow)
        for arm, paths in turns.items():
            files[(utt.label, arm)] = paths
    return files


# --- the stack --------------------------------------------------------------------------------------------------


async def prepare_data(settings: Any) -> None:
    """The bench caller as a known customer (a balance to hear); the demo agents when there are none (a fresh
    machine), every one of them offline, as the tests start them."""
    from ivr.records.customer import Customer
    from ivr.routing.agents import AgentDirectory
    from ivr.routing.customers import CustomerStore
    from ivr.sim.demo_users import import_demo_data

    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        customers = CustomerStore(client, timeout_s=5)
        directory = AgentDirectory(client)
        if not await directory.all():
            await import_demo_data(client)
        await drop_bench_customer(client)
        await customers.put(Customer(id=BENCH_CUSTOMER, name="홍길동", phones=list(CALLERS), balance=1_250_000,
                                     language="ko", patience_s=60))
    finally:
        await client.aclose()


async def drop_bench_customer(client: Any) -> None:
    await client.delete(f"ivr:customer:{BENCH_CUSTOMER}", f"ivr:customer:{BENCH_CUSTOMER}:history")
    for phone in CALLERS:
        if await client.get(f"ivr:phone:{phone}") == BENCH_CUSTOMER:
            await client.delete(f"ivr:phone:{phone}")


async def live_flow_differs(settings: Any) -> bool:
    """Whether the flow the controller runs (its live version in Redis) is not dialplans/hotline.yaml."""
    from ivr.voice.versions import FlowStore

    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        live = await FlowStore(client).live("hotline")
        return live is not None and live.text.strip() != FLOW_FILE.read_text(encoding="utf-8").strip()
    except Exception:
        return False
    finally:
        await client.aclose()


@dataclass
class Placed:
    utterance: Utterance
    arm: int
    verdict: Verdict
    call_id: str
    heard_at_hz: int | None
    transcript: str
    said: list[str]
    wall_s: float


async def place_calls(settings: Any, utterances: Sequence[Utterance], files: dict[tuple[str, int], list[Path]],
                      flow: Any, parallel: int, always_yes: bool = False) -> list[Placed]:
    """Every utterance as a call at each arm's rate, the arms interleaved (drifting machine load hits both)."""
    targets = menu_targets(flow)
    confirmable = [i for i, intent in flow.intents.items() if intent.confirm.get("ko")]
    gate = asyncio.Semaphore(parallel)
    placed: list[Placed] = []
    jobs = [(utt, arm) for utt in utterances for arm in ARMS]

    async def one(k: int, utt: Utterance, arm: int) -> None:
        async with gate:
            started = time.monotonic()
            caller = Caller(settings, utt.target.intent, flow.thresholds.confirm, confirmable, always_yes)
            keys = [PERSON_KEY] + [KEYS] * (ANSWERS - len(SAYS) - 1)
            record = await caller.run(CALLERS[k % len(CALLERS)], files[(utt.label, arm)], keys, until="queued",
                                      timeout=CALL_TIMEOUT_S, rate=arm)
            verdict = classify(record, utt.target, targets, flow.fallback_queue)
            first = (record.get("turns") or [{}])[0]
            done = Placed(utt, arm, verdict, str(record.get("call_id")), record.get("heard_at_hz"),
                          str(first.get("transcript") or ""), caller.said, round(time.monotonic() - started, 1))
            placed.append(done)
            print(f"  [{k + 1:3d}/{len(jobs)}] {arm // 1000:2d} kHz {utt.label:<24} heard {done.transcript!r:<22} "
                  f"said {'/'.join(caller.said):<18} -> {verdict.reached}: {verdict.outcome} ({done.wall_s} s)",
                  flush=True)

    await asyncio.gather(*(one(k, utt, arm) for k, (utt, arm) in enumerate(jobs)))
    return placed


# --- the report -------------------------------------------------------------------------------------------------

TABLE_ROWS = (
    ("calls", "calls"),
    ("exact phrase right", "exact_right"),
    ("intent heard right (1st turn)", "heard_intent_right"),
    ("routed right", "routed_right"),
    ("confirmed", "confirmed"),
    ("  of another intent, declined", "declined"),
    ("asked again, pressed 0", "pressed_0"),
    ("misrouted", "misrouted"),
    ("sent to a person", "to_person"),
    ("lost (no queue)", "lost"),
    ("heard at the arm's rate", "heard_at_arm_rate"),
)


def rate_table(by_rate: dict[str, dict[str, Any]]) -> str:
    return common_rate_table(by_rate, TABLE_ROWS)


def summarize(placed: Sequence[Placed]) -> dict[str, dict[str, Any]]:
    by_rate: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        mine = [p for p in placed if p.arm == arm]
        row: dict[str, Any] = tally(p.verdict for p in mine)
        row["heard_at_arm_rate"] = sum(1 for p in mine if p.heard_at_hz == arm)
        row["declined"] = sum(1 for p in mine if "no" in p.said)
        row["pressed_0"] = sum(1 for p in mine if "person" in p.said)
        for name, key in (("by_voice", lambda p: p.utterance.voice), ("by_wpm", lambda p: str(p.utterance.wpm)),
                          ("by_intent", lambda p: p.utterance.target.intent)):
            groups: dict[str, list[Verdict]] = {}
            for p in mine:
                groups.setdefault(key(p), []).append(p.verdict)
            row[name] = {g: {k: v for k, v in tally(vs).items() if k in ("calls", "routed_right", "misrouted",
                                                                        "to_person", "exact_right")}
                         for g, vs in groups.items()}
        by_rate[str(arm)] = row
    return by_rate


def write_chart(by_rate: dict[str, dict[str, Any]]) -> Path:
    """bench/out/hd_voice.svg: calls routed right at each rate, against the target for 16 kHz."""
    narrow, wide = by_rate[str(NARROWBAND)], by_rate[str(WIDEBAND)]
    bars = [(f"{rate // 1000} kHz", float(by_rate[str(rate)]["routed_right"])) for rate in ARMS]
    title = (f"Routed right, same {wide['calls']} utterances\n"
             f"(misrouted: {narrow['misrouted']} at 8 kHz, {wide['misrouted']} at 16 kHz)")
    return bar_chart(OUT / "hd_voice.svg", title, bars, "calls routed right",
                     line=(TARGET_FACTOR * narrow["routed_right"], f"{TARGET_FACTOR:g}x 8 kHz"))


def choose_targets(flow: Any, intents: str) -> list[Target]:
    every = menu_targets(flow)
    if intents == "all":
        return every
    if intents == "default":
        return [t for t in every if t.intent not in SKIPPED_INTENTS]
    wanted = [i.strip() for i in intents.split(",") if i.strip()]
    unknown = set(wanted) - {t.intent for t in every}
    if unknown:
        raise SystemExit(f"--intents: {sorted(unknown)} not routed by {MENU} (it routes {[t.intent for t in every]})")
    return [t for t in every if t.intent in wanted]


def main(voices: Sequence[str] = VOICES, wpms: Sequence[int] = WPMS, intents: str = "default",
         snr_db: float | None = None, seed: int = 1, parallel: int = 2, always_yes: bool = False) -> dict[str, Any]:
    from ivr.config import load_settings
    from ivr.ops import stack
    from ivr.voice.flow import load_flow

    flow = load_flow(FLOW_FILE)
    chosen = choose_targets(flow, intents)
    utterances = [Utterance(t, voice, wpm) for t in chosen for voice in voices for wpm in wpms]
    settings = load_settings()
    print(f"hd_voice: {len(utterances)} utterances ({len(chosen)} phrases x {len(voices)} voices x {len(wpms)} "
          f"rates) x {len(ARMS)} arms, {parallel} call(s) at a time", flush=True)
    stack.up(settings)
    asyncio.run(prepare_data(settings))
    differs = asyncio.run(live_flow_differs(settings))
    if differs:
        print("hd_voice: WARNING: the controller's live flow is not dialplans/hotline.yaml (a published edit?): "
              "the places expected here come from the file", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hd_voice-") as tmp:
        files = prepare_audio(utterances, Path(tmp), snr_db, seed)
        placed = asyncio.run(place_calls(settings, utterances, files, flow, parallel, always_yes))
    wall = time.monotonic() - started
    by_rate = summarize(placed)
    met, sentence = verdict_line(by_rate)
    print("\nhd_voice: the same utterances at 8 kHz (telephone band) and 16 kHz (HD voice), through the IVR")
    print(rate_table(by_rate))
    print(sentence)
    data: dict[str, Any] = {
        **by_rate,
        "target": {"wideband_factor": TARGET_FACTOR, "misroutes": 0, "met": met, "verdict": sentence},
        "setup": {"phrases": {t.intent: t.phrase for t in chosen}, "voices": list(voices), "wpm": list(wpms),
                  "noise_snr_db": snr_db, "seed": seed, "telephone_band_hz": list(TELEPHONE_BAND),
                  "band_filter": f"Butterworth order {BAND_ORDER}, zero-phase (scipy sosfiltfilt), then soxr",
                  "answers": {"yes": YES, "no": NO, "person": PERSON_KEY, "keys": KEYS}, "always_yes": always_yes,
                  "parallel_calls": parallel, "live_flow_differs": differs,
                  "wall_s": round(wall, 1)},
        "calls_detail": [{"utterance": p.utterance.label, "rate": p.arm, "call_id": p.call_id,
                          "heard_at_hz": p.heard_at_hz, "transcript": p.transcript, "said": p.said,
                          **asdict(p.verdict)}
                         for p in sorted(placed, key=lambda p: (p.utterance.label, p.arm))],
    }
    rows: list[tuple[str, Any]] = [(f"{rate} Hz {key}", by_rate[rate][key]) for rate in by_rate
                                   for key in ("calls", "routed_right", "confirmed", "misrouted", "to_person")]
    report("hd_voice", [*rows, ("target met", met)], data)
    print(f"-> {write_chart(by_rate).relative_to(OUT.parent.parent)}")
    return data


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _wpms(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(part) for part in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated words per minute, e.g. 120,150") from None
    if not out or min(out) < 80 or max(out) > 450:
        raise argparse.ArgumentTypeError(f"{text!r}: espeak-ng speaks 80-450 words per minute")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.hd_voice", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", type=_csv, default=VOICES, help="espeak-ng voices (default %(default)s)")
    parser.add_argument("--wpm", type=_wpms, default=WPMS, help="speaking rates (default %(default)s)")
    parser.add_argument("--intents", default="default",
                        help="'default' (every routed intent but complaint), 'all', or a comma-separated list")
    parser.add_argument("--snr", type=float, default=None, help="add white noise this many dB below the speech")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default %(default)s)")
    parser.add_argument("--parallel", type=int, choices=(1, 2), default=2, help="calls at a time (default 2)")
    parser.add_argument("--always-yes", action="store_true", help="answer every confirmation yes, whatever it names")
    parser.add_argument("--quick", action="store_true", help="a tiny run: voice ko at 150 wpm, three phrases")
    args = parser.parse_args()
    if args.quick:
        main(("ko",), (150,), "lost_card,loan,agent", args.snr, args.seed, args.parallel, args.always_yes)
    else:
        main(args.voices, args.wpm, args.intents, args.snr, args.seed, args.parallel, args.always_yes)
