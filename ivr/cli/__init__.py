"""The ``ivr`` command: serve, set up and run the stack, place simulated calls, manage flows, agents,
customers and users. One typer app (:data:`app`, made in :mod:`ivr.cli.common`); each module here
registers one group of commands on it.
"""

from __future__ import annotations

from ivr.cli.common import app

# Imported for the commands they register, in the order ``ivr --help`` lists them (commands, then groups).
# isort: off
from ivr.cli import stack, call, audit
from ivr.cli import models, customers, agents, dialplan, users
from ivr.cli import report, recordings, qa
# isort: on

__all__ = ["agents", "app", "audit", "call", "customers", "dialplan", "models", "qa", "recordings", "report", "stack",
           "users"]
