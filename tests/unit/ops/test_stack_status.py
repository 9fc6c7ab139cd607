"""`ivr status` on the controller's web side: starting (not FAIL) right after `ivr up`, then what /readyz says.

The controller is a stand-in process (a fresh ``sleep``: young, like a controller just started) and its web side a
small HTTP server answering /readyz as the real one does; nothing of the live stack is touched.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.cli.stack import EXIT_STARTING, _exit_status
from ivr.config import Settings
from ivr.ops import stack
from ivr.ops.stack import Check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose controller pid file names a process that started just now; nothing on the web port."""
    process = subprocess.Popen(["sleep", "60"])
    settings = Settings(run_dir=tmp_path, http_port=free_port())
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "controller.pid").write_text(str(process.pid))
    yield settings
    process.kill()
    process.wait()


def serve_readyz(port: int, status: int, body: dict[str, object]) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode()
            self.send_response(status if self.path == "/readyz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_process_age_of_a_fresh_process_is_seconds(controller: Settings) -> None:
    pid = stack.running_pid(controller, "controller")
    assert pid is not None
    age = stack.process_age_s(pid)
    assert age is not None and 0 <= age < 30
    assert stack.process_age_s(2**22 + 12345) is None  # no such process


def test_web_side_of_a_controller_just_started_is_starting_not_fail(controller: Settings) -> None:
    web, ready = stack.web_checks(controller)
    assert (web.name, web.ok, web.starting) == ("web", False, True)
    assert web.detail.startswith("starting (the controller started ")
    assert (ready.name, ready.ok, ready.starting) == ("ready", False, True)
    assert _exit_status([Check("redis", True, ""), web, ready]) == EXIT_STARTING


def test_web_side_still_silent_after_the_grace_is_a_failure(controller: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "STARTING_GRACE_S", 0.0)
    web, ready = stack.web_checks(controller)
    assert not web.ok and not web.starting and web.detail.endswith(": not answering")
    assert _exit_status([web, ready]) == 1


def test_without_a_controller_the_web_side_fails_and_says_why(tmp_path: Path) -> None:
    web, _ = stack.web_checks(Settings(run_dir=tmp_path, http_port=free_port()))
    assert not web.ok and not web.starting and web.detail.endswith(": the controller is not running")


def test_readiness_names_the_parts_not_ready_and_is_starting_while_young(controller: Settings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve_readyz(controller.http_port, 503, {
        "detail": "not ready: ami", "status": 503, "error_id": "x", "ready": False, "not_ready": ["ami"],
        "checks": {"ami": "AMI not logged in", "redis": "ok", "agi": "ok", "asr": "ok"}})
    try:
        web, ready = stack.web_checks(controller)
        assert web.ok and "/metrics" in web.detail
        assert not ready.ok and ready.starting and ready.detail == "starting: not ready: ami: AMI not logged in"
        monkeypatch.setattr(stack, "STARTING_GRACE_S", 0.0)
        _, ready = stack.web_checks(controller)
        assert not ready.starting and ready.detail == "not ready: ami: AMI not logged in"
    finally:
        server.shutdown()
        server.server_close()


def test_ready_when_readyz_says_so(controller: Settings) -> None:
    server = serve_readyz(controller.http_port, 200, {"ready": True, "checks": {}})
    try:
        checks = stack.web_checks(controller)
    finally:
        server.shutdown()
        server.server_close()
    assert [c.ok for c in checks] == [True, True]
    assert _exit_status(checks) == 0
