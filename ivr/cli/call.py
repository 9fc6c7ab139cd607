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

#: What ``--expect`` may check: the record's outcome fields.
EXPECTABLE = ("queue", "outcome", "intent", "agent", "customer")

#: The exit status of a call that ended otherwise than ``--expect`` said (1 is a call that could not be placed).
EXIT_DIFFERENT = 3


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
    expect: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE the call must end with (repeatable; KEY: " + ", ".join(EXPECTABLE) + "): checked, and "
             "a call that ends differently says so and exits with status 3")] = None,
) -> None:
    """Place a simulated call through the real Asterisk and print its record."""
    try:
        expected = parse_expectations(expect or [])
    except ValueError as exc:
        fail(str(exc))
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
        _check(result, expected, as_json)
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
    _check(result, expected, as_json)


def parse_expectations(items: list[str]) -> dict[str, str]:
    """``["queue=payments", "intent=transfer"]`` -> {"queue": "payments", "intent": "transfer"}; ValueError naming
    the item that is not KEY=VALUE with a KEY of EXPECTABLE."""
    expected: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in EXPECTABLE or not value.strip():
            raise ValueError(f"--expect {item!r}: KEY=VALUE with KEY one of {', '.join(EXPECTABLE)}")
        expected[key.strip()] = value.strip()
    return expected


def differences(result: dict[str, object], expected: dict[str, str]) -> list[str]:
    """What the call ended with that the expectations did not say: ["queue general (expected payments)"]."""
    return [f"{key} {result.get(key) or '-'} (expected {value})" for key, value in expected.items()
            if str(result.get(key) or "") != value]


def _check(result: dict[str, object], expected: dict[str, str], as_json: bool) -> None:
    if not expected:
        return
    different = differences(result, expected)
    if different:
        typer.secho(f"  ENDED DIFFERENTLY: {'; '.join(different)}", fg=typer.colors.RED, err=as_json, bold=True)
        raise typer.Exit(EXIT_DIFFERENT)
    if not as_json:
        checked = ", ".join(f"{key} {value}" for key, value in expected.items())
        typer.secho(f"  checked: {checked}, as announced", fg=typer.colors.GREEN)
