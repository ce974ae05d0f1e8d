"""metrics.json figures from hand-made records, each checked by hand."""

from __future__ import annotations

import doctest
import json
import math

import pytest
from sklearn.metrics import balanced_accuracy_score

import src.evaluation.figures
from src.data.labels import labels_for
from src.evaluation.figures import compute_figures, dominant_first, flat_figures, json_safe
from tests.evaluation.conftest import record

LABELS = labels_for("dfew")

RECORDS = [
    #      id   truth       prediction  judged (explanation)    opens with    dominant
    record("1", "happy", "happy", judged="happy", first="visual", dominant="visual"),  # faithful
    record("2", "happy", "happy", judged="sad", first="audio", dominant="visual"),  # R✗/A✓
    record("3", "sad", "sad", judged="sad", first="audio", dominant="audio", mi_dominant="audio"),  # faithful
    record(
        "4", "sad", "happy", judged="happy", first="visual", dominant="audio", mi_dominant="visual"
    ),  # wrong, consistent
    record(
        "5", "fear", None, judged=None, first=None, dominant="both", truncated=True, well_formed=False
    ),  # no answer
    record("6", "fear", "surprise", judged="fear", first="think", dominant=None),  # EEA only
]


def test_doctests() -> None:
    assert doctest.testmod(src.evaluation.figures).failed == 0


@pytest.mark.filterwarnings(
    "ignore:y_pred contains classes not in y_true"
)  # surprise and "unknown" are never true
def test_recognition_and_consistency_by_hand() -> None:
    figures = compute_figures(RECORDS, LABELS)
    recognition = figures["recognition"]
    assert recognition["war"] == pytest.approx(3 / 6)
    assert recognition["uar"] == pytest.approx((1 + 0.5 + 0) / 3)  # classes present: happy, sad, fear
    assert recognition["uar"] == pytest.approx(
        balanced_accuracy_score([r.label for r in RECORDS], [r.prediction or "unknown" for r in RECORDS])
    )
    assert recognition["unknown_rate"] == pytest.approx(1 / 6)
    assert recognition["recall"]["sad"] == 0.5
    assert recognition["recall"]["angry"] is None  # no angry sample: undefined, null in JSON
    assert recognition["support"] == {
        "happy": 2,
        "sad": 2,
        "neutral": 0,
        "angry": 0,
        "surprise": 0,
        "disgust": 0,
        "fear": 2,
    }
    assert figures["confusion"]["columns"][-1] == "unknown"
    assert figures["confusion"]["counts"][6] == [0, 0, 0, 0, 1, 0, 0, 1]  # fear: once surprise, once unknown
    consistency = figures["consistency"]
    assert consistency["eea"] == pytest.approx(3 / 6)  # records 1, 3, 6
    assert consistency["epc"] == pytest.approx(3 / 6)  # records 1, 3, 4
    assert consistency["fcr"] == pytest.approx(2 / 6)  # records 1, 3
    assert consistency["r_wrong_a_right"] == pytest.approx(1 / 6)  # record 2
    assert consistency["r_wrong_a_right_among_correct"] == pytest.approx(1 / 3)
    assert consistency["judge_unknown_rate"] == pytest.approx(1 / 6)
    assert figures["judge_confusion"]["counts"][0] == [1, 1, 0, 0, 0, 0, 0, 0]  # happy explanations: happy, sad


def test_openings_and_dominant_first() -> None:
    figures = compute_figures(RECORDS, LABELS)
    assert figures["opening"]["counts"] == {"visual": 2, "audio": 2, "think": 1, "answer": 0, "none": 1}
    dominant = figures["dominant_first"]["dominant"]
    assert dominant["share"] == pytest.approx(2 / 4)  # records 1 and 3 of the four audio/visual ones
    assert dominant["n"] == 4
    assert dominant["by_group"]["visual"] == {"n": 2, "opens_audio": 0.5, "opens_visual": 0.5}
    assert dominant["by_group"]["both"] == {"n": 1, "opens_audio": 0.0, "opens_visual": 0.0}
    mi = figures["dominant_first"]["mi_dominant"]
    assert (mi["share"], mi["n"]) == (1.0, 2)  # records 3 and 4 open with their MI estimate
    assert figures["format"] == {
        "well_formed": pytest.approx(5 / 6),
        "truncated": pytest.approx(1 / 6),
        "mean_tokens": 10.0,
    }


def test_unjudged_records_have_no_consistency_and_empty_input_fails() -> None:
    figures = compute_figures([record("1", "happy", "happy", judge=None)], LABELS)
    assert figures["consistency"] is None
    assert figures["dominant_first"] == {"dominant": None, "mi_dominant": None}
    assert figures["concurrent"] is None  # no secondary labels anywhere
    with pytest.raises(ValueError, match="no predictions to score"):
        compute_figures([], LABELS)


def test_figures_are_strict_json_and_flatten() -> None:
    figures = compute_figures(RECORDS, LABELS)
    json.loads(json.dumps(figures), parse_constant=lambda name: pytest.fail(f"{name} in metrics.json"))
    flat = flat_figures(figures)
    assert flat["war"] == 0.5
    assert flat["epc"] == 0.5
    assert flat["dominant_first"] == 0.5
    assert flat["mi_dominant_first"] == 1.0
    assert flat["opening/audio"] == pytest.approx(2 / 6)
    assert "recall/angry" not in flat  # undefined figures are left out, not logged as 0
    assert json_safe({"a": [math.nan, math.inf, 1.0]}) == {"a": [None, None, 1.0]}
    assert dominant_first([(None, "audio")]) is None


def test_attention_curves_group_by_the_truth_or_by_modality_importance():
    from dataclasses import replace

    from src.evaluation.figures import attention_summary

    def curve(visual: float) -> dict[str, list[float]]:
        return {"visual": [visual] * 4, "audio": [0.1] * 4, "text": [0.9 - visual] * 4}

    records = [  # truth and MI disagree on the first clip; the third has no truth, the fourth no MI
        replace(record("a", "happy", "happy", dominant="audio", mi_dominant="visual"), attention=curve(0.2)),
        replace(record("b", "happy", "happy", dominant="visual", mi_dominant="visual"), attention=curve(0.4)),
        replace(record("c", "happy", "happy", mi_dominant="audio"), attention=curve(0.6)),
        replace(record("d", "happy", "happy", dominant="audio"), attention=curve(0.8)),
    ]
    by_truth = attention_summary(records, layer=0, bins=4)
    by_mi = attention_summary(records, layer=0, bins=4, group_by="mi")
    assert by_truth.counts == {"all": 4, "audio": 3, "visual": 1}
    assert by_mi.counts == {"all": 4, "audio": 2, "visual": 2}
    assert by_truth.peaks["audio"]["visual"] == pytest.approx((0.2 + 0.6 + 0.8) / 3)
    assert by_mi.peaks["visual"]["visual"] == pytest.approx((0.2 + 0.4) / 2)
    with pytest.raises(ValueError, match=r"attention.group_by='truth' must be one of dominant, mi"):
        attention_summary(records, layer=0, bins=4, group_by="truth")
