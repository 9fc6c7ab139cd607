"""The SQLite files beside Redis (the call archive, the recordings index, the QA job queue): one way to open them.

A ``sqlite3`` connection must not be shared between threads, and these files are used from the event loop's
worker threads, a background job and the CLI at once: so one connection per thread, in WAL mode (readers never
wait for the writer), with explicit transactions and a busy timeout for the moments two writers meet.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

BUSY_TIMEOUT_S = 10
"""How long a writer waits for another's transaction before giving up with "database is locked"."""


class PerThreadSqlite:
    """Connections to one SQLite file, one per thread, its tables made on first use.

    Making the tables on first use (not when this is built) means an unwritable folder fails the first
    query with a clear error, never the start of the page or the controller that holds the file.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self.schema = schema
        """SQL run once per process (``CREATE TABLE IF NOT EXISTS ...``)."""
        self._local = threading.local()
        self._schema_ready = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the tables made) when first asked for."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)  # explicit transactions
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            if not self._schema_ready:
                db.executescript(self.schema)
                self._schema_ready = True
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
