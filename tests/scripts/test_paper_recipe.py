"""``scripts/paper_recipe.sh`` end to end from a fresh copy of the repository, on the tiny released-layout fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.recipe import EXPECTED
from tests.helpers import REPO


def _fresh_copy(target: Path) -> Path:
    """The repository's tracked and unignored files, as a clone of this tree would have them (no runs/, data/)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            (target / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / os.fsdecode(name))
    return target


@pytest.mark.slow
def test_paper_recipe_script_counts_every_stage(tmp_path: Path) -> None:
    clone = _fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if k not in ("MIGR_RUNS", "EMER_CSV", "DFEW_ROOT", "MODEL")}
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        ["bash", "scripts/paper_recipe.sh", str(tmp_path / "work")],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    printed = done.stdout.split("== row counts\n", 1)[1].splitlines()
    counts = {name: int(value) for name, value in (line.split() for line in printed if line.strip())}
    assert counts == EXPECTED  # the fixture's hand-computed counts (tests/fixtures/recipe.py)
    assert all(counts.values())
    order = [done.stdout.index(f"== {step}.") for step in (1, 2, 3)]
    assert order == sorted(order)  # build, then SFT, then GRPO
    assert not (clone / "runs").exists()  # everything under the work folder
