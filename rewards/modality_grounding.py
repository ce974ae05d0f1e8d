"""Modality-grounded reasoning reward, R_MGR (paper Eq. 2).

    R_MGR(y, m, e*) = sum over s in S_m(y) of 1[e_classifier(s) = e*]  /  |S_m(y)|

``S_m(y)`` are the sentences of the dominant modality's description plus those of ``<think>``; the judge
classifies each sentence; the reward is the fraction judged as the target emotion.

Decisions the paper leaves open:

- ``dominant == "both"``: ``S_m`` holds the sentences of both descriptions and of ``<think>``.
- ``dominant is None``: None, the reward does not apply.
- A completion that is not a well-formed MIGR explanation (both descriptions, ``<think>``, ``<answer>``, each
  once, nothing outside them: :func:`rewards.format.migr_format_ok`) scores 0.0. S_m reads only part of the
  text, so anything else (the non-dominant description, stray text, a second answer) was free: dropping the
  non-dominant description, or writing a shorter think outside the structure, paid as much or more than a
  well-formed explanation, and MIGR's GRPO eroded the format (93.7% well-formed over three seeds, 67.6% in one
  demo). An earlier rule that only counted a missing segment as one ungrounded sentence still let a
  completion without the non-dominant description score 1.0 (issue 16).
- ``multi_label=True`` counts a sentence as grounded when the target is among its label set (ERV's top-2
  reading of a multi-label classifier) instead of being its single label (the paper's indicator).

Malformed (scored 0.0, counted under ``malformed``): not MIGR's structure, for a sample with a dominant modality.

Example (keyword judge: "trembles" -> fear, "blank face" -> neutral, "Fear." -> fear):
    >>> from src.judges.keywords import KeywordJudge
    >>> reward = ModalityGroundingReward(judge=KeywordJudge())
    >>> text = "<aud_desc>The voice trembles.</aud_desc><vis_desc>A blank face.</vis_desc>" \\
    ...        "<think>It is fear. The voice says so.</think><answer>fear</answer>"
    >>> no_visual = "<aud_desc>The voice trembles.</aud_desc><think>It is fear.</think><answer>fear</answer>"
    >>> reward(completions=[text, text, text, no_visual], completion_ids=[[], [], [], []], prompts=["p"] * 4,
    ...        labels=["fear"] * 4, dominant=["audio", "both", None, "audio"], sample_ids=["a", "b", "c", "d"],
    ...        dataset=["dfew"] * 4)
    [0.6666666666666666, 0.5, None, 0.0]
"""

from __future__ import annotations

from typing import Any

from rewards.base import (
    check_dominant,
    check_lengths,
    judge_per_dataset,
    log_metric,
    segment_sentences,
    target_label,
)
from rewards.format import migr_format_ok
from src.data.reasoning import parse_completion
from src.judges.base import Judge, label_sets
from src.judges.keywords import KeywordJudge

# Which segments S_m(y) reads, by dominant modality.
_SEGMENTS: dict[str, tuple[str, ...]] = {
    "audio": ("audio", "think"),
    "visual": ("visual", "think"),
    "both": ("visual", "audio", "think"),
}


class ModalityGroundingReward:
    """R_MGR: fraction of the dominant description's and think's sentences judged as the target emotion.

    Args:
        judge: classifies each sentence; the keyword judge when omitted.
        multi_label: count a sentence when the target is in its label set (ERV's top-2 reading).
    """

    name = "modality_grounding"

    def __init__(self, judge: Judge | None = None, *, multi_label: bool = False) -> None:
        self.judge = judge if judge is not None else KeywordJudge()
        self.multi_label = multi_label

    def __call__(
        self,
        *,
        completions: list[str],
        completion_ids: list[list[int]],
        prompts: list[str],
        labels: list[str],
        dominant: list[str | None],
        sample_ids: list[str],
        dataset: list[str],
        **batch: Any,
    ) -> list[float | None]:
        check_lengths(
            self.name,
            {"completions": completions, "labels": labels, "dominant": dominant, "dataset": dataset},
        )
        sentences: list[list[str]] = []
        readable: list[bool] = []  # a dominant modality and MIGR's structure: the only completions scored > 0
        for text, modality, sample_id in zip(completions, dominant, sample_ids):
            check_dominant(modality, sample_id)
            ok = modality is not None and migr_format_ok(text or "")
            readable.append(ok)
            sentences.append(segment_sentences(parse_completion(text), _SEGMENTS[modality]) if ok else [])
        malformed = sum(m is not None and not ok for m, ok in zip(dominant, readable))
        if self.multi_label:
            judged = judge_per_dataset(lambda s, labs: label_sets(self.judge, s, labs), sentences, dataset)
        else:
            judged = judge_per_dataset(self.judge.classify, sentences, dataset)
        scores: list[float | None] = []
        for i, modality in enumerate(dominant):
            if modality is None:
                scores.append(None)
                continue
            target = target_label(labels[i], dataset[i], sample_ids[i])
            if not readable[i] or not sentences[i]:
                scores.append(0.0)
                continue
            hits = sum(target in result if self.multi_label else result == target for result in judged[i])
            scores.append(hits / len(sentences[i]))
        log_metric(batch, "malformed", malformed)
        return scores
