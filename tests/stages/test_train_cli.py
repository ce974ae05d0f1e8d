"""`python -m src.train` for real: resume after SIGKILL (DDP and FSDP2: tests/stages/test_distributed.py)."""

from __future__ import annotations

import signal

import pytest
import torch
from safetensors.torch import load_file

from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer
from src.stages.runner import run_stage
from tests.helpers import compose_train, corpus_overrides

# 20 training clips, batch 4: 5 steps per epoch; checkpoints every 3 steps.
SHORT_RUN = [
    "stage=base",
    "stage.max_epochs=2",
    "data.batch_size=4",
    "checkpoint.every_n_train_steps=3",
    "logger=none",
    "trainer.limit_val_batches=0",
]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(stage_corpus, run_train, tmp_path, caplog):
    common = [*SHORT_RUN, *corpus_overrides(stage_corpus)]
    runs = tmp_path / "runs"  # run_train's runs folder too
    # the uninterrupted run and the resume in this process (what src.train's main runs: run_stage), the killed
    # run in a process of its own (a process start costs ~8 s)
    run_stage(compose_train(*common, f"runs_dir={runs}", "run_name=straight"))
    killed = run_train(
        *common,
        "run_name=killed",
        "+callbacks.kill._target_=tests.stages.helpers.KillAtStep",
        "+callbacks.kill.step=4",  # mid-epoch 0; the last checkpoint is step 3
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    assert (runs / "killed/checkpoints/last.ckpt").exists()
    assert not (runs / "killed/export").exists()
    with caplog.at_level("INFO", logger="src.data.datamodule"):
        run_stage(compose_train(*common, f"runs_dir={runs}", "run_name=killed", "ckpt_path=last"))
    assert "resuming epoch 0 at batch 3 of 5" in caplog.text
    straight = load_file(runs / "straight/export/model.safetensors")
    after_kill = load_file(runs / "killed/export/model.safetensors")
    assert straight.keys() == after_kill.keys()
    for name in straight:
        torch.testing.assert_close(after_kill[name], straight[name], rtol=1e-5, atol=1e-6, msg=name)
    # training moved the weights away from the seeded initialisation (so the comparison above means something)
    torch.manual_seed(0)
    initial = OmniModel.from_tokenizer(get_preset("tiny"), build_tiny_tokenizer()).state_dict()
    changed = [n for n in straight if not torch.allclose(straight[n], initial[n])]
    assert len(changed) > 0.5 * len(straight)
