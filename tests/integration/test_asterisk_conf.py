"""asterisk_conf/ as the real Asterisk 22 reads it: every module loads, every context the controller
relies on exists, and neither the last start nor a reload logs an error or a warning."""

from __future__ import annotations

import re
import time

import pytest

from ivr.config import PROJECT_DIR, Settings
from ivr.ops import stack

pytestmark = pytest.mark.integration

CONF = PROJECT_DIR / "asterisk_conf"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROBLEM = re.compile(r"\] (ERROR|WARNING)\[")
CONTEXTS = ("hotline", "ivr-hold", "ivr-offer", "ivr-callback", "ivr-queue", "agents", "sim-inbound", "sim-caller",
            "sim-phone", "from-trunk", "app-call")


def log_lines(settings: Settings) -> list[str]:
    return ANSI.sub("", (settings.logs_dir / "asterisk.log").read_text(errors="replace")).splitlines()


def rx(settings: Settings, command: str) -> str:
    result = stack.asterisk_rx(settings, command)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_module_of_modules_conf_is_running(live_stack: Settings) -> None:
    wanted = re.findall(r"^load\s*=>\s*(\S+)", (CONF / "modules.conf").read_text(), flags=re.M)
    assert "res_manager_devicestate.so" in wanted
    shown = rx(live_stack, "module show")
    missing = [m for m in wanted if not re.search(rf"^{re.escape(m)}\s.*Running", shown, flags=re.M)]
    assert not missing, f"modules in modules.conf that Asterisk did not load: {missing}"


def test_the_dialplan_has_every_context_the_controller_uses(live_stack: Settings) -> None:
    for context in CONTEXTS:
        assert f"'{context}'" in rx(live_stack, f"dialplan show {context}"), context
    queues = rx(live_stack, "queue show")
    for name in ("general", "cards", "loans", "payments", "complaints"):
        assert f"q_{name} has" in queues, name


def test_the_last_start_logged_no_error_or_warning(live_stack: Settings) -> None:
    lines = log_lines(live_stack)
    starts = [i for i, line in enumerate(lines) if line.startswith("Asterisk 22")]
    assert starts, "no Asterisk start in the log"
    ready = next((i for i in range(starts[-1], len(lines)) if "Asterisk Ready." in lines[i]), None)
    assert ready is not None, "the last start never reached 'Asterisk Ready.'"
    problems = [line for line in lines[starts[-1]:ready] if PROBLEM.search(line)]
    assert not problems, "\n".join(problems)


def test_a_reload_of_the_configuration_logs_no_error_or_warning(live_stack: Settings) -> None:
    before = len(log_lines(live_stack))
    rx(live_stack, "core reload")
    time.sleep(1.0)  # the reload's messages reach the log asynchronously
    problems = [line for line in log_lines(live_stack)[before:] if PROBLEM.search(line)
                and "AudioSocket" not in line and "FastAGI" not in line]  # a call in flight may log those
    assert not problems, "\n".join(problems)
