"""Atomic file writes: a reader (or a run resumed after a SIGKILL) never sees a partly written file.

The text goes to a temporary file in the same folder, is flushed to disk, and replaces the target with one
``os.replace`` (atomic on POSIX and Windows within one file system). Files that mark a stage as done (the demo's
``metrics.json``) or that a resumed run reads back (ledgers, caches of results) are written this way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding=encoding) as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
