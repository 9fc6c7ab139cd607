"""Spine benchmarks.

1. Raw Vosk, grammar mode, on the small Korean model: CPU seconds per audio second
   for a 20 ms-chunked stream, and the streams one core sustains in real time.
2. Call setup through the real Asterisk (stack started if needed), over N calls
   answered with a key: originate -> FastAGI request, FastAGI request -> first
   prompt streaming over AudioSocket, decision -> Asterisk has the caller in the queue.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asr import TurnRecognizer, build_grammar, default_registry
from bench.common import percentile, report, spoken_8k

PHRASES = ["잔액 조회", "카드 분실 신고", "대출 상담", "계좌 이체", "비밀번호 변경", "상담원 연결"]


def raw_vosk(seconds_of_audio: float = 60.0) -> dict[str, float]:
    model = default_registry().get("ko")
    grammar = build_grammar(PHRASES, model)
    pcm = spoken_8k("계좌 이체")
    utterance = bytes(3200) + pcm + bytes(8000)  # speech framed by silence, as on a line
    cpu = audio = 0.0
    while audio < seconds_of_audio:
        recognizer = TurnRecognizer(model, grammar)
        for i in range(0, len(utterance), 320):
            recognizer.feed(utterance[i : i + 320])
        recognizer.finish()
        cpu += recognizer.cpu_seconds
        audio += recognizer.audio_seconds
    factor = cpu / audio
    return {"raw_vosk_cpu_s_per_audio_s": factor, "raw_vosk_streams_per_core": 1 / factor}


async def call_setup(calls: int) -> dict[str, Any]:
    from ivr.config import load_settings
    from ivr.ops import stack
    from ivr.sim.simulator import Simulator
    from ivr.telephony.ami import AmiClient

    settings = load_settings()
    stack.up(settings)
    events: list[Any] = []
    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                    settings.ami_secret.get_secret_value())
    ami.on("*", events.append)
    ami.start()
    await ami.wait_ready(10)
    to_agi, to_prompt, to_queue, total = [], [], [], []
    try:
        for _ in range(calls):
            started = time.time()
            record = await Simulator(settings).run("01012345678", [], ["2"], timeout=30)
            total.append(time.time() - started)
            mine = [e for e in events if e.get("Uniqueid") == record["call_id"]]
            created = next(float(e["Timestamp"]) for e in mine if e.get("Event") == "Newchannel")
            # Holding for a person: in the ACD's waiting room (agents in the directory, as after the demo or
            # the tests) or in Asterisk's own queue (no agents: a fresh machine).
            joined = next(float(e["Timestamp"]) for e in mine if e.get("Event") == "QueueCallerJoin"
                          or (e.get("Event") == "UserEvent" and e.get("UserEvent") == "IvrHold"))
            full = await _record(settings, record["call_id"])
            to_agi.append(full["started_at"] - created)
            to_prompt.append(full["turns"][0]["started_at"] - full["started_at"])
            to_queue.append(joined - full["turns"][-1]["decided_at"])
    finally:
        ami.close()
    ms = lambda xs, q: round(1000 * percentile(xs, q), 1)  # noqa: E731
    return {
        "calls": calls,
        "originate_to_agi_ms_p50": ms(to_agi, 50), "originate_to_agi_ms_p95": ms(to_agi, 95),
        "agi_to_prompt_ms_p50": ms(to_prompt, 50), "agi_to_prompt_ms_p95": ms(to_prompt, 95),
        "decision_to_queue_ms_p50": ms(to_queue, 50), "decision_to_queue_ms_p95": ms(to_queue, 95),
        "call_wall_s_p50": round(percentile(total, 50), 2),
    }


async def _record(settings: Any, call_id: str) -> dict[str, Any]:
    import json

    import redis.asyncio as aioredis

    r = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        return json.loads(await r.get(f"ivr:call:{call_id}"))
    finally:
        await r.aclose()


def main(calls: int = 10) -> None:
    data: dict[str, Any] = raw_vosk()
    data.update(asyncio.run(call_setup(calls)))
    report("spine", list(data.items()), data)


if __name__ == "__main__":
    main()
