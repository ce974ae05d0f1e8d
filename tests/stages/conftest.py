"""Fixtures of the stage tests: one small synthetic corpus per session and a runner of `python -m src.train`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from src.data.synth import ensure_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stage_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 28-clip synthetic corpus (4 per emotion), generated once per session."""
    return ensure_corpus(tmp_path_factory.mktemp("stage_synth") / "corpus", n=28, seed=0, workers=1)


def corpus_overrides(manifest: Path) -> list[str]:
    return [
        f"data.manifest={manifest}",
        "data.synth=null",
        f"data.cache_dir={manifest.parent / '.cache'}",
        "trainer.enable_progress_bar=false",
    ]


@pytest.fixture
def run_train(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m src.train <overrides>`` in a subprocess with runs under ``tmp_path``; returns the result."""

    def run(*overrides: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "MIGR_RUNS": str(tmp_path / "runs"), "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
        result = subprocess.run(
            [sys.executable, "-m", "src.train", *overrides],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"src.train {' '.join(overrides)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    return run
