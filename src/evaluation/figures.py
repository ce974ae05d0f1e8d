"""Every figure of an evaluation, computed from its records: what ``metrics.json`` holds.

All rates are fractions in [0, 1] (the report prints percentages); an undefined rate (no sample to divide by)
is None in JSON. Sections:

``recognition``   WAR, UAR, unknown-answer rate, per-class recall and support (paper Table 1 and 3); the
                  confusion matrix with an ``unknown`` column (:class:`src.metrics.RecognitionMetrics`).
``consistency``   EEA, EPC, FCR, R✗/A✓ over all samples and among correct ones, the judge's unknown rate
                  (paper eq. 6-8, Table 2; :class:`src.metrics.ConsistencyMetrics`), and the judge's own
                  confusion matrix against the truth.
``opening``       which segment explanations open with (visual / audio / think / answer / none): the first
                  *complete* tagged segment at the very start of the completion, as the order reward reads it
                  (:attr:`src.data.reasoning.ParsedCompletion.first_segment`); untagged or broken openings
                  count as ``none``.
``dominant_first`` for each source of the dominant modality (the manifest's ground-truth ``dominant`` and, when
                  present, a separately estimated ``mi_dominant``): the share of explanations that open with
                  that modality, over samples whose dominant modality is ``audio`` or ``visual`` (for ``both``
                  either opening is right, so those samples are listed per group but not in the share).
``format``        well-formed rate, truncation rate, mean completion length in tokens.
``concurrent``    the Surprise/Fear analysis of paper Tables 4 and 6 (:mod:`src.evaluation.concurrent`).
``attention``     drift, peaks and mean shares per MI group (:mod:`src.analysis.attention`; curves in
                  ``attention.json``).

The evaluation adds ``breakdowns`` (the endpoints per cell, per opening and over well-formed explanations only,
:mod:`src.evaluation.breakdowns`) and ``first_tag``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from src.analysis.attention import AttentionSummary, summarize_curves
from src.evaluation.anchoring import flat_anchoring
from src.evaluation.breakdowns import ENDPOINTS, flat_breakdowns
from src.evaluation.concurrent import concurrent_label_analysis
from src.evaluation.predictions import PredictionRecord
from src.evaluation.settings import ATTENTION_GROUPS
from src.metrics import UNKNOWN, ConsistencyMetrics, RecognitionMetrics

OPENINGS: tuple[str, ...] = ("visual", "audio", "think", "answer", "none")
MODALITIES: tuple[str, ...] = ("audio", "visual")


def compute_figures(
    records: Sequence[PredictionRecord],
    labels: Sequence[str],
    *,
    focus: Sequence[str] = ("surprise", "fear"),
    reference_correct: set[str] | None = None,
    attention: AttentionSummary | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` figures of ``records`` (see the module docstring).

    Args:
        labels: the dataset's label set, in class order.
        focus: classes the concurrent-label analysis highlights (paper: Surprise; only those in ``labels``).
        reference_correct: ids a reference model got right (restricts that analysis to them, as the paper's
            "ERV correct but MIGR not"); None analyses every miss.
        attention: the attention summary to include (its curves are left to ``attention.json``).
    """
    if not records:
        raise ValueError("no predictions to score: every sample of the selection was skipped or none was selected")
    preds = [r.prediction for r in records]
    targets = [r.label for r in records]
    judged_all = all(r.judge is not None for r in records)
    recognition = RecognitionMetrics(labels)
    recognition.update(preds, targets)
    rec = recognition.compute()
    support = Counter(targets)
    figures: dict[str, Any] = {
        "num_samples": len(records),
        "labels": list(labels),
        "recognition": {
            "war": rec["war"],
            "uar": rec["uar"],
            "unknown_rate": rec["unknown_rate"],
            "recall": {label: rec[f"recall/{label}"] for label in labels},
            "support": {label: support.get(label, 0) for label in labels},
        },
        "confusion": {
            "rows": list(labels),
            "columns": list(recognition.column_labels),
            "counts": recognition.confusion_matrix().tolist(),
        },
    }
    if judged_all:
        consistency = ConsistencyMetrics(labels)
        judged = [r.judged for r in records]
        consistency.update(preds, targets, judged)
        values = consistency.compute()
        values.pop("num_samples")
        figures["consistency"] = {**values, "judge": records[0].judge}
        judge_confusion = consistency.joint_counts().sum(dim=1)  # [C, C+1]: truth x judged
        figures["judge_confusion"] = {
            "rows": list(labels),
            "columns": [*labels, UNKNOWN],
            "counts": judge_confusion.tolist(),
        }
    else:
        figures["consistency"] = None
    figures["opening"] = opening_shares(records)
    figures["dominant_first"] = {
        "dominant": dominant_first([(r.dominant, r.first_segment) for r in records]),
        "mi_dominant": dominant_first([(r.mi_dominant, r.first_segment) for r in records]),
    }
    figures["format"] = {
        "well_formed": sum(r.well_formed for r in records) / len(records),
        "truncated": sum(r.truncated for r in records) / len(records),
        "mean_tokens": sum(r.num_tokens for r in records) / len(records),
    }
    figures["concurrent"] = concurrent_label_analysis(
        records, labels, focus=focus, reference_correct=reference_correct
    )
    if attention is not None:
        summary = attention.to_dict()
        summary.pop("curves")
        figures["attention"] = summary
    else:
        figures["attention"] = None
    return json_safe(figures)


