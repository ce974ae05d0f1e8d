"""The folder lock: one holder at a time across real processes, named to the refused one; a killed holder's
lock is taken over; released on exit."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.folder_lock import FolderLock, FolderLockError, printable

ROOT = Path(__file__).resolve().parents[1]

# A process that waits until a shared start time, tries the lock, reports, and holds it until stdin closes.
RACER = """
import sys, time
from src.folder_lock import FolderLock, FolderLockError
folder, start = sys.argv[1], float(sys.argv[2])
while time.time() < start:
    pass
try:
    lock = FolderLock(folder).acquire()
except FolderLockError as error:
    print("refused", error, flush=True)
    sys.exit(3)
print("held", flush=True)
sys.stdin.read()
"""


def _racer(folder: Path, start: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RACER, str(folder), str(start)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_racing_for_a_folder_one_wins_and_the_other_names_it(tmp_path):
    start = time.time() + 1.5  # both interpreters are up by then
    racers = [_racer(tmp_path / "out", start) for _ in range(2)]
    firsts = [proc.stdout.readline() for proc in racers]  # type: ignore[union-attr]
    assert sorted(line.split()[0] for line in firsts) == ["held", "refused"], firsts
    winner = racers[firsts.index("held\n")]
    (refusal,) = [line for line in firsts if line.startswith("refused")]
    assert f"pid {winner.pid} on " in refusal and "-c" in refusal and str(tmp_path / "out") in refusal
    for proc in racers:
        proc.communicate(timeout=60)  # closes the winner's stdin: it exits, releasing the lock
    assert sorted(proc.returncode for proc in racers) == [0, 3]
    assert FolderLock(tmp_path / "out").holder() is None  # the winner exited: free again


def test_a_killed_holder_is_taken_over_and_named_in_the_log(tmp_path, caplog):
    proc = _racer(tmp_path, time.time())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(FolderLockError, match=f"pid {proc.pid} on "):
        FolderLock(tmp_path).acquire()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with caplog.at_level(logging.INFO, logger="src.folder_lock"), FolderLock(tmp_path, command="resume") as lock:
        assert lock.holder()["pid"] == os.getpid() and lock.holder()["command"] == "resume"
    assert f"taking over the lock left by pid {proc.pid}" in caplog.text


def test_released_on_exit_from_the_block_even_by_an_exception_and_conflicts_within_a_process(tmp_path):
    first = FolderLock(tmp_path / "a", command="first")
    with pytest.raises(RuntimeError, match="boom"), first:
        with pytest.raises(FolderLockError, match=r"\(first\)") as refused:
            FolderLock(tmp_path / "a").acquire()
        assert refused.value.holder["command"] == "first"
        raise RuntimeError("boom")
    assert not first.held and FolderLock(tmp_path / "a").holder() is None
    with FolderLock(tmp_path / "a"):  # free again, no takeover message needed
        pass


def test_lock_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with FolderLock(tmp_path):
            assert (tmp_path / ".lock").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_printable_escapes_undecodable_file_name_bytes():
    name = os.fsdecode(b"clip_\xff\xfe.mp4")
    assert printable(name) == "clip_\\xff\\xfe.mp4"
    assert printable(Path("é")) == "é"
