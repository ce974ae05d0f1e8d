"""ConsistencyMetrics (EEA, EPC, FCR, R-wrong/A-right) by hand, against scikit-learn, and merged as DDP would."""

from __future__ import annotations

import doctest
import math
import random

import pytest
from sklearn.metrics import accuracy_score

import src.metrics.consistency
from src.data.labels import labels_for
from src.metrics import ConsistencyMetrics, RecognitionMetrics

LABELS = labels_for("dfew")

# (prediction, truth, judged explanation emotion)
CASES: list[tuple[str | None, str, str | None]] = [
    ("happy", "happy", "happy"),  # faithful: everything agrees              EEA EPC FCR
    ("happy", "happy", "sad"),  # right answer, wrong reasons (R✗/A✓)
    ("sad", "happy", "sad"),  # wrong answer, explanation follows it           EPC
    ("sad", "happy", "happy"),  # explanation right, answer drifted away     EEA
    (None, "angry", "angry"),  # unparseable answer, explanation right      EEA
    (None, "angry", None),  # nothing to compare: None never matches None
    ("angry", "angry", None),  # right answer, judge found no emotion (R✗/A✓)
    ("fear", "surprise", "disgust"),  # all three disagree
]


def _update(metric: ConsistencyMetrics, cases: list[tuple[str | None, str, str | None]]) -> None:
    preds, targets, judged = zip(*cases)
    metric.update(preds=list(preds), targets=list(targets), judged=list(judged))


def test_hand_computed_cases() -> None:
    metric = ConsistencyMetrics(LABELS)
    _update(metric, CASES)
    results = metric.compute()
    assert results["eea"] == pytest.approx(3 / 8)
    assert results["epc"] == pytest.approx(2 / 8)
    assert results["fcr"] == pytest.approx(1 / 8)
    assert results["r_wrong_a_right"] == pytest.approx(2 / 8)
    assert results["r_wrong_a_right_among_correct"] == pytest.approx(2 / 3)  # 3 correct answers, 2 unfaithful
    assert results["judge_unknown_rate"] == pytest.approx(2 / 8)
    assert results["num_samples"] == 8


def test_among_correct_is_nan_without_correct_answers() -> None:
    metric = ConsistencyMetrics(LABELS)
    _update(metric, [("sad", "happy", "happy")])
    assert math.isnan(metric.compute()["r_wrong_a_right_among_correct"])
    assert metric.compute()["r_wrong_a_right"] == 0.0


def _random_cases(seed: int, size: int) -> list[tuple[str | None, str, str | None]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(size):
        truth = rng.choice(LABELS)
        pred = truth if rng.random() < 0.6 else rng.choice([*LABELS, None])
        judged = rng.choice([truth, pred, rng.choice([*LABELS, None])])
        cases.append((pred, truth, judged))
    return cases


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_scikit_learn_and_the_paper_identities(seed: int) -> None:
    cases = _random_cases(seed, 400)
    consistency, recognition = ConsistencyMetrics(LABELS), RecognitionMetrics(LABELS)
    _update(consistency, cases[:150])
    _update(consistency, cases[150:])
    preds, targets, judged = (list(column) for column in zip(*cases))
    recognition.update(preds, targets)
    results, war = consistency.compute(), recognition.compute()["war"]

    # A None prediction and a None judgement must not match each other: give them distinct sentinels.
    sk_preds = ["<no answer>" if pred is None else pred for pred in preds]
    sk_judged = ["<no emotion>" if label is None else label for label in judged]
    assert results["eea"] == pytest.approx(accuracy_score(targets, sk_judged))
    assert results["epc"] == pytest.approx(accuracy_score(sk_preds, sk_judged))
    both_right = [p == t and e == t for p, t, e in zip(preds, targets, judged)]
    assert results["fcr"] == pytest.approx(sum(both_right) / 400)
    # Paper Table 2 identities (MIGR DFEW: 73.93 - 68.48 = 5.45; 5.45 / 73.93 = 7.37%)
    assert results["r_wrong_a_right"] == pytest.approx(war - results["fcr"])
    assert results["r_wrong_a_right_among_correct"] == pytest.approx(results["r_wrong_a_right"] / war)


def test_joint_counts_hold_every_sample() -> None:
    metric = ConsistencyMetrics(LABELS)
    _update(metric, CASES)
    joint = metric.joint_counts()
    slots = len(LABELS) + 1
    assert tuple(joint.shape) == (len(LABELS), slots, slots)
    assert joint.sum() == len(CASES)
    happy, sad, none = LABELS.index("happy"), LABELS.index("sad"), len(LABELS)
    assert joint[happy, happy, sad] == 1  # the right-for-wrong-reasons case
    assert joint[LABELS.index("angry"), none, none] == 1  # the nothing-to-compare case


def test_merged_halves_equal_one_pass() -> None:
    cases = _random_cases(2, 99)
    whole, rank0, rank1 = ConsistencyMetrics(LABELS), ConsistencyMetrics(LABELS), ConsistencyMetrics(LABELS)
    _update(whole, cases)
    _update(rank0, cases[:40])
    _update(rank1, cases[40:])
    rank0.merge_state({"joint": rank1.joint})  # a state dict, as gathered from another rank
    assert rank0.joint_counts().tolist() == whole.joint_counts().tolist()
    assert rank0.compute() == whole.compute()


@pytest.mark.parametrize(
    ("preds", "targets", "judged", "message"),
    [
        (["happy"], ["happy"], ["joy"], "judged explanation emotion 'joy' at position 0"),
        (["happy"], [None], ["happy"], "target None at position 0"),
        (["happy"], ["happy"], [], "must pair up; got 1, 1 and 0 values"),
    ],
)
def test_bad_inputs_are_named(preds: list, targets: list, judged: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsistencyMetrics(LABELS).update(preds, targets, judged)


def test_merging_different_label_sets_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot merge ConsistencyMetrics"):
        ConsistencyMetrics(["happy", "sad"]).merge_state(ConsistencyMetrics(["happy", "angry"]))


def test_module_example_runs() -> None:
    result = doctest.testmod(src.metrics.consistency)
    assert result.attempted > 0 and result.failed == 0
