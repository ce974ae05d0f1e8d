"""RecognitionMetrics against scikit-learn, by hand, and merged across instances as DDP would."""

from __future__ import annotations

import doctest
import math
import random

import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

import src.metrics.recognition
from src.data.labels import labels_for
from src.metrics import RecognitionMetrics

LABELS = labels_for("dfew")


def _random_predictions(
    seed: int, size: int, target_labels: tuple[str, ...] = LABELS
) -> tuple[list[str | None], list[str]]:
    """Targets drawn from ``target_labels``; predictions right 40% of the time, otherwise any label or None."""
    rng = random.Random(seed)
    targets = [rng.choice(target_labels) for _ in range(size)]
    preds: list[str | None] = [target if rng.random() < 0.4 else rng.choice([*LABELS, None]) for target in targets]
    return preds, targets


@pytest.mark.parametrize(
    ("seed", "target_labels"),
    [
        (0, LABELS),
        (1, LABELS),
        (2, LABELS[:5]),  # "disgust" and "fear" absent from the targets (but still predicted)
    ],
)
def test_agrees_with_scikit_learn(seed: int, target_labels: tuple[str, ...]) -> None:
    preds, targets = _random_predictions(seed, 300, target_labels)
    metric = RecognitionMetrics(LABELS)
    for start in range(0, 300, 64):  # several batches, uneven last one
        metric.update(preds[start : start + 64], targets[start : start + 64])
    results = metric.compute()

    sk_preds = ["unknown" if pred is None else pred for pred in preds]  # an unparseable answer is wrong
    present = [label for label in LABELS if label in targets]
    assert results["war"] == pytest.approx(accuracy_score(targets, sk_preds))
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected_uar = balanced_accuracy_score(targets, sk_preds)
    assert results["uar"] == pytest.approx(expected_uar)
    expected_recall = recall_score(targets, sk_preds, labels=present, average=None)
    for label, recall in zip(present, expected_recall):
        assert results[f"recall/{label}"] == pytest.approx(recall), label
    for label in set(LABELS) - set(present):
        assert math.isnan(results[f"recall/{label}"])  # no sample: recall undefined
    expected_matrix = confusion_matrix(targets, sk_preds, labels=[*LABELS, "unknown"])[: len(LABELS)]
    assert metric.confusion_matrix().tolist() == expected_matrix.tolist()
    assert results["unknown_rate"] == pytest.approx(preds.count(None) / 300)
    assert results["num_samples"] == 300


def test_hand_computed() -> None:
    metric = RecognitionMetrics(["happy", "sad", "angry"])
    metric.update(
        ["happy", "happy", None, "sad", "angry", "sad"],
        ["happy", "happy", "sad", "sad", "sad", "angry"],
    )
    # happy 2/2, sad 1/3 (one unparseable, one taken for angry), angry 0/1
    results = metric.compute()
    assert results["war"] == pytest.approx(3 / 6)
    assert results["uar"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert results["recall/sad"] == pytest.approx(1 / 3)
    assert results["unknown_rate"] == pytest.approx(1 / 6)
    assert metric.column_labels == ("happy", "sad", "angry", "unknown")
    assert metric.confusion_matrix().tolist() == [[2, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0]]
    normalized = metric.confusion_matrix(normalize=True)
    torch.testing.assert_close(normalized.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert normalized[1].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])


def test_merged_halves_equal_one_pass() -> None:
    preds, targets = _random_predictions(3, 101)
    whole = RecognitionMetrics(LABELS)
    whole.update(preds, targets)
    rank0, rank1 = RecognitionMetrics(LABELS), RecognitionMetrics(LABELS)
    rank0.update(preds[:50], targets[:50])
    rank1.update(preds[50:], targets[50:])
    rank0.merge_state(rank1)  # what the "sum" reduction does across DDP ranks
    assert rank0.confusion_matrix().tolist() == whole.confusion_matrix().tolist()
    assert rank0.compute() == whole.compute()


def test_calling_returns_the_batch_figures_and_accumulates() -> None:
    metric = RecognitionMetrics(["happy", "sad"])
    first = metric(["happy", None], ["happy", "sad"])
    second = metric(["sad"], ["sad"])
    assert (first["war"], second["war"]) == (0.5, 1.0)  # each batch on its own
    assert metric.compute()["war"] == pytest.approx(2 / 3)  # both batches


def test_reset_clears_counts() -> None:
    metric = RecognitionMetrics(LABELS)
    metric.update(["happy"], ["happy"])
    metric.reset()
    assert metric.confusion_matrix().sum() == 0


def test_empty_metric_gives_nan_rates() -> None:
    metric = RecognitionMetrics(LABELS)
    with pytest.warns(UserWarning, match="compute.* was called before"):
        results = metric.compute()
    assert math.isnan(results["war"]) and math.isnan(results["uar"])
    assert results["num_samples"] == 0


@pytest.mark.parametrize(
    ("preds", "targets", "message"),
    [
        (["Happy"], ["happy"], r"prediction 'Happy' at position 0 is not one of the labels or None"),
        (["anger"], ["happy"], "normalize_label"),  # MAFW's word against DFEW labels
        (["happy"], [None], "target None at position 0 is not one of the labels"),
        (["happy", "sad"], ["happy"], "got 2 predictions for 1 targets"),
    ],
)
def test_bad_inputs_are_named(preds: list, targets: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecognitionMetrics(LABELS).update(preds, targets)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "non-empty sequence of strings"),
        (["happy", "happy"], r"repeated: \['happy'\]"),
        (["happy", "unknown"], "'unknown' is reserved"),
    ],
)
def test_bad_label_sets(labels: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecognitionMetrics(labels)


def test_merging_different_label_orders_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot merge RecognitionMetrics over labels"):
        RecognitionMetrics(["happy", "sad"]).merge_state(RecognitionMetrics(["sad", "happy"]))


def test_module_example_runs() -> None:
    result = doctest.testmod(src.metrics.recognition)
    assert result.attempted > 0 and result.failed == 0
