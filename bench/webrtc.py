"""App calls over WebRTC (ivr/webrtc/): setup time, latency the gateway adds, concurrent calls one gateway carries.

Writes bench/out/webrtc.json and prints a table:

- ``app_call_setup_p95_ms``: offer POSTed to the live controller -> the IVR's first prompt audible at the app
  (energy on the received track), over real calls into the hotline (aiortc app on loopback).
- ``gateway_added_latency_ms``: one way, through the gateway, over a direct AudioSocket path. A click goes round
  Asterisk's ``Echo()`` twice: from a plain AudioSocket client (the direct path), and from an aiortc app through
  a gateway (Opus, DTLS-SRTP, both jitter buffers, the bridge); half the difference of the medians.
- ``concurrent_app_calls``: the most calls one gateway process carried with clean audio, stepping up the number
  of calls, each app saying a 1 kHz tone that Asterisk's Echo sends back: clean is at most 2 % of the gateway's
  20 ms frames failed (not passed to Asterisk, short of real time to the app, silence for a late frame, dropped),
  from the gateway's own counters; ``gateway_cpu_per_call`` (cores) from /proc. The apps run in two processes of
  their own (``APP_WORKERS``: not GIL-bound to one core, not counted as the gateway) on the same 2 cores; their
  CPU and what they hear back (1 kHz at level, per 20 ms) are reported too, apart, since a starved app is not the
  gateway's fault.

The gateway of the latency and concurrency parts is a process of its own (``--serve``), so its CPU is its own,
with the ordinary code and settings but for the dialplan place (``[agents]`` 600: Echo) and its bounds.

    flock /tmp/ivr-integration.lock .venv/bin/python -m bench.webrtc           # ~4 min, the stack up
    flock /tmp/ivr-integration.lock .venv/bin/python -m bench.webrtc --quick   # a look, ~1.5 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import OUT, bar_chart, percentile, report

GATEWAY_HTTP_PORT = 8094
GATEWAY_BRIDGE_PORT = 9194
DIRECT_PORT = 9195
CLICK_RMS = 2000.0
TONE_HZ = 1000


def _settings(**overrides: Any) -> Any:
    from ivr.config import Settings

    return Settings(**overrides)


# --- the gateway process (--serve) ---------------------------------------------------------------------------


async def serve_gateway() -> None:
    """A gateway of its own (AMI login, bridge, HTTP) whose calls go to Echo; runs until killed."""
    import uvicorn
    from fastapi import FastAPI

    from ivr.telephony.ami import AmiClient
    from ivr.web.app_calls import app_calls_router
    from ivr.webrtc.gateway import AppCallGateway

    settings = _settings(app_call_bridge_port=GATEWAY_BRIDGE_PORT, app_call_context="agents", app_call_exten="600",
                         app_calls_per_customer=500, app_calls_max=500, app_call_offers_per_minute=10_000,
                         app_call_media_timeout_s=10.0)
    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                    settings.ami_secret.get_secret_value())
    ami.start()
    if not await ami.wait_ready(10):
        raise SystemExit(f"bench gateway: AMI not ready ({ami.last_error})")
    gateway = AppCallGateway(settings, ami)
    await gateway.start()
    app = FastAPI()
    app.include_router(app_calls_router(gateway, settings.app_call_max_sdp_bytes))

    @app.get("/bench/stats")
    def stats() -> dict[str, Any]:
        """Per live call, the gateway's own counters: what it got from the app and Asterisk, what it passed on."""
        return {call_id: {"from_app": call.frames_in, "to_asterisk": call.bridge.frames_out if call.bridge else 0,
                          "from_asterisk": call.outbound.frames_in, "to_app": call.outbound._pts // 320,
                          "silence_to_app": call.outbound.silence_out, "dropped": call.outbound.dropped}
                for call_id, call in gateway.calls.items()}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=GATEWAY_HTTP_PORT, log_level="warning"))
    try:
        await server.serve()
    finally:
        await gateway.stop()
        ami.close()


# --- the parts ---------------------------------------------------------------------------------------------------


