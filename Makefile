# The two commands a new user runs on a fresh Debian 12 machine (as root):
#   make demo   set everything up, start the stack, place a few simulated calls
#   make test   set everything up and run the whole suite against the real Asterisk and Redis
SHELL := /bin/bash
VENV := .venv
IVR := $(VENV)/bin/ivr
PY := $(VENV)/bin/python

.PHONY: setup demo test unit lint bench up down status clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@$(PY) -m pytest -q -ra tests

unit: setup
	@$(PY) -m pytest -q tests/unit

lint: setup
	@$(VENV)/bin/ruff check ivr asr tts tests bench

bench: setup
	@$(PY) -m bench

up: setup
	@$(IVR) up

down:
	@$(IVR) down

status:
	@$(IVR) status
