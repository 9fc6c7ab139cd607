#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root): system packages,
# an Asterisk 22 root from Debian unstable, the Python package in .venv/, and the
# per-machine secrets. A second run only checks and takes seconds.
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASTERISK_ROOT="${IVR_ASTERISK_ROOT:-/var/lib/ivr/asterisk-root}"
MIRROR="${IVR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
VENV="$ROOT_DIR/.venv"
STAMP_DIR="$ROOT_DIR/run/stamps"

log() { printf '[setup] %s\n' "$*"; }
need_root() { [ "$(id -u)" = 0 ] || { echo "setup.sh must run as root (it installs Debian packages and Asterisk)" >&2; exit 1; }; }

# Host packages: Redis, espeak-ng for prompts, sox for audio tools, debootstrap for
# the Asterisk root, chromium (and a Korean font, for customers' names) for the browser tests,
# baresip-core for the HD voice (G.722) test caller (ivr/sim/g722_caller.py: its g722, aufile,
# menu and ctrl_tcp modules; the baresip metapackage would only add GUI and video plugins),
# sip-tester (SIPp) for the SIP load test and the SIP abuse tests (bench/loadtest.py, bench/sipp/),
# iptables for the fault tests (AMI dropped on loopback: bench/chaos.py, tests/integration/test_faults.py).
HOST_PACKAGES=(debootstrap redis-server espeak-ng libespeak-ng1 sox ca-certificates
               python3-venv chromium chromium-driver fonts-noto-cjk procps iproute2 baresip-core sip-tester
               iptables)

install_host_packages() {
  local missing=()
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "host packages present"; return; fi
  need_root
  log "installing host packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_asterisk_root() {
  if [ -x "$ASTERISK_ROOT/usr/sbin/asterisk" ]; then log "asterisk root present at $ASTERISK_ROOT"; return; fi
  need_root
  if [ ! -x "$ASTERISK_ROOT/usr/bin/apt-get" ]; then
    log "debootstrap sid into $ASTERISK_ROOT (1-3 min)"
    rm -rf "$ASTERISK_ROOT"; mkdir -p "$ASTERISK_ROOT"
    debootstrap --variant=minbase --include=ca-certificates sid "$ASTERISK_ROOT" "$MIRROR" >/dev/null
  fi
  # The mirror's unstable snapshot can be older than its Valid-Until date.
  echo 'Acquire::Check-Valid-Until "false";' > "$ASTERISK_ROOT/etc/apt/apt.conf.d/99novalid"
  log "installing asterisk 22 inside the root"
  chroot "$ASTERISK_ROOT" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$ASTERISK_ROOT" apt-get install -y -qq --no-install-recommends \
    asterisk asterisk-modules asterisk-core-sounds-en-gsm >/dev/null
  # Debian's package starts nothing inside a chroot, but make sure no default config is used by accident.
  chroot "$ASTERISK_ROOT" asterisk -V
}

install_venv() {
  local want; want="$(sha256sum "$ROOT_DIR/pyproject.toml" | cut -c1-16)"
  if [ -f "$STAMP_DIR/venv" ] && [ "$(cat "$STAMP_DIR/venv")" = "$want" ] && [ -x "$VENV/bin/ivr" ]; then
    log "python environment up to date"; return
  fi
  log "installing the python package into .venv/"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  # dev: the test tools; sim: the simulators' SIP phones (pyVoIP), which the demo and the tests use.
  "$VENV/bin/pip" install -q -e "$ROOT_DIR[dev,sim]"
  mkdir -p "$STAMP_DIR"; echo "$want" > "$STAMP_DIR/venv"
}

install_host_packages
install_asterisk_root
install_venv
# Secrets and the rendered Asterisk configuration are the controller's job: it knows the settings.
"$VENV/bin/ivr" setup
log "ready"