def token(settings: Any, customer: str) -> str:
    from ivr.webrtc.tokens import issue_token

    return issue_token(settings.app_token_secret.get_secret_value(), customer, issuer=settings.app_token_issuer,
                       audience=settings.app_token_audience)


async def setup_times(settings: Any, calls: int) -> list[float]:
    """Offer -> the IVR's first prompt audible at the app, ms, over real hotline calls (one at a time)."""
    from ivr.sim.app_caller import AppCaller

    times: list[float] = []
    base = f"http://{settings.http_host}:{settings.http_port}"
    for index in range(calls):
        app = AppCaller(base, token(settings, f"B{uuid.uuid4().hex[:6]}{index}"))
        try:
            reply = await app.call()
            assert reply.status_code == 201, reply.text
            deadline = time.monotonic() + 10
            heard = None
            while heard is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                heard = app.heard.energy_after(app.offered_at, 300)
            assert heard is not None, "the IVR's prompt never reached the app"
            times.append(1000 * (heard - app.offered_at))
            await app.hang_up()
        finally:
            await app.close()
        await asyncio.sleep(0.3)
    return times


def click() -> bytes:
    """5 ms of a loud 2 kHz burst, then silence to a whole 20 ms frame (16 kHz mono)."""
    t = np.arange(80) / 16_000
    burst = (20_000 * np.sin(2 * np.pi * 2000 * t)).astype("<i2")
    return np.concatenate([burst, np.zeros(240, dtype="<i2")]).tobytes()


