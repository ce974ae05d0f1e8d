"""Emotion recognition metrics: WAR, UAR, per-class recall and the confusion matrix, as one torchmetrics Metric.

Everything derives from one state, a ``[C, C+1]`` confusion matrix of counts (rows: true class, columns:
predicted class, the extra last column "unknown" for answers that could not be parsed into a label). It is
summed across processes, so the figures are exact under DDP, and two metrics merge by adding their matrices.

Definitions (paper eq. 4-5; fractions in [0, 1], not percentages):

- WAR (weighted average recall) = accuracy = trace / number of samples; an unknown answer is wrong.
- UAR (unweighted average recall) = mean of the per-class recalls over the classes *present in the targets*
  (a class with no sample has no recall). This is scikit-learn's ``balanced_accuracy_score``; with every
  class present it is the paper's 1/C sum over all classes.
- recall of class c = correct c / samples of class c; NaN for a class absent from the targets.

Example:
    >>> metric = RecognitionMetrics(["happy", "sad", "angry"])
    >>> metric.update(["happy", None, "sad", "sad"], ["happy", "sad", "sad", "angry"])
    >>> {name: round(value, 3) for name, value in metric.compute().items()}
    {'war': 0.5, 'uar': 0.5, 'unknown_rate': 0.25, 'num_samples': 4.0, 'recall/happy': 1.0, 'recall/sad': 0.5, 'recall/angry': 0.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from src.metrics.label_counts import (
    UNKNOWN,
    check_label_set,
    check_same_labels,
    fraction,
    label_indices,
    synced_state,
)


class RecognitionMetrics(Metric):
    """WAR, UAR, per-class recall and a ``[C, C+1]`` confusion matrix over predicted label strings.

    Args:
        labels: the dataset's label set in class-index order, e.g. ``labels_for("dfew")``; row/column ``i``
            of the confusion matrix is ``labels[i]``, the last column is ``"unknown"``.
        **kwargs: forwarded to :class:`torchmetrics.Metric` (``sync_on_compute``, ``process_group``, ...).

    ``update(preds, targets)`` takes canonical labels (map free text with
    :func:`src.data.labels.normalize_label` first); a prediction may be None (unparseable, counted as wrong in
    the "unknown" column), a target may not. ``compute()`` returns a flat dict of floats: ``war``, ``uar``,
    ``unknown_rate``, ``num_samples`` and ``recall/<label>`` for every label. Calling the metric
    (``metric(preds, targets)``) returns the figures of that batch alone and accumulates it.

    In a LightningModule: ``update`` in each step, ``self.log_dict(metric.compute())`` and ``metric.reset()``
    at epoch end (``compute`` sums the counts of every rank first).
    """

    is_differentiable = False
    higher_is_better = None  # mixed: most figures are better high, unknown_rate is better low
    full_state_update = False

    confusion: Tensor

    def __init__(self, labels: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.labels: tuple[str, ...] = check_label_set(labels)
        num_classes = len(self.labels)
        self.add_state(
            "confusion", default=torch.zeros(num_classes, num_classes + 1, dtype=torch.long), dist_reduce_fx="sum"
        )

    @property
    def column_labels(self) -> tuple[str, ...]:
        """Names of the confusion matrix columns: the labels, then ``"unknown"``."""
        return (*self.labels, UNKNOWN)

    def update(self, preds: Sequence[str | None], targets: Sequence[str]) -> None:
        """Count one batch: ``preds[i]`` (a label or None) against ``targets[i]`` (a label)."""
        if len(preds) != len(targets):
            raise ValueError(f"got {len(preds)} predictions for {len(targets)} targets; they must pair up")
        num_classes = len(self.labels)
        true_index = label_indices(targets, self.labels, role="target", allow_none=False)
        pred_index = label_indices(preds, self.labels, role="prediction", allow_none=True)
        cell = true_index * (num_classes + 1) + pred_index  # [S], flat index into [C, C+1]
        counts = torch.bincount(cell.to(self.confusion.device), minlength=num_classes * (num_classes + 1))
        self.confusion += counts.view(num_classes, num_classes + 1)

    def compute(self) -> dict[str, float]:
        """WAR, UAR, unknown rate, sample count and per-class recalls (fractions; NaN when undefined)."""
        confusion = self.confusion.double()
        num_classes = len(self.labels)
        support = confusion.sum(dim=1)  # [C] samples per true class
        correct = confusion[:, :num_classes].diagonal()  # [C]
        total = support.sum()
        recall = correct / support  # [C], NaN (0/0) for absent classes
        present = support > 0
        results = {
            "war": fraction(correct.sum(), total),
            "uar": recall[present].mean().item() if bool(present.any()) else float("nan"),
            "unknown_rate": fraction(confusion[:, num_classes].sum(), total),
            "num_samples": total.item(),
        }
        results.update({f"recall/{label}": value for label, value in zip(self.labels, recall.tolist())})
        return results

    def confusion_matrix(self, normalize: bool = False) -> Tensor:
        """The ``[C, C+1]`` count matrix (synchronised across processes); ``normalize`` divides each row by its
        total, so row ``c`` holds where samples of class ``c`` went (a row with no samples is all NaN)."""
        matrix = synced_state(self, "confusion")
        if not normalize:
            return matrix
        matrix = matrix.double()
        return matrix / matrix.sum(dim=1, keepdim=True)

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Add another instance's (or a state dict's) counts; both must use the same labels in the same order."""
        check_same_labels(self, incoming_state)
        super().merge_state(incoming_state)
