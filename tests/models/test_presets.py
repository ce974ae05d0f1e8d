"""Big presets are built on the meta device: shapes and parameter counts of the released models."""

from __future__ import annotations

import pytest
import torch

from src.models.omni import OmniModel
from src.models.presets import PRESETS, OmniConfig, get_preset


def _meta_model(name: str) -> OmniModel:
    with torch.device("meta"):
        return OmniModel(get_preset(name), video_token_id=1, audio_token_id=2)


@pytest.mark.parametrize(
    ("name", "expected_millions"),
    [
        # Qwen2.5-0.5B (tied), siglip-base-patch16-224, whisper-large-v3 encoder, bert-base-uncased
        ("humanomni-0.5b", {"llm": 494.0, "vision_tower": 92.9, "audio_tower": 637.0, "bert_model": 109.5}),
        # Qwen2.5-7B (untied), siglip-so400m-patch14-384
        ("humanomni-7b", {"llm": 7615.6, "vision_tower": 428.2, "audio_tower": 637.0, "bert_model": 109.5}),
    ],
)
def test_released_shapes_have_the_known_parameter_counts(name, expected_millions):
    counts = _meta_model(name).parameter_counts()
    for part, millions in expected_millions.items():
        assert counts[part] / 1e6 == pytest.approx(millions, rel=2e-3), part
    # the gate MLP is Linear(768, 3584) -> GELU -> Linear(3584, 3) in both released models
    assert counts["bert_gate"] == 768 * 3584 + 3584 + 3584 * 3 + 3


@pytest.mark.parametrize(
    ("name", "video_tokens", "audio_tokens"),
    [("tiny", 32, 50), ("humanomni-0.5b", 392, 500), ("humanomni-7b", 1568, 500)],
)
def test_eight_frames_and_the_audio_window_give_the_documented_token_counts(name, video_tokens, audio_tokens):
    model = _meta_model(name)
    cfg = model.config
    assert (cfg.num_video_tokens, cfg.num_audio_tokens) == (video_tokens, audio_tokens)
    # run the real encoders on meta tensors: the architecture itself must produce those counts
    with torch.device("meta"):
        frames = torch.empty(1, 8, 3, cfg.image_size, cfg.image_size)
        gate = torch.zeros(1, 5, dtype=torch.long)
        mel = torch.empty(1, 128, cfg.num_mel_frames)
        assert model.encode_video(frames, gate).shape == (1, video_tokens, cfg.hidden_size)
        assert model.encode_audio(mel).shape == (1, audio_tokens, cfg.hidden_size)


def test_tiny_preset_is_a_few_million_parameters(tokenizer):
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer)
    total = sum(model.parameter_counts().values())
    assert 1e6 < total < 5e6


def test_config_round_trips_and_rejects_inconsistent_shapes():
    cfg = get_preset("humanomni-7b")
    assert OmniConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"max_source_positions=150 does not match model\.audio_seconds=30"):
        get_preset("tiny", audio_seconds=30)
    with pytest.raises(ValueError, match=r"unknown model preset 'huge'; available: tiny, humanomni-0\.5b"):
        get_preset("huge")
    with pytest.raises(ValueError, match="projector_type='mlp'"):
        get_preset("tiny", projector_type="mlp")
    assert set(PRESETS) == {"tiny", "humanomni-0.5b", "humanomni-7b"}