async def direct_rtt_ms(settings: Any, clicks: int) -> list[float]:
    """Round trip of a click on the direct path, ms: sent time is kept per click."""
    from ivr.telephony.ami import AmiClient
    from ivr.telephony.audiosocket import HANGUP_FRAME, Frame, Kind, read_frame

    ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                    settings.ami_secret.get_secret_value())
    ami.start()
    assert await ami.wait_ready(10), ami.last_error
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set_result((reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", DIRECT_PORT)
    session = uuid.uuid4()
    rtts: list[float] = []
    try:
        await ami.originate(f"AudioSocket/127.0.0.1:{DIRECT_PORT}/{session}/c(slin16)", context="agents",
                            exten="600", channel_id=f"bench-{session.hex}")
        reader, writer = await asyncio.wait_for(connected, 5)
        await read_frame(reader)  # the UUID
        silence, loud = Frame(Kind.AUDIO_SLIN16, bytes(640)).encode(), Frame(Kind.AUDIO_SLIN16, click()).encode()
        pending: list[float] = []

        async def listen() -> None:
            while True:
                frame = await read_frame(reader)
                if frame is None:
                    return
                if frame.rate and pending and _rms(frame.payload) > CLICK_RMS / 4:
                    rtts.append(1000 * (loop.time() - pending.pop(0)))

        listener = asyncio.create_task(listen())
        start = loop.time()
        for index in range(clicks * 25 + 50):  # paced at 20 ms; a click every half second after a second
            await asyncio.sleep(max(0.0, start + index * 0.02 - loop.time()))
            if index >= 50 and index % 25 == 0:
                pending[:] = [loop.time()]
                writer.write(loud)
            else:
                writer.write(silence)
        await asyncio.sleep(0.3)
        listener.cancel()
        writer.write(HANGUP_FRAME.encode())
        await writer.drain()
        writer.close()
    finally:
        server.close()
        ami.close()
    return rtts


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0


async def app_rtt_ms(settings: Any, clicks: int, codec: str | None = None) -> list[float]:
    """Round trip of a click from an aiortc app through the gateway process and Echo, ms."""
    from ivr.sim.app_caller import AppCaller

    app = AppCaller(f"http://127.0.0.1:{GATEWAY_HTTP_PORT}", token(settings, "latency"),
                    jitter_frames=settings.app_call_jitter_frames, codec=codec)
    rtts: list[float] = []
    try:
        reply = await app.call()
        assert reply.status_code == 201, reply.text
        await asyncio.sleep(1.0)
        for _ in range(clicks):
            await app.say(click(), 16_000, mark=True)
            mark = app.microphone.marks[-1]
            deadline = time.monotonic() + 1.0
            back = None
            while back is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                back = app.heard.energy_after(mark, CLICK_RMS / 4)
            if back is not None:
                rtts.append(1000 * (back - mark))
            await asyncio.sleep(0.4)
        await app.hang_up()
    finally:
        await app.close()
    return rtts


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


APP_WORKERS = 2
"""Processes the load's simulated apps run in: an app is an aiortc peer too, and one process of them is held near
one core by the GIL; in the gateway's process they would be measured as the gateway."""


async def app_worker(calls: int, prefix: str, codec: str | None) -> None:
    """(``--apps``) ``calls`` apps saying a 1 kHz tone through the bench gateway: prints ``ready`` once all are in
    and sounding, reads ``since until`` (wall times) from stdin, prints each app's bad share of that window (JSON)."""
    import json

    import httpx

    from ivr.sim.app_caller import AppCaller

    settings = _settings()
    t = np.arange(16_000 * 60) / 16_000
    tone = (6000 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2").tobytes()
    apps = [AppCaller(f"http://127.0.0.1:{GATEWAY_HTTP_PORT}", token(settings, f"{prefix}-{i}"),
                      jitter_frames=settings.app_call_jitter_frames, codec=codec) for i in range(calls)]
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for start in range(0, calls, 5):  # offers in batches: a ramp, not a storm
                replies = await asyncio.gather(*(app.call(http, connect_timeout=20) for app in apps[start:start + 5]))
                assert all(r.status_code == 201 for r in replies), [r.text for r in replies if r.status_code != 201]
            for app in apps:
                app.say(tone, 16_000)
            print("ready", flush=True)
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            since, until = (float(v) for v in line.split())
            print(json.dumps([_bad_share(app, since, until) for app in apps]), flush=True)
            await asyncio.gather(*(app.hang_up(http) for app in apps), return_exceptions=True)
    finally:
        await asyncio.gather(*(app.close() for app in apps), return_exceptions=True)


async def concurrency_step(settings: Any, calls: int, gateway_pid: int, window_s: float,
                           codec: str | None = None) -> dict[str, Any]:
    """``calls`` apps each saying a 1 kHz tone into Echo through the gateway: how clean it comes back, CPU. The apps
    run in ``APP_WORKERS`` processes of their own (their CPU reported apart)."""
    import json

    import httpx

    shares = [calls // APP_WORKERS + (1 if w < calls % APP_WORKERS else 0) for w in range(APP_WORKERS)]
    workers = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.webrtc", "--apps", str(n), "--prefix", f"load{calls}-{w}",
        *(["--codec", codec] if codec else []), cwd=Path(__file__).parents[1],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE) for w, n in enumerate(shares) if n]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 90)
            assert line.strip() == b"ready", f"an app worker failed to place its calls ({line!r})"
        await asyncio.sleep(2.0)  # the tone is round and back; the jitter buffers have settled
        async with httpx.AsyncClient(timeout=30) as http:
            since = time.time()
            stats0 = (await http.get(f"http://127.0.0.1:{GATEWAY_HTTP_PORT}/bench/stats")).json()
            cpu0, wall0 = _cpu_seconds(gateway_pid), time.monotonic()
            apps0 = sum(_cpu_seconds(w.pid) for w in workers)
            await asyncio.sleep(window_s)
            cpu1, wall1 = _cpu_seconds(gateway_pid), time.monotonic()
            apps1 = sum(_cpu_seconds(w.pid) for w in workers)
            stats1 = (await http.get(f"http://127.0.0.1:{GATEWAY_HTTP_PORT}/bench/stats")).json()
            until = time.time()
        bad_shares: list[float] = []
        for worker in workers:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(f"{since} {until}\n".encode())
            await worker.stdin.drain()
            bad_shares += json.loads(await asyncio.wait_for(worker.stdout.readline(), 30))
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in workers)), 30)
        gateway_bad = [_gateway_bad_share(stats0[c], stats1[c], wall1 - wall0) for c in stats1 if c in stats0]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    wall = wall1 - wall0
    gateway_cores = (cpu1 - cpu0) / wall
    return {"calls": calls, "gateway_cores": round(gateway_cores, 3),
            "gateway_cpu_per_call": round(gateway_cores / calls, 4),
            "apps_cores": round((apps1 - apps0) / wall, 3), "app_processes": len(workers),
            "gateway_worst_bad_share": round(max(gateway_bad), 4),
            "app_heard_worst_bad_share": round(max(bad_shares), 4),
            "app_heard_mean_bad_share": round(statistics.mean(bad_shares), 4),
            "clean": len(gateway_bad) == calls and max(gateway_bad) <= 0.02}


