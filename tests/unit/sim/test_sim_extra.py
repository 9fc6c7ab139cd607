"""The dev tools apart from the product: pyVoIP is the ``[sim]`` extra, loaded only by the commands that need it,
and a missing extra is a clear message, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ivr.cli import app

#: Modules that import pyVoIP, dropped from the import cache so a test can see them fail to import it.
PYVOIP_USERS = ("ivr.sim.pyvoip_patches", "ivr.sim.sip_caller", "ivr.sim.agent_phone")


@pytest.fixture
def without_pyvoip(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the [sim] extra were not installed: ``import pyVoIP`` raises ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, "pyVoIP", None)
    for module in PYVOIP_USERS:
        monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.mark.parametrize("args", [["call", "--sip"], ["agents", "phone", "1001", "--seconds", "0.1"]])
@pytest.mark.usefixtures("without_pyvoip")
def test_a_command_needing_the_sim_extra_names_it(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "pip install 'ivr[sim]'" in result.output
    assert not isinstance(result.exception, ModuleNotFoundError)


def test_the_product_and_the_command_line_start_without_pyvoip() -> None:
    code = ("import sys; sys.modules['pyVoIP'] = None\n"
            "import ivr.cli, ivr.controller, ivr.web.app, ivr.sim.simulator, ivr.sim.demo_users\n"
            "print(sorted(m for m in sys.modules if m.startswith('pyVoIP')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['pyVoIP']"  # only the stand-in: nothing imported pyVoIP


def test_caller_id_of_a_from_header() -> None:
    from ivr.sim.pyvoip_patches import parse_from_header

    assert parse_from_header('"Agent \\"A\\" 1002" <sip:1002@127.0.0.1>') == ("1002", 'Agent "A" 1002')
    assert parse_from_header("<sip:01012345678@127.0.0.1:5060>") == ("01012345678", "")
    assert parse_from_header("sip:9001@127.0.0.1") == ("9001", "")
