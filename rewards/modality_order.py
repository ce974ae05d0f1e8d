"""Modality-aligned order reward, R_MAO (paper Eq. 1).

    R_MAO(y, m, e*) = 1  if y starts with <M> and e* is in E_m(y),   else 0

where ``<M>`` is the description tag of the dominant modality ``m`` (``<aud_desc>`` for audio, ``<vis_desc>``
for visual) and ``E_m(y)`` the set of emotions the judge finds in that segment's sentences (the union of the
per-sentence label sets: ``classify_sets`` for multi-label judges such as ERV's GoEmotions classifier, else the
single label of each sentence).

Decisions the paper leaves open:

- ``dominant == "both"`` (audio and video equally informative; SFT saw both orders): the completion may open
  with either description tag, and the target must be found in the segment it opens with.
- ``dominant is None`` (no modality importance for the sample): None, the reward does not apply.
- "Starts with" means the first non-whitespace text is the opening tag of a closed segment.
- Only a well-formed MIGR explanation (both descriptions, ``<think>``, ``<answer>``, each once, nothing outside
  them: :func:`rewards.format.migr_format_ok`) can score 1.0: the equation reads the first segment only, so
  without this a completion that opened right and then broke off, dropped the other description or trailed
  stray text was paid like a well-formed one, and MIGR's GRPO eroded the format (issue 16).

Malformed (scored 0.0, counted under ``malformed``): not MIGR's structure, for a sample with a dominant
modality. Opening with the other modality's tag is not malformed, just the wrong order (0.0).

Example (the keyword judge finds "trembles" -> fear in the audio segment):
    >>> from src.judges.keywords import KeywordJudge
    >>> reward = ModalityOrderReward(judge=KeywordJudge())
    >>> audio_first = "<aud_desc>The voice trembles.</aud_desc><vis_desc>A blank face.</vis_desc>" \\
    ...               "<think>Fear.</think><answer>fear</answer>"
    >>> reward(completions=[audio_first, audio_first, audio_first], completion_ids=[[], [], []],
    ...        prompts=["p"] * 3, labels=["fear", "fear", "fear"], dominant=["audio", "visual", None],
    ...        sample_ids=["a", "b", "c"], dataset=["dfew"] * 3)
    [1.0, 0.0, None]
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

_DESCRIPTIONS = ("audio", "visual")


class ModalityOrderReward:
    """R_MAO: opens with the dominant modality's description, and that description names the target emotion.

    Args:
        judge: reads the emotions of the first segment's sentences; the keyword judge when omitted.
    """

    name = "modality_order"

    def __init__(self, judge: Judge | None = None) -> None:
        self.judge = judge if judge is not None else KeywordJudge()

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
        opens_right: list[bool] = []
        sentences: list[list[str]] = []
        malformed = 0
        for text, modality, sample_id in zip(completions, dominant, sample_ids):
            check_dominant(modality, sample_id)
            parsed = parse_completion(text or "")
            first = parsed.first_segment
            ok = migr_format_ok(text or "")
            malformed += modality is not None and not ok
            allowed = _DESCRIPTIONS if modality == "both" else (modality,)
            right = modality is not None and ok and first in allowed
            opens_right.append(right)
            sentences.append(segment_sentences(parsed, [first]) if right else [])
        found = judge_per_dataset(lambda s, labs: label_sets(self.judge, s, labs), sentences, dataset)
        scores: list[float | None] = []
        for i, modality in enumerate(dominant):
            if modality is None:
                scores.append(None)
                continue
            target = target_label(labels[i], dataset[i], sample_ids[i])
            emotions = set().union(*found[i]) if found[i] else set()
            scores.append(1.0 if opens_right[i] and target in emotions else 0.0)
        log_metric(batch, "malformed", malformed)
        return scores