def _gateway_bad_share(before: dict[str, int], after: dict[str, int], seconds: float) -> float:
    """The gateway's own failures over the window, as a share of the 20 ms frames it should have handled: frames
    from the app not passed to Asterisk, frames to the app short of real time (50 a second), silence put in for a
    late Asterisk frame, and frames dropped because aiortc's sender fell behind."""
    delta = {key: after[key] - before[key] for key in after}
    due = seconds * 50
    lost_in = max(0, delta["from_app"] - delta["to_asterisk"])
    short_out = max(0.0, due - delta["to_app"])
    return (lost_in + short_out + delta["silence_to_app"] + delta["dropped"]) / (2 * due)


def _bad_share(app: Any, since: float, until: float) -> float:
    """Share of the window's 20 ms (missing, or not the 1 kHz tone at its level) in what the app heard back."""
    chunks = [pcm for at, pcm in app.heard.chunks if since <= at < until]
    expected = int((until - since) / 0.02)
    good = 0
    for pcm in chunks:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if len(samples) < 160 or _rms(pcm) < 1500:
            continue
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        peak = np.fft.rfftfreq(len(samples), 1 / 16_000)[int(np.argmax(spectrum))]
        if abs(peak - TONE_HZ) <= 100:
            good += 1
    return max(0.0, 1 - good / max(expected, 1))


@contextlib.contextmanager
def gateway_process(jitter_frames: int | None = None) -> Any:
    env = {**os.environ, **({"IVR_APP_CALL_JITTER_FRAMES": str(jitter_frames)} if jitter_frames is not None else {})}
    process = subprocess.Popen([sys.executable, "-m", "bench.webrtc", "--serve"], cwd=Path(__file__).parents[1],
                               env=env)
    try:
        deadline = time.monotonic() + 20
        import socket

        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", GATEWAY_HTTP_PORT), 0.2):
                break
            time.sleep(0.2)
        else:
            raise SystemExit("bench gateway did not start")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


