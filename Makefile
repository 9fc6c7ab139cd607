# The two commands a new user runs on a fresh Debian 12 machine (as root):
#   make demo   set everything up, start the stack, place a few simulated calls
#   make test   set everything up and run the whole suite against the real Asterisk and Redis
SHELL := /bin/bash
VENV := .venv
IVR := $(VENV)/bin/ivr
PY := $(VENV)/bin/python

.PHONY: setup demo test unit lint typecheck bench chaos loadtest up down status clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# Types first (seconds): a drifted type fails before the ten-minute suite starts.
# The import-layer contracts run inside the suite (tests/unit/test_architecture.py).
test: setup
	@$(VENV)/bin/mypy
	@$(PY) -m pytest -q -ra tests

unit: setup
	@$(PY) -m pytest -q tests/unit

lint: setup
	@$(VENV)/bin/ruff check ivr asr tts tests bench

typecheck: setup
	@$(VENV)/bin/mypy

bench: setup
	@$(PY) -m bench

# Real SIP calls (SIPp) into the hotline, ramped until the IVR stops keeping up: bench/out/loadtest.json and .png.
# Holds the stack's lock for the run (< 10 min); leaves the stack up.
loadtest: setup
	@flock /tmp/ivr-integration.lock $(PY) -m bench.loadtest

# Faults under load (bench/chaos.py): calls in flight, then kill -9, restarts, a full disk, AMI dropped. Under the
# stack's lock: it stops and starts parts of the live stack (and puts everything back).
chaos: setup
	@flock /tmp/ivr-integration.lock $(PY) -m bench.chaos

up: setup
	@$(IVR) up

down:
	@$(IVR) down

status:
	@$(IVR) status