def opening_shares(records: Sequence[PredictionRecord]) -> dict[str, Any]:
    """Counts and shares of the segment each explanation opens with (``none``: untagged or empty text)."""
    counts = Counter(r.first_segment or "none" for r in records)
    return {
        "counts": {name: counts.get(name, 0) for name in OPENINGS},
        "shares": {name: counts.get(name, 0) / len(records) for name in OPENINGS},
    }


def dominant_first(pairs: Sequence[tuple[str | None, str | None]]) -> dict[str, Any] | None:
    """Share of explanations opening with the dominant modality, from ``(dominant, first_segment)`` pairs.

    Returns None when no sample has a dominant modality. ``by_group[d]`` gives, for each dominant value
    ``d``, the sample count and the share opening with each modality.

    Example:
        >>> result = dominant_first([("audio", "audio"), ("visual", "audio"), ("both", "visual"), (None, "think")])
        >>> result["share"], result["n"], result["by_group"]["both"]["opens_visual"]
        (0.5, 2, 1.0)
    """
    known = [(dominant, first) for dominant, first in pairs if dominant is not None]
    if not known:
        return None
    scored = [(dominant, first) for dominant, first in known if dominant in MODALITIES]
    hits = sum(dominant == first for dominant, first in scored)
    groups: dict[str, Any] = {}
    for group in sorted({dominant for dominant, _ in known}):
        firsts = [first for dominant, first in known if dominant == group]
        groups[group] = {
            "n": len(firsts),
            **{f"opens_{modality}": firsts.count(modality) / len(firsts) for modality in MODALITIES},
        }
    return {"share": hits / len(scored) if scored else None, "n": len(scored), "by_group": groups}


def json_safe(value: Any) -> Any:
    """Recursively replace NaN/inf floats by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def attention_summary(
    records: Sequence[PredictionRecord], *, layer: int, bins: int, group_by: str = "dominant"
) -> AttentionSummary | None:
    """Per-group mean attention curves of the records that carry one.

    ``group_by="dominant"``: by the manifest's ground-truth ``dominant``, else the MI estimate ``mi_dominant``;
    ``"mi"``: by ``mi_dominant``, else ``dominant`` (the paper's Fig. 5 groups the DFEW test set by MI).
    """
    if group_by not in ATTENTION_GROUPS:
        raise ValueError(f"attention.group_by={group_by!r} must be one of {', '.join(ATTENTION_GROUPS)}")

    def group(record: PredictionRecord) -> str | None:
        first, second = (record.dominant, record.mi_dominant)[:: 1 if group_by == "dominant" else -1]
        return first if first is not None else second

    return summarize_curves(
        ((group(r), r.attention) for r in records if r.attention is not None), layer=layer, bins=bins
    )


def flat_figures(figures: Mapping[str, Any]) -> dict[str, float]:
    """The headline figures as one flat ``name -> value`` dict (W&B summary, comparison tables)."""
    flat: dict[str, float] = {}
    recognition = figures["recognition"]
    for key in ("war", "uar", "unknown_rate"):
        flat[key] = recognition[key]
    for label, value in recognition["recall"].items():
        flat[f"recall/{label}"] = value
    for key, value in (figures.get("consistency") or {}).items():
        if key != "judge":
            flat[key] = value
    dominant = (figures.get("dominant_first") or {}).get("dominant")
    if dominant is not None:
        flat["dominant_first"] = dominant["share"]
    mi = (figures.get("dominant_first") or {}).get("mi_dominant")
    if mi is not None:
        flat["mi_dominant_first"] = mi["share"]
    for name, value in figures["opening"]["shares"].items():
        flat[f"opening/{name}"] = value
    for key, value in figures["format"].items():
        flat[f"format/{key}"] = value
    attention = figures.get("attention")
    if attention is not None:
        for group, value in attention["drift"].items():
            flat[f"attention/drift/{group}"] = value
    for condition, summary in (figures.get("first_tag") or {}).items():  # src.analysis.first_tag
        for group, value in summary["by_dominant"].items():
            flat[f"first_tag/{condition}/{group}"] = value["mean"]
        flat[f"first_tag/{condition}/separation"] = summary["separation"]
    if figures.get("breakdowns") is not None:  # src.evaluation.breakdowns
        flat.update(flat_breakdowns(figures["breakdowns"]))
    if figures.get("anchoring") is not None:  # src.evaluation.anchoring
        flat.update(flat_anchoring(figures["anchoring"]))
    for name, result in (figures.get("judges") or {}).items():  # extra judges: judge/<name>/...
        overall = result["breakdowns"]["overall"]
        flat.update({f"judge/{name}/{key}": overall[key] for key in ENDPOINTS if overall[key] is not None})
        flat.update(flat_breakdowns(result["breakdowns"], prefix=f"judge/{name}/"))
    flat["num_samples"] = figures["num_samples"]
    return {key: value for key, value in flat.items() if value is not None}
