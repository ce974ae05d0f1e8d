"""Atomic file writes: a reader (or a run resumed after a SIGKILL) never sees a partly written file.

The text goes to a temporary file in the same folder, is flushed to disk, and replaces the target with one
``os.replace`` (atomic on POSIX and Windows within one file system). Files that mark a stage as done (the demo's
``metrics.json``) or that a resumed run reads back (ledgers, caches of results) are written this way.

Permissions: every file written here gets the mode an ordinary ``open()`` would give (``0o666`` minus the
user's umask), not the ``0o600`` of ``tempfile.mkstemp`` or of ``safetensors``' writer, so a results folder
shared through the umask (e.g. ``umask 002`` in a group) stays readable by colleagues.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where possible: setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode() -> int:
    """The mode a new file gets from ``open()``: ``0o666`` minus the umask."""
    return 0o666 & ~current_umask()


def use_umask(path: str | os.PathLike[str]) -> None:
    """Give a file written by a tool that ignores the umask (mkstemp, safetensors) the ordinary mode."""
    os.chmod(path, default_mode())


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (parents created, the umask's mode); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, default_mode())
        with os.fdopen(handle, "w", encoding=encoding) as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def save_tensors(
    tensors: Mapping[str, Tensor], path: str | os.PathLike[str], *, metadata: dict[str, str] | None = None
) -> Path:
    """``safetensors.torch.save_file`` with the umask's mode (it creates files ``0o600`` by itself)."""
    from safetensors.torch import save_file

    path = Path(path)
    save_file(dict(tensors), str(path), metadata=metadata)
    use_umask(path)
    return path
