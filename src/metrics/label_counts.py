"""Counting labelled outcomes in torchmetrics states: label sets, label -> class index, synchronised reads.

Shared by :mod:`src.metrics.recognition` and :mod:`src.metrics.consistency`, whose states are count tensors
indexed by class, with one extra "unknown" slot for a missing (None) label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

UNKNOWN = "unknown"


def check_label_set(labels: Sequence[str]) -> tuple[str, ...]:
    """``labels`` as a tuple, after checking it is a non-empty set of distinct strings other than "unknown"."""
    labels = tuple(labels)
    if not labels or not all(isinstance(label, str) for label in labels):
        raise ValueError(f"labels must be a non-empty sequence of strings, got {labels!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"labels must be distinct; repeated: {duplicates}")
    if UNKNOWN in labels:
        raise ValueError(f"{UNKNOWN!r} is reserved for unparseable answers and cannot be a label")
    return labels


def label_indices(values: Sequence[str | None], labels: tuple[str, ...], *, role: str, allow_none: bool) -> Tensor:
    """Class indices ``[S]`` (long) of ``values``; None maps to ``len(labels)`` (the unknown slot) if allowed.

    Raises a ValueError naming the position and the value for anything outside ``labels``: counting such a
    value as "unknown" would hide a label-set mismatch (e.g. MAFW's "anger" against DFEW's "angry").
    """
    position = {label: index for index, label in enumerate(labels)}
    indices = []
    for i, value in enumerate(values):
        if value is None and allow_none:
            indices.append(len(labels))
            continue
        index = position.get(value) if isinstance(value, str) else None
        if index is None:
            accepted = "one of the labels or None" if allow_none else "one of the labels"
            raise ValueError(
                f"{role} {value!r} at position {i} is not {accepted} {list(labels)}; map free text onto the "
                "label set with src.data.labels.normalize_label first"
            )
        indices.append(index)
    return torch.tensor(indices, dtype=torch.long)


def synced_state(metric: Metric, name: str) -> Tensor:
    """A copy of state ``name`` reduced across processes the way ``compute()`` sees it; local state untouched."""
    with metric.sync_context(
        dist_sync_fn=metric.dist_sync_fn,
        should_sync=metric._to_sync,  # honours the metric's sync_on_compute, as compute() does
        should_unsync=True,
    ):
        return getattr(metric, name).clone()


def check_same_labels(metric: Metric, incoming_state: dict[str, Any] | Metric) -> None:
    """Refuse to merge metrics over different label sets (same size, other order would mix classes silently)."""
    incoming_labels = getattr(incoming_state, "labels", None)
    if isinstance(incoming_state, Metric) and incoming_labels != metric.labels:  # type: ignore[attr-defined]
        raise ValueError(
            f"cannot merge {type(metric).__name__} over labels {metric.labels} "  # type: ignore[attr-defined]
            f"with one over {incoming_labels}"
        )


def fraction(numerator: Tensor, denominator: Tensor) -> float:
    """``numerator / denominator`` as a float, NaN when the denominator is 0 (an undefined rate)."""
    return (numerator / denominator).item() if denominator > 0 else float("nan")
