"""Run (or finish) the study and write its analysis: ``python -m src.study`` (configs/study.yaml).

The tasks of :mod:`src.study.plan` run in worker processes (:func:`src.demo.arms.run_workers`), then
:mod:`src.study.report` writes ``study.md``, ``study.json`` and ``forest.png`` (and logs them with
``logger=wandb``). Every stage is skipped when its output exists, so the study can run in the background and be
killed and started again at any point.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src import atomic
from src.demo.allocator import preload_library
from src.demo.arms import run_workers
from src.demo.stages import Ledger
from src.folder_lock import FolderLock
from src.study.plan import study_tasks, units, workers_and_threads

log = logging.getLogger(__name__)


def run_study(cfg: DictConfig) -> str:
    """Every unfinished stage of the study, then the report; returns ``study.md``'s text."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out):  # one study per folder: a second fails at once naming the first
        return _run(cfg, out)


def _run(cfg: DictConfig, out: Path) -> str:
    from src.study import report

    record_invocation(out / "invocations.jsonl")
    config_file = out / "study.yaml"
    OmegaConf.save(cfg, config_file, resolve=True)
    saved = OmegaConf.load(config_file)  # the workers plan from this very file
    tasks = study_tasks(saved)
    workers, threads = workers_and_threads(cfg.workers)
    preload = preload_library(cfg.worker_allocator)
    began = time.perf_counter()
    run_workers(
        "src.study.plan", config_file, list(tasks.values()), workers=workers, threads=threads, preload=preload
    )
    wall = time.perf_counter() - began
    log.info("study stages finished in %.1f min (this invocation)", wall / 60)

    study_units = units(saved)
    figures = report.collect(study_units)
    summary = report.summarize(figures)
    timings = {
        "stages": {task.name: _task_timings(task.ledger, task.stages) for task in tasks.values()},
        "wall_seconds": wall,
        "workers": workers,
        "threads": threads,
        "allocator": preload or "system",
    }
    arms = {regime: list(settings.arms) for regime, settings in saved.regimes.items()}
    text = report.study_markdown(
        summary,
        seeds=[int(s) for s in saved.seeds],
        arms=arms,
        threshold=float(saved.format_threshold),
        timings=timings,
        provenance=provenance(out / "invocations.jsonl"),
    )
    forest = report.forest_plot(summary, out / "forest.png")
    if forest is not None:
        text += "\n![forest plot](forest.png)\n"
    atomic.write_text(out / "study.json", json.dumps({"summary": summary, "figures": figures, "timings": timings}))
    atomic.write_text(out / "study.md", text)
    report.log_to_wandb(
        OmegaConf.to_container(cfg.logger, resolve=True), out, report.summary_rows(summary), forest
    )
    return text


def record_invocation(path: Path) -> None:
    """Append this invocation (UTC start, commit, host) to ``invocations.jsonl``: a study resumed over several
    invocations, perhaps by different code, says which code ran its stages."""
    import datetime

    record = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _commit(),
        "host": _host(),
    }
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic.write_text(path, previous + json.dumps(record) + "\n")


def provenance(path: Path) -> str:
    """study.md's provenance line: every invocation that ran (or re-reported) the study, oldest first."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    invocations = "; ".join(
        f"{r['started']} code `{r['commit']}` on {r['host']}" + (f" ({r['note']})" if r.get("note") else "")
        for r in records
    )
    return f"Invocations (the last one wrote this report): {invocations}."


def _commit() -> str:
    """The checked-out commit (with ``+changes`` when the work tree differs), or ``unknown`` outside git."""
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" +changes" if dirty.stdout.strip() else "")


def _host() -> str:
    import os
    import platform

    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            model,
        )
    return f"host `{platform.node()}` ({os.cpu_count()} cores, {model})"


def _task_timings(ledger: Ledger, stages: Any) -> dict[str, float]:
    recorded = ledger.read("timings")
    return {stage.name: recorded[stage.name] for stage in stages if stage.name in recorded}
