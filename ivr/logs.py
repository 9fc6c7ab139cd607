"""Logging set-up: one line per record, with the logger name, for humans and grep."""

from __future__ import annotations

import logging

from ivr import metrics


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # panoramisk logs every AMI reconnect attempt at INFO; ours are enough.
    logging.getLogger("panoramisk").setLevel(logging.WARNING)
    metrics.count_logs()  # every warning and error on /metrics too (ivr_log_records_total)
