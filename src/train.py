"""Train one stage: ``python -m src.train stage=base|sft|grpo [overrides]``.

Composes ``configs/train.yaml`` with Hydra, checks what can be checked cheaply (reward names, before torch is
even imported), then :func:`src.stages.runner.run_stage` builds the data, the LightningModule, the strategy and
the loggers and fits; the stage ends by exporting a loadable model folder to ``export_dir``. See the README for
the config groups and common commands.
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig


def check_rewards(cfg: DictConfig) -> None:
    """Fail fast on a reward name the registry does not know (with a "Did you mean" suggestion)."""
    if cfg.stage.get("module") != "grpo":
        return
    from src.registry import default_registry

    registry = default_registry()
    for name in cfg.rewards.functions:
        registry.entry(str(name))


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    check_rewards(cfg)
    from src.stages.runner import run_stage

    export = run_stage(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"exported: {export}")


if __name__ == "__main__":
    main()
