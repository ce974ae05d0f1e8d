"""Shared pieces of the reward tests: a batch builder and a judge that answers from a table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

Batch = dict[str, Any]


def make_batch(
    completions: Sequence[str],
    *,
    labels: str | Sequence[str] = "fear",
    dominant: str | Sequence[str | None] | None = "audio",
    dataset: str | Sequence[str] = "dfew",
) -> Batch:
    """Reward keyword arguments for ``completions``; scalar fields are repeated for every completion."""
    n = len(completions)

    def column(value: Any) -> list[Any]:
        return list(value) if isinstance(value, (list, tuple)) else [value] * n

    return {
        "completions": list(completions),
        "completion_ids": [[1, 2, 3]] * n,
        "prompts": ["<|im_start|>user\nwhich emotion?<|im_end|>"] * n,
        "labels": column(labels),
        "dominant": column(dominant),
        "sample_ids": [f"s{i}" for i in range(n)],
        "dataset": column(dataset),
    }


class TableJudge:
    """A judge with fixed answers: sentence -> label set (first element is its single label); else nothing.

    Lets the equation tests state each sentence's judgement next to the expected reward.
    """

    name = "table"

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.calls: list[tuple[list[str], tuple[str, ...]]] = []

    def classify(self, sentences: Sequence[str], labels: Sequence[str]) -> list[str | None]:
        self.calls.append((list(sentences), tuple(labels)))
        return [next(iter(self.table.get(s, ())), None) for s in sentences]

    def classify_sets(self, sentences: Sequence[str], labels: Sequence[str]) -> list[set[str]]:
        self.calls.append((list(sentences), tuple(labels)))
        return [set(self.table.get(s, ())) for s in sentences]


class SingleLabelTableJudge:
    """Like :class:`TableJudge` but without ``classify_sets`` (a single-label judge)."""

    name = "table1"

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def classify(self, sentences: Sequence[str], labels: Sequence[str]) -> list[str | None]:
        return [self.table.get(s) for s in sentences]


@pytest.fixture
def batch() -> Callable[..., Batch]:
    return make_batch
