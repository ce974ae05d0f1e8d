"""Format rewards: 1.0 when a completion has the required tag structure, else 0.0.

Two structures, two rewards:

- ``format`` (MIGR outputs): both description segments, in either order, then ``<think>``, then ``<answer>``;
  each segment exactly once and non-empty; nothing but whitespace between or around them; no stray or nested
  tags. The answer's *content* is the answer reward's business, not this one's::

      <aud_desc>...</aud_desc> <vis_desc>...</vis_desc> <think>...</think> <answer>...</answer>

- ``format_r1omni`` (R1-Omni / ERV baseline): a full match of ``<think>.*?</think>\\s*<answer>.*?</answer>``
  (dot matches newlines), exactly R1-Omni's format reward, for reproducing that baseline.

Every 0.0 of a format reward is a malformed completion; the count is reported under ``malformed``.

Example:
    >>> good = "<vis_desc>Brows raised.</vis_desc>\\n<aud_desc>A gasp.</aud_desc>\\n<think>Surprise.</think>" \\
    ...        "\\n<answer>surprise</answer>"
    >>> batch = dict(completion_ids=[[], []], prompts=["p"] * 2, labels=["surprise"] * 2, dominant=[None] * 2,
    ...              sample_ids=["a", "b"], dataset=["dfew"] * 2)
    >>> FormatReward()(completions=[good, "<think>x</think><answer>surprise</answer>"], **batch)
    [1.0, 0.0]
    >>> R1OmniFormatReward()(completions=[good, "<think>x</think><answer>surprise</answer>"], **batch)
    [0.0, 1.0]
"""

from __future__ import annotations

import re
from typing import Any

from rewards.base import log_metric
from src.data.reasoning import parse_completion

_MIGR_ORDERS = (("visual", "audio", "think", "answer"), ("audio", "visual", "think", "answer"))
_R1OMNI_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def migr_format_ok(text: str) -> bool:
    """Whether ``text`` has MIGR's structure (see the module docstring)."""
    parsed = parse_completion(text)
    return (
        parsed.well_formed
        and parsed.order in _MIGR_ORDERS
        and all(parsed.segments[name] for name in parsed.order)
        # parse_completion keeps the first of duplicated segments; the structure allows each tag once.
        and all(text.count(f"<{tag}>") == 1 for tag in ("vis_desc", "aud_desc", "think", "answer"))
    )


class FormatReward:
    """MIGR's output structure: two descriptions (either order), think, answer."""

    name = "format"

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
        scores: list[float | None] = [1.0 if migr_format_ok(text or "") else 0.0 for text in completions]
        log_metric(batch, "malformed", scores.count(0.0))
        return scores


class R1OmniFormatReward:
    """R1-Omni's format reward: ``<think>.*?</think>\\s*<answer>.*?</answer>`` must match the whole text."""

    name = "format_r1omni"

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
        scores: list[float | None] = [1.0 if _R1OMNI_RE.fullmatch(text or "") else 0.0 for text in completions]
        log_metric(batch, "malformed", scores.count(0.0))
        return scores
