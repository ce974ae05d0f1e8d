"""Where the model looks while it explains (paper section 8.1, Figure 5): attention shares over generation.

For every generated token we take one LLM layer's attention row of the query that produces it (heads averaged)
and split its mass into three parts: the **visual** placeholder positions, the **audio** placeholder positions
and the **generated text** so far (the instruction prompt and chat markup are left out). The three masses are
normalised to sum to 1, each sample's steps are resampled onto 100 bins (generations differ in length), and the
curves are averaged per Modality Importance group (``dominant``: audio / visual / both).

Step ``s`` of a completion is the forward that produces its token ``s + 1``: step 0 is the prefill (the query is
the last prompt position, so the generated-text share is 0 there), step ``s >= 1`` has generated token ``s`` as
its query. A completion of ``T`` tokens (EOS included) has steps ``0 .. T-1``.

**Drift** (one number per curve, for tables): the least-squares slope of the generated-text share against the
normalised position ``x in [0, 1]`` of the 100 bins, i.e. how much the text share grows from the start to the
end of a generation according to the linear fit. Positive drift = attention moves from the audio-visual evidence
to the model's own text, the paper's "reasoning drift"; a model grounded in its inputs keeps it small.

Only what is needed is computed: :class:`AttentionProbe` hooks the chosen layer's attention module and, after
that layer has run (so the KV cache holds every key), computes the single attention row of the newest position
from the cache, ``[B, heads, 1, S]``, whatever attention kernel (sdpa, eager) the model runs. No layer returns
full attention maps, so this costs one small matmul per step even for the 7B model's 2,000-position prompts.

Example:
    >>> probe_layer = paper_layer(28)   # the paper reads the 21st of Qwen2.5-7B's 28 layers
    >>> probe_layer
    20
    >>> steps = np.array([[0.6, 0.4, 0.0], [0.3, 0.2, 0.5]])   # two steps, (visual, audio, text) masses
    >>> resample(steps, bins=4).round(2).tolist()
    [[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.3, 0.2, 0.5], [0.3, 0.2, 0.5]]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from src.models.omni import OmniModel

PARTS: tuple[str, ...] = ("visual", "audio", "text")
DEFAULT_BINS = 100
# The paper reads layer 21 of 28 (1-based); other depths use the same relative position.
PAPER_LAYER, PAPER_DEPTH = 21, 28


def paper_layer(num_layers: int) -> int:
    """0-based index of the layer at the paper's relative depth (21st of 28) in a model of ``num_layers``."""
    return max(0, min(num_layers - 1, round(num_layers * PAPER_LAYER / PAPER_DEPTH) - 1))


def resolve_layer(layer: int | None, num_layers: int) -> int:
    """The 0-based layer to probe: ``None`` = :func:`paper_layer`, negative values count from the end."""
    if layer is None:
        return paper_layer(num_layers)
    index = layer + num_layers if layer < 0 else layer
    if not 0 <= index < num_layers:
        raise ValueError(
            f"attention.layer={layer} is outside the LLM's {num_layers} layers; use 0..{num_layers - 1}, "
            f"-{num_layers}..-1, or null for the paper's depth (layer {paper_layer(num_layers)})"
        )
    return index


