"""Card data through the real stack: a card number keyed during a recorded call never reaches the recording, Redis,
a log, another AMI listener, the call record, the archive or an export.

The simulated caller's phone sends its keys both ways, as many phones and gateways do: as DTMF signalling (which
the controller hears over AudioSocket) and as tones in the audio. The recording is muted for the secure node, so
a Goertzel detector finds no tones in it; a control call plays the same kind of tones at an ordinary question and
the detector finds them there, in the same kind of recording: it can fail.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from ivr.audio import write_wav
from ivr.config import Settings, asterisk_path
from ivr.privacy.cards import luhn_ok
from ivr.records.store import CONTROLLER_KEY
from ivr.sim.simulator import SimulatedCall, Simulator
from ivr.telephony.ami import AmiClient
from ivr.voice.versions import FlowStore

pytestmark = pytest.mark.integration

RATE = 8000
ROWS, COLS = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
KEYS = ("123A", "456B", "789C", "*0#D")


def a_card() -> str:
    """A Luhn-valid 16-digit number nobody else uses: it must appear nowhere after the call."""
    while True:
        number = "4" + "".join(random.choice("0123456789") for _ in range(15))
        if luhn_ok(number):
            return number


def tones(keys: str) -> bytes:
    """Keys as a phone plays them in-band: 120 ms of two sines (row + column), 100 ms apart."""
    out = []
    t = np.arange(int(0.12 * RATE)) / RATE
    for key in keys:
        row = next(r for r, line in enumerate(KEYS) if key in line)
        col = KEYS[row].index(key)
        out += [0.3 * (np.sin(2 * np.pi * ROWS[row] * t) + np.sin(2 * np.pi * COLS[col] * t)),
                np.zeros(int(0.1 * RATE))]
    return (np.concatenate(out) * 32767 * 0.8).astype("<i2").tobytes()


def dtmf_keys(pcm: np.ndarray, rate: int) -> str:
    """The keys a Goertzel detector hears: a row and a column tone holding most of a 20 ms frame's energy (each within
    8 dB of the other), for two frames in a row; one key per run."""
    n = rate // 50
    freqs = ROWS + COLS
    k = np.arange(n)
    basis = np.exp(-2j * np.pi * np.outer(freqs, k) / rate)
    heard, last, run = [], "", 0
    for start in range(0, len(pcm) - n, n):
        frame = pcm[start:start + n].astype(np.float64)
        energy = float(np.sum(frame * frame))
        key = ""
        if energy / n > 200.0**2:
            share = 2 * np.abs(basis @ frame) ** 2 / (n * energy)
            r, c = int(np.argmax(share[:4])), int(np.argmax(share[4:]))
            if share[r] + share[4 + c] > 0.7 and min(share[r], share[4 + c]) > 0.16 * max(share[r], share[4 + c]):
                key = KEYS[r][c]
        run = run + 1 if key and key == last else (1 if key else 0)
        if run == 2:
            heard.append(key)
        last = key
    return "".join(heard)


def test_the_detector_hears_tones_and_not_silence_or_noise():
    pcm = np.frombuffer(tones("4111#"), dtype="<i2")
    assert dtmf_keys(pcm, RATE) == "4111#"
    noise = (np.random.default_rng(1).normal(0, 3000, RATE * 2)).astype("<i2")
    assert dtmf_keys(noise, RATE) == "" and dtmf_keys(np.zeros(RATE, dtype="<i2"), RATE) == ""


class InBandCaller(Simulator):
    """A caller whose keys are also heard in-band: ("keys", "<digits>|<tones file for Playback>")."""

    async def answer(self, sim: SimulatedCall, ami: AmiClient, turn: tuple[str, str]) -> None:
        kind, value = turn
        if kind != "keys":
            await super().answer(sim, ami, turn)
            return
        digits, played = value.split("|")
        for _ in range(50):
            if sim.caller_channel:
                break
            await asyncio.sleep(0.05)
        await ami.setvar(sim.caller_channel, "SIM_TONES", played)
        await ami.setvar(sim.caller_channel, "SIM_DTMF", digits)


def recording_channels(settings: Settings, call_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(caller, what the caller heard) of the call's recording, once MixMonitor (and QA's wrapping) left it."""
    calls = settings.recordings_dir / "calls"
    found: list[Path] = []
    for _ in range(100):
        found = [p for p in calls.glob(f"*/{call_id}.*") if p.suffix in (".wav", ".raw")]
        if any(p.suffix == ".wav" for p in found):
            break
        time.sleep(0.2)
    assert found, f"no recording of {call_id} in {calls}"
    path = next((p for p in found if p.suffix == ".wav"), found[0])
    if path.suffix == ".wav":
        with wave.open(str(path), "rb") as audio:
            channels, rate = audio.getnchannels(), audio.getframerate()
            data = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
    else:
        channels, rate, data = 2, RATE, np.frombuffer(path.read_bytes(), dtype="<i2")
    assert rate == RATE, rate
    if channels == 1:
        return data, data
    return data[0::2], data[1::2]


