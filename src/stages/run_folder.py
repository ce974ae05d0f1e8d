"""A training run folder owned by one run: its lock, its identity, what ``ckpt_path=last`` resumes, and a
history (``logs/metrics.csv``, ``completions.jsonl``) that survives a resume whole and without duplicates.

- **Lock**: the folder's :class:`~src.folder_lock.FolderLock` is held for the whole run (by the launching
  process; DDP/FSDP children do not take it). A second run into the folder fails at once naming the holder
  (pid, host, command, start); a killed holder's lock is taken over.
- **Identity**: a fresh run writes ``run.json`` (stage, seed, command, start). ``ckpt_path=last`` resumes
  ``checkpoints/last.ckpt`` of that run only: the stage and seed of the command must be the folder's. Lightning
  writes a step's ``step=N.ckpt`` and then its ``last.ckpt``; a run killed between the two (or while writing the
  first ``last.ckpt``) resumes from the newest ``step=N.ckpt`` instead (:func:`resumable_checkpoint`). A fresh
  run (no ``ckpt_path``) into a folder that already holds checkpoints is refused, so no two runs' checkpoints
  ever sit side by side (Lightning would name the second ``last-v1.ckpt`` and ``ckpt_path=last`` could pick
  either).
- **History**: on resume, rows logged after the restored step are dropped (they are logged again, identically,
  by the resumed run); the CSV logger keeps the file instead of deleting it (:class:`ResumableCSVLogger`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig
from typing_extensions import override

from src import atomic
from src.folder_lock import FolderLock, printable

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
COMPLETIONS_FILE = "completions.jsonl"
METRICS_FILE = Path("logs") / "metrics.csv"


class RunFolderError(RuntimeError):
    """The command does not own the run folder it points at (another run's checkpoints, or none to resume)."""


def is_launching_process() -> bool:
    """Whether this process owns the run folder: global rank 0 of the launch (not a DDP/FSDP child)."""
    for variable in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        if int(os.environ.get(variable, "0") or 0) != 0:
            return False
    return True


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What makes two commands the same run: the stage and the seed."""
    return {"stage": str(cfg.stage.name), "seed": int(cfg.seed)}


def open_run_folder(cfg: DictConfig) -> tuple[FolderLock | None, str | None]:
    """Lock ``cfg.run_dir`` and resolve ``cfg.ckpt_path``; returns ``(lock or None, checkpoint path or None)``.

    Raises:
        FolderLockError: another process holds the folder (the message names it).
        RunFolderError: ``ckpt_path=last`` without a checkpoint of this run, or a fresh run into a folder that
            already holds another run's checkpoints.
    """
    run_dir = Path(cfg.run_dir)
    lock = FolderLock(run_dir).acquire() if is_launching_process() else None
    try:
        return lock, _resolve_checkpoint(cfg, run_dir, write=lock is not None)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def resumable_checkpoint(run_dir: str | Path) -> Path | None:
    """What ``ckpt_path=last`` resumes in ``run_dir``: ``checkpoints/last.ckpt``, else (a run killed after
    writing a step's checkpoint but before its ``last.ckpt``) the ``step=N.ckpt`` with the largest N, else None.

    A checkpoint file exists only once complete (:mod:`src.stages.checkpoint_io` renames it into place), so
    either one resumes the run exactly.
    """
    folder = Path(run_dir) / "checkpoints"
    if (folder / "last.ckpt").exists():
        return folder / "last.ckpt"
    steps = [
        (int(m.group(1)), f)
        for f in folder.glob("step=*.ckpt")
        if (m := re.fullmatch(r"step=(\d+)\.ckpt", f.name))
    ]
    return max(steps)[1] if steps else None


def _resolve_checkpoint(cfg: DictConfig, run_dir: Path, *, write: bool) -> str | None:
    wanted = identity(cfg)
    recorded_file = run_dir / RUN_FILE
    recorded = json.loads(recorded_file.read_text()) if recorded_file.exists() else None
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").exists() else []
    if cfg.ckpt_path == "last":
        last = resumable_checkpoint(run_dir)
        if last is None:
            raise RunFolderError(
                f"ckpt_path=last: {printable(run_dir / 'checkpoints' / 'last.ckpt')} does not exist, nor does a "
                "step=N.ckpt beside it (nothing to resume)"
            )
        if last.name != "last.ckpt":
            log.warning("ckpt_path=last: no last.ckpt (the run was killed while checkpointing); resuming %s", last)
        if recorded is not None and {k: recorded.get(k) for k in wanted} != wanted:
            raise RunFolderError(
                f"ckpt_path=last: {printable(run_dir)} holds the run with stage={recorded.get('stage')} "
                f"seed={recorded.get('seed')} (started {recorded.get('started')}: {recorded.get('command')}); "
                f"this command is stage={wanted['stage']} seed={wanted['seed']}. Resume with the same settings, "
                "or give this run its own run_name"
            )
        return str(last)
    if cfg.ckpt_path is None and checkpoints:
        who = (
            f"the run with stage={recorded.get('stage')} seed={recorded.get('seed')} (started {recorded.get('started')})"
            if recorded
            else "an earlier run"
        )
        raise RunFolderError(
            f"{printable(run_dir)} already holds checkpoints of {who}: resume it with ckpt_path=last, or give this "
            "run its own run_name (or delete the folder)"
        )
    if write and cfg.ckpt_path is None:
        for stale in (run_dir / COMPLETIONS_FILE, run_dir / METRICS_FILE):  # a fresh run's history starts empty
            stale.unlink(missing_ok=True)
        started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        command = printable(" ".join(sys.orig_argv))
        atomic.write_text(recorded_file, json.dumps({**wanted, "started": started, "command": command}) + "\n")
    return None if cfg.ckpt_path is None else str(cfg.ckpt_path)


def trim_history(run_dir: str | Path, global_step: int) -> None:
    """Drop what was logged after optimizer step ``global_step`` (the checkpoint a run resumes from).

    ``metrics.csv`` rows carry Lightning's logging step (0 for the first optimizer step, so rows with
    ``step < global_step`` are kept); ``completions.jsonl`` rows carry the step count after their step
    (rows with ``step <= global_step`` are kept).
    """
    run_dir = Path(run_dir)
    metrics = run_dir / METRICS_FILE
    if metrics.exists():
        with metrics.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames or [], list(reader)
        kept = [row for row in rows if row.get("step") in (None, "") or int(float(row["step"])) < global_step]
        if len(kept) != len(rows):
            from io import StringIO

            buffer = StringIO()
            writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(kept)
            atomic.write_text(metrics, buffer.getvalue())
            log.info(
                "resume at step %d: dropped %d metric rows logged after it", global_step, len(rows) - len(kept)
            )
    completions = run_dir / COMPLETIONS_FILE
    if completions.exists():
        lines = completions.read_text().splitlines()
        kept_lines = [line for line in lines if line.strip() and json.loads(line)["step"] <= global_step]
        if len(kept_lines) != len(lines):
            atomic.write_text(completions, "".join(line + "\n" for line in kept_lines))


class TrimHistoryOnResume(L.Callback):
    """On resume (rank 0), cut the run's history back to the restored checkpoint's step (:func:`trim_history`)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    @override
    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.global_rank == 0:
            trim_history(self.run_dir, int(checkpoint["global_step"]))


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted."""

    @override
    def _check_log_dir_exists(self) -> None:
        pass

    @override
    def save(self) -> None:
        if not self.metrics_keys and os.path.isfile(self.metrics_file_path):  # continue the file's columns
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])
        super().save()


class ResumableCSVLogger(CSVLogger):
    """A ``CSVLogger`` whose ``metrics.csv`` survives a resume (a fresh run deletes it in :func:`open_run_folder`)."""

    @property
    @override
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment
