"""A stage killed after its final checkpoint but before its export still exports when it is resumed."""

from __future__ import annotations

import shutil

import torch
from safetensors.torch import load_file

from tests.helpers import compose_train, corpus_overrides


def test_a_run_resumed_after_its_final_checkpoint_exports_the_same_weights(stage_corpus, tiny_export, tmp_path):
    from src.stages.runner import run_stage

    common = [
        "stage=sft",
        *corpus_overrides(stage_corpus),
        f"stage.init_from={tiny_export}",
        f"runs_dir={tmp_path}",
        "stage.max_steps=2",
        "data.batch_size=4",
        "logger=none",
        "trainer.limit_val_batches=0",
        "checkpoint.every_n_train_steps=1",
    ]
    export = run_stage(compose_train(*common))
    first = load_file(export / "model.safetensors")
    # what a SIGKILL between the final checkpoint and the (atomic) export leaves: the checkpoint, no export
    shutil.rmtree(export)
    assert (tmp_path / "sft" / "checkpoints" / "last.ckpt").exists()
    again = run_stage(compose_train(*common, "ckpt_path=last"))  # nothing left to train: the loop is skipped
    second = load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(second[name], first[name], rtol=0, atol=0, msg=name)
