"""Logging set-up: one line per record, with the logger name, for humans and grep."""

from __future__ import annotations

import logging


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # panoramisk logs every AMI reconnect attempt at INFO; ours are enough.
    logging.getLogger("panoramisk").setLevel(logging.WARNING)
