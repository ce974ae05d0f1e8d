"""Modality-grounded reasoning reward, R_MGR (paper Eq. 2).

    R_MGR(y, m, e*) = sum over s in S_m(y) of 1[e_classifier(s) = e*]  /  |S_m(y)|

``S_m(y)`` are the sentences of the dominant modality's description plus those of ``<think>``; the judge
classifies each sentence; the reward is the fraction judged as the target emotion.

Decisions the paper leaves open:

- ``dominant == "both"``: ``S_m`` holds the sentences of both descriptions and of ``<think>``.
- ``dominant is None``: None, the reward does not apply.
- A missing or empty segment of S_m counts as ONE sentence that is not grounded (the others still count), so
  that no completion can raise its score by leaving a description out: an earlier rule that skipped missing
  segments let GRPO find completions with broken description tags and a lone ``<think>`` scoring 1.0,
  above a well-formed explanation whose non-dominant description honestly says "calm" (2/3), and
  well-formedness fell from 94% to 71% in the demo. Nothing at all to read (no segment) scores 0.0.
- ``multi_label=True`` counts a sentence as grounded when the target is among its label set (ERV's top-2
  reading of a multi-label classifier) instead of being its single label (the paper's indicator).

Malformed (counted under ``malformed``, still scored as above): one of the segments S_m is built from is
missing or empty.

Example (keyword judge: "trembles" -> fear, "blank face" -> neutral, "Fear." -> fear):
    >>> from src.judges.keywords import KeywordJudge
    >>> reward = ModalityGroundingReward(judge=KeywordJudge())
    >>> text = "<aud_desc>The voice trembles.</aud_desc><vis_desc>A blank face.</vis_desc>" \\
    ...        "<think>It is fear. The voice says so.</think><answer>fear</answer>"
    >>> reward(completions=[text, text, text], completion_ids=[[], [], []], prompts=["p"] * 3,
    ...        labels=["fear"] * 3, dominant=["audio", "both", None], sample_ids=["a", "b", "c"],
    ...        dataset=["dfew"] * 3)
    [0.6666666666666666, 0.5, None]
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
        missing: list[int] = []  # segments of S_m that are absent or empty, one ungrounded sentence each
        malformed = 0
        for text, modality, sample_id in zip(completions, dominant, sample_ids):
            check_dominant(modality, sample_id)
            if modality is None:
                sentences.append([])
                missing.append(0)
                continue
            parsed = parse_completion(text or "")
            names = _SEGMENTS[modality]
            malformed += not all(parsed.segments.get(name) for name in names)
            sentences.append(segment_sentences(parsed, names))
            missing.append(sum(not parsed.segments.get(name) for name in names))
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
            total = len(sentences[i]) + missing[i]
            if total == 0:
                scores.append(0.0)
                continue
            hits = sum(target in result if self.multi_label else result == target for result in judged[i])
            scores.append(hits / total)
        log_metric(batch, "malformed", malformed)
        return scores
