"""The systemd units `ivr install` writes (ivr/ops/units.py): what each says, and `systemd-analyze verify` on them
when it is installed (no running systemd is needed to verify)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.config import ASTERISK_PROJECT_DIR, PROJECT_DIR, Settings
from ivr.ops import stack
from ivr.ops.units import UNIT_NAMES, UnitInputs, exec_line, render_units, verify_problems


def inputs(tmp_path: Path, systemd_version: int | None = 252) -> UnitInputs:
    settings = Settings(run_dir=tmp_path / "run")
    return UnitInputs(
        project=PROJECT_DIR, redis_argv=stack.redis_argv(settings),
        controller_argv=stack.supervisor_argv(settings, python=sys.executable),
        asterisk_root=settings.asterisk_root, asterisk_conf=stack.ASTERISK_CONF,
        asterisk_project=str(ASTERISK_PROJECT_DIR), asterisk_ctl=tmp_path / "run/asterisk/run/asterisk.ctl",
        controller_log=tmp_path / "run/logs/controller.log", systemd_version=systemd_version)


def settings_of(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("[", "#")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_controller_unit_is_notify_watched_always_restarted_and_supervised(tmp_path: Path) -> None:
    unit = settings_of(render_units(inputs(tmp_path))["ivr-controller.service"])
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["Restart"] == ["always"] and unit["WatchdogSec"] == ["10s"] and unit["RestartSec"] == ["500ms"]
    assert unit["StartLimitIntervalSec"] == ["0"]  # never gives up
    assert "RestartSteps" not in unit  # systemd 252 (Debian 12) has no RestartSteps=: not written
    [command] = unit["ExecStart"]
    assert command.startswith(f"{sys.executable} -m ivr.ops.supervisor --state ")
    assert command.endswith(f"-- {sys.executable} -m ivr serve")
    assert unit["WorkingDirectory"] == [str(PROJECT_DIR)]
    assert unit["Wants"] == ["ivr-redis.service ivr-asterisk.service"]
    newer = settings_of(render_units(inputs(tmp_path, systemd_version=255))["ivr-controller.service"])
    assert (newer["RestartSteps"], newer["RestartMaxDelaySec"]) == (["5"], ["10s"])  # 0.5 s doubling to 10 s


def test_asterisk_runs_in_its_root_with_the_project_bound_where_its_configuration_says(tmp_path: Path) -> None:
    unit = settings_of(render_units(inputs(tmp_path))["ivr-asterisk.service"])
    assert unit["RootDirectory"] == [str(Settings().asterisk_root)] and unit["MountAPIVFS"] == ["yes"]
    assert unit["BindPaths"] == [f"{PROJECT_DIR}:{ASTERISK_PROJECT_DIR}"]
    assert unit["ExecStart"] == [f"/usr/sbin/asterisk -C {stack.ASTERISK_CONF} -U root -G root -f"]
    assert unit["ExecStartPre"] == [f"+/bin/rm -f {tmp_path}/run/asterisk/run/asterisk.ctl"]  # on the host
    assert unit["Restart"] == ["always"]


def test_redis_keeps_its_append_only_file(tmp_path: Path) -> None:
    made = inputs(tmp_path)
    [command] = settings_of(render_units(made)["ivr-redis.service"])["ExecStart"]
    assert command == exec_line(made.redis_argv)  # exactly what `ivr up` runs
    assert "--appendonly yes" in command
    assert '--save ""' in command  # an empty argument survives systemd's word splitting
    target = settings_of(render_units(inputs(tmp_path))["ivr.target"])
    assert target["Wants"] == ["ivr-redis.service ivr-asterisk.service ivr-controller.service"]


def test_exec_lines_quote_and_escape_what_systemd_would_read_otherwise() -> None:
    assert exec_line(["/bin/echo", "", "a b", "100%", "$HOME", 'say "hi"']) == \
        '/bin/echo "" "a b" 100%% $$HOME "say \\"hi\\""'


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    made = inputs(tmp_path)
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in render_units(made).items():
        (folder / name).write_text(text)
    (tmp_path / "run/logs").mkdir(parents=True)
    result = subprocess.run(["systemd-analyze", "verify", *(str(folder / n) for n in UNIT_NAMES)],
                            capture_output=True, text=True, timeout=60, check=False)
    asterisk_in_root = (made.asterisk_root / "usr/sbin/asterisk").exists()
    assert verify_problems(result.stdout + result.stderr, asterisk_in_root) == []


def test_only_the_known_false_positive_is_excused() -> None:
    output = ("ivr-asterisk.service: Command /usr/sbin/asterisk is not executable: No such file or directory\n"
              "ivr-controller.service: Unknown key name 'Foo' in section 'Service', ignoring.\n")
    assert verify_problems(output, asterisk_in_root=True) == [output.splitlines()[1]]
    assert len(verify_problems(output, asterisk_in_root=False)) == 2
