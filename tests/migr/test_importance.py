"""Modality Importance: the decision rule case by case, and batched scoring equal to per-clip scoring."""

from __future__ import annotations

import math

import pytest
import torch

from src.data.collate import Example, OmniCollator
from src.data.labels import labels_for
from src.data.manifest import read_manifest
from src.data.media import MediaLoader
from src.data.prompts import build_prompt, instruction_for
from src.migr.importance import CONDITIONS, ImportanceEstimator, decide
from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer


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


@pytest.fixture(scope="module")
def estimator_setup(tmp_path_factory):
    from src.data.synth import ensure_corpus

    manifest = ensure_corpus(tmp_path_factory.mktemp("mi") / "corpus", n=14, seed=0, workers=1)
    samples = read_manifest(manifest)[:5]
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()
    loader = MediaLoader(image_size=64, audio_seconds=3)
    return samples, model, tokenizer, loader


def _reference_logprob(model, tokenizer, loader, sample, condition, label) -> float:
    """log p(label<|im_end|> | prompt) from one full forward of prompt + answer (no cache, no sharing)."""
    has_video, has_audio = {"audio": (False, True), "visual": (True, False), "audio_visual": (True, True)}[
        condition
    ]
    item = loader.load(sample, video=has_video, audio=has_audio)
    instruction = instruction_for("label")
    example = Example(
        prompt=build_prompt(instruction, has_video=has_video, has_audio=has_audio),
        target=label,
        frames=item.frames,
        mel=item.mel,
        instruction=instruction,
    )
    counts = model.token_counts()
    batch = OmniCollator(tokenizer, tokenizer, num_video_tokens=counts["video"], num_audio_tokens=counts["audio"])(
        [example]
    )
    with torch.no_grad():
        out = model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)
    return -float(out.loss) * out.num_target_tokens


def test_batched_score_mode_equals_per_clip_scoring(estimator_setup):
    samples, model, tokenizer, loader = estimator_setup
    estimator = ImportanceEstimator(model, tokenizer, tokenizer, loader, batch_size=5)
    labels = labels_for("synth")
    batched = estimator.label_logprobs(samples, labels)  # [5, 3, 7]
    assert batched.shape == (5, 3, 7)
    for i in (0, 3):
        for j, condition in enumerate(CONDITIONS):
            for k in (0, 4, 6):
                reference = _reference_logprob(model, tokenizer, loader, samples[i], condition, labels[k])
                assert batched[i, j, k].item() == pytest.approx(reference, abs=2e-4), (i, condition, labels[k])


def test_estimate_reports_predictions_dominant_and_score(estimator_setup):
    samples, model, tokenizer, loader = estimator_setup
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
