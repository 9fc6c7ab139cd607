"""The controller's supervisor (ivr/ops/supervisor.py): its backoff, how it names an exit, and, with a small fake
controller that speaks the notification protocol (ivr/sdnotify.py), restarts, the standby taking over, the
watchdog, and a clean stop. The fake stands in for the controller only: the supervisor runs for real."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ivr import sdnotify
from ivr.ops.supervisor import Backoff, Supervisor, exit_reason, parse_notification

FAKE_CONTROLLER = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from ivr import sdnotify
mode = sys.argv[1]
if "--standby" in sys.argv:
    signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1, signal.SIGTERM}})
    sdnotify.notify(sdnotify.STANDBY)
    if signal.sigwait({{signal.SIGUSR1, signal.SIGTERM}}) != signal.SIGUSR1:
        sys.exit(0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGUSR1, signal.SIGTERM}})
sdnotify.notify(sdnotify.READY)
while True:
    if mode != "hang":
        sdnotify.notify(sdnotify.WATCHDOG)
    time.sleep(0.1)
"""


# --- pure parts ---------------------------------------------------------------------------------------------

def test_backoff_doubles_to_its_cap_and_resets_after_a_healthy_run() -> None:
    backoff = Backoff(first_s=0.5, max_s=10.0, healthy_s=60.0)
    crashes = [backoff.pause(served_s=1.0) for _ in range(7)]
    assert crashes == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.pause(served_s=61.0) == 0.5  # it had served a minute: not a crash loop
    assert backoff.pause(served_s=0.0) == 1.0


@pytest.mark.parametrize(("code", "said"), [
    (-9, "killed by signal 9 (SIGKILL)"), (-6, "killed by signal 6 (SIGABRT)"), (0, "exited normally (code 0)"),
    (1, "exited with code 1"), (-99, "killed by signal 99 (unknown signal)"),
])
def test_exit_reasons(code: int, said: str) -> None:
    assert exit_reason(code) == said


def test_notifications_are_key_value_lines() -> None:
    assert parse_notification(b"READY=1\nSTATUS=serving calls (pid 7)\nnonsense\n") == {
        "READY": "1", "STATUS": "serving calls (pid 7)"}


def test_notify_without_a_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify(sdnotify.READY) is False
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    assert sdnotify.watchdog_interval_s() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert sdnotify.watchdog_interval_s() is None


# --- the loop, with a fake controller ---------------------------------------------------------------------

class Running:
    """A supervisor running in this test's loop, and its files."""

    def __init__(self, folder: Path, mode: str, standby: bool, watchdog_s: float = 10.0) -> None:
        script = folder / "fake_controller.py"
        script.write_text(FAKE_CONTROLLER.format(root=str(Path(__file__).resolve().parents[3])))
        self.state_file = folder / "supervisor.json"
        self.pid_file = folder / "controller.pid"
        self.supervisor = Supervisor(
            [sys.executable, str(script), mode], pid_file=self.pid_file,
            standby_pid_file=folder / "standby.pid", state_file=self.state_file,
            notify_path=folder / "notify.sock", standby=standby, watchdog_s=watchdog_s, start_timeout_s=20,
            standby_delay_s=0.2, backoff=Backoff(first_s=0.2, max_s=1.0))
        self.task: asyncio.Task[int] | None = None

    def state(self) -> dict[str, Any]:
        return dict(self.supervisor.state())

    async def until(self, predicate: Any, timeout: float = 20.0) -> None:
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not reached in {timeout} s: {self.state()}")


@pytest.fixture
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    mode, standby, watchdog_s = request.param
    run = Running(tmp_path, mode, standby, watchdog_s)
    run.task = asyncio.create_task(run.supervisor.run())
    yield run
    run.supervisor._stop()
    assert await asyncio.wait_for(run.task, 30) == 0


@pytest.mark.parametrize("running", [("serve", False, 10.0)], indirect=True)
async def test_a_killed_controller_is_restarted_and_the_why_is_kept(running: Running) -> None:
    await running.until(lambda: running.state()["controller_ready"])
    first = running.state()["controller_pid"]
    assert int(running.pid_file.read_text()) == first
    os.kill(first, signal.SIGKILL)
    await running.until(lambda: running.state()["controller_ready"] and running.state()["controller_pid"] != first)
    state = running.state()
    assert (state["restarts"], state["last_exit"]) == (1, "killed by signal 9 (SIGKILL)")
    assert state["last_recovery_s"] is not None and state["last_recovery_s"] > 0
    assert int(running.pid_file.read_text()) == state["controller_pid"]
    await running.until(lambda: json.loads(running.state_file.read_text())["restarts"] == 1)


@pytest.mark.parametrize("running", [("serve", True, 10.0)], indirect=True)
async def test_the_loaded_standby_takes_over_and_a_new_one_is_loaded(running: Running) -> None:
    await running.until(lambda: running.state()["standby_loaded"])
    first, standby = running.state()["controller_pid"], running.state()["standby_pid"]
    assert os.getpriority(os.PRIO_PROCESS, standby) >= 10  # loading, it yields the CPU to the calls
    os.kill(first, signal.SIGKILL)
    await running.until(lambda: running.state()["controller_pid"] == standby and running.state()["controller_ready"])
    if os.geteuid() == 0:  # raising a priority needs root (or CAP_SYS_NICE), as the stack runs
        assert os.getpriority(os.PRIO_PROCESS, standby) == 0  # serving: at the calls' priority again
    await running.until(lambda: running.state()["standby_loaded"] and running.state()["standby_pid"] != standby)
    assert running.state()["restarts"] == 1


@pytest.mark.parametrize("running", [("hang", False, 1.0)], indirect=True)
async def test_a_controller_that_stops_pinging_is_killed_and_replaced(running: Running) -> None:
    await running.until(lambda: running.state()["controller_ready"])
    first = running.state()["controller_pid"]
    await running.until(lambda: running.state()["restarts"] >= 1, timeout=15)
    assert running.state()["last_exit"] == "killed by signal 6 (SIGABRT)"
    assert running.state()["controller_pid"] != first


async def test_stopping_the_supervisor_stops_its_controllers(tmp_path: Path) -> None:
    run = Running(tmp_path, "serve", standby=True)
    task = asyncio.create_task(run.supervisor.run())
    await run.until(lambda: run.state()["standby_loaded"])
    pids = [run.state()["controller_pid"], run.state()["standby_pid"]]
    run.supervisor._stop()
    assert await asyncio.wait_for(task, 30) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not run.pid_file.exists()
    assert json.loads(run.state_file.read_text())["stopping"] is True
