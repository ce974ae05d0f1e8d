"""Hand-computed cases for :mod:`src.rl.advantages` (TRL parity lives in ``test_advantages_vs_trl.py``)."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import src.rl.advantages
from src.rl.advantages import combine_rewards, group_advantages, reward_stats

EPS = 1e-4


def test_group_scale() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])  # B=2 prompts, G=4
    advantages, stats = group_advantages(rewards, 4)
    # group 0: mean 0.25, unbiased std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5; group 1: all equal -> 0
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]) / (0.5 + EPS)
    torch.testing.assert_close(advantages, expected)
    assert stats["frac_reward_zero_std"].item() == 0.5  # group 1 teaches nothing
    assert stats["reward/mean"].item() == pytest.approx(9 / 8)
    assert stats["num_unscorable"].item() == 0


def test_batch_scale_divides_by_the_std_of_all_rewards() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 4.0])
    advantages, stats = group_advantages(rewards, 4, scale="batch")
    centred = torch.tensor([0.75, -0.25, -0.25, -0.25, -0.5, -0.5, -0.5, 1.5])
    torch.testing.assert_close(advantages, centred / (rewards.std() + EPS))  # torch.std is unbiased
    assert stats["reward/std"].item() == pytest.approx(rewards.std().item())
    assert stats["frac_reward_zero_std"].item() == 0.0  # still counted per group


def test_no_scale_only_centres() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 4.0])
    advantages, _ = group_advantages(rewards, 4, scale="none")
    torch.testing.assert_close(advantages, torch.tensor([0.75, -0.25, -0.25, -0.25, -0.5, -0.5, -0.5, 1.5]))


def test_unscorable_completions_are_left_out_and_get_zero() -> None:
    nan = float("nan")
    rewards = torch.tensor([nan, 1.0, 3.0, 0.0, 0.0, nan])  # B=2, G=3
    advantages, stats = group_advantages(rewards, 3)
    expected = [
        0.0,  # unscorable
        -1 / (math.sqrt(2) + EPS),  # group 0 is {1, 3}: mean 2, unbiased std sqrt(2)
        1 / (math.sqrt(2) + EPS),
        0.0,  # group 1 is {0, 0}: zero std
        0.0,
        0.0,  # unscorable
    ]
    torch.testing.assert_close(advantages, torch.tensor(expected))
    assert stats["num_unscorable"].item() == 2
    assert stats["reward/mean"].item() == pytest.approx(1.0)  # over the 4 scorable completions
    assert stats["frac_reward_zero_std"].item() == 0.5


def test_keeps_the_reward_dtype() -> None:
    advantages, _ = group_advantages(torch.tensor([0.0, 1.0], dtype=torch.float64), 2)
    assert advantages.dtype == torch.float64


@pytest.mark.parametrize(
    ("rewards", "num_generations", "scale", "message"),
    [
        (torch.zeros(6), 4, "group", "6 values, which is not a positive multiple of num_generations=4"),
        (torch.zeros(4), 1, "group", "num_generations must be >= 2"),
        (torch.zeros(4), 1, "none", "num_generations must be >= 2"),
        (torch.zeros(4), 2, "groups", "Unknown reward scale 'groups'"),
        (torch.zeros(2, 2), 2, "group", r"rewards must be a floating \[B\*G\] tensor"),
        (torch.zeros(4, dtype=torch.long), 2, "group", "rewards must be a floating"),
        (torch.zeros(0), 2, "group", "0 values"),
        (torch.tensor([0.0, float("inf")]), 2, "group", "rewards must be finite or NaN"),
    ],
)
def test_bad_arguments(rewards: torch.Tensor, num_generations: int, scale: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        group_advantages(rewards, num_generations, scale=scale)  # type: ignore[arg-type]


def test_negative_eps_is_rejected() -> None:
    with pytest.raises(ValueError, match="eps must be >= 0"):
        group_advantages(torch.zeros(2), 2, eps=-1.0)


def test_combine_rewards_weights_and_skips_none() -> None:
    total = combine_rewards(
        {"answer": [1.0, None, None], "order": [0.5, 0.5, None]}, {"answer": 2.0, "order": 1.0}
    )
    assert total[0].item() == 2.5  # 2 * 1 + 1 * 0.5
    assert total[1].item() == 0.5  # answer not applicable: only order counts
    assert math.isnan(total[2].item())  # nothing applied: unscorable
    assert total.dtype == torch.float32


@pytest.mark.parametrize(
    ("columns", "weights", "message"),
    [
        ({"a": [1.0]}, {}, r"rewards without a weight: \['a'\]"),
        ({"a": [1.0]}, {"a": 1.0, "b": 1.0}, r"weights without a reward: \['b'\]"),
        ({"a": [1.0], "b": [1.0, 0.0]}, {"a": 1.0, "b": 1.0}, "one value per completion; got lengths"),
        ({"a": [1.0, float("nan")]}, {"a": 1.0}, "reward 'a' returned nan for completion 1; return None"),
        ({"a": [float("inf")]}, {"a": 1.0}, "reward 'a' returned inf for completion 0"),
        ({}, {}, "no reward columns given"),
    ],
)
def test_combine_rewards_errors(columns: dict, weights: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        combine_rewards(columns, weights)


def test_reward_stats_only_over_applicable_completions() -> None:
    stats = reward_stats({"answer": [1.0, None, 0.0], "grounding": [None, None, 0.5]})
    assert stats["rewards/answer/mean"].item() == 0.5
    assert stats["rewards/answer/std"].item() == pytest.approx(math.sqrt(0.5))
    assert stats["rewards/grounding/mean"].item() == 0.5
    assert math.isnan(stats["rewards/grounding/std"].item())  # one value has no spread


def test_module_example_runs() -> None:
    result = doctest.testmod(src.rl.advantages)
    assert result.attempted > 0 and result.failed == 0
