"""Logging an evaluation to Weights & Biases (``logger=wandb``), in the layout of ``docs/dashboards.md``.

Everything logged here also exists as files in the evaluation folder; W&B is a view. Offline by default
(``logger.offline=true``: the run is written under ``<output_dir>/wandb`` and can be uploaded later with
``wandb sync``); online runs read ``WANDB_API_KEY`` from the environment (never from a config, never logged).

Keys of an eval run (``job_type="eval"``, name ``eval-<model>-<split>``):

=============================  ================================================================================
``eval/<figure>``              every headline figure (``eval/war``, ``eval/epc``, ``eval/recall/fear``,
                               ``eval/dominant_first``, ``eval/attention/drift/audio``, ...), also in the summary
``eval/metrics``               table (figure, value) of the same figures
``eval/recall``                table (label, recall, support)
``eval/confusion``             image of ``confusion.png``
``eval/recall_plot``           image of ``recall.png``
``eval/attention``             image of ``attention.png``
``eval/attention_curves``      table (group, bin, visual, audio, text): the Fig. 5 curves, plottable in the UI
``eval/predictions``           table of up to ``logger.max_prediction_rows`` samples (id, label, prediction,
                               judged, first segment, dominant, completion)
=============================  ================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from src.evaluation.predictions import PredictionRecord

PREDICTION_COLUMNS = ("id", "label", "prediction", "judged", "first_segment", "dominant", "completion")


def log_to_wandb(
    logger: Mapping[str, Any],
    *,
    output_dir: Path,
    run_name: str,
    config: Mapping[str, Any],
    flat: Mapping[str, float],
    figures: Mapping[str, Any],
    attention: Mapping[str, Any] | None,
    records: Sequence[PredictionRecord],
    images: Mapping[str, Path],
) -> Path | None:
    """Log one evaluation when ``logger.kind`` is ``wandb``; returns the local run folder (None otherwise)."""
    if logger.get("kind", "none") != "wandb":
        return None
    import wandb

    save_dir = output_dir / "wandb"
    save_dir.mkdir(parents=True, exist_ok=True)
    mode = "offline" if logger.get("offline", True) else os.environ.get("WANDB_MODE", "online")
    run = wandb.init(
        project=logger.get("project", "migr"),
        entity=logger.get("entity"),
        name=run_name,
        job_type="eval",
        dir=str(output_dir),
        config=dict(config),
        tags=list(logger.get("tags") or []),
        mode=mode,
        reinit="finish_previous",
    )
    try:
        payload: dict[str, Any] = {f"eval/{key}": value for key, value in flat.items()}
        payload["eval/metrics"] = wandb.Table(columns=["figure", "value"], data=[[k, v] for k, v in flat.items()])
        recognition = figures["recognition"]
        payload["eval/recall"] = wandb.Table(
            columns=["label", "recall", "support"],
            data=[
                [label, recognition["recall"][label], recognition["support"][label]]
                for label in recognition["recall"]
            ],
        )
        for key, path in images.items():
            payload[f"eval/{key}"] = wandb.Image(str(path))
        if attention is not None:
            rows = [
                [group, index, curves["visual"][index], curves["audio"][index], curves["text"][index]]
                for group, curves in attention["curves"].items()
                for index in range(len(curves["text"]))
            ]
            payload["eval/attention_curves"] = wandb.Table(
                columns=["group", "bin", "visual", "audio", "text"], data=rows
            )
        limit = int(logger.get("max_prediction_rows", 200))
        payload["eval/predictions"] = wandb.Table(
            columns=list(PREDICTION_COLUMNS),
            data=[[getattr(record, column) for column in PREDICTION_COLUMNS] for record in records[:limit]],
        )
        run.log(payload)
        run.summary.update({f"eval/{key}": value for key, value in flat.items()})
        folder = Path(run.dir).parent
    finally:
        run.finish()
    return folder
