"""The attention probe against the eager attention maps, and the resampling / drift / grouping arithmetic."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import src.analysis.attention
from src.analysis.attention import (
    AttentionProbe,
    drift,
    paper_layer,
    resample,
    resolve_layer,
    share_curve,
    shares,
    summarize_curves,
)
from src.models.generation import generate
from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer
from tests.models.conftest import collator_for, make_examples


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer) -> OmniModel:
    torch.manual_seed(0)
    return OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()


def test_doctests() -> None:
    assert doctest.testmod(src.analysis.attention).failed == 0


@pytest.mark.parametrize("layer", [0, 1])
def test_probe_equals_the_eager_attention_maps(model, tokenizer, layer) -> None:
    # rows of unequal prompt length (AV, V-only, A-only) so left padding is exercised
    batch = collator_for(model, tokenizer)(make_examples([(True, True), (True, False), (False, True)]))
    video = batch.input_ids == model.video_token_id
    audio = batch.input_ids == model.audio_token_id
    prompt_len = batch.input_ids.shape[1]
    reference: list[torch.Tensor] = []

    def eager_rows(step: int, out) -> None:
        row = out.attentions[layer][:, :, -1, :].mean(dim=1)  # [B, S] heads averaged, newest query
        reference.append(
            torch.stack(
                [
                    (row[:, :prompt_len] * video).sum(1),
                    (row[:, :prompt_len] * audio).sum(1),
                    row[:, prompt_len:].sum(1),
                ],
                1,
            )
        )

    model.llm.set_attn_implementation("eager")
    try:
        with AttentionProbe(model, layer) as probe:
            probe.begin(batch.input_ids, batch.attention_mask)
            generation = generate(
                model,
                batch.input_ids,
                batch.attention_mask,
                batch.media,
                max_new_tokens=5,
                eos_token_id=-1,  # never ends: every row has all 5 steps
                pad_token_id=tokenizer.pad_token_id,
                on_step=eager_rows,
                output_attentions=True,
            )
            steps = probe.steps_per_row(generation.lengths)
    finally:
        model.llm.set_attn_implementation("sdpa")
    expected = torch.stack(reference, dim=1).double().numpy()  # [B, 5, 3]
    assert [s.shape for s in steps] == [(5, 3)] * 3
    np.testing.assert_allclose(np.stack(steps), expected, atol=1e-6)
    assert expected[1, :, 1].max() == 0  # the video-only row has no audio positions
    assert expected[2, :, 0].max() == 0  # the audio-only row has no video positions
    assert (expected[:, 0, 2] == 0).all()  # the prefill query has no generated text to look at
    assert (expected[:, 1:, 2] > 0).all()


def test_probe_runs_under_sdpa_and_leaves_no_hook(model, tokenizer) -> None:
    batch = collator_for(model, tokenizer)(make_examples([(True, True), (False, True)]))
    attention = model.causal_lm.model.layers[1].self_attn
    hooks_before = dict(attention._forward_hooks)
    with AttentionProbe(model, -1) as probe:
        assert probe.layer == 1
        probe.begin(batch.input_ids, batch.attention_mask)
        generation = generate(
            model,
            batch.input_ids,
            batch.attention_mask,
            batch.media,
            max_new_tokens=4,
            eos_token_id=-1,
            pad_token_id=0,
        )
        steps = probe.steps_per_row([2, 4])  # rows that ended after 2 and 4 tokens
    assert dict(attention._forward_hooks) == hooks_before  # the probe removed its hook
    assert [s.shape for s in steps] == [(2, 3), (4, 3)]
    assert generation.tokens.shape == (2, 4)


def test_probe_refuses_several_completions_per_prompt(model, tokenizer) -> None:
    batch = collator_for(model, tokenizer)(make_examples([(True, True)]))
    with AttentionProbe(model) as probe, pytest.raises(RuntimeError, match="one completion per prompt"):
        probe.begin(batch.input_ids, batch.attention_mask)
        generate(
            model,
            batch.input_ids,
            batch.attention_mask,
            batch.media,
            max_new_tokens=3,
            eos_token_id=-1,
            pad_token_id=0,
            num_return_sequences=2,
        )


def test_layer_choice() -> None:
    assert paper_layer(28) == 20  # the paper's 21st layer, 0-based
    assert paper_layer(24) == 17  # HumanOmni-0.5B: same relative depth
    assert paper_layer(2) == 1
    assert resolve_layer(None, 2) == 1
    assert resolve_layer(-2, 2) == 0
    with pytest.raises(ValueError, match=r"attention.layer=2 is outside the LLM's 2 layers"):
        resolve_layer(2, 2)


def test_resample_preserves_the_mean_and_the_row_sums() -> None:
    rng = np.random.default_rng(0)
    for steps in (1, 7, 100, 253):
        masses = rng.random((steps, 3))
        curve = share_curve(masses, bins=100)
        assert curve.shape == (100, 3)
        np.testing.assert_allclose(curve.sum(axis=1), 1.0)  # shares still sum to 1 in every bin
        np.testing.assert_allclose(curve.mean(axis=0), shares(masses).mean(axis=0))  # area is preserved


def test_resample_by_hand() -> None:
    series = np.array([[0.0], [1.0], [2.0]])
    # 3 steps onto 2 bins: bin 1 covers step 0 and half of step 1
    np.testing.assert_allclose(resample(series, bins=2), [[1 / 3], [5 / 3]])
    # 2 steps onto 4 bins: each step is stretched over two bins
    np.testing.assert_allclose(resample(np.array([[1.0], [3.0]]), bins=4), [[1.0], [1.0], [3.0], [3.0]])
    with pytest.raises(ValueError, match="empty series"):
        resample(np.zeros((0, 3)))


def test_drift_is_the_slope_over_the_generation() -> None:
    x = (np.arange(100) + 0.5) / 100
    assert drift(0.1 + 0.5 * x) == pytest.approx(0.5)  # text share grows by 0.5 over the generation
    assert drift(np.full(100, 0.3)) == pytest.approx(0.0)
    assert drift(0.9 - 0.2 * x) == pytest.approx(-0.2)
    assert np.isnan(drift([0.5]))


def test_summaries_average_per_group() -> None:
    flat = {"visual": [0.5] * 4, "audio": [0.5] * 4, "text": [0.0] * 4}
    rising = {"visual": [0.4, 0.3, 0.2, 0.1], "audio": [0.4, 0.3, 0.2, 0.1], "text": [0.2, 0.4, 0.6, 0.8]}
    summary = summarize_curves(
        [("audio", flat), ("audio", rising), ("visual", rising), (None, flat)], layer=3, bins=4
    )
    assert summary.counts == {"all": 4, "audio": 2, "visual": 1}
    assert summary.curves["audio"]["text"] == [0.1, 0.2, 0.3, 0.4]
    assert summary.drift["visual"] == pytest.approx(0.8)  # 0.2 per quarter of the generation
    assert summary.drift["audio"] == pytest.approx(0.4)
    assert summary.peaks["visual"] == {"visual": 0.4, "audio": 0.4}
    assert summary.means["all"]["text"] == pytest.approx(0.25)
    assert summary.from_dict(summary.to_dict()) == summary
    assert summarize_curves([], layer=0, bins=4) is None
    with pytest.raises(ValueError, match="3 bins, expected 4"):
        summarize_curves([("audio", {"visual": [0] * 3, "audio": [0] * 3, "text": [0] * 3})], layer=0, bins=4)
