"""The two arms side by side: one worker process per arm, the machine's threads split between them.

After the shared stages (corpus, ``base`` warm-up, MIGR build) the arms (SFT -> GRPO -> evaluation each) share
nothing but their inputs. The tiny model's matrices are too small to keep two cores busy from one process (two
threads make its SFT step only about 1.3x faster than one), so two single-threaded arms side by side finish
sooner than one two-threaded arm after the other (``benchmarks/demo_arms.py`` measures the ratio).

Each worker is ``python -m src.demo.arms CONFIG ARM``: it plans the demo again from the configuration the
pipeline saved, runs its arm's stages with its own ledger (``timings_<arm>.json``, ...) and log (``<arm>.log``),
and dies with the pipeline process (Linux), so a killed demo leaves no worker behind: run it again and each arm
continues from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from src.demo.stages import Ledger, Stage, progress_bar, run_all

log = logging.getLogger(__name__)

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


def run_arms_side_by_side(
    config_file: Path, stages: Mapping[str, Sequence[Stage]], out: Path, *, threads: int, progress: bool = True
) -> None:
    """Run each arm's stages in its own worker process (``threads`` torch threads each) and wait for all.

    The first worker to fail stops the others (their finished stages and checkpoints stay: a rerun continues)
    and raises naming the arm, its exit code and the end of its log.
    """
    env = {
        **os.environ,
        PARENT_ENV: str(os.getpid()),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    workers: dict[str, subprocess.Popen] = {}
    try:
        for arm in stages:
            with log_path(out, arm).open("ab") as handle:  # appended: an interrupted attempt's log is kept
                workers[arm] = subprocess.Popen(
                    [sys.executable, "-m", "src.demo.arms", str(config_file), arm],
                    env=env,  # and this process's working directory: the config's relative paths stay right
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
        log.info(
            "arms %s side by side (%d thread%s each); logs: %s",
            ", ".join(stages),
            threads,
            "" if threads == 1 else "s",
            ", ".join(str(log_path(out, arm)) for arm in stages),
        )
        with progress_bar(enabled=progress) as bar:
            tasks = {arm: bar.add_task(arm, total=len(arm_stages)) for arm, arm_stages in stages.items()}
            while True:
                for arm, arm_stages in stages.items():
                    pending = [s.name for s in arm_stages if not s.done]
                    bar.update(
                        tasks[arm],
                        completed=len(arm_stages) - len(pending),
                        description=f"{arm}: {pending[0] if pending else 'done'}",
                    )
                failed = {arm: w.returncode for arm, w in workers.items() if w.poll() not in (None, 0)}
                if failed:
                    arm, code = next(iter(failed.items()))
                    tail = log_path(out, arm).read_text(errors="replace")[-3000:]
                    raise RuntimeError(
                        f"the {arm} arm failed (exit code {code}); the other arms were stopped, and a rerun "
                        f"continues every arm where it stopped. End of {log_path(out, arm)}:\n{tail}"
                    )
                if all(w.poll() == 0 for w in workers.values()):
                    return
                time.sleep(0.5)
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this worker when the pipeline process dies (Linux; elsewhere a no-op)."""
    parent = int(os.environ.get(PARENT_ENV, "0"))
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:  # the pipeline died before the request was in place
        sys.exit(f"the pipeline process {parent} is gone")


def main(argv: Sequence[str] | None = None) -> None:
    config_file, arm = argv if argv is not None else sys.argv[1:]
    _die_with_parent()
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s", stream=sys.stderr
    )
    import torch
    from omegaconf import OmegaConf

    from src.demo.pipeline import plan

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    cfg = OmegaConf.load(config_file)
    stages = plan(cfg)
    missing = [s.name for s in stages if s.arm is None and not s.done]
    if missing:
        raise RuntimeError(f"arm {arm}: the shared stages {missing} have not finished")
    arm_stages = [s for s in stages if s.arm == arm]
    if not arm_stages:
        raise ValueError(f"no arm {arm!r} in {config_file}; arms: {sorted({s.arm for s in stages if s.arm})}")
    run_all(arm_stages, Ledger(Path(cfg.out_dir), f"_{arm}"), progress=False)


if __name__ == "__main__":
    main()
