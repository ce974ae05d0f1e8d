"""A GRPO run with ``logger=wandb`` (offline): its W&B history holds every key docs/dashboards.md lists."""

from __future__ import annotations

import re

import lightning as L
import pytest

from src.models.factory import ModelSpec, describe
from src.stages.runner import build_datamodule, build_module, build_trainer, to_dict
from tests.helpers import REPO, compose_train, corpus_overrides, wandb_history

DOC = (REPO / "docs" / "dashboards.md").read_text()
REWARD_STATS = ("mean", "std", "applicable", "malformed", "errors")


def documented_grpo_keys() -> set[str]:
    """The keys of the doc's train table whose stage column names grpo, and of its clip-ratio section."""
    keys: set[str] = set()
    for line in DOC.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 3 and "grpo" in cells[2]:
            keys |= set(re.findall(r"`(train/[a-z0-9_/]+)`", cells[1]))
    clip_section = DOC.split("**`train/clip_ratio` section**")[1].split("**")[0]
    return keys | set(re.findall(r"`(train/clip_ratio/[a-z_]+)`", clip_section))


@pytest.mark.slow
def test_an_offline_wandb_grpo_run_logs_every_documented_key(stage_corpus, tiny_export, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_train(
        "stage=grpo",
        "stage.max_steps=2",
        "stage.batch_size=2",
        "stage.num_generations=4",
        "stage.max_new_tokens=8",
        "logger=wandb",
        *corpus_overrides(stage_corpus),
        f"stage.init_from={tiny_export}",
        f"runs_dir={tmp_path}",
        "model.freeze.vision_tower=true",
        "model.freeze.audio_tower=true",
    )
    L.seed_everything(0)
    datamodule = build_datamodule(cfg, describe(ModelSpec(**to_dict(cfg.model)), cfg.stage.init_from))
    module = build_module(cfg, cfg.stage.init_from)  # the shipped MIGR reward set, keyword judge
    trainer = build_trainer(cfg)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        import wandb

        wandb.finish()

    steps = [row for row in wandb_history(tmp_path / "grpo") if "train/loss" in row]
    assert len(steps) == 2
    table = documented_grpo_keys()
    assert {"train/reward", "train/kl", "train/rows_without_reward", "train/clip_ratio/region_mean"} <= table
    rewards = {
        f"train/rewards/{name}/{stat}"
        for name in ("modality_order", "modality_grounding", "answer")
        for stat in REWARD_STATS
    }
    for row in steps:
        assert table - set(row) == set()
        assert rewards - set(row) == set()
    # the doc's per-reward rows name exactly these statistics
    assert {f"train/rewards/<name>/{stat}" for stat in REWARD_STATS} <= set(
        re.findall(r"`(train/rewards/<name>/[a-z]+)`", DOC)
    )
