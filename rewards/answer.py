"""Answer reward: 1.0 when the ``<answer>`` text names the sample's label, else 0.0.

Both sides go through the dataset's label normalisation (:func:`src.data.labels.normalize_label`), so
"Happiness" answers DFEW's ``happy`` and "anxious" answers MAFW's ``anxiety``, as R1-Omni's accuracy reward
compares after normalising. The answer counts wherever it sits in the completion (the format rewards judge the
structure); a completion with several ``<answer>`` segments scores 0.0, so hedging never pays.

Malformed (scored 0.0 and counted under ``malformed``): no ``<answer>`` segment, several, or an answer that is
no emotion word of the dataset ("<answer>maybe</answer>").

Example:
    >>> reward = AnswerReward()
    >>> reward(completions=["<think>x</think><answer>Happiness</answer>", "<answer>sad</answer>", "happy"],
    ...        completion_ids=[[], [], []], prompts=["p"] * 3, labels=["happy"] * 3, dominant=[None] * 3,
    ...        sample_ids=["a", "a", "a"], dataset=["dfew"] * 3)
    [1.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any

from rewards.base import check_lengths, log_metric, target_label
from src.data.labels import normalize_label
from src.data.reasoning import SEGMENT_TAGS, parse_completion

_ANSWER_OPEN = SEGMENT_TAGS["answer"][0]


class AnswerReward:
    """R_answer of paper Eq. 3 (R1-Omni's accuracy reward)."""

    name = "answer"

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
        check_lengths(self.name, {"completions": completions, "labels": labels, "dataset": dataset})
        scores: list[float | None] = []
        malformed = 0
        for text, label, name, sample_id in zip(completions, labels, dataset, sample_ids):
            target = target_label(label, name, sample_id)
            text = text or ""
            answer = parse_completion(text).answer
            predicted = normalize_label(answer, name) if text.count(_ANSWER_OPEN) == 1 else None
            malformed += predicted is None
            scores.append(1.0 if predicted == target else 0.0)
        log_metric(batch, "malformed", malformed)
        return scores
