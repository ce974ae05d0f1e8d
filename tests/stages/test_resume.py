"""Kill-and-resume of `python -m src.train` for SFT and GRPO, and who may write (and resume) a run folder.

A run is SIGKILLed at a random step (also while a checkpoint is written, and while the model is exported),
resumed with ``ckpt_path=last``, and compared with an uninterrupted run of the same length: the exported
weights bit for bit, ``logs/metrics.csv`` row for row (wall-clock columns aside) and, for GRPO,
``completions.jsonl`` line for line. Both runs use the same host and thread count, so equality is exact.

Only the killed run needs a process of its own (``python -m src.train``, SIGKILLed by a callback); the
uninterrupted run and the resume run in this process through :func:`src.stages.runner.run_stage`, which is all
``src.train``'s ``main`` does (each start of a process importing torch + transformers + Lightning costs ~8 s).
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from src.demo.stages import train_stage
from src.folder_lock import FolderLock, FolderLockError
from src.stages.run_folder import RunFolderError, open_run_folder, resumable_checkpoint, trim_history
from src.stages.runner import run_stage
from tests.helpers import compose_train, corpus_overrides
from tests.stages.conftest import train

# 20 training clips, batch 4: 5 steps per epoch; 8 steps, checkpoints every 2.
SFT = [
    "stage=sft",
    "stage.max_steps=8",
    "data.batch_size=4",
    "checkpoint.every_n_train_steps=2",
    "logger=csv",
    "trainer.limit_val_batches=0",
    "stage.optim.lr=1e-3",
    "model.freeze.vision_tower=true",
    "model.freeze.audio_tower=true",
]
# 2 prompts x 4 completions per step; 4 steps, checkpoints every 2; a reward that varies (length / 100).
GRPO = [
    "stage=grpo",
    "stage.max_steps=4",
    "stage.batch_size=2",
    "stage.num_generations=4",
    "stage.max_new_tokens=8",
    "checkpoint.every_n_train_steps=2",
    "stage.optim.lr=1e-2",
    "logger=csv",
    "model.freeze.vision_tower=true",
    "model.freeze.audio_tower=true",
    "+callbacks.reward._target_=tests.stages.helpers.LengthRewardOnly",
]
WALL_CLOCK = {"train/tokens_per_s"}  # SFT's throughput: the only logged figure that depends on time


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "logs/metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in csv.DictReader(handle)]


def assert_same_run(straight: Path, resumed: Path) -> None:
    """Exported weights bit-equal, the same metric history, the same sample completions."""
    expected, found = (
        load_file(straight / "export/model.safetensors"),
        load_file(resumed / "export/model.safetensors"),
    )
    assert expected.keys() == found.keys()
    different = [name for name in expected if not torch.equal(expected[name], found[name])]
    assert different == [], f"{len(different)} of {len(expected)} tensors differ, e.g. {different[:3]}"
    straight_metrics, resumed_metrics = _metrics(straight), _metrics(resumed)
    assert [row["step"] for row in resumed_metrics] == [
        row["step"] for row in straight_metrics
    ]  # no gap, no repeat
    assert resumed_metrics == straight_metrics
    if (straight / "completions.jsonl").exists():
        assert (resumed / "completions.jsonl").read_text() == (straight / "completions.jsonl").read_text()
    config = json.loads((resumed / "export/config.json").read_text())
    assert config["global_step"] == json.loads((straight / "export/config.json").read_text())["global_step"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume") / "runs"


@pytest.fixture(scope="module")
def sft_common(stage_corpus: Path) -> list[str]:
    return [*SFT, *corpus_overrides(stage_corpus)]


@pytest.fixture(scope="module")
def grpo_common(stage_corpus: Path, tiny_export: Path) -> list[str]:
    return [*GRPO, *corpus_overrides(stage_corpus), f"stage.init_from={tiny_export}"]


def train_here(runs: Path, *overrides: str) -> Path:
    """What ``python -m src.train <overrides>`` with runs under ``runs`` does, in this process; its export."""
    return run_stage(compose_train(f"runs_dir={runs}", *overrides))


@pytest.fixture(scope="module")
def sft_straight(runs: Path, sft_common: list[str]) -> Path:
    train_here(runs, *sft_common, "run_name=sft_straight")
    return runs / "sft_straight"


@pytest.fixture(scope="module")
def grpo_straight(runs: Path, grpo_common: list[str], tiny_export: Path) -> Path:
    train_here(runs, *grpo_common, "run_name=grpo_straight")
    straight = runs / "grpo_straight"
    # GRPO moved the weights (so equality below means something)
    initial, trained = (
        load_file(tiny_export / "model.safetensors"),
        load_file(straight / "export/model.safetensors"),
    )
    assert sum(not torch.equal(initial[name], trained[name]) for name in trained) > 50
    return straight


def _killed(runs: Path, common: list[str], name: str, *kill: str) -> None:
    killed = train(runs, *common, f"run_name={name}", *kill, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]


def _kill_then_resume(runs: Path, common: list[str], name: str, *kill: str) -> None:
    _killed(runs, common, name, *kill)
    assert train_here(runs, *common, f"run_name={name}", "ckpt_path=last") == runs / name / "export"


@pytest.mark.slow
def test_sft_killed_at_a_random_step_resumes_to_the_same_run(runs, sft_common, sft_straight):
    step = random.randint(3, 7)  # a checkpoint (step 2, 4 or 6) exists before it
    print(f"killed at step {step}")
    _kill_then_resume(
        runs,
        sft_common,
        "sft_killed",
        "+callbacks.kill._target_=tests.stages.helpers.KillAtStep",
        f"+callbacks.kill.step={step}",
    )
    assert_same_run(sft_straight, runs / "sft_killed")


@pytest.mark.slow
def test_sft_killed_while_writing_a_checkpoint_resumes_to_the_same_run(runs, sft_common, sft_straight):
    step = random.choice([4, 6])  # the kill leaves the previous checkpoint (step - 2) as last.ckpt
    print(f"killed while writing the checkpoint of step {step}")
    _kill_then_resume(
        runs,
        sft_common,
        "sft_killed_in_checkpoint",
        "+callbacks.kill._target_=tests.stages.helpers.KillDuringCheckpointWrite",
        f"+callbacks.kill.step={step}",
    )
    assert_same_run(sft_straight, runs / "sft_killed_in_checkpoint")


def test_what_ckpt_path_last_resumes(tmp_path):
    folder = tmp_path / "checkpoints"
    assert resumable_checkpoint(tmp_path) is None
    folder.mkdir()
    for name in ("step=2.ckpt", "step=10.ckpt", "step=12.ckpt.tmp", "other.ckpt"):
        (folder / name).write_text("{}")
    assert resumable_checkpoint(tmp_path) == folder / "step=10.ckpt"  # by step number, not by name
    (folder / "last.ckpt").write_text("{}")
    assert resumable_checkpoint(tmp_path) == folder / "last.ckpt"


@pytest.mark.slow
def test_sft_killed_between_its_step_and_last_checkpoints_resumes_to_the_same_run(runs, sft_common, sft_straight):
    """The demo's and the study's stages resume such a folder too (a fresh start into it is refused)."""
    name = "sft_killed_before_last"
    _killed(
        runs,
        sft_common,
        name,
        "+callbacks.kill._target_=tests.stages.helpers.KillBeforeLastCheckpoint",
        "+callbacks.kill.step=2",
    )
    checkpoints = sorted(p.name for p in (runs / name / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["step=2.ckpt"]  # the first checkpoint, and no last.ckpt
    with pytest.raises(RunFolderError, match="already holds checkpoints"):
        open_run_folder(compose_train(f"runs_dir={runs}", *sft_common, f"run_name={name}"))
    stage = train_stage("sft", runs / name, [*sft_common, f"runs_dir={runs}"])
    stage.run()  # what a rerun of the demo or the study does with the folder
    assert stage.done
    assert_same_run(sft_straight, runs / name)


@pytest.mark.slow
def test_grpo_killed_at_a_random_step_resumes_to_the_same_run(runs, grpo_common, grpo_straight):
    step = random.randint(3, 4)  # after the checkpoint of step 2; 4 is the last step, before its checkpoint
    print(f"killed at step {step}")
    _kill_then_resume(
        runs,
        grpo_common,
        "grpo_killed",
        "+callbacks.kill._target_=tests.stages.helpers.KillAtStep",
        f"+callbacks.kill.step={step}",
    )
    assert_same_run(grpo_straight, runs / "grpo_killed")


@pytest.mark.slow
def test_grpo_killed_during_export_exports_on_resume(runs, grpo_common, grpo_straight):
    name = "grpo_killed_in_export"
    _killed(runs, grpo_common, name, "+callbacks.kill._target_=tests.stages.helpers.KillDuringExport")
    assert (runs / name / "checkpoints/last.ckpt").exists() and not (runs / name / "export").exists()
    # run_stage returns (and src.train prints) the export only after checking this run's final step wrote it
    assert train_here(runs, *grpo_common, f"run_name={name}", "ckpt_path=last") == runs / name / "export"
    assert_same_run(grpo_straight, runs / name)


# ---- who may write and resume a run folder ------------------------------------------------------------------


def _cfg(tmp_path: Path, *overrides: str):
    return compose_train("stage=sft", f"runs_dir={tmp_path}", "run_name=run", *overrides)


def test_a_second_run_into_a_held_folder_fails_at_once_naming_the_holder(tmp_path):
    holder = rf"in use by pid {os.getpid()} on .*python -m src.train seed=0"
    with (
        FolderLock(tmp_path / "run", command="python -m src.train seed=0"),
        pytest.raises(FolderLockError, match=holder),
    ):
        open_run_folder(_cfg(tmp_path))
    lock, ckpt_path = open_run_folder(_cfg(tmp_path))  # free again
    assert lock is not None and lock.held and ckpt_path is None
    lock.release()


def test_ckpt_path_last_resumes_only_the_folders_own_run(tmp_path):
    lock, _ = open_run_folder(_cfg(tmp_path, "seed=0"))  # a fresh run records its identity
    lock.release()
    (tmp_path / "run/checkpoints").mkdir()
    (tmp_path / "run/checkpoints/last.ckpt").write_text("{}")
    with pytest.raises(
        RunFolderError, match=r"holds the run with stage=sft seed=0 .* this command is stage=sft seed=1"
    ):
        open_run_folder(_cfg(tmp_path, "seed=1", "ckpt_path=last"))
    with pytest.raises(RunFolderError, match=r"already holds checkpoints of the run with stage=sft seed=0"):
        open_run_folder(_cfg(tmp_path, "seed=1"))  # a fresh run would put its checkpoints beside the first's
    lock, ckpt_path = open_run_folder(_cfg(tmp_path, "seed=0", "ckpt_path=last"))
    assert ckpt_path == str(tmp_path / "run/checkpoints/last.ckpt")
    lock.release()
    with pytest.raises(RunFolderError, match=r"ckpt_path=last: .*last.ckpt does not exist"):
        open_run_folder(_cfg(tmp_path, "run_name=other", "ckpt_path=last"))


def test_trim_history_keeps_what_the_checkpoint_had_logged(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/metrics.csv").write_text(
        "epoch,step,train/loss\r\n0,0,1.0\r\n0,1,0.9\r\n0,2,0.8\r\n0,3,0.7\r\n"
    )
    rows = [{"step": s, "completion": f"c{s}"} for s in (1, 1, 2, 3, 4)]
    (tmp_path / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    trim_history(tmp_path, 2)  # resumed from the checkpoint after 2 optimizer steps (logged as steps 0 and 1)
    assert (tmp_path / "logs/metrics.csv").read_bytes() == b"epoch,step,train/loss\r\n0,0,1.0\r\n0,1,0.9\r\n"
    kept = [json.loads(line)["step"] for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert kept == [1, 1, 2]
