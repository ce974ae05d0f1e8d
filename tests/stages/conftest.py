"""Fixtures of the stage tests: a runner of `python -m src.train` in a process of its own (forked by the
warm-process launcher, tests/launcher.py: a fresh interpreter but for the import time)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import launcher
from tests.helpers import REPO


def train(
    runs: Path, *overrides: str, timeout: int = 600, check: bool = True, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run ``python -m src.train <overrides>`` in a process of its own with runs under ``runs``; the result.
    ``fresh``: in a fresh interpreter (a test of the start-up time), not forked by the warm-process launcher."""
    env = {**os.environ, "MIGR_RUNS": str(runs), "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    result = (subprocess.run if fresh else launcher.run)(
        [sys.executable, "-m", "src.train", *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"src.train {' '.join(overrides)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture
def run_train(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m src.train <overrides>`` in a subprocess with runs under ``tmp_path / "runs"``."""

    def run(*overrides: str, timeout: int = 600, check: bool = True, fresh: bool = False):
        return train(tmp_path / "runs", *overrides, timeout=timeout, check=check, fresh=fresh)

    return run
