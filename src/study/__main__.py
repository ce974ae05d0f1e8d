"""The preregistered study (docs/study_protocol.md) in one command: ``python -m src.study`` (configs/study.yaml).

Over the configured training seeds, on each corpus regime, every arm (visual-first baseline, MIGR, MIGR-oracle,
MIGR without FAU copies, MIGR + consistency reward on the conflict regime; baseline and MIGR on today's), with
shared stages built once and every finished stage skipped on a rerun; writes ``<out_dir>/study.md`` and
``forest.png``. ``shrink=true`` is the CI-sized study.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from src.study.runner import run_study


@hydra.main(config_path="../../configs", config_name="study", version_base="1.3")
def main(cfg: DictConfig) -> None:
    print(run_study(cfg))


if __name__ == "__main__":
    main()
