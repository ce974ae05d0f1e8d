"""Evaluating a model on a manifest: generation, judging, metrics, reports and plots (``python -m src.evaluate``).

Entry point: :func:`run_evaluation` (a composed ``configs/evaluate.yaml``, checked as an :class:`EvalConfig`).
The pieces are usable on their own: :func:`predict` (records from a model), :func:`judge_records`,
:func:`compute_figures` (``metrics.json``), :func:`render_report` / :func:`comparison_table` (markdown) and
:class:`PredictionStore` (``predictions.jsonl``).

Names are imported on first use, so reading an evaluation's outputs (reports, the notebook) does not load the
model stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalConfig": "src.evaluation.config",
    "EvaluationError": "src.evaluation.predictions",
    "PredictionRecord": "src.evaluation.predictions",
    "PredictionStore": "src.evaluation.predictions",
    "compute_figures": "src.evaluation.figures",
    "flat_figures": "src.evaluation.figures",
    "judge_records": "src.evaluation.judging",
    "comparison_table": "src.evaluation.report",
    "render_report": "src.evaluation.report",
    "GenerationSettings": "src.evaluation.predict",
    "predict": "src.evaluation.predict",
    "EvaluationResult": "src.evaluation.runner",
    "run_evaluation": "src.evaluation.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'src.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
