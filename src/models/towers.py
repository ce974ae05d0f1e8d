"""Feature extraction from the frozen-by-default towers: SigLIP patch features and pooled Whisper states.

Both functions run only what HumanOmni uses: SigLIP up to the selected (penultimate) layer, skipping the
last block, the post-layernorm and the pooling head; the Whisper encoder followed by average pooling.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from transformers import SiglipVisionModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder


def siglip_patch_features(tower: SiglipVisionModel, pixel_values: Tensor, select_layer: int = -2) -> Tensor:
    """Hidden states of layer ``select_layer`` (HF ``hidden_states`` indexing) for every patch.

    Args:
        pixel_values: ``[N, 3, S, S]`` SigLIP-normalised frames.
    Returns:
        ``[N, P*P, D_vis]``: identical to ``tower(pixel_values, output_hidden_states=True)
        .hidden_states[select_layer]`` without running the blocks after it.
    """
    num_layers = len(tower.encoder.layers)
    run = num_layers + 1 + select_layer if select_layer < 0 else select_layer
    if not 0 <= run <= num_layers:
        raise ValueError(f"model.vision_select_layer={select_layer} is outside a {num_layers}-layer tower")
    hidden = tower.embeddings(pixel_values.to(tower.embeddings.patch_embedding.weight.dtype))
    for layer in tower.encoder.layers[:run]:
        hidden = layer(hidden, None)
    return hidden


def whisper_pooled_states(tower: WhisperEncoder, mel: Tensor, pool: int = 3) -> Tensor:
    """Whisper encoder states average-pooled over time by ``pool``.

    Args:
        mel: ``[N, n_mels, 2 * max_source_positions]`` log-mel features.
    Returns:
        ``[N, max_source_positions // pool, D_audio]`` (500 tokens for a 30 s window).
    """
    expected = tower.config.max_source_positions * 2
    if mel.shape[-1] != expected:
        raise ValueError(
            f"audio features have {mel.shape[-1]} mel frames; this audio tower expects {expected} "
            f"({expected // 100} s): check data.audio_seconds against the model preset"
        )
    states = tower(mel.to(tower.conv1.weight.dtype)).last_hidden_state  # [N, positions, D]
    return F.avg_pool1d(states.transpose(1, 2), kernel_size=pool, stride=pool).transpose(1, 2)
