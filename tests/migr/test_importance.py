"""Modality Importance: the decision rule case by case, and batched scoring equal to per-clip scoring."""

from __future__ import annotations

import math

import pytest
import torch

from src.data.labels import labels_for
from src.migr.importance import CONDITIONS, ImportanceEstimator, decide
from tests.helpers import one_clip_batch


@pytest.mark.parametrize(
    ("audio_right", "visual_right", "av_right", "score", "both_right", "both_wrong", "expected"),
    [
        (True, False, False, -1.0, "both", "both", "audio"),  # audio alone is right: audio-dominant
        (False, True, True, 3.0, "both", "both", "visual"),  # visual alone is right: visual-dominant
        (True, True, True, 2.0, "both", "both", "both"),  # both right, default: equally informative
        (True, True, True, 2.0, "margin", "both", "audio"),  # both right, margin: score > 0 -> audio
        (True, True, False, -0.5, "margin", "both", "visual"),  # both right, margin: score < 0 -> visual
        (True, True, True, 0.0, "margin", "both", "both"),  # both right, margin tie -> both
        (False, False, True, 1.0, "both", "both", "both"),  # both wrong, default -> both
        (False, False, True, 1.0, "both", "margin", "audio"),  # both wrong, margin -> audio
        (False, False, True, 1.0, "both", "av", "both"),  # both wrong, av rule: AV right -> both
        (False, False, False, 1.0, "both", "av", "none"),  # both wrong, av rule: AV wrong -> none
        (True, True, True, math.nan, "margin", "both", "both"),  # margin without a score -> both
    ],
)
def test_decision_rule(audio_right, visual_right, av_right, score, both_right, both_wrong, expected):
    assert (
        decide(audio_right, visual_right, av_right, score, both_right=both_right, both_wrong=both_wrong)
        == expected
    )


# The paper's sentence, case by case (A = audio-only right, V = visual-only right, AV = audio-visual right):
# audio is dominant when A is right "but fails under visual-only or audio-visual", visual in the mirror case;
# a modality for which the sentence holds alone is dominant, otherwise the tie rules (defaults) apply.
PAPER_TRUTH_TABLE = {
    (True, False, False): "audio",
    (True, False, True): "audio",
    (False, True, False): "visual",
    (False, True, True): "visual",
    (True, True, False): "both",  # the sentence holds for both modalities: a tie
    (True, True, True): "both",  # holds for neither: equally informative
    (False, False, False): "both",
    (False, False, True): "both",
}


@pytest.mark.parametrize(("rights", "expected"), sorted(PAPER_TRUTH_TABLE.items()))
def test_the_papers_audio_visual_clause_case_by_case(rights, expected):
    assert decide(*rights, math.nan) == expected


def _reference_logprob(model, tokenizer, loader, sample, condition, label) -> float:
    """log p(label<|im_end|> | prompt) from one full forward of prompt + answer (no cache, no sharing)."""
    batch = one_clip_batch(model, tokenizer, loader, sample, condition, task="label", target=label)
    with torch.no_grad():
        out = model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)
    return -float(out.loss) * out.num_target_tokens


def test_batched_score_mode_equals_per_clip_scoring(clips_and_random_tiny):
    samples, model, tokenizer, loader = clips_and_random_tiny
    estimator = ImportanceEstimator(model, tokenizer, tokenizer, loader, batch_size=5)
    labels = labels_for("synth")
    batched = estimator.label_logprobs(samples, labels)  # [5, 3, 7]
    assert batched.shape == (5, 3, 7)
    for i in (0, 3):
        for j, condition in enumerate(CONDITIONS):
            for k in (0, 4, 6):
                reference = _reference_logprob(model, tokenizer, loader, samples[i], condition, labels[k])
                assert batched[i, j, k].item() == pytest.approx(reference, abs=2e-4), (i, condition, labels[k])


def test_estimate_reports_predictions_dominant_and_score(clips_and_random_tiny):
    samples, model, tokenizer, loader = clips_and_random_tiny
    estimator = ImportanceEstimator(model, tokenizer, tokenizer, loader, batch_size=2)
    results = estimator.estimate(samples)
    assert [r.sample_id for r in results] == [s.id for s in samples]
    for result in results:
        table = result.logprobs
        assert set(result.predictions) == set(CONDITIONS)
        assert result.predictions["audio"] == max(table["audio"], key=table["audio"].get)
        assert result.score == pytest.approx(table["audio"][result.label] - table["visual"][result.label])
        assert result.dominant == decide(
            result.correct("audio"), result.correct("visual"), result.correct("audio_visual"), result.score
        )
    generated = estimator.estimate(samples[:2], mode="generate")
    assert all(set(r.predictions) == set(CONDITIONS) for r in generated)
