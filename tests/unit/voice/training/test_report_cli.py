"""``ivr report`` and ``ivr recordings purge-turns`` on a small archive: tables, JSON, CSV, the audit."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import redis
from typer.testing import CliRunner

from ivr.records.archive import Archive
from ivr.voice.training.labels import archive_rows
from tests.unit.voice.training.builders import failed_then_key


def test_reports_and_an_audited_purge(redis_url: str, tmp_path: Path) -> None:
    from ivr.cli import app

    archive_file, recordings = tmp_path / "archive.sqlite3", tmp_path / "recordings"
    archive = Archive(archive_file)
    now = time.time()
    for days_ago in (1, 2, 40):
        archive.record_call(*archive_rows(failed_then_key(at=now - days_ago * 86400), "hotline"))
    env = {"IVR_ARCHIVE_PATH": str(archive_file), "IVR_RECORDINGS_DIR": str(recordings), "IVR_REDIS_URL": redis_url,
           "SUDO_USER": "ops", "USER": "root"}
    runner = CliRunner()
    nav = runner.invoke(app, ["report", "navigation", "--since", "7d", "--json"], env=env)
    assert nav.exit_code == 0, nav.output
    rows = {r["value"]: r for r in json.loads(nav.output)["rows"]}
    assert rows["menu"]["calls"] == 2 and rows["menu"]["keys_after_failure"] == 1.0  # the 40-day-old call is out
    table = runner.invoke(app, ["report", "navigation", "--since", "7d", "--by", "version"], env=env)
    assert table.exit_code == 0 and "v3" in table.output and "100.0%" in table.output
    kpi = runner.invoke(app, ["report", "kpi", "--since", "60d", "--csv"], env=env)
    parsed = list(csv.DictReader(io.StringIO(kpi.output)))
    assert parsed[-1]["day"] == "all" and parsed[-1]["calls"] == "3" and float(parsed[-1]["containment"]) == 1.0
    bad = runner.invoke(app, ["report", "kpi", "--since", "last week"], env=env)
    assert bad.exit_code == 1 and "since: 'last week'" in bad.output
    wrong = runner.invoke(app, ["report", "navigation", "--by", "queue"], env=env)
    assert wrong.exit_code == 1 and "by: one of version, node" in wrong.output

    client = redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    try:
        purged = runner.invoke(app, ["recordings", "purge-turns", "--days", "30", "--json"], env=env)
        assert purged.exit_code == 0, purged.output
        assert json.loads(purged.output)["turns"] == 1  # the 40-day-old turn's (missing) recording
        [(_, entry)] = client.xrange("ivr:audit", "-", "+")
        assert (entry["who"], entry["action"]) == ("ops", "purge-turns") and "before" in entry["detail"]
    finally:
        client.flushdb()
        client.close()
    assert Archive(archive_file).purges()[0]["who"] == "ops"
