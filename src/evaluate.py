"""Evaluate a model: ``python -m src.evaluate [overrides]`` (see ``configs/evaluate.yaml``).

Composes the config with Hydra and hands it to :func:`src.evaluation.runner.run_evaluation`, which generates
(resumably), judges, scores and writes ``metrics.json``, ``predictions.jsonl``, ``report.md`` and the plots.
With no arguments it evaluates the latest exported model under ``$MIGR_RUNS`` (``runs``) on the synthetic test
split.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from src.folder_lock import printable


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from src.evaluation.config import EvalConfig

    # every setting checked before the evaluation stack (torch, transformers, torchmetrics) is imported: `--help`,
    # a misspelled key and a bad value answer without their import time
    config = EvalConfig.from_config(cfg)
    from src.evaluation.runner import run_evaluation

    result = run_evaluation(config)
    print(
        f"evaluation written to {printable(result.output_dir)} (report.md, metrics.json, predictions.jsonl, plots)"
    )


if __name__ == "__main__":
    main()
