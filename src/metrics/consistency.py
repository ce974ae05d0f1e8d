"""Explanation consistency metrics (paper eq. 6-8 and Table 2) as one torchmetrics Metric.

For sample ``i`` let ``y`` be the true emotion, ``ŷ`` the model's answer and ``e`` the emotion a judge reads
in the explanation (the reasoning segments only, as ERV and the paper do). Over ``S`` samples, as fractions
in [0, 1]:

- EEA (explanation emotion accuracy)        = mean 1[e = y]
- EPC (explanation-prediction consistency)  = mean 1[e = ŷ]
- FCR (faithful consistency rate)           = mean 1[e = y and ŷ = y]
- R✗/A✓ over all samples                    = mean 1[ŷ = y and e ≠ y]      (= WAR - FCR)
- R✗/A✓ among correct predictions           = #[ŷ = y and e ≠ y] / #[ŷ = y]

An answer that could not be parsed (``ŷ`` None) or an explanation the judge could not place (``e`` None)
matches nothing: None = None does not count towards EPC. The paper's DFEW figures obey the identity above:
MIGR's WAR 73.93 - FCR 68.48 = 5.45 = its R✗/A✓ over all samples, and 5.45 / 73.93 = 7.37 among correct.

The single state is the joint count tensor ``[C, C+1, C+1]`` (true x predicted x judged, the last slot of
the last two axes meaning "none"), summed across processes, so every figure is exact under DDP and further
breakdowns (e.g. which emotion the explanations drift to) can be read off :meth:`ConsistencyMetrics.joint_counts`.

Example:
    >>> metric = ConsistencyMetrics(["happy", "sad"])
    >>> metric.update(preds=["happy", "happy", None], targets=["happy", "happy", "sad"], judged=["happy", "sad", "sad"])
    >>> {name: round(value, 3) for name, value in metric.compute().items()}
    {'eea': 0.667, 'epc': 0.333, 'fcr': 0.333, 'r_wrong_a_right': 0.333, 'r_wrong_a_right_among_correct': 0.5, 'judge_unknown_rate': 0.0, 'num_samples': 3.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from src.metrics.label_counts import check_label_set, check_same_labels, fraction, label_indices, synced_state


class ConsistencyMetrics(Metric):
    """EEA, EPC, FCR and the reasoning-wrong/answer-right rates of the paper's Tables 1-2.

    Args:
        labels: the dataset's label set in class-index order, e.g. ``labels_for("dfew")``.
        **kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``update(preds, targets, judged)`` takes, per sample, the predicted label (or None when unparseable),
    the true label, and the judge's label for the explanation (or None when the judge found no emotion), all
    canonical labels (see :func:`src.data.labels.normalize_label`). ``compute()`` returns a flat dict of
    floats in [0, 1]: ``eea``, ``epc``, ``fcr``, ``r_wrong_a_right``, ``r_wrong_a_right_among_correct`` (NaN
    when no prediction is correct), ``judge_unknown_rate`` and ``num_samples``.
    """

    is_differentiable = False
    higher_is_better = None  # mixed: most figures are better high, r_wrong_a_right is better low
    full_state_update = False

    joint: Tensor

    def __init__(self, labels: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.labels: tuple[str, ...] = check_label_set(labels)
        slots = len(self.labels) + 1
        self.add_state(
            "joint", default=torch.zeros(slots - 1, slots, slots, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Sequence[str | None], targets: Sequence[str], judged: Sequence[str | None]) -> None:
        """Count one batch of (prediction, truth, judged explanation emotion) triples."""
        if not len(preds) == len(targets) == len(judged):
            raise ValueError(
                f"preds, targets and judged must pair up; got {len(preds)}, {len(targets)} and {len(judged)} values"
            )
        slots = len(self.labels) + 1
        y = label_indices(targets, self.labels, role="target", allow_none=False)
        y_hat = label_indices(preds, self.labels, role="prediction", allow_none=True)
        e = label_indices(judged, self.labels, role="judged explanation emotion", allow_none=True)
        cell = (y * slots + y_hat) * slots + e  # [S], flat index into [C, C+1, C+1]
        counts = torch.bincount(cell.to(self.joint.device), minlength=(slots - 1) * slots * slots)
        self.joint += counts.view(slots - 1, slots, slots)

    def compute(self) -> dict[str, float]:
        """The consistency figures as fractions (NaN when their denominator is 0)."""
        joint = self.joint.double()  # [C, C+1, C+1]: true, predicted, judged
        num_classes = len(self.labels)
        classes = torch.arange(num_classes, device=joint.device)
        total = joint.sum()
        explanation_right = joint[classes, :, classes].sum()  # e = y
        # e = ŷ with both real labels: the "none" slots never match each other.
        explanation_matches_answer = joint[:, classes, classes].sum()
        faithful = joint[classes, classes, classes].sum()  # e = y and ŷ = y
        answer_right = joint[classes, classes, :].sum()  # ŷ = y
        right_for_wrong_reasons = answer_right - faithful  # ŷ = y and e ≠ y
        return {
            "eea": fraction(explanation_right, total),
            "epc": fraction(explanation_matches_answer, total),
            "fcr": fraction(faithful, total),
            "r_wrong_a_right": fraction(right_for_wrong_reasons, total),
            "r_wrong_a_right_among_correct": fraction(right_for_wrong_reasons, answer_right),
            "judge_unknown_rate": fraction(joint[:, :, num_classes].sum(), total),
            "num_samples": total.item(),
        }

    def joint_counts(self) -> Tensor:
        """The ``[C, C+1, C+1]`` counts (true x predicted x judged; last slot = None), synchronised across
        processes. ``joint_counts().sum(1)`` is the judge's confusion matrix against the truth."""
        return synced_state(self, "joint")

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Add another instance's (or a state dict's) counts; both must use the same labels in the same order."""
        check_same_labels(self, incoming_state)
        super().merge_state(incoming_state)
