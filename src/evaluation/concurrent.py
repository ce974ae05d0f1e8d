"""Misses read against concurrent labels: the Surprise/Fear analysis of the paper's Tables 4 and 6.

DFEW keeps, beside each clip's single label, the other emotions its annotators voted for (``secondary_labels``
in our manifests). The paper asks of the Surprise clips MIGR gets wrong: what did it predict instead (Table 4,
left), how often does the explanation still carry Surprise among the judge's top-2 emotions (Table 4, right),
and which concurrent emotions did annotators record for them (Table 6)? A miss whose prediction annotators also
voted for is an ambiguity of the clip rather than a plain error.

Here the same questions are asked of every class (the report highlights the ``focus`` classes):

- ``overall``: misses (wrong or unparseable answers) and the share whose prediction is among the sample's
  secondary labels;
- ``by_class[c]``: for the misses of true class ``c`` -- the predicted-label distribution (``unknown`` for
  unparseable answers), the concurrent-label distribution (how many of these misses list each label), the share
  whose prediction is a concurrent label, and the share whose explanation keeps ``c`` in the judge's top-2
  (None when the judge gives single labels only).

With ``reference_correct`` (the ids another model got right) the misses are restricted to those samples, the
paper's "ERV correct but MIGR not". Nothing here runs when no sample has secondary labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from src.evaluation.predictions import EvaluationError, PredictionRecord, PredictionStore
from src.metrics import UNKNOWN


def concurrent_label_analysis(
    records: Sequence[PredictionRecord],
    labels: Sequence[str],
    *,
    focus: Sequence[str] = ("surprise", "fear"),
    reference_correct: set[str] | None = None,
) -> dict[str, Any] | None:
    """The analysis described in the module docstring, or None when no record has secondary labels.

    Example:
        >>> from src.evaluation.predictions import PredictionRecord as R
        >>> def r(i, label, pred, secondary): return R(id=i, dataset="dfew", label=label, completion="",
        ...     answer=pred, prediction=pred, first_segment=None, well_formed=False, num_tokens=0,
        ...     truncated=False, secondary_labels=secondary)
        >>> out = concurrent_label_analysis([r("a", "surprise", "fear", ["fear", "neutral"]),
        ...     r("b", "surprise", "neutral", ["fear"]), r("c", "surprise", "surprise", [])], ["surprise", "fear", "neutral"])
        >>> out["by_class"]["surprise"]["predicted"], out["by_class"]["surprise"]["prediction_in_secondary"]
        ({'surprise': 0, 'fear': 1, 'neutral': 1, 'unknown': 0}, 0.5)
        >>> out["by_class"]["surprise"]["secondary"]
        {'surprise': 0, 'fear': 2, 'neutral': 1}
    """
    if not any(record.secondary_labels for record in records):
        return None
    misses = [r for r in records if r.prediction != r.label]
    if reference_correct is not None:
        misses = [r for r in misses if r.id in reference_correct]
    in_secondary = [r for r in misses if r.prediction is not None and r.prediction in r.secondary_labels]
    by_class: dict[str, Any] = {}
    for label in labels:
        missed = [r for r in misses if r.label == label]
        if not missed:
            continue
        predicted = Counter(r.prediction if r.prediction is not None else UNKNOWN for r in missed)
        concurrent = Counter(other for r in missed for other in set(r.secondary_labels))
        with_sets = [r for r in missed if r.judged_set is not None]
        kept = sum(label in r.judged_set for r in with_sets)  # type: ignore[operator]
        by_class[label] = {
            "misses": len(missed),
            "predicted": {name: predicted.get(name, 0) for name in (*labels, UNKNOWN)},
            "secondary": {name: concurrent.get(name, 0) for name in labels},
            "with_secondary": sum(1 for r in missed if r.secondary_labels),
            "prediction_in_secondary": sum(
                1 for r in missed if r.prediction is not None and r.prediction in r.secondary_labels
            )
            / len(missed),
            "true_in_judged_top2": kept / len(with_sets) if with_sets else None,
        }
    return {
        "restricted_to_reference_correct": reference_correct is not None,
        "samples_with_secondary": sum(1 for r in records if r.secondary_labels),
        "overall": {
            "misses": len(misses),
            "prediction_in_secondary": len(in_secondary) / len(misses) if misses else None,
        },
        "focus": [label for label in focus if label in labels],
        "by_class": by_class,
    }


def reference_correct_ids(path: str | None) -> set[str] | None:
    """Ids a reference model predicted right, from its ``predictions.jsonl`` (None when no path is given)."""
    if not path:
        return None
    records = PredictionStore(path).load().records
    if not records:
        raise EvaluationError(f"concurrent.reference_predictions={path!r}: no predictions found there")
    return {record.id for record in records if record.prediction == record.label}
