"""Which description a model opens its explanation with, before it writes a word: the first-tag margin.

For each clip, under the audio-visual reasoning prompt, the margin is
``log p(<aud_desc> | prompt) - log p(<vis_desc> | prompt)`` at the first generated position: positive when the
model would start with the audio description. Averaged per true dominant modality it says whether the model
*reads the media* to choose its order (audio-dominant clips high, visual-dominant clips low) or only learned
the training set's prior (both groups alike). The "opens with the dominant modality" share of an evaluation
is what greedy decoding makes of these margins; the margins also show how close the decision was.

One prefill per batch of clips, shared with Modality Importance's batching
(:meth:`~src.migr.importance.ImportanceEstimator.next_token_logprobs`); the audio-only and visual-only rows it
computes are reported too (a model that opens with the modality it is shown is reading its inputs).

    >>> summarize_margins({"a": 1.0, "b": 0.5, "c": -2.0}, {"a": "audio", "b": "audio", "c": "visual"})["audio"]
    {'mean': 0.75, 'n': 2}
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from src.data.manifest import Sample
from src.data.media import MediaLoader
from src.data.reasoning import SEGMENT_TAGS
from src.migr.importance import CONDITIONS, ImportanceEstimator
from src.models.omni import OmniModel


def first_tag_margins(
    model: OmniModel,
    tokenizer,
    gate_tokenizer,
    loader: MediaLoader,
    samples: Sequence[Sample],
    *,
    batch_size: int = 16,
) -> dict[str, dict[str, float]]:
    """``{sample id: {condition: log p(<aud_desc>) - log p(<vis_desc>)}}`` under the reasoning prompt.

    Every sample needs video and audio (the three conditions share one batch); see :func:`usable`.
    """
    estimator = ImportanceEstimator(
        model, tokenizer, gate_tokenizer, loader, task="reasoning", batch_size=batch_size
    )
    audio_id, visual_id = (tokenizer.convert_tokens_to_ids(SEGMENT_TAGS[m][0]) for m in ("audio", "visual"))
    logprobs = estimator.next_token_logprobs(samples, [audio_id, visual_id])  # [N, 3, 2]
    margins = logprobs[..., 0] - logprobs[..., 1]  # [N, 3]
    return {s.id: {c: float(margins[i, j]) for j, c in enumerate(CONDITIONS)} for i, s in enumerate(samples)}


def usable(samples: Sequence[Sample]) -> list[Sample]:
    """The samples with both a video and a sound source (the margins compare the two descriptions)."""
    return [s for s in samples if s.video is not None and s.audio_source is not None]


def summarize_margins(margins: Mapping[str, float], groups: Mapping[str, str | None]) -> dict[str, Any]:
    """Mean margin and count per group (e.g. the true dominant modality of each sample id); unknown groups skipped."""
    by_group: dict[str, list[float]] = {}
    for sample_id, margin in margins.items():
        group = groups.get(sample_id)
        if group is not None:
            by_group.setdefault(group, []).append(margin)
    return {group: {"mean": statistics.fmean(v), "n": len(v)} for group, v in sorted(by_group.items())}


def first_tag_summary(margins: Mapping[str, Mapping[str, float]], samples: Sequence[Sample], mi_key: str) -> dict:
    """The figures an evaluation reports: per condition, the mean margin by true and by MI-dominant modality,
    and the separation ``mean(audio-dominant) - mean(visual-dominant)`` (how much the media move the order)."""
    truth = {s.id: s.dominant for s in samples}
    estimate = {s.id: s.extra.get(mi_key) for s in samples}
    summary: dict[str, Any] = {}
    for condition in CONDITIONS:
        values = {sample_id: rows[condition] for sample_id, rows in margins.items()}
        by_truth = summarize_margins(values, truth)
        summary[condition] = {
            "all": {"mean": statistics.fmean(values.values()), "n": len(values)} if values else None,
            "by_dominant": by_truth,
            "by_mi_dominant": summarize_margins(values, estimate),
            "separation": (
                by_truth["audio"]["mean"] - by_truth["visual"]["mean"]
                if "audio" in by_truth and "visual" in by_truth
                else None
            ),
        }
    return summary
