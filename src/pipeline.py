"""The whole method end to end, MIGR vs the visual-first baseline: ``python -m src.pipeline`` (``make demo``).

corpus -> ``base`` warm-up (label-only, modality dropout) -> MIGR build (FAU + Modality Importance +
reordering) -> per arm: SFT -> GRPO -> evaluation -> the result table (``results.md``). Stages whose output
exists are skipped; see :mod:`src.demo.pipeline` and ``configs/pipeline.yaml``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from src.demo.pipeline import run_pipeline


@hydra.main(config_path="../configs", config_name="pipeline", version_base="1.3")
def main(cfg: DictConfig) -> None:
    table = run_pipeline(cfg)
    print(table)


if __name__ == "__main__":
    main()
