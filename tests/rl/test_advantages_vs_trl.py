"""Parity of :mod:`src.rl.advantages` with TRL 1.16's reward aggregation and advantage computation.

A real ``GRPOTrainer`` (tiny model, see ``conftest.py``) runs its own ``_generate_and_score_completions``:
it generates two tokens per completion, then calls reward functions that return the values written in
the rows (None included), sums them with its ``reward_weights`` and computes advantages. On our side the
same columns go through the code a training step runs: a :class:`~src.reward_set.RewardSet` of rewards that
return them, :func:`~src.rl.step.rewards_to_advantages` (the total and the advantages) and
:func:`~src.rl.step.reward_metrics` (what the trainer logs under ``train/``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from src.reward_set import RewardSet, RewardSpec
from src.rl.advantages import REWARD_SCALES
from src.rl.step import GRPOConfig, reward_metrics, rewards_to_advantages

pytestmark = [
    pytest.mark.slow,  # importing TRL takes a few seconds
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*All reward functions returned None.*"),
]

NUM_GENERATIONS = 4
WEIGHTS = {"answer": 1.0, "order": 0.5, "grounding": 2.0}
# 4 prompts x 4 completions; None = "not applicable". Group 0 mixes values and Nones; group 1 has equal
# totals (zero std); group 2 holds one completion no reward could score; group 3 has a single scorable
# completion (no std, so no signal for any of its rows).
COLUMNS: dict[str, list[float | None]] = {
    "answer": [1.0, 0.0, 1.0, None, 1.0, 1.0, 1.0, 1.0, None, 0.0, 1.0, None, None, None, 1.0, None],
    "order": [0.5, None, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, None, 1.0, None, 1.0, None, None, 0.0, None],
    "grounding": [None, 0.25, 0.75, 0.0, 0.5, 0.5, 0.5, 0.5, None, None, 0.0, 0.5, None, None, None, None],
}


def _trl_outputs(make_trl_trainer: Callable[..., Any], scale: str) -> tuple[torch.Tensor, dict[str, float]]:
    num_rows = len(COLUMNS["answer"])
    trainer = make_trl_trainer(
        reward_names=list(WEIGHTS),
        reward_weights=list(WEIGHTS.values()),
        num_generations=NUM_GENERATIONS,
        batch_size=num_rows,
        scale_rewards=scale,
        max_completion_length=2,
    )
    assert trainer.multi_objective_aggregation == "sum_then_normalize"  # TRL's default, the one we implement
    # What TRL's sampler yields: each prompt repeated G times, consecutive.
    rows = [{"prompt": "ab", **{name: values[i] for name, values in COLUMNS.items()}} for i in range(num_rows)]
    output = trainer._generate_and_score_completions(rows)
    logged = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    return output["advantages"], logged


class ColumnReward:
    """A reward that returns the batch column of its own name (the rows hold every value, None included)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *, completions: list[str], **batch: Any) -> list[float | None]:
        return list(batch[self.name])


class ColumnRegistry:
    """The reward set looks names up here: every name is a :class:`ColumnReward`."""

    def load(self, name: str) -> type:
        return ColumnReward

    def create(self, name: str, **kwargs: Any) -> ColumnReward:
        return ColumnReward(name)

    def provenance(self, name: str) -> dict[str, str]:
        return {"package": "tests", "version": "0", "object": "ColumnReward"}


def _our_outputs(scale: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    reward_set = RewardSet(
        [RewardSpec(name, weight) for name, weight in WEIGHTS.items()], registry=ColumnRegistry()
    )
    size = len(COLUMNS["answer"])
    scores = reward_set(
        completions=["x"] * size,
        completion_ids=[[2]] * size,
        prompts=["ab"] * size,
        labels=["happy"] * size,
        dominant=[None] * size,
        sample_ids=[str(i) for i in range(size)],
        dataset=["dfew"] * size,
        **COLUMNS,
    )
    cfg = GRPOConfig(num_generations=NUM_GENERATIONS, scale_rewards=scale)
    total, advantages, stats = rewards_to_advantages(scores, cfg)
    return total, advantages, {**reward_metrics(scores, stats), "num_unscorable": float(stats["num_unscorable"])}


@pytest.mark.parametrize("scale", REWARD_SCALES)
def test_advantages_and_reward_stats_match_trl(make_trl_trainer: Callable[..., Any], scale: str) -> None:
    theirs, logged = _trl_outputs(make_trl_trainer, scale)
    _total, ours, metrics = _our_outputs(scale)

    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert theirs.abs().sum() > 0  # non-trivial advantages were compared
    shared = {"reward", "reward_std"} | {f"rewards/{name}/{stat}" for name in WEIGHTS for stat in ("mean", "std")}
    if scale != "batch":  # TRL then logs whether the *batch* std is 0; ours is always per group
        shared.add("frac_reward_zero_std")
    assert shared <= set(logged)
    for name in sorted(shared):
        assert metrics[name] == pytest.approx(logged[name], abs=1e-6), name
    assert metrics["frac_reward_zero_std"] == pytest.approx(1 / 4)  # group 1's totals are all equal
    assert metrics["num_unscorable"] == 4 == metrics["rows_without_reward"]  # row 8 and rows 12, 13, 15
    assert metrics["rewards/order/applicable"] == 10 and metrics["rewards/answer/errors"] == 0
    assert ours[12:].abs().sum() == 0  # group 3: one scorable completion has no sibling to compare with