async def redis_everything(settings: Settings) -> str:
    """Every key and value in the stack's Redis, as text."""
    client = aioredis.from_url(settings.redis_url, decode_responses=False)
    out: list[str] = []
    try:
        async for key in client.scan_iter(count=500):
            kind = (await client.type(key)).decode()
            if kind == "string":
                value: Any = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "set":
                value = await client.smembers(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = await client.xrange(key)
            else:
                value = ""
            out.append(f"{key!r} {value!r}")
    finally:
        await client.aclose()
    return "\n".join(out)


def files_holding(roots: list[Path], needle: bytes, skip: tuple[str, ...]) -> list[Path]:
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.name.endswith(skip):
                try:
                    if needle in path.read_bytes():
                        hits.append(path)
                except OSError:
                    continue
    return hits


async def shipped_hotline_live(settings: Settings) -> None:
    """The controller runs the live version in Redis (the file only seeds it): on a machine whose Redis kept a version
    from before the card activation branch, the shipped file is published first."""
    redis = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        store = FlowStore(redis, settings=settings)
        text = (settings.dialplans_dir / "hotline.yaml").read_text(encoding="utf-8")
        live = await store.live("hotline")
        if live is not None and live.text != text:
            live = await store.publish("hotline", text, "test_secure_capture", "the shipped hotline", base=live.number)
        assert live is not None
        for _ in range(100):
            if await redis.hget(CONTROLLER_KEY, "flow_version") == str(live.number):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the controller does not run version {live.number} of the hotline")
    finally:
        await redis.aclose()


async def test_a_keyed_card_number_is_in_no_recording_store_log_event_record_or_export(
        live_stack: Settings, ami_events: list[Any]) -> None:
    await shipped_hotline_live(live_stack)
    card = a_card()
    driver = InBandCaller(live_stack)

    # The secure call: 7 (card activation), the card number and # (keys and in-band tones), then 9 (goodbye).
    sim = driver.new_call("01099990000", "end")
    work = live_stack.run_dir / "sim" / sim.call_id
    write_wav(work / "card.wav", tones(card + "#"), RATE)
    sim.turns = [("dtmf", "7"), ("keys", f"{card}#|{asterisk_path(work / 'card')}"), ("dtmf", "9")]
    record = await driver.drive(sim, "end", timeout=120, barge_in=False)
    call_id = record["call_id"]
    assert record["path"] == ["main_menu", "activate_card", "card_activated", "after_balance", "goodbye"], record
    [span] = record["secure_spans"]
    assert (span["what"], span["verified"], span["last4"]) == ("card", True, card[-4:])
    secure_turn = next(t for t in record["turns"] if t["node"] == "activate_card")
    assert (secure_turn["dtmf"], secure_turn["transcript"], secure_turn["audio"]) == ("", "", None)
    # The caller really played the tones in-band during the node (the simulator's event counts keys, names none).
    assert any(e.get("Event") == "UserEvent" and e.get("UserEvent") == "SimDtmf" and e.get("Keys") == "17"
               for e in ami_events)

    # The control call: the same kind of tones played as the answer to the main menu (no secure node, no mute).
    control_digits = a_card()[:8]
    control = driver.new_call("01099990001", "queued")
    control_work = live_stack.run_dir / "sim" / control.call_id
    write_wav(control_work / "control.wav", tones(control_digits), RATE)
    control.turns = [("audio", asterisk_path(control_work / "control")), ("dtmf", "0"), ("dtmf", "0")]
    control_record = await driver.drive(control, "queued", timeout=90, barge_in=False)

    await asyncio.sleep(2.0)  # the hang-ups reach the controller; the recordings are closed and wrapped
    caller_side, heard_side = await asyncio.to_thread(recording_channels, live_stack, call_id)
    control_side, _ = await asyncio.to_thread(recording_channels, live_stack, control_record["call_id"])
    assert control_digits in dtmf_keys(control_side, RATE), "the detector must hear in-band tones in a recording"
    assert dtmf_keys(caller_side, RATE) == "", "tones in the secure call's recording"
    # Muted for the node only: what the caller heard after it (the goodbye) is in the recording.
    tail = heard_side[-3 * RATE:].astype(np.float64)
    assert np.sqrt(np.mean(tail * tail)) > 100, "the recording did not resume after the secure node"

    # The digits are nowhere: Redis, logs and every file of run/ and recordings/ (audio aside), AMI, exports.
    needles = [card, card[:12]]
    everything = await redis_everything(live_stack)
    assert not [n for n in needles if n in everything]
    roots = [live_stack.run_dir, live_stack.recordings_dir]
    for needle in needles:
        hits = await asyncio.to_thread(files_holding, roots, needle.encode(), (".wav", ".raw", ".enc", ".sln16"))
        assert not hits, f"card digits in {hits}"
    assert not [e for e in ami_events if e.get("Event", "").startswith("DTMF")]
    assert not [e for e in ami_events if any(n in str(dict(e)) for n in needles)]
    for command in (["report", "navigation", "--since", "1d", "--json"], ["report", "kpi", "--since", "1d", "--csv"]):
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ivr", *command], capture_output=True,
                                      text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert not [n for n in needles if n in out.stdout + out.stderr]
    assert not [n for n in needles if n in json.dumps(record)]
