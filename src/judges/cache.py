"""An on-disk answer cache for paid judges: (model, prompt) -> reply text, in one sqlite file.

Each answer is committed as soon as it arrives (WAL journal), so killing a long evaluation loses at most the
requests in flight, and rerunning it pays only for what is missing. Safe to share between the threads of one
judge; open one cache per process.

Example:
    >>> import tempfile, pathlib
    >>> cache = AnswerCache(pathlib.Path(tempfile.mkdtemp()) / "judge.sqlite")
    >>> cache.get("gpt-4.1-mini", "Which emotion? ...") is None
    True
    >>> cache.put("gpt-4.1-mini", "Which emotion? ...", "fear")
    >>> cache.get("gpt-4.1-mini", "Which emotion? ..."), len(cache)
    ('fear', 1)
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path


def cache_key(model: str, prompt: str) -> str:
    """Stable key of one request: the model and the full prompt text."""
    return hashlib.sha256(f"{model}\x00{prompt}".encode()).hexdigest()


class AnswerCache:
    """sqlite-backed map from (model, prompt) to the reply; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers "
                "(key TEXT PRIMARY KEY, model TEXT NOT NULL, prompt TEXT NOT NULL, reply TEXT NOT NULL, created REAL)"
            )
        except sqlite3.DatabaseError as error:
            raise RuntimeError(
                f"judge cache {self.path} cannot be opened as sqlite ({error}); move it away to start a new cache"
            ) from error
        self._lock = threading.Lock()

    def get(self, model: str, prompt: str) -> str | None:
        """The cached reply, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT reply FROM answers WHERE key = ?", (cache_key(model, prompt),)
            ).fetchone()
        return None if row is None else row[0]

    def put(self, model: str, prompt: str, reply: str) -> None:
        """Store (or replace) a reply; committed before returning."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                (cache_key(model, prompt), model, prompt, reply, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
