"""``ivr call``: a simulated call through the real Asterisk (the dev tools of ``ivr.sim``)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ivr.cli.common import app, fail, sim_extra_needed
from ivr.config import load_settings


@app.command()
def call(
    caller: Annotated[str, typer.Option(help="caller number presented to the hotline")] = "01012345678",
    audio: Annotated[list[Path] | None, typer.Option(help="WAV answering the next question (repeatable)")] = None,
    dtmf: Annotated[list[str] | None, typer.Option(help="keys answering the next question, after the audio")] = None,
    until: Annotated[str, typer.Option(help="queued | answered | end")] = "queued",
    timeout: Annotated[float, typer.Option(help="seconds before giving up")] = 60.0,
    barge_in: Annotated[bool, typer.Option(help="answer while the prompt still plays")] = False,
    sip: Annotated[bool, typer.Option(help="call through a registered SIP phone instead of a Local channel")] = False,
    rate: Annotated[int, typer.Option(help="8000: a telephone line; 16000: a wideband (HD voice) caller")] = 8000,
    codec: Annotated[str | None, typer.Option(
        help="with --sip: ulaw (a pyVoIP phone) or g722 (an HD voice phone, baresip); --rate 16000 means g722")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Place a simulated call through the real Asterisk and print its record."""
    with sim_extra_needed():
        from ivr.sim.simulator import SimulationError, Simulator, summary

    settings = load_settings()
    native = ""  # the SIP caller's channel formats in Asterisk, when a baresip phone called
    try:
        if codec is not None and not sip:
            raise SimulationError("--codec is the SIP phone's codec: use it with --sip")
        if sip:
            codec = (codec or ("g722" if rate == 16000 else "ulaw")).lower()
            if codec not in ("ulaw", "g722"):
                raise SimulationError(f"--codec {codec}: ulaw (pyVoIP) or g722 (baresip)")
            if codec == "ulaw" and rate != 8000:
                raise SimulationError("--codec ulaw is a telephone line (8000 Hz): --rate 16000 needs --codec g722")
        if sip and codec == "g722":
            from ivr.sim.g722_caller import G722Caller

            phone = G722Caller(settings)
            record = phone.run(caller, audio or [], dtmf or [], until=until, timeout=timeout, barge_in=barge_in)
            native = phone.native_format
        elif sip:
            with sim_extra_needed():
                from ivr.sim.sip_caller import SipCaller

            record = SipCaller(settings).run(caller, audio or [], dtmf or [], until=until, timeout=timeout,
                                             barge_in=barge_in)
        else:
            record = asyncio.run(Simulator(settings).run(caller, audio or [], dtmf or [], until=until,
                                                         timeout=timeout, barge_in=barge_in, rate=rate))
    except SimulationError as exc:
        fail(str(exc))
    result = summary(record)
    if as_json:
        json.dump(result, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    typer.echo(f"call {result['call_id']} from {result['caller']}: {result['outcome']}"
               f" -> queue {result['queue'] or '-'}, agent {result['agent'] or '-'}")
    typer.echo(f"  path: {' > '.join(result['path'] or [])}")
    if result.get("heard_at_hz"):
        typer.echo(f"  heard at {result['heard_at_hz']} Hz")
    if native:
        typer.echo(f"  caller's channel formats in Asterisk: {native}")
    for turn in result["turns"]:
        typer.echo(f"  [{turn['node']}] heard {turn['transcript']!r} ({turn['confidence']}) keys {turn['dtmf']!r}"
                   f" -> {turn['intent']} ({turn['score']})")
    for decision in result["routing"]:
        typer.echo(f"  routing: {decision['agent']} by rule {decision['rule']!r} -> {decision['result']}"
                   f" ({'; '.join(decision['why'])})")
    for note in result["notes"]:
        typer.echo(f"  note: {note}")
