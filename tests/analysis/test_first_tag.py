"""The first-tag margin: batched next-token log-probabilities equal a per-clip forward, and the summaries."""

from __future__ import annotations

import pytest
import torch

from src.analysis.first_tag import first_tag_margins, first_tag_summary, summarize_margins, usable
from src.migr.importance import CONDITIONS
from tests.helpers import one_clip_batch


def _reference_margin(model, tokenizer, loader, sample, condition) -> float:
    """log p(<aud_desc>) - log p(<vis_desc>) after the reasoning prompt, from one unbatched, unpadded forward."""
    batch = one_clip_batch(model, tokenizer, loader, sample, condition, task="reasoning")
    with torch.no_grad():
        logits = model(batch.input_ids, batch.attention_mask, batch.media).logits[0, -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    audio, visual = tokenizer.convert_tokens_to_ids(["<aud_desc>", "<vis_desc>"])
    return float(logprobs[audio] - logprobs[visual])


def test_batched_margins_equal_one_forward_per_clip_and_condition(clips_and_random_tiny):
    samples, model, tokenizer, loader = clips_and_random_tiny
    margins = first_tag_margins(model, tokenizer, tokenizer, loader, samples, batch_size=3)  # 2 batches, padded
    assert list(margins) == [s.id for s in samples]
    for sample in (samples[0], samples[4]):
        for condition in CONDITIONS:
            reference = _reference_margin(model, tokenizer, loader, sample, condition)
            assert margins[sample.id][condition] == pytest.approx(reference, abs=2e-4), (sample.id, condition)


def test_summaries_by_dominant_modality_and_the_separation(clips_and_random_tiny):
    samples = clips_and_random_tiny[0]
    # margins made up: audio-dominant clips open with audio, visual-dominant ones with visual
    sign = {"audio": 1.0, "visual": -1.0, "both": 0.0}
    margins = {s.id: {c: sign[s.dominant] * (j + 1) for j, c in enumerate(CONDITIONS)} for s in samples}
    summary = first_tag_summary(margins, samples, mi_key="mi_dominant")
    dominant = {s.dominant for s in samples}
    assert set(summary) == set(CONDITIONS)
    assert set(summary["audio_visual"]["by_dominant"]) == dominant
    if {"audio", "visual"} <= dominant:
        assert summary["audio_visual"]["separation"] == pytest.approx(6.0)  # +3 - (-3)
    assert summary["audio"]["all"]["n"] == len(samples)
    assert summary["audio_visual"]["by_mi_dominant"] == {}  # the corpus carries no MI estimate
    assert summarize_margins({"a": 1.0, "b": 0.0, "c": 5.0}, {"a": "x", "b": "x", "c": None}) == {
        "x": {"mean": 0.5, "n": 2}
    }
    assert usable(samples) == samples
