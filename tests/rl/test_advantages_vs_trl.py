"""Parity of :mod:`src.rl.advantages` with TRL 1.16's reward aggregation and advantage computation.

A real ``GRPOTrainer`` (tiny model, see ``conftest.py``) runs its own ``_generate_and_score_completions``:
it generates two tokens per completion, then calls reward functions that return the values written in
the rows (None included), sums them with its ``reward_weights`` and computes advantages. We feed the same
reward columns to :func:`combine_rewards`, :func:`group_advantages` and :func:`reward_stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from src.rl.advantages import REWARD_SCALES, combine_rewards, group_advantages, reward_stats

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


@pytest.mark.parametrize("scale", REWARD_SCALES)
def test_advantages_and_reward_stats_match_trl(make_trl_trainer: Callable[..., Any], scale: str) -> None:
    theirs, logged = _trl_outputs(make_trl_trainer, scale)

    total = combine_rewards(COLUMNS, WEIGHTS)
    ours, stats = group_advantages(total, NUM_GENERATIONS, scale=scale)

    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert theirs.abs().sum() > 0  # non-trivial advantages were compared
    assert stats["reward/mean"].item() == pytest.approx(logged["reward"], abs=1e-6)
    assert stats["reward/std"].item() == pytest.approx(logged["reward_std"], abs=1e-6)
    for name, value in reward_stats(COLUMNS).items():
        assert value.item() == pytest.approx(logged[name], abs=1e-6), name
    if scale != "batch":  # TRL then logs whether the *batch* std is 0; ours is always per group
        assert stats["frac_reward_zero_std"].item() == pytest.approx(logged["frac_reward_zero_std"], abs=1e-6)
    assert stats["frac_reward_zero_std"].item() == pytest.approx(1 / 4)  # group 1's totals are all equal
    assert stats["num_unscorable"].item() == 4  # row 8 and rows 12, 13, 15
    assert ours[12:].abs().sum() == 0  # group 3: one scorable completion has no sibling to compare with
