"""Consistency reward: 1.0 when the emotion the judge reads in the explanation equals the model's OWN answer.

    R_cons(y) = 1[ judge(explanation(y)) = normalize(answer(y)) ]

The explanation is the description and ``<think>`` segments in generated order (the answer excluded), read as ONE
text, as the evaluation reads it for EPC (``explanation_mode=explanation``,
:mod:`src.evaluation.judging`): the reward pays exactly what EPC counts, per completion. Unlike R_MGR it does not
look at the label, so it ties an explanation to the answer the model gives, right or wrong; the answer reward
pays for being right. Neither the paper nor R1-Omni has such a term (issue 16 item 5).

Decisions:

- No ``<answer>`` segment, several, or an answer that is no emotion of the dataset: 0.0, counted under
  ``malformed`` (there is nothing to be consistent with, and a None would let a completion escape the reward
  by dropping its answer).
- No explanation (no description or think text): 0.0, counted under ``malformed`` (likewise: leaving the
  explanation out must never pay).
- The judge finds no emotion in an explanation: 0.0, not malformed (an explanation that names nothing does not
  support the answer).
- Applies to every sample (the dominant modality is not read).

Example (keyword judge: "trembles" -> fear):
    >>> from src.judges.keywords import KeywordJudge
    >>> reward = ConsistencyReward(judge=KeywordJudge())
    >>> fear = "<aud_desc>The voice trembles.</aud_desc><think>It is fear.</think>"
    >>> reward(completions=[fear + "<answer>fear</answer>", fear + "<answer>happy</answer>", fear],
    ...        completion_ids=[[], [], []], prompts=["p"] * 3, labels=["happy"] * 3, dominant=[None] * 3,
    ...        sample_ids=["a", "b", "c"], dataset=["dfew"] * 3)
    [1.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any

from rewards.base import check_lengths, judge_per_dataset, log_metric
from src.data.labels import normalize_label
from src.data.reasoning import SEGMENT_TAGS, parse_completion
from src.judges.base import Judge
from src.judges.keywords import KeywordJudge

_ANSWER_OPEN = SEGMENT_TAGS["answer"][0]


class ConsistencyReward:
    """1.0 when the judged emotion of the explanation is the completion's own answer, else 0.0.

    Args:
        judge: reads one emotion out of the whole explanation; the keyword judge when omitted.
    """

    name = "consistency"

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
        check_lengths(self.name, {"completions": completions, "dataset": dataset})
        answers: list[str | None] = []
        explanations: list[list[str]] = []  # one text per completion (or none), as judge_per_dataset batches
        for text, name in zip(completions, dataset):
            text = text or ""
            parsed = parse_completion(text)
            single = text.count(_ANSWER_OPEN) == 1
            answers.append(normalize_label(parsed.answer, name) if single else None)
            explanation = parsed.explanation().strip()
            explanations.append([explanation] if explanation else [])
        judged = judge_per_dataset(self.judge.classify, explanations, dataset)
        malformed = sum(a is None or not e for a, e in zip(answers, explanations))
        log_metric(batch, "malformed", malformed)
        return [
            1.0 if answer is not None and found and found[0] == answer else 0.0
            for answer, found in zip(answers, judged)
        ]
