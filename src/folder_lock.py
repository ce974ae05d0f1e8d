"""One process at a time in an output folder: an advisory lock plus a holder file that names who holds it.

A command that writes a folder it may later resume (an evaluation's output folder, a training run folder) takes
the folder's lock first. A second process asking for the same folder fails at once (no waiting) with a
:class:`FolderLockError` that names the holder: its pid, host, command line and start time. Mixing two writers in
one folder would tear its files and leave it impossible to resume; failing fast keeps the first run's work.

How it works: ``<folder>/.lock`` is opened and locked with ``fcntl.flock(LOCK_EX | LOCK_NB)``; the holder's
details are then written into that same file as one JSON object. The kernel drops the lock when the holder's
file descriptor closes, so a process that crashes or is killed (even with SIGKILL) never leaves a stuck lock:
the next process gets the lock, sees the old holder's details in the file, logs that it takes over from that
(dead) process and overwrites them. The file itself is never deleted (deleting a lock file races with a process
that has just opened it); releasing empties it.

Caveats: ``flock`` locks belong to an open file description, so a child created with ``fork`` after the lock
was taken shares it and the folder stays held until the child exits too (DataLoader workers exit with their
parent). Two ``FolderLock`` objects on one folder conflict even inside one process. Advisory locks are not
reliable on some network file systems (old NFS); the folder must sit on a local or lock-aware file system.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with FolderLock(folder, command="python -m src.evaluate") as lock:
    ...     holder = lock.holder()
    ...     try:
    ...         FolderLock(folder).acquire()
    ...     except FolderLockError as error:
    ...         print("refused:", error.holder["command"])
    refused: python -m src.evaluate
    >>> holder["command"], FolderLock(folder).holder()
    ('python -m src.evaluate', None)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from src.paths import printable

__all__ = ["LOCK_NAME", "FolderLock", "FolderLockError", "describe", "printable"]

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class FolderLockError(RuntimeError):
    """The folder is held by another process; ``holder`` is what that process wrote (None if unreadable)."""

    def __init__(self, folder: Path, holder: dict[str, Any] | None) -> None:
        self.folder = folder
        self.holder = holder
        super().__init__(
            f"{printable(folder)} is in use by {describe(holder)}; wait for it to finish, stop it, or choose "
            "another output folder (only one process may write a folder at a time)"
        )


def describe(holder: dict[str, Any] | None) -> str:
    """One line naming a holder: ``pid 123 on host-a since 2026-12-03T09:50:00Z (python -m src.evaluate)``."""
    if not holder:
        return "another process (it has not written its details yet)"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')} ({holder.get('command')})"
    )


class FolderLock:
    """The lock of one folder (created when missing). Use as a context manager, or call :meth:`acquire` and
    :meth:`release`; the lock is also released when the process exits, however it exits.

    Args:
        folder: the folder to own.
        command: what the holder is doing, shown to a refused process (default: this process's command line).
    """

    def __init__(self, folder: str | os.PathLike[str], *, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = printable(command if command is not None else " ".join(sys.orig_argv))
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock or fail at once.

        Raises:
            FolderLockError: another process (or another ``FolderLock`` object) holds it; names the holder.
        """
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockError(self.folder, self._holder_of_held_lock()) from None
        except BaseException:
            os.close(fd)
            raise
        previous = _parse(os.pread(fd, 1 << 16, 0))
        if previous:  # a holder that released would have emptied the file: it crashed or was killed
            log.info(
                "%s: taking over the lock left by %s, which ended without releasing it",
                printable(self.folder),
                describe(previous),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        data = (json.dumps(record) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the holder file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing drops the flock

    def holder(self) -> dict[str, Any] | None:
        """The details of the current holder (this object or another process), None when nobody holds it."""
        if self._fd is not None:
            return _parse(os.pread(self._fd, 1 << 16, 0))
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._holder_of_held_lock()
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _holder_of_held_lock(self) -> dict[str, Any] | None:
        """The holder file of a held lock; retried briefly, as the holder writes it just after locking."""
        for _ in range(20):
            try:
                found = _parse(self.path.read_bytes())
            except OSError:
                found = None
            if found:
                return found
            time.sleep(0.05)
        return None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:  # a lock object that is garbage-collected releases: keep a reference
        if getattr(self, "_fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # type: ignore[arg-type]


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
