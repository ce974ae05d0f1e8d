"""The whole demo, shrunken: every stage runs, writes its artefacts, and the result table has every row.

Also the robustness the demo promises: a run killed (SIGKILL) in the middle continues where it stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.demo.pipeline import ROWS
from tests.helpers import REPO

STAGES = [
    "corpus",
    "base",
    "migr_build",
    "migr_sft",
    "migr_grpo",
    "baseline_sft",
    "baseline_grpo",
    "eval_migr",
    "eval_baseline",
]


def _pipeline(tmp_path: Path) -> list[str]:
    # the MIGR SFT gets 8 steps (not the shrunken 2) so that the kill lands well before its end
    return [
        sys.executable,
        "-m",
        "src.pipeline",
        "shrink=true",
        f"out_dir={tmp_path / 'demo'}",
        "shrunk.sft=['stage.max_steps=8']",
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MIGR_RUNS": str(tmp_path), "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}


@pytest.mark.slow
def test_shrunken_demo_killed_midway_resumes_and_writes_every_artefact(tmp_path):
    demo = tmp_path / "demo"
    # 1. start the demo and SIGKILL it as soon as the MIGR arm's SFT has written its first checkpoint
    process = subprocess.Popen(
        _pipeline(tmp_path), cwd=REPO, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while not (demo / "migr_sft" / "checkpoints" / "last.ckpt").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the demo never reached the MIGR SFT stage"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (demo / "base" / "export" / "config.json").exists()
    assert not (demo / "migr_sft" / "export").exists()
    finished_before = json.loads((demo / "timings.json").read_text())
    assert set(finished_before) == {"corpus", "base", "migr_build"}

    # 2. rerun: finished stages are skipped, the killed one continues, the rest runs
    result = subprocess.run(
        _pipeline(tmp_path), cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    for stage in ("corpus", "base", "migr_build"):
        assert f"stage {stage}: already done" in log
    assert "migr_sft: resuming from" in log
    timings = json.loads((demo / "timings.json").read_text())
    assert list(timings) == STAGES
    assert {k: timings[k] for k in finished_before} == finished_before  # not run again

    # 3. every stage's artefacts
    for export in ("base", "migr_sft", "migr_grpo", "baseline_sft", "baseline_grpo"):
        assert (demo / export / "export" / "model.safetensors").exists(), export
    for name in (
        "sft_manifest.jsonl",
        "baseline_manifest.jsonl",
        "annotated_manifest.jsonl",
        "importance_synth.csv",
        "report.md",
    ):
        assert (demo / "migr" / name).exists(), name
    for arm in ("migr", "baseline"):
        for name in ("metrics.json", "predictions.jsonl", "report.md", "confusion.png"):
            assert (demo / f"eval_{arm}" / name).exists(), (arm, name)
    assert (demo / "migr_grpo" / "completions.jsonl").exists()

    # 4. the table: every row, both arms
    table = (demo / "results.md").read_text()
    for title, _ in ROWS:
        assert f"| {title} |" in table, title
    assert "| attention drift" in table and "Modality Importance" in table and "Time per stage" in table
    assert table in result.stdout
    assert "migr_sft " in table and "*" in table.split("Time per stage")[1]  # the resumed stage is marked
    assert json.loads((demo / "resumed.json").read_text()) == ["migr_sft"]
