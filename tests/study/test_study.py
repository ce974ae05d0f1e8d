"""`python -m src.study`, shrunk, for real: killed once mid-run, started again, it redoes no finished seed x arm
and writes study.md, study.json and the forest plot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, worker_pids


def _study(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "src.study",
        "shrink=true",
        f"out_dir={out}",
        "seeds=[0,1]",
        "~regimes.faint",  # one regime and two arms keep it short; tests/study/test_plan.py plans all of them
        "regimes.conflict.arms=[baseline,migr]",
        "workers=2",
        "logger=wandb",
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MIGR_RUNS": str(tmp_path), "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}


def _workers(config_file: Path) -> list[int]:
    return worker_pids("src.study.plan", config_file)


def _finished(out: Path) -> dict[str, int]:
    """Done marker -> modification time (ns) of every finished stage under ``out``."""
    markers = [*out.glob("*/corpus/corpus.json"), *out.glob("*/seed_*/*/export/config.json")]
    markers += [*out.glob("*/seed_*/*/build.json"), *out.glob("*/seed_*/eval_*/metrics.json")]
    return {str(path.relative_to(out)): path.stat().st_mtime_ns for path in markers}


@pytest.mark.slow
def test_a_shrunk_study_killed_midway_redoes_no_finished_seed_x_arm(tmp_path):
    out = tmp_path / "study"
    process = subprocess.Popen(
        _study(out), cwd=REPO, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # kill it as soon as seed 0's baseline arm has finished (its re-judge is its last stage)
    first_arm = out / "conflict" / "seed_0" / "eval_baseline_embedding" / "metrics.json"
    deadline = time.monotonic() + 600
    while not first_arm.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the study never finished seed 0's baseline arm"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while _workers(out / "study.yaml"):  # the workers die with the study
        assert time.monotonic() < deadline, "workers outlived the killed study"
        time.sleep(0.05)
    before = _finished(out)
    assert "conflict/seed_0/eval_baseline_embedding/metrics.json" in before
    assert not (out / "study.md").exists()

    result = subprocess.run(_study(out), cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    after = _finished(out)
    assert {k: after[k] for k in before} == before  # no finished stage ran again
    log = result.stdout + result.stderr
    assert "conflict/seed_0/baseline: started" not in log and "conflict/corpus: started" not in log
    for seed in (0, 1):
        for arm in ("baseline", "migr"):
            for folder in (f"eval_{arm}", f"eval_{arm}_embedding"):
                assert (out / "conflict" / f"seed_{seed}" / folder / "metrics.json").exists(), (seed, folder)

    text = (out / "study.md").read_text()
    assert text in result.stdout
    assert "## Regime `conflict`: arms baseline, migr" in text
    assert "### Primary endpoints: conflict test clips, keyword judge" in text
    assert "### All endpoints: all test clips, embedding judge" in text
    assert (
        "| EPC (%) | migr" in text
        and "| stage | runs timed |" in text
        and "\nInvocations (the last one wrote this report): " in text
    )
    invocations = [json.loads(line) for line in (out / "invocations.jsonl").read_text().splitlines()]
    assert len(invocations) == 2 and all(r["commit"] in text for r in invocations)  # the killed one and the rerun
    assert (
        "## Verdict (docs/study_protocol.md" in text
        and "`migr` vs `baseline`, conflict regime (preregistered)" in text
    )
    summary = json.loads((out / "study.json").read_text())["summary"]
    epc = summary["conflict"]["keywords"]["all"]["epc"]
    assert epc["baseline"]["n"] == 2 and epc["migr"]["n_paired"] == 2
    assert (out / "forest.png").stat().st_size > 0 and "![forest plot](forest.png)" in text
    assert list((out / "wandb").glob("offline-run-*"))
