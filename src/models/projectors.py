"""Projectors from the towers into the LLM embedding space, as HumanOmni builds them.

* :class:`VisualProjector` ("all_in_one" / "all_in_one_small"): three branches over the SAME SigLIP frame
  features. The video and body branches are C-Abstractors (:class:`RegStage` -> Conv3d sampler ->
  :class:`RegStage` -> 2-layer MLP readout); the face branch is an MLP on every patch followed by bilinear 2-D pooling.
* :func:`branch_gate`: BERT's CLS vector of the instruction -> Linear -> GELU -> Linear -> softmax gives the
  three branch weights that mix the branches.
* :func:`audio_projector`: Linear -> GELU -> Linear ("mlp2x_gelu").
* :class:`SlowFastCompressor`: HumanOmni's optional slow-fast token compressor after the gated mix (fast: every
  frame's token grid average-pooled 2x2; slow: every 4th frame from frame 1 at full resolution).

Submodule names match HumanOmni's checkpoint keys (``s1_video``, ``sampler_video``, ..., ``mlp_2xgelu_face``)
so a released checkpoint loads by prefix mapping alone. HumanOmni builds its RegNet stages with timm
(``RegStage`` of ``Bottleneck`` blocks, SiLU, ``LayerNorm2d``); :class:`RegStage` here is the same computation
with the same parameter names (tests/models/test_projectors.py checks it against timm's), written out so that
building a model does not import timm, whose import pulls in every timm model and wandb.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.presets import PROJECTOR_DEPTH, SAMPLER_PADDING, slow_frames


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, out_features))


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of ``[N, C, H, W]`` maps (eps 1e-5), then SiLU when ``act``."""

    def __init__(self, channels: int, *, act: bool) -> None:
        super().__init__(channels, eps=1e-5)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return self.act(x.permute(0, 3, 1, 2))


class ConvNorm(nn.Module):
    """Bias-free ``kernel_size`` convolution ("same" padding) -> :class:`ChannelNorm` (keys ``conv``, ``bn``)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, *, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)
        self.bn = ChannelNorm(out_chs, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class SqueezeExcite(nn.Module):
    """Channel gate: spatial mean -> 1x1 conv -> SiLU -> 1x1 conv -> sigmoid, times the input."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc2(F.silu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class Bottleneck(nn.Module):
    """RegNet bottleneck at stride 1: 1x1 -> depthwise 3x3 -> squeeze-excite -> 1x1, plus a shortcut, SiLU.

    The shortcut is a 1x1 :class:`ConvNorm` (key ``downsample``) when the channel count changes, else the
    identity; the squeeze-excite width is a quarter of the *input* channels.
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_chs, out_chs, 1)
        self.conv2 = ConvNorm(out_chs, out_chs, 3, groups=out_chs)
        self.se = SqueezeExcite(out_chs, round(in_chs * 0.25))
        self.conv3 = ConvNorm(out_chs, out_chs, 1, act=False)
        self.downsample = ConvNorm(in_chs, out_chs, 1, act=False) if in_chs != out_chs else None

    def forward(self, x: Tensor) -> Tensor:  # [N, C_in, H, W] -> [N, C_out, H, W]
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.silu(self.conv3(self.se(self.conv2(self.conv1(x)))) + shortcut)


class RegStage(nn.Sequential):
    """``depth`` :class:`Bottleneck` blocks ``b1 ... b<depth>``, the first mapping ``in_chs`` to ``out_chs``."""

    def __init__(self, depth: int, in_chs: int, out_chs: int) -> None:
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", Bottleneck(in_chs if i == 0 else out_chs, out_chs))


def _reg_stage(depth: int, in_chs: int, out_chs: int) -> RegStage:
    return RegStage(depth, in_chs, out_chs)


def _sampler(channels: int, padding: tuple[int, int, int]) -> nn.Sequential:
    conv = nn.Conv3d(channels, channels, kernel_size=(2, 2, 2), stride=(1, 2, 2), padding=padding, bias=True)
    return nn.Sequential(conv, nn.SiLU())


class VisualProjector(nn.Module):
    """Frame patch features ``[B, T, P*P, D_vis]`` -> three branch outputs, each ``[B, T * S * S, H]``.

    ``S`` is the projected side (7 for 14 patches, 14 for 27). The branches are mixed by :func:`branch_gate`
    weights in :meth:`mix`.
    """

    def __init__(self, vision_hidden: int, llm_hidden: int, projector_type: str) -> None:
        super().__init__()
        depth = PROJECTOR_DEPTH[projector_type]
        padding = SAMPLER_PADDING[projector_type]
        for branch in ("video", "body"):
            setattr(self, f"s1_{branch}", _reg_stage(depth, vision_hidden, llm_hidden))
            setattr(self, f"sampler_{branch}", _sampler(llm_hidden, padding))
            setattr(self, f"s2_{branch}", _reg_stage(depth, llm_hidden, llm_hidden))
            setattr(self, f"readout_{branch}", _mlp(llm_hidden, llm_hidden, llm_hidden))
        self.mlp_2xgelu_face = _mlp(vision_hidden, llm_hidden, llm_hidden)

    def _c_abstractor(self, branch: str, features: Tensor) -> Tensor:
        b, t, n, d = features.shape
        side = math.isqrt(n)
        x = features.reshape(b * t, side, side, d).permute(0, 3, 1, 2)  # [B*T, D, P, P]
        x = getattr(self, f"s1_{branch}")(x)  # [B*T, H, P, P]
        h = x.shape[1]
        x = x.reshape(b, t, h, side, side).permute(0, 2, 1, 3, 4)  # [B, H, T, P, P]
        x = getattr(self, f"sampler_{branch}")(x)[:, :, :-1]  # [B, H, T, S, S]: padded step dropped
        new_t, s = x.shape[2], x.shape[3]
        x = x.permute(0, 2, 1, 3, 4).reshape(b * new_t, h, s, s)
        x = getattr(self, f"s2_{branch}")(x)  # [B*T, H, S, S]
        x = x.reshape(b, new_t, h, s * s).permute(0, 1, 3, 2).reshape(b, new_t * s * s, h)
        return getattr(self, f"readout_{branch}")(x)  # [B, T*S*S, H]

    def _face(self, features: Tensor) -> Tensor:
        b, t, n, _ = features.shape
        side = math.isqrt(n)
        x = self.mlp_2xgelu_face(features)  # [B, T, P*P, H]
        h = x.shape[-1]
        x = x.reshape(b * t, side, side, h).permute(0, 3, 1, 2)
        pooled = math.ceil(side / 2)
        x = F.interpolate(x, size=(pooled, pooled), mode="bilinear")  # [B*T, H, S, S]
        return x.permute(0, 2, 3, 1).reshape(b, t * pooled * pooled, h)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, T, P*P, D_vis]`` -> (video, body, face), each ``[B, T*S*S, H]``."""
        return self._c_abstractor("video", features), self._c_abstractor("body", features), self._face(features)

    @staticmethod
    def mix(branches: tuple[Tensor, Tensor, Tensor], weights: Tensor) -> Tensor:
        """Weighted sum of the three branches; ``weights`` is ``[B, 3]`` (softmax output)."""
        stacked = torch.stack(branches, dim=1)  # [B, 3, N, H]
        return (stacked * weights[:, :, None, None].to(stacked.dtype)).sum(dim=1)