async def run(quick: bool, codec: str | None = None) -> dict[str, Any]:
    from ivr.ops import stack
    from ivr.webrtc.ice import restrict_host_addresses

    settings = _settings()
    restrict_host_addresses(settings.webrtc_ice_interfaces)
    if not stack.asterisk_answers(settings):
        raise SystemExit("the stack is not up: .venv/bin/ivr up")
    setups = await setup_times(settings, 6 if quick else 20)
    direct = await direct_rtt_ms(settings, 6 if quick else 15)
    steps: list[dict[str, Any]] = []
    with gateway_process() as gateway:
        through = await app_rtt_ms(settings, 6 if quick else 15, codec)
        for calls in ((10, 30) if quick else (10, 25, 40, 50, 60, 70)):
            step = await concurrency_step(settings, calls, gateway.pid, 5.0 if quick else 8.0, codec)
            print(f"  {calls} app calls: gateway {step['gateway_cores']} cores, its worst call "
                  f"{100 * step['gateway_worst_bad_share']:.1f} % frames bad; apps {step['apps_cores']} cores, "
                  f"worst app heard {100 * step['app_heard_worst_bad_share']:.1f} % bad", flush=True)
            steps.append(step)
            if not step["clean"]:
                break
            await asyncio.sleep(1.0)
    through_0: list[float] = []
    if settings.app_call_jitter_frames != 0:  # the same clicks with no receive buffer on either side (a LAN's choice)
        await asyncio.sleep(1.0)
        with gateway_process(jitter_frames=0):
            through_0 = await app_rtt_ms(settings.model_copy(update={"app_call_jitter_frames": 0}),
                                         6 if quick else 15, codec)
    clean = [s["calls"] for s in steps if s["clean"]]
    # From the clean steps: in a starved one the gateway did less than its calls' work, and looks cheaper per call.
    per_call = statistics.median(s["gateway_cpu_per_call"] for s in steps if s["clean"] or not clean)
    added = (statistics.median(through) - statistics.median(direct)) / 2 if through and direct else float("nan")
    return {
        "app_call_setup_p95_ms": round(percentile(setups, 95), 1),
        "app_call_setup_p50_ms": round(percentile(setups, 50), 1),
        "gateway_added_latency_ms": round(added, 1),
        "round_trip_direct_ms": round(statistics.median(direct), 1) if direct else None,
        "round_trip_through_gateway_ms": round(statistics.median(through), 1) if through else None,
        "gateway_added_latency_ms_jitter_0": round((statistics.median(through_0) - statistics.median(direct)) / 2, 1)
        if through_0 and direct else None,
        "round_trip_through_gateway_jitter_0_ms": round(statistics.median(through_0), 1) if through_0 else None,
        "concurrent_app_calls": max(clean) if clean else 0,
        "gateway_cpu_per_call": round(per_call, 4),
        "calls_per_2_cores_by_cpu": int(2 / per_call) if per_call else None,
        "jitter_frames": settings.app_call_jitter_frames,
        "app_codec": codec or "opus",
        "steps": steps, "setup_ms": [round(v, 1) for v in setups], "direct_rtt_ms": [round(v, 1) for v in direct],
        "through_rtt_ms": [round(v, 1) for v in through],
        "targets": {"gateway_added_latency_ms": "< 40", "concurrent_app_calls": ">= 50"},
    }


def main(quick: bool = False, codec: str | None = None) -> None:
    data = asyncio.run(run(quick, codec))
    rows = [("app call setup, offer -> prompt audible, p50 (ms)", data["app_call_setup_p50_ms"]),
            ("app call setup, p95 (ms)", data["app_call_setup_p95_ms"]),
            ("click round trip, direct AudioSocket <-> Echo (ms)", data["round_trip_direct_ms"]),
            ("click round trip, aiortc app <-> gateway <-> Echo (ms)", data["round_trip_through_gateway_ms"]),
            ("gateway added latency, one way (ms; target < 40)", data["gateway_added_latency_ms"]),
            ("  the same, no receive buffers (JITTER_FRAMES=0)", data["gateway_added_latency_ms_jitter_0"]),
            ("concurrent app calls, clean audio (target >= 50)", data["concurrent_app_calls"]),
            ("gateway CPU per call (cores)", data["gateway_cpu_per_call"])]
    name = f"webrtc_{codec.lower()}" if codec else "webrtc"  # the issue's keys stay in webrtc.json (browser-like)
    report(name, rows, data)
    bar_chart(OUT / f"{name}_concurrency.svg", "gateway CPU by concurrent app calls",
              [(str(s["calls"]), s["gateway_cores"]) for s in data["steps"]], "cores", line=(2.0, "2 cores"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--apps", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="load", help=argparse.SUPPRESS)
    parser.add_argument("--codec", choices=["opus", "G722", "PCMU"], default=None,
                        help="the codec the simulated apps offer for latency and load (default: aiortc's list, Opus "
                             "first, as a browser); results go to webrtc_<codec>.json when not the default")
    args = parser.parse_args()
    if args.apps:
        from ivr.webrtc.ice import restrict_host_addresses

        restrict_host_addresses(_settings().webrtc_ice_interfaces)
        asyncio.run(app_worker(args.apps, args.prefix, args.codec))
    elif args.serve:
        from ivr.webrtc.ice import restrict_host_addresses

        restrict_host_addresses(_settings().webrtc_ice_interfaces)
        asyncio.run(serve_gateway())
    else:
        main(args.quick, args.codec)
