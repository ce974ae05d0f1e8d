"""Atomic file writes: a reader (or a run resumed after a SIGKILL) never sees a partly written file.

The text goes to a temporary file in the same folder, is flushed to disk, and replaces the target with one
``os.replace`` (atomic on POSIX and Windows within one file system). Files that mark a stage as done (the demo's
``metrics.json``) or that a resumed run reads back (ledgers, caches of results) are written this way.
:func:`replacing` does the same for any writer that takes a path (safetensors, a checkpoint's skeleton), and
:func:`replacing_folder` for a whole folder (model exports, the synthetic corpus). Nothing else in the code
writes a temporary file and renames it: these are the one implementation.

Permissions: every file written here gets the mode an ordinary ``open()`` would give (``0o666`` minus the
user's umask), not the ``0o600`` of ``tempfile.mkstemp`` or of ``safetensors``' writer, so a results folder
shared through the umask (e.g. ``umask 002`` in a group) stays readable by colleagues.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` (``.<name>.<random>.tmp``) to write the new file to.

    When the block ends without an error the file is flushed to disk, given the umask's mode and moved onto
    ``path`` with one ``os.replace``; on an error (or a kill) ``path`` keeps its old content and the temporary
    file is removed (a kill leaves it behind, hidden). Parent folders are created.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with replacing(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:  # the writer may have closed (or replaced) its own handle
            os.fsync(written.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def replacing_folder(
    folder: str | os.PathLike[str], *, staging: str | os.PathLike[str] | None = None
) -> Iterator[Path]:
    """A staging folder beside ``folder`` to build the new folder in; it takes ``folder``'s place at the end.

    When the block ends without an error, the old ``folder`` (if any) is renamed aside, the staging folder
    renamed to ``folder`` and the old one deleted: a reader finds the old folder or the complete new one
    (or, between the two renames, none), never a partial one. On an error the staging folder is deleted.
    ``staging`` names it (default ``.<name>.tmp-<random>``); a fixed name lets the next writer remove what a
    killed one left there, which happens here first.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = (
        Path(staging) if staging is not None else folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    )
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
        retired = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        if folder.exists():
            folder.rename(retired)
        staging.rename(folder)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (parents created, the umask's mode); returns the path."""
    path = Path(path)
    with replacing(path) as tmp, open(tmp, "w", encoding=encoding) as out:
        out.write(text)
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
