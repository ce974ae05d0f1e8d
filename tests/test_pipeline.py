"""The whole demo, shrunken: every stage runs, writes its artefacts, and the result table has every row.

Also the robustness the demo promises: a run killed (SIGKILL) in the middle continues where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.demo.pipeline import ROWS
from tests.helpers import REPO, worker_pids

STAGES = [
    "corpus",
    "base",
    "migr_build",
    "migr_sft",
    "migr_grpo",
    "eval_migr",
    "baseline_sft",
    "baseline_grpo",
    "eval_baseline",
]


def _arm_workers(config_file: Path) -> list[int]:
    """Pids of the arm worker processes started for ``config_file`` (``python -m src.demo.arm_worker CONFIG ARM``)."""
    return worker_pids("src.demo.arm_worker", config_file)


def _pipeline(tmp_path: Path) -> list[str]:
    # the MIGR SFT gets 8 steps (not the shrunken 2) so that the kill lands well before its end
    return [
        sys.executable,
        "-m",
        "src.pipeline",
        "shrink=true",
        f"out_dir={tmp_path / 'demo'}",
        "shrunk.sft=['stage.max_steps=8']",
        "arms_in_parallel=true",  # also under pytest-xdist, where a worker's processes get one thread
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
    assert len(_arm_workers(demo / "pipeline.yaml")) == 2  # the arms run side by side
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while _arm_workers(demo / "pipeline.yaml"):  # the workers die with the pipeline: none is left training
        assert time.monotonic() < deadline, "arm workers outlived the killed pipeline"
        time.sleep(0.05)
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
    assert "migr_sft: resuming from" in (demo / "migr.log").read_text()  # each arm's worker logs to <arm>.log
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
    assert re.search(r"migr_sft \d+\*", table)  # the resumed stage is marked
    resumed = json.loads((demo / "resumed.json").read_text())
    # the baseline arm ran at the same time (2 SFT steps, not 8): any of its stages may have been cut too
    assert resumed[0] == "migr_sft" and set(resumed) <= {"migr_sft", *STAGES[6:]}, resumed
    assert "then the arms side by side" in table


def test_a_failing_arm_stops_the_others_and_names_itself(tmp_path):
    from src.demo.arms import Task, log_path, run_arms_side_by_side
    from src.demo.stages import Ledger, Stage

    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text("out_dir: [not, a, folder\n")  # the worker fails as it reads its configuration
    tasks = [
        Task(
            arm,
            [Stage(f"{arm}_sft", tmp_path / arm / "done", lambda: None)],
            Ledger(tmp_path),
            log_path(tmp_path, arm),
        )
        for arm in ("migr", "baseline")
    ]
    with pytest.raises(RuntimeError, match=r"(?s)the (migr|baseline) arm failed \(exit code 1\).*ParserError"):
        run_arms_side_by_side(config_file, tasks, threads=1, progress=False)
    assert not _arm_workers(config_file)


def test_arms_run_side_by_side_only_with_a_thread_per_arm(monkeypatch):
    import torch

    from src.demo.arms import threads_per_arm

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # OMP_NUM_THREADS=1: one after the other, unless forced
        assert threads_per_arm("auto", 2) is None and threads_per_arm(True, 2) == 1
        torch.set_num_threads(5)
        assert threads_per_arm("auto", 2) == 2 and threads_per_arm(False, 2) is None
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert threads_per_arm("auto", 2) is None
        with pytest.raises(ValueError, match="arms_in_parallel='yes'"):
            threads_per_arm("yes", 2)
    finally:
        torch.set_num_threads(threads)


def test_one_after_the_other_the_arms_finish_a_side_by_side_attempt_with_the_same_ledgers(tmp_path, monkeypatch):
    # Stages that only write their marker; an earlier side-by-side attempt was killed in the MIGR arm's SFT
    # after the baseline arm had finished its SFT. Rerun with arms_in_parallel=false: every arm's ledger is read
    # and merged, the killed stage is marked resumed and the baseline SFT is not run again.
    from omegaconf import OmegaConf

    from src.demo import pipeline
    from src.demo.stages import Ledger, Stage

    ran = []
    caches: set[str | None] = set()
    monkeypatch.delenv("MIGR_FEATURE_CACHE_DIR", raising=False)

    def stage(name: str, arm: str | None = None) -> Stage:
        marker = tmp_path / name / "done"

        def run() -> None:
            ran.append(name)
            caches.add(os.environ.get("MIGR_FEATURE_CACHE_DIR"))
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

        return Stage(name, marker, run, arm=arm)

    stages = [stage(name, None if i < 3 else ("migr" if i < 6 else "baseline")) for i, name in enumerate(STAGES)]
    for done in ("corpus", "base", "migr_build", "baseline_sft"):
        next(s for s in stages if s.name == done).run()
    Ledger(tmp_path).write("timings", {"corpus": 1.0, "base": 2.0, "migr_build": 3.0})
    Ledger(tmp_path, "_migr").write("started", ["migr_sft"])
    Ledger(tmp_path, "_baseline").write("started", ["baseline_sft"])
    Ledger(tmp_path, "_baseline").write("timings", {"baseline_sft": 4.0})
    ran.clear()
    caches.clear()
    monkeypatch.setattr(pipeline, "plan", lambda cfg: stages)
    tables = []
    monkeypatch.setattr(
        pipeline,
        "result_table",
        lambda out, timings, resumed, side: tables.append((timings, resumed, side)) or "table",
    )
    cfg = OmegaConf.create({"out_dir": str(tmp_path), "arms_in_parallel": False})

    assert pipeline.run_pipeline(cfg) == "table"
    assert ran == ["migr_sft", "migr_grpo", "eval_migr", "baseline_grpo", "eval_baseline"]
    timings, resumed, side = tables[0]
    assert list(timings) == STAGES and timings["baseline_sft"] == 4.0 and timings["corpus"] == 1.0
    assert resumed == ["migr_sft"] and side is None
    # every stage saw the run's feature cache; the caller's environment is as before (no cache set)
    assert caches == {str((tmp_path / "feature_cache").resolve())}
    assert "MIGR_FEATURE_CACHE_DIR" not in os.environ
    assert list(json.loads((tmp_path / "timings.json").read_text())) == STAGES


def test_a_seed_sweep_runs_each_seed_in_its_folder_and_reports_the_spread(tmp_path):
    from omegaconf import OmegaConf

    from src.demo.seeds import run_sweep, t_interval

    # mean 2, sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732
    assert t_interval([1.0, 2.0, 3.0]) == pytest.approx((2.0, 4.303 / 3**0.5))
    epc = {0: (0.90, 0.80), 1: (0.85, 0.86), 2: (0.70, 0.60)}  # (MIGR, baseline) per seed
    ran = []

    def run_one(cfg) -> str:
        ran.append((cfg.seed, cfg.out_dir, cfg.seeds))
        (Path(cfg.out_dir) / "migr").mkdir(parents=True, exist_ok=True)
        (Path(cfg.out_dir) / "migr" / "build.json").write_text(
            json.dumps({"mi_vs_truth_test": {"agreement": 0.7}})
        )
        return "table"

    def figures(out: Path, arm: str) -> dict:
        seed = int(out.name.removeprefix("seed_")) if out != tmp_path else 0
        return {"epc": epc[seed][arm == "baseline"], "attention_drift": 0.5 if arm == "migr" else 0.6}

    cfg = OmegaConf.create({"out_dir": str(tmp_path), "seed": 0, "seeds": [0, 1, 2]})
    text = run_sweep(cfg, run_one, figures, [("EPC", "epc")], ("migr", "baseline"))
    # seed 0, the configured seed, is the plain demo's run in out_dir itself: a sweep after `make demo` reuses it
    assert ran == [(0, str(tmp_path), None), *((s, str(tmp_path / f"seed_{s}"), None) for s in (1, 2))]
    # differences +10, -1, +10 points: mean +6.33, sd 6.35, half-width 4.303 * 6.35 / sqrt(3) = 15.78
    assert "| EPC (%) | 81.7 ± 10.4 | 75.3 ± 13.6 | +6.3 (-9.4, +22.1) | 2 of 3 |" in text
    assert "| attention drift | 0.500 ± 0.000 | 0.600 ± 0.000 | -0.100 (-0.100, -0.100) | 0 of 3 |" in text
    assert "| first-tag margin, audio-dominant clips | n/a | n/a | n/a | n/a |" in text  # not in these figures
    assert "70.0 ± 0.0%" in text and (tmp_path / "seeds.md").read_text() == text
    # an earlier sweep's seed_0 folder stays seed 0's
    (tmp_path / "seed_0").mkdir()
    ran.clear()
    run_sweep(cfg, run_one, lambda out, arm: {}, [("EPC", "epc")], ("migr", "baseline"))
    assert ran[0] == (0, str(tmp_path / "seed_0"), None)
    with pytest.raises(ValueError, match="distinct"):
        run_sweep(OmegaConf.create({"out_dir": str(tmp_path), "seeds": [1, 1]}), run_one, figures, [], ("a", "b"))


@pytest.mark.parametrize("regime", ["faint", "conflict"])
def test_the_corpus_regime_reaches_every_stage_and_the_fau_think(regime, tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    import src.migr.build
    from src.demo.pipeline import plan

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="pipeline", overrides=[f"out_dir={tmp_path}", f"corpus.regime={regime}"])
    stages = {stage.name: stage for stage in plan(cfg)}
    built = []
    monkeypatch.setattr(src.migr.build, "build", built.append)  # compose the build stage's config, run nothing
    stages["migr_build"].run()
    (build_cfg,) = built
    if regime == "faint":  # today's commands, unchanged: no regime override, FAU thinks credit the face
        assert not [word for word in stages["base"].description.split() if "synth.regime" in word]
        assert "regime" not in build_cfg.data.synth
        assert build_cfg.fau.think == "face"
    else:
        assert "++data.synth.regime=conflict" in stages["base"].description.split()
        assert build_cfg.data.synth.regime == "conflict" and build_cfg.fau.think == "dominant"


@pytest.mark.parametrize("cached", [True, False])
def test_the_cache_switches_reach_every_training_stage_and_leave_the_defaults_commands_alone(cached, tmp_path):
    """``cache_tower_features``/``cache_media`` off add their overrides to every training stage's command (so their
    fingerprints differ); on, the commands carry neither (the demo's and the study's stages are unchanged)."""
    from hydra import compose, initialize_config_dir

    from src.demo.pipeline import plan

    switches = [f"cache_tower_features={str(cached).lower()}", f"cache_media={str(cached).lower()}"]
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="pipeline", overrides=[f"out_dir={tmp_path}", *switches])
    trained = [stage for stage in plan(cfg) if stage.name in ("base", "migr_sft", "baseline_sft", "migr_grpo")]
    assert len(trained) == 4
    for stage in trained:
        words = stage.description.split()
        assert ("feature_cache.enabled=false" in words) is not cached, stage.name
        assert ("++data.media_memory_mb=0" in words) is not cached, stage.name
