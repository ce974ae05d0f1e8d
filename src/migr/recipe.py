"""The paper's real-data recipe, first step: new DFEW/MAFW training clips selected by FAU, checked, merged.

The paper adds *new* DFEW/MAFW clips (not in the EMER reasoning set) whose peak-frame AU pattern matches their
label (253 DFEW / 184 MAFW), gives them generated reasoning, keeps those whose reasoning a judge reads as the
clip's label, and merges them with EMER for SFT. :func:`select_new_clips` does exactly that with the
``template`` reasoning source (the FAU description of the matched AUs plus a neutral audio sentence); the
``model`` and ``endpoint`` sources are not wired yet and fail with a clear error.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from src.data.labels import emotion_forms, labels_for
from src.data.manifest import Reasoning, Sample
from src.migr.fau import fau_filter

log = logging.getLogger(__name__)

NEUTRAL_AUDIO = "The voice gives no clear emotional cue of its own."
SOURCES = ("template", "model", "endpoint")


@dataclass(frozen=True)
class Selection:
    """The merged SFT rows (EMER first, then the new clips) and the count of each stage."""

    merged: list[Sample]
    new: list[Sample]
    counts: dict[str, int]


def read_label(reasoning: Reasoning, dataset: str) -> str | None:
    """The single ``dataset`` label named in the reasoning's think line (None: none or several)."""
    text = (reasoning.think or "").lower()
    named = [
        label
        for label in labels_for(dataset)
        if any(re.search(rf"\b{re.escape(form)}\b", text) for form in emotion_forms(label))
    ]
    return named[0] if len(named) == 1 else None


def select_new_clips(
    emer: Sequence[Sample], candidates: Sequence[Sample], *, source: str = "template"
) -> Selection:
    """New FAU-matched (peak frame) clips from ``candidates`` with checked reasoning, merged after ``emer``.

    Candidates whose id is already an EMER row are excluded (counted ``in_emer``); FAU rejections are counted
    ``fau_rejected``; clips whose reasoning does not read as their label are counted ``judge_rejected``.
    """
    if source not in SOURCES:
        raise ValueError(f"recipe.source must be one of {', '.join(SOURCES)}; got {source!r}")
    if source != "template":
        raise NotImplementedError(
            f"recipe.source={source!r} is not configured in this build; use recipe.source=template"
        )
    emer_ids = {sample.id for sample in emer}
    fresh = [sample for sample in candidates if sample.id not in emer_ids]
    counts: Counter[str] = Counter(candidates=len(candidates), in_emer=len(candidates) - len(fresh))
    result = fau_filter(fresh, method="peak")
    counts["fau_kept"] = len(result.kept)
    counts["fau_rejected"] = len(result.rejected)
    counts["judge_rejected"] = 0
    new: list[Sample] = []
    for sample in result.kept:
        assert sample.reasoning is not None
        sample = replace(sample, reasoning=replace(sample.reasoning, audio=NEUTRAL_AUDIO))
        if read_label(sample.reasoning, sample.dataset) == sample.label:
            new.append(sample)
        else:
            counts["judge_rejected"] += 1
    counts["new"] = len(new)
    counts["emer"] = len(emer)
    counts["merged"] = len(emer) + len(new)
    log.info("recipe selection: %s", dict(counts))
    return Selection([*emer, *new], new, dict(counts))
