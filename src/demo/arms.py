"""The two arms side by side: one worker process per arm, the machine's threads split between them.

After the shared stages (corpus, ``base`` warm-up, MIGR build) the arms (SFT -> GRPO -> evaluation each) share
nothing but their inputs. The tiny model's matrices are too small to keep two cores busy from one process (two
threads make its SFT step only about 1.3x faster than one), so two single-threaded arms side by side finish
sooner than one two-threaded arm after the other (``benchmarks/demo_arms.py`` measures the ratio).

Each worker is ``python -m src.demo.arm_worker CONFIG ARM``: it plans the demo again from the configuration the
pipeline saved, runs its arm's stages with its own ledger (``timings_<arm>.json``, ...) and log (``<arm>.log``),
and dies with the pipeline process (Linux), so a killed demo leaves no worker behind: run it again and each arm
continues from its last checkpoint. :func:`run_workers` is the general form the study uses too: tasks that wait
for the stages they need, at most so many workers at a time.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.demo.allocator import describe, with_preload
from src.demo.stages import Ledger, Stage, progress_bar, run_all

log = logging.getLogger(__name__)

ARM_WORKER = "src.demo.arm_worker"  # the module each arm's worker process runs

PARENT_ENV = "MIGR_DEMO_PARENT_PID"


def threads_per_arm(setting: bool | str, num_arms: int) -> int | None:
    """Threads each arm's worker gets, or None to run the arms one after the other in this process.

    ``setting`` is ``pipeline.yaml``'s ``arms_in_parallel``: ``auto`` runs them side by side when no GPU is in
    use and torch has at least one thread per arm (``OMP_NUM_THREADS=1`` keeps the demo sequential); ``true``
    forces it (one thread per arm at least), ``false`` never.
    """
    import torch

    if setting not in (True, False, "auto"):
        raise ValueError(f"arms_in_parallel={setting!r}: expected auto, true or false")
    budget = torch.get_num_threads()
    if setting is False or (setting == "auto" and (torch.cuda.is_available() or budget < num_arms)):
        return None
    return max(1, budget // num_arms)


def log_path(out: Path, arm: str) -> Path:
    return out / f"{arm}.log"


@dataclass(frozen=True)
class Task:
    """One worker's job: run ``stages`` in order with ``ledger`` (logging to ``log``) once ``needs`` are done.

    The worker is ``python -m <module> CONFIG <name>``: it plans again from the saved configuration and finds
    its task by name (:func:`worker_main`). The demo's tasks are its arms; the study's are also its shared
    stages per seed (:mod:`src.study`).
    """

    name: str
    stages: Sequence[Stage]
    ledger: Ledger
    log: Path
    needs: Sequence[Stage] = ()

    @property
    def done(self) -> bool:
        return all(stage.done for stage in self.stages)


def run_arms_side_by_side(
    config_file: Path, tasks: Sequence[Task], *, threads: int, progress: bool = True, preload: str | None = None
) -> None:
    """Run each arm's stages in its own worker process (``threads`` torch threads each) and wait for all.

    The first worker to fail stops the others (their finished stages and checkpoints stay: a rerun continues)
    and raises naming the arm, its exit code and the end of its log.
    """
    run_workers(
        ARM_WORKER, config_file, tasks, workers=len(tasks), threads=threads, progress=progress, preload=preload
    )


def run_workers(
    module: str,
    config_file: Path,
    tasks: Sequence[Task],
    *,
    workers: int,
    threads: int,
    progress: bool = True,
    poll_seconds: float = 0.5,
    preload: str | None = None,
) -> None:
    """Run every unfinished task in a worker process, at most ``workers`` at a time, each once its ``needs`` are
    done (tasks start in the order given), with ``threads`` torch threads each; wait for all. ``preload``: a
    shared library every worker preloads (:mod:`src.demo.allocator`: tcmalloc), or None.

    The first worker to fail stops the others (their finished stages and checkpoints stay: a rerun continues)
    and raises naming the task, its exit code and the end of its log.
    """
    pending = [task for task in tasks if not task.done]
    made = {stage.done_marker for task in pending for stage in task.stages}
    for task in pending:
        missing = [need.name for need in task.needs if not need.done and need.done_marker not in made]
        if missing:
            raise ValueError(f"task {task.name} needs {missing}, which no task makes")
    env = with_preload(
        {
            **os.environ,
            PARENT_ENV: str(os.getpid()),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
        },
        preload,
    )
    if pending:
        log.info("workers: %d at a time, %s", workers, describe(preload))
    running: dict[str, tuple[Task, subprocess.Popen]] = {}
    total = sum(len(task.stages) for task in tasks)
    try:
        with progress_bar(enabled=progress) as bar:
            overall = bar.add_task("all", total=total)
            lines: dict[str, Any] = {}
            while pending or running:
                for task in list(pending):
                    if len(running) < workers and all(need.done for need in task.needs):
                        pending.remove(task)
                        running[task.name] = (task, _start_worker(module, config_file, task, env))
                        lines[task.name] = bar.add_task(task.name, total=len(task.stages))
                        log.info(
                            "%s: started (%d thread%s), log %s", task.name, threads, "s"[: threads > 1], task.log
                        )
                for name, (task, worker) in list(running.items()):
                    code = worker.poll()
                    if code not in (None, 0):
                        tail = task.log.read_text(errors="replace")[-3000:]
                        raise RuntimeError(
                            f"the {name} {'arm' if module == ARM_WORKER else 'task'} failed (exit code {code}); "
                            f"the other workers were stopped, and a rerun continues where each stopped. "
                            f"End of {task.log}:\n{tail}"
                        )
                    to_do = [stage.name for stage in task.stages if not stage.done]
                    bar.update(
                        lines[name],
                        completed=len(task.stages) - len(to_do),
                        description=f"{name}: {to_do[0] if to_do else 'done'}",
                    )
                    if code == 0:
                        del running[name]
                        bar.remove_task(lines.pop(name))
                        if to_do:
                            raise RuntimeError(f"the {name} worker exited without finishing {to_do} ({task.log})")
                if pending and not running and not any(all(n.done for n in t.needs) for t in pending):
                    raise RuntimeError(f"tasks {[t.name for t in pending]} wait for stages no worker is making")
                bar.update(overall, completed=sum(stage.done for task in tasks for stage in task.stages))
                if pending or running:
                    time.sleep(poll_seconds)
    finally:
        for _, worker in running.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def _start_worker(module: str, config_file: Path, task: Task, env: Mapping[str, str]) -> subprocess.Popen:
    task.log.parent.mkdir(parents=True, exist_ok=True)
    with task.log.open("ab") as handle:  # appended: an interrupted attempt's log is kept
        return subprocess.Popen(
            [sys.executable, "-m", module, str(config_file), task.name],
            env=env,  # and this process's working directory: the config's relative paths stay right
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this worker when the pipeline process dies (Linux; elsewhere a no-op)."""
    parent = int(os.environ.get(PARENT_ENV, "0"))
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:  # the pipeline died before the request was in place
        sys.exit(f"the pipeline process {parent} is gone")


def worker_main(argv: Sequence[str], tasks_of: Callable[[Any], Mapping[str, Task]]) -> None:
    """A worker process: ``argv`` = (saved configuration, task name); ``tasks_of(cfg)`` plans the tasks."""
    config_file, name = argv
    die_with_parent()
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s", stream=sys.stderr
    )
    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    tasks = tasks_of(OmegaConf.load(config_file))
    if name not in tasks:
        raise ValueError(f"no task {name!r} in {config_file}; tasks: {sorted(tasks)}")
    task = tasks[name]
    missing = [stage.name for stage in task.needs if not stage.done]
    if missing:
        raise RuntimeError(f"{name}: the stages it needs {missing} have not finished")
    run_all(list(task.stages), task.ledger, progress=False)
