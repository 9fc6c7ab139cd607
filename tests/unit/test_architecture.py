"""The house's shape: import-linter's contracts (pyproject.toml, [tool.importlinter]) hold, and they bite.

The contracts are the one statement of which concern may import which (docs/architecture.md). The second and
third tests copy the packages, add one forbidden import, and check the same command fails naming the contract:
a check that cannot fail would let the shape drift.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("ivr", "asr", "tts")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy under test, not the editable install, is what grimp reads.
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT_IMPORTS), str(project / "pyproject.toml"), "--no-cache"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_project(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_every_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    # The wire may not know about flows (an upward import across four layers).
    ("ivr/telephony/agi.py", "import ivr.voice.flow", "ivr is layered"),
    # The product never imports the dev tools.
    ("ivr/controller.py", "import ivr.sim.simulator", "ivr is layered"),
    # Voice and routing: routing sits on voice, never the other way round.
    ("ivr/voice/understanding.py", "import ivr.routing.agents", "ivr is layered"),
    # The pure router does no I/O.
    ("ivr/routing/router.py", "import redis", "Pure cores"),
    # Speech services stand alone.
    ("tts/engine.py", "import ivr.config", "Speech services stand alone"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    project = copy_of_the_project(tmp_path)
    target = project / module
    target.write_text(target.read_text() + f"\n{line}  # deliberately forbidden\n")
    result = lint_imports(project)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_a_cycle_between_two_concerns_is_caught(tmp_path: Path) -> None:
    # records imports web: with web importing records already, that is a cycle and an upward import at once.
    project = copy_of_the_project(tmp_path)
    target = project / "ivr" / "records" / "call.py"
    target.write_text(target.read_text() + "\nimport ivr.web.app  # deliberately forbidden\n")
    result = lint_imports(project)
    assert result.returncode != 0 and "ivr.records is not allowed to import ivr.web" in result.stdout, result.stdout
