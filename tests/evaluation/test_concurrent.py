"""The Surprise/Fear analysis (paper Tables 4 and 6) on hand-made misses."""

from __future__ import annotations

import doctest

import pytest

import src.evaluation.concurrent
from src.data.labels import labels_for
from src.evaluation.concurrent import concurrent_label_analysis
from tests.evaluation.conftest import record

LABELS = labels_for("dfew")

RECORDS = [
    # truth surprise, missed: predictions and the annotators' concurrent votes
    record("1", "surprise", "fear", secondary=("fear", "neutral"), judged_set=["fear", "surprise"]),
    record("2", "surprise", "neutral", secondary=("neutral",), judged_set=["neutral"]),
    record("3", "surprise", None, secondary=("angry",), judged_set=["surprise"]),  # unparseable answer
    record("4", "surprise", "surprise", secondary=("fear",), judged_set=["surprise"]),  # right: not a miss
    record("5", "fear", "surprise", secondary=(), judged_set=[]),  # a fear miss without concurrent votes
]


def test_doctests() -> None:
    assert doctest.testmod(src.evaluation.concurrent).failed == 0


def test_tables_4_and_6_by_hand() -> None:
    result = concurrent_label_analysis(RECORDS, LABELS)
    assert result["samples_with_secondary"] == 4
    assert result["overall"] == {"misses": 4, "prediction_in_secondary": pytest.approx(2 / 4)}  # records 1, 2
    surprise = result["by_class"]["surprise"]
    assert surprise["misses"] == 3
    assert surprise["predicted"] == {
        "happy": 0, "sad": 0, "neutral": 1, "angry": 0, "surprise": 0, "disgust": 0, "fear": 1, "unknown": 1
    }  # fmt: skip
    assert surprise["secondary"] == {
        "happy": 0, "sad": 0, "neutral": 2, "angry": 1, "surprise": 0, "disgust": 0, "fear": 1
    }  # fmt: skip
    assert surprise["with_secondary"] == 3
    assert surprise["prediction_in_secondary"] == pytest.approx(2 / 3)
    assert surprise["true_in_judged_top2"] == pytest.approx(2 / 3)  # records 1 and 3 keep surprise in the set
    fear = result["by_class"]["fear"]
    assert (fear["misses"], fear["with_secondary"], fear["prediction_in_secondary"]) == (1, 0, 0.0)
    assert set(result["by_class"]) == {"surprise", "fear"}  # classes without misses are left out
    assert result["focus"] == ["surprise", "fear"]


def test_restricted_to_what_a_reference_model_got_right() -> None:
    result = concurrent_label_analysis(RECORDS, LABELS, reference_correct={"1", "2"})
    assert result["restricted_to_reference_correct"] is True
    assert result["by_class"]["surprise"]["misses"] == 2
    assert "fear" not in result["by_class"]


def test_single_label_judges_give_no_top2_and_no_secondary_means_no_analysis() -> None:
    records = [record("1", "surprise", "fear", secondary=("fear",), judged_set=None)]
    assert concurrent_label_analysis(records, LABELS)["by_class"]["surprise"]["true_in_judged_top2"] is None
    assert concurrent_label_analysis([record("1", "surprise", "fear")], LABELS) is None
    assert concurrent_label_analysis(records, ["anger", "surprise"], focus=("surprise", "fear"))["focus"] == [
        "surprise"
    ]