class SlowFastCompressor(nn.Module):
    """HumanOmni's slow-fast compressor of the mixed video tokens ``[B, T*S*S, H]`` -> ``[B, N_fast + N_slow, H]``.

    * fast: every frame's ``S x S`` grid average-pooled with kernel 2, stride 2, no padding (an odd side loses
      its last row and column: 7 -> 3), ``T * (S // 2)**2`` tokens, frame by frame, each grid row-major;
    * slow: the full ``S x S`` grids of frames 1, 5, 9, ... (:func:`~src.models.presets.slow_frames`);
    * output: all fast tokens, then all slow tokens.

    ``vlm_query_projector`` / ``vlm_key_projector`` (SigLIP width -> 256) are stored in HumanOmni checkpoints
    as ``model.feature_compressor.*`` but never used by its forward; they exist here so those keys load
    strictly, and never train (:meth:`src.models.omni.OmniModel.freeze`).
    """

    key_width = 256

    def __init__(self, vision_hidden: int) -> None:
        super().__init__()
        self.vlm_query_projector = nn.Linear(vision_hidden, self.key_width)
        self.vlm_key_projector = nn.Linear(vision_hidden, self.key_width)

    def forward(self, features: Tensor, num_frames: int) -> Tensor:
        """``[B, T*S*S, H]`` (frame-major, each grid row-major) -> ``[B, T*(S//2)**2 + n_slow*S*S, H]``."""
        b, n, h = features.shape
        side = math.isqrt(n // num_frames)
        if num_frames * side * side != n:
            raise ValueError(f"{n} video tokens are not {num_frames} square grids (slow-fast compressor)")
        grids = features.reshape(b, num_frames, side, side, h)
        pooled = F.avg_pool2d(grids.permute(0, 1, 4, 2, 3).reshape(b * num_frames, h, side, side), 2, 2)
        fast = pooled.flatten(2).transpose(1, 2).reshape(b, -1, h)  # [B, T * (S//2)**2, H]
        slow = grids[:, slow_frames(num_frames)].reshape(b, -1, h)  # [B, n_slow * S * S, H]
        return torch.cat([fast, slow], dim=1)


def branch_gate(text_hidden: int, gate_hidden: int) -> nn.Sequential:
    """BERT CLS ``[B, D_bert]`` -> branch logits ``[B, 3]`` (video, body, face); softmax gives the weights.

    Kept as a plain ``nn.Sequential`` named ``bert_gate`` in the model so its keys are ``bert_gate.0.*`` /
    ``bert_gate.2.*`` as in HumanOmni.
    """
    return _mlp(text_hidden, gate_hidden, 3)


def audio_projector(audio_hidden: int, llm_hidden: int) -> nn.Sequential:
    """HumanOmni's "mlp2x_gelu" audio projector: ``[B, N, D_audio]`` -> ``[B, N, H]``."""
    return _mlp(audio_hidden, llm_hidden, llm_hidden)
