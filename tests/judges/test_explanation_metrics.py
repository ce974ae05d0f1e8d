"""Judges feed the consistency metrics (paper Eq. 6-8): e_i is the judge's emotion of sample i's explanation."""

from __future__ import annotations

import pytest

from src.data.labels import labels_for
from src.data.reasoning import parse_completion
from src.judges.keywords import KeywordJudge
from src.metrics.consistency import ConsistencyMetrics

# (completion, ground truth y)
SAMPLES = [
    # e = fear, ŷ = fear, y = fear: consistent and right
    ("<aud_desc>Her voice trembles.</aud_desc><think>She is afraid.</think><answer>fear</answer>", "fear"),
    # e = happy (smiles, cheerful), ŷ = sad, y = sad: answer right, reasoning wrong (R✗/A✓)
    ("<vis_desc>She smiles.</vis_desc><think>A cheerful scene.</think><answer>sad</answer>", "sad"),
    # e = angry, ŷ = angry, y = sad: consistent but wrong
    ("<aud_desc>He shouts.</aud_desc><think>He is furious.</think><answer>angry</answer>", "sad"),
    # e = None (no emotion found), ŷ = None (no answer tag), y = happy
    ("<vis_desc>A room with a table.</vis_desc><think>Hard to say.</think>", "happy"),
]


def test_eea_epc_fcr_from_judged_explanations():
    judge = KeywordJudge()
    labels = labels_for("dfew")
    parsed = [parse_completion(text) for text, _ in SAMPLES]
    judged = judge.classify([p.explanation() for p in parsed], labels)  # one call for the whole batch
    assert judged == ["fear", "happy", "angry", None]
    metric = ConsistencyMetrics(labels)
    metric.update(preds=[p.answer for p in parsed], targets=[y for _, y in SAMPLES], judged=judged)
    result = metric.compute()
    assert result["eea"] == pytest.approx(1 / 4)  # Eq. 6: e = y only for sample 1
    assert result["epc"] == pytest.approx(2 / 4)  # Eq. 7: e = ŷ for samples 1 and 3 (None = None does not count)
    assert result["fcr"] == pytest.approx(1 / 4)  # Eq. 8: e = y and ŷ = y for sample 1
    assert result["r_wrong_a_right"] == pytest.approx(1 / 4)  # sample 2
