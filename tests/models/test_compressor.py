"""HumanOmni's slow-fast compressor: its behaviour pinned as data (hand-computed cases, upstream's counts)."""

from __future__ import annotations

import pytest
import torch

from src.models.omni import OmniModel
from src.models.presets import get_preset, slow_frames
from src.models.projectors import SlowFastCompressor
from tests.models.conftest import collator_for, make_examples

# Frames HumanOmni keeps at full resolution: torch.arange(1, T, 4), or [0] when that is empty (upstream, 26fa491).
UPSTREAM_SLOW_FRAMES = {
    1: [0],
    2: [1],
    4: [1],
    5: [1],
    6: [1, 5],
    8: [1, 5],
    9: [1, 5],
    10: [1, 5, 9],
    16: [1, 5, 9, 13],
}


@pytest.mark.parametrize(("frames", "expected"), sorted(UPSTREAM_SLOW_FRAMES.items()))
def test_slow_frames_are_upstreams(frames, expected):
    assert slow_frames(frames) == expected


def test_a_hand_computed_case_odd_grid_drops_the_last_row_and_column():
    # 2 frames of a 3 x 3 grid, 1 channel: frame 0 holds 0..8, frame 1 holds 9..17 (row-major).
    features = torch.arange(18, dtype=torch.float32).reshape(1, 18, 1)
    out = SlowFastCompressor(vision_hidden=4)(features, num_frames=2)
    # fast: the one 2x2 window of each frame (rows 0-1, cols 0-1): mean(0, 1, 3, 4) = 2, mean(9, 10, 12, 13) = 11;
    # slow: frame 1 in full, row-major
    assert out[0, :, 0].tolist() == [2.0, 11.0, *range(9, 18)]


def test_a_hand_computed_case_even_grid_keeps_frame_order_and_row_major_windows():
    # 6 frames of a 4 x 4 grid, 2 channels: channel 0 = 100 * frame + position, channel 1 = -(channel 0).
    t, side = 6, 4
    grid = torch.tensor([[100.0 * f + p for p in range(side * side)] for f in range(t)])  # [T, 16]
    features = torch.stack([grid, -grid], dim=-1).reshape(1, t * side * side, 2)
    out = SlowFastCompressor(vision_hidden=4)(features, num_frames=t)
    windows = [0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15]  # sums of the 4 windows
    fast = [100.0 * f + w / 4 for f in range(t) for w in windows]
    slow = [100.0 * f + p for f in (1, 5) for p in range(side * side)]
    assert out.shape == (1, t * 4 + 2 * 16, 2)
    assert out[0, :, 0].tolist() == fast + slow
    assert out[0, :, 1].tolist() == [-v for v in fast + slow]


@pytest.mark.parametrize(
    ("name", "uncompressed", "compressed"),
    # 8 frames: HumanOmni's 0.5B grid (7 x 7) gives 8 * 3 * 3 + 2 * 49; the 7B grid (14 x 14) 8 * 7 * 7 + 2 * 196
    [("tiny", 32, 16), ("humanomni-0.5b", 392, 170), ("humanomni-7b", 1568, 784)],
)
def test_token_counts_with_and_without_the_compressor(name, uncompressed, compressed):
    assert get_preset(name).num_video_tokens == uncompressed
    config = get_preset(name, video_compressor="slow_fast")
    assert config.num_video_tokens == compressed
    with torch.device("meta"):  # the real modules must produce the documented count
        model = OmniModel(config, video_token_id=1, audio_token_id=2)
        frames = torch.empty(1, 8, 3, config.image_size, config.image_size)
        video = model.encode_video(frames, torch.zeros(1, 4, dtype=torch.long))
    assert video.shape == (1, compressed, config.hidden_size)
    # the stored-but-unused layers: SigLIP width -> 256, as in HumanOmni's checkpoints
    assert model.feature_compressor.vlm_query_projector.weight.shape == (256, config.vision["hidden_size"])
    assert model.feature_compressor.vlm_key_projector.weight.shape == (256, config.vision["hidden_size"])


def test_the_model_compresses_after_the_gated_mix_and_never_trains_the_unused_layers(tokenizer):
    torch.manual_seed(0)
    plain = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()
    torch.manual_seed(0)
    compressed = OmniModel.from_tokenizer(get_preset("tiny", video_compressor="slow_fast"), tokenizer).eval()
    compressed.load_state_dict(plain.state_dict(), strict=False)
    batch = collator_for(plain, tokenizer)(make_examples([(True, False)]))
    with torch.no_grad():
        mixed = plain.encode_video(batch.media.frames, batch.media.gate_input_ids)  # [1, 8 * 2 * 2, H]
        out = compressed.encode_video(batch.media.frames, batch.media.gate_input_ids)
    grids = mixed.reshape(1, 8, 4, -1)
    expected = torch.cat([grids.mean(dim=2), grids[:, 1], grids[:, 5]], dim=1)  # a 2x2 grid pools to 1 token
    torch.testing.assert_close(out, expected)
    compressed.train()
    assert not any(p.requires_grad for p in compressed.feature_compressor.parameters())
    batch = collator_for(compressed, tokenizer)(make_examples([(True, True)], target="happy"))
    assert batch.input_ids.eq(compressed.video_token_id).sum() == 16
    compressed(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels).loss.backward()
