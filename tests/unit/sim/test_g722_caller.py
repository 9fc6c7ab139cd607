"""The baresip (G.722) caller's offline parts: clear errors, its turn files, its ctrl_tcp client, the CLI choice."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ivr.cli import app
from ivr.config import Settings
from ivr.sim.g722_caller import BaresipControl, G722Caller, codec_names, netstring
from ivr.sim.simulator import SimulationError


def settings(tmp_path: Path) -> Settings:
    return Settings(run_dir=tmp_path, recordings_dir=tmp_path / "rec")


def test_missing_baresip_is_a_clear_error(tmp_path: Path) -> None:
    phone = G722Caller(settings(tmp_path), baresip="no-such-baresip")
    with pytest.raises(SimulationError, match=r"baresip is not installed .*apt-get install baresip-core"):
        phone.run("01012345678", [], ["2"])
    assert phone.pid is None


def test_codecs_are_checked_and_aliases_resolved() -> None:
    assert codec_names(["G722", "ulaw"]) == ["g722", "pcmu"]
    with pytest.raises(SimulationError, match=r"codec opus: baresip calls with g722, pcmu, pcma"):
        codec_names(["g722", "opus"])


def test_a_turn_file_is_the_16k_utterance_then_silence_outlasting_the_call(tmp_path: Path) -> None:
    source = tmp_path / "say.wav"
    speech = (8000 * np.sin(np.arange(22050) / 5)).astype("<i2")  # one second at 22.05 kHz
    with wave.open(str(source), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(speech.tobytes())
    phone = G722Caller(settings(tmp_path))
    phone._pad_s = 5.0
    turns = phone.prepare([source], ["12"], tmp_path / "work", rate=16000)
    assert turns[1] == ("dtmf", "12")
    kind, path = turns[0]
    assert kind == "audio" and path.endswith(".wav")
    with wave.open(path) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert len(samples) == pytest.approx(16000 + 5 * 16000, abs=2)
    assert np.abs(samples[:16000]).max() > 4000 and not samples[16010:].any()


async def fake_baresip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """ctrl_tcp as baresip 1.0.0 speaks it: netstring JSON; an event before each response."""
    while True:
        try:
            length = await reader.readuntil(b":")
        except asyncio.IncompleteReadError:
            return
        message: dict[str, Any] = json.loads((await reader.readexactly(int(length[:-1]) + 1))[:-1])
        command = message["command"]
        if command == "quit":
            writer.close()
            return
        writer.write(netstring({"event": True, "class": "call", "type": "CALL_ESTABLISHED", "id": "abc"}))
        writer.write(netstring({"response": True, "ok": command != "bad", "data": f"did {command} "
                                f"{message.get('params', '')}".strip(), "token": message["token"]}))
        await writer.drain()


async def test_the_control_client_matches_responses_and_keeps_events() -> None:
    server = await asyncio.start_server(fake_baresip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    control = await BaresipControl.connect("127.0.0.1", port)
    try:
        assert await control.command("dial", "1588*010") == "did dial 1588*010"
        event = await control.wait_event({"CALL_ESTABLISHED"}, 0, timeout=2)
        assert event is not None and event["id"] == "abc"
        assert await control.wait_event({"CALL_CLOSED"}, 0, timeout=0.2) is None
        with pytest.raises(SimulationError, match=r"baresip command 'bad' failed: did bad"):
            await control.command("bad")
        with pytest.raises(SimulationError, match=r"closed its control connection"):
            await control.command("quit")
        assert control.closed
        with pytest.raises(SimulationError, match=r"control connection is closed"):
            await control.command("reginfo")
    finally:
        await control.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("args", "message"), [
    (["call", "--codec", "g722"], "--codec is the SIP phone's codec: use it with --sip"),
    (["call", "--sip", "--codec", "ulaw", "--rate", "16000"], "--rate 16000 needs --codec g722"),
    (["call", "--sip", "--codec", "opus"], "--codec opus: ulaw (pyVoIP) or g722 (baresip)"),
])
def test_the_command_line_refuses_a_codec_it_cannot_call_with(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output