class AttentionProbe:
    """Records, per generation step, the attention mass of one layer's newest query on visual/audio/text keys.

    Use as a context manager around :func:`src.models.generation.generate` (which must run with its KV cache)::

        with AttentionProbe(model, layer=None) as probe:
            probe.begin(input_ids, attention_mask)              # the left-padded prompts of the batch
            generation = generate(model, input_ids, attention_mask, media, ...)
            steps = probe.steps_per_row(generation.lengths)   # list of [T_r, 3] masses

    Args:
        model: the model whose LLM (Qwen2, optionally peft-wrapped) is probed.
        layer: 0-based layer index, negative from the end, or None for the paper's depth.
    """

    def __init__(self, model: OmniModel, layer: int | None = None) -> None:
        # imported here: summaries and plots of finished evaluations need no model code
        from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

        self._rotate = apply_rotary_pos_emb
        decoder = model.causal_lm.model
        self.layer = resolve_layer(layer, len(decoder.layers))
        self.attention: nn.Module = decoder.layers[self.layer].self_attn
        self.video_token_id, self.audio_token_id = model.video_token_id, model.audio_token_id
        self._handle: Any = None
        self._parts: Tensor | None = None  # [B, L, 3] one-hot part of each prompt position (zero = other)
        self._steps: list[Tensor] = []  # each [B, 3]

    def __enter__(self) -> AttentionProbe:
        self._handle = self.attention.register_forward_hook(self._record, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def begin(self, input_ids: Tensor, attention_mask: Tensor) -> None:
        """Start a batch: remember which prompt positions are visual / audio (padding and text count as neither)."""
        real = attention_mask.bool()
        visual = (input_ids == self.video_token_id) & real
        audio = (input_ids == self.audio_token_id) & real
        self._parts = torch.stack([visual, audio, torch.zeros_like(visual)], dim=-1).float()  # [B, L, 3]
        self._steps = []

    @torch.no_grad()
    def _record(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        if self._parts is None:
            return  # a forward outside begin() (e.g. a training step): nothing to record
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]  # [B, Q, H]
        cos, sin = kwargs["position_embeddings"]  # [B, Q, D]
        cache = kwargs.get("past_key_values")
        if cache is None:
            raise RuntimeError("AttentionProbe needs the KV cache: call generate(..., use_cache=True)")
        keys = cache.layers[module.layer_idx].keys  # [B, kv, S, D], rotated, this step's key included
        batch, kv_heads, _, head_dim = keys.shape
        if batch != self._parts.shape[0]:
            raise RuntimeError(
                f"AttentionProbe saw {batch} rows for a batch of {self._parts.shape[0]} prompts; "
                "it supports one completion per prompt (num_return_sequences=1)"
            )
        query = module.q_proj(hidden[:, -1:]).view(batch, 1, -1, head_dim).transpose(1, 2)  # [B, heads, 1, D]
        query, _ = self._rotate(query, query, cos[:, -1:], sin[:, -1:])
        # Grouped-query attention without repeating the keys: [B, kv, groups, D] x [B, kv, D, S].
        grouped = query.reshape(batch, kv_heads, -1, head_dim)
        scores = torch.matmul(grouped, keys.transpose(2, 3)).float() * module.scaling  # [B, kv, groups, S]
        mask = kwargs.get("attention_mask")
        if mask is not None:  # the layer's own mask (bool for sdpa, additive for eager); its last query row
            row_mask = mask[:, :, -1:, : scores.shape[-1]]  # [B, 1, 1, S]
            scores = (
                scores.masked_fill(~row_mask, float("-inf")) if mask.dtype == torch.bool else scores + row_mask
            )
        row = torch.softmax(scores, dim=-1).mean(dim=(1, 2))  # [B, S], heads averaged
        prompt_len = self._parts.shape[1]
        media = torch.bmm(row[:, None, :prompt_len], self._parts)[:, 0]  # [B, 3]; the text slot is 0 here
        media[:, 2] = row[:, prompt_len:].sum(dim=-1)  # everything after the prompt is generated text
        self._steps.append(media)

    def steps_per_row(self, lengths: Tensor | Sequence[int]) -> list[np.ndarray]:
        """Per row ``r``, the ``[T_r, 3]`` (visual, audio, text) masses of its steps; ``lengths[r] = T_r``."""
        if not self._steps:
            return [np.zeros((0, 3)) for _ in lengths]
        stacked = torch.stack(self._steps, dim=1).double().cpu().numpy()  # [B, steps, 3]
        return [stacked[r, : int(length)] for r, length in enumerate(lengths)]


def shares(masses: np.ndarray) -> np.ndarray:
    """``[T, 3]`` masses normalised over the three parts (rows with no mass stay 0)."""
    total = masses.sum(axis=-1, keepdims=True)
    return np.divide(masses, total, out=np.zeros_like(masses, dtype=float), where=total > 0)


def resample(series: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Resample ``[T, K]`` per-step values onto ``bins`` equal bins of the generation (``[bins, K]``).

    The series is read as a step function over ``[0, 1]`` (step ``t`` covers ``[t/T, (t+1)/T)``) and each bin
    takes its average over the bin, so short generations are stretched and long ones averaged without
    favouring any step, and rows that sum to 1 still sum to 1.
    """
    series = np.asarray(series, dtype=float)
    steps = series.shape[0]
    if steps == 0:
        raise ValueError("cannot resample an empty series (a completion of 0 tokens)")
    edges = np.linspace(0.0, 1.0, steps + 1)
    area = np.concatenate([np.zeros((1, series.shape[1])), np.cumsum(series / steps, axis=0)])  # [T+1, K]
    targets = np.linspace(0.0, 1.0, bins + 1)
    cumulative = np.stack([np.interp(targets, edges, area[:, k]) for k in range(series.shape[1])], axis=1)
    return np.diff(cumulative, axis=0) * bins


def share_curve(masses: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """One sample's ``[bins, 3]`` curve: normalised shares per step, resampled."""
    return resample(shares(masses), bins)


def drift(text_share: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of a binned generated-text share against ``x in [0, 1]`` (see the module docstring)."""
    y = np.asarray(text_share, dtype=float)
    if y.size < 2:
        return float("nan")
    x = (np.arange(y.size) + 0.5) / y.size
    return float(np.polyfit(x, y, 1)[0])


@dataclass
class AttentionSummary:
    """Mean share curves per group, their drift, and how many samples each averages.

    Attributes:
        layer: the probed 0-based layer.
        bins: curve resolution.
        curves: ``{group: {"visual": [bins], "audio": [bins], "text": [bins]}}``; group ``"all"`` pools every sample.
        counts: samples per group.
        drift: drift of each group's mean text curve.
        peaks: ``{group: {"visual": max, "audio": max}}`` (the paper compares peak media attention).
        means: ``{group: {part: mean share over the generation}}``.
    """

    layer: int
    bins: int
    curves: dict[str, dict[str, list[float]]]
    counts: dict[str, int]
    drift: dict[str, float]
    peaks: dict[str, dict[str, float]]
    means: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "bins": self.bins,
            "parts": list(PARTS),
            "drift_definition": "least-squares slope of the generated-text share over the normalised generation "
            "(x in [0, 1]); positive = attention moves to the model's own text",
            "counts": self.counts,
            "drift": self.drift,
            "peaks": self.peaks,
            "means": self.means,
            "curves": self.curves,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttentionSummary:
        return cls(**{key: data[key] for key in ("layer", "bins", "curves", "counts", "drift", "peaks", "means")})


def summarize_curves(
    curves: Iterable[tuple[str | None, Mapping[str, Sequence[float]]]], *, layer: int, bins: int = DEFAULT_BINS
) -> AttentionSummary | None:
    """Average per-sample curves by group. ``curves`` yields ``(group, {"visual": [...], ...})``; a None group
    counts only towards ``"all"``. Returns None when there is no curve at all."""
    by_group: dict[str, list[np.ndarray]] = {}
    for group, curve in curves:
        array = np.stack([np.asarray(curve[part], dtype=float) for part in PARTS], axis=1)  # [bins, 3]
        if array.shape[0] != bins:
            raise ValueError(f"a curve has {array.shape[0]} bins, expected {bins}")
        by_group.setdefault("all", []).append(array)
        if group is not None:
            by_group.setdefault(str(group), []).append(array)
    if not by_group:
        return None
    ordered = ["all", *sorted(name for name in by_group if name != "all")]
    mean = {name: np.mean(by_group[name], axis=0) for name in ordered}  # [bins, 3]
    return AttentionSummary(
        layer=layer,
        bins=bins,
        curves={name: {part: _rounded(mean[name][:, k]) for k, part in enumerate(PARTS)} for name in ordered},
        counts={name: len(by_group[name]) for name in ordered},
        drift={name: drift(mean[name][:, 2]) for name in ordered},
        peaks={
            name: {part: float(mean[name][:, k].max()) for k, part in enumerate(PARTS[:2])} for name in ordered
        },
        means={name: {part: float(mean[name][:, k].mean()) for k, part in enumerate(PARTS)} for name in ordered},
    )


def _rounded(values: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]
