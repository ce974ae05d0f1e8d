"""Test-only Lightning callbacks injected through the `callbacks` config of a real `python -m src.train` run."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process at the end of training step ``step`` (before that step's checkpoint is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class KillDuringCheckpointWrite(L.Callback):
    """SIGKILL this process while step ``step``'s checkpoint is written: after its tensor file, before the commit."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            from src import atomic

            atomic.save_tensors = _then_die(atomic.save_tensors)  # the checkpoint callback runs after this one


class KillDuringExport(L.Callback):
    """SIGKILL this process while the final export is written (its weights are on disk, the folder is not)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step != trainer.max_steps:
            return
        from src.models import checkpoint

        checkpoint.write_safetensors = _then_die(checkpoint.write_safetensors)


def _then_die(write):
    """``write`` followed by a SIGKILL of this process (the write is complete, what follows it never runs)."""

    def write_then_die(*args: object, **kwargs: object) -> None:
        write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    return write_then_die


class LengthRewardOnly(L.Callback):
    """Give a GRPO run one reward with spread on a random model's completions (length / 100), so updates differ."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from src.reward_set import RewardSet, RewardSpec

        pl_module.reward_set = RewardSet([RewardSpec("length")], registry=_LengthRegistry())


class LengthReward:
    name = "length"

    def __call__(self, *, completions: list[str], **batch: object) -> list[float]:
        return [len(text) / 100 for text in completions]


class _LengthRegistry:
    def load(self, name: str) -> type:
        return LengthReward

    def create(self, name: str, **kwargs: object) -> LengthReward:
        return LengthReward()

    def provenance(self, name: str) -> dict[str, str]:
        return {"package": "tests", "version": "0", "object": "tests.stages.helpers:LengthReward"}


class RecordSampleIds(L.Callback):
    """Append each training step's sample ids, as this rank read them, to ``<run_dir>/sample_ids.rank<r>.jsonl``."""

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        import json
        from pathlib import Path

        path = Path(trainer.default_root_dir) / f"sample_ids.rank{trainer.global_rank}.jsonl"
        with path.open("a") as handle:
            handle.write(json.dumps({"step": trainer.global_step, "ids": [m["id"] for m in batch.meta]}) + "\n")
