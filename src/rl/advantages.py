"""Group-relative advantages, and the weighted sum of several reward functions they start from.

GRPO has no value network: each prompt's ``G`` completions are scored, and a completion's advantage is how
much better it did than its siblings. Rows are laid out ``G`` consecutive completions per prompt::

    rewards     [B*G]   r = combine_rewards({"answer": [...], "format": [...]}, {"answer": 1.0, "format": 1.0})
    advantages  [B*G]   (r - mean of its group) / (std of its group + eps)

A reward function may answer None ("not applicable", e.g. a grounding reward for a clip with no dominant
modality). As in TRL 1.16, None is left out of the weighted sum; a completion for which *every* reward said
None is unscorable: its total is NaN, it is left out of its group's mean and std, and its advantage is 0.

Both functions compute what TRL 1.16's ``GRPOTrainer`` computes with
``multi_objective_aggregation="sum_then_normalize"`` (its default) and ``scale_rewards`` in
``group``/``batch``/``none``; a test compares the numbers with TRL's own code. Not available:
``normalize_then_sum`` (GDPO).

Example:
    >>> total = combine_rewards({"answer": [1.0, 0.0, None, 1.0]}, {"answer": 1.0})
    >>> advantages, stats = group_advantages(total, num_generations=2)
    >>> [round(a, 3) for a in advantages.tolist()]
    [0.707, -0.707, 0.0, 0.0]
    >>> stats["num_unscorable"].item()
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

RewardScale = Literal["group", "batch", "none"]
REWARD_SCALES: tuple[str, ...] = get_args(RewardScale)


def combine_rewards(
    columns: Mapping[str, Sequence[float | None]],
    weights: Mapping[str, float],
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """The weighted total reward of each completion, ``[B*G]`` float32; None entries are skipped.

    Args:
        columns: reward name -> one value per completion (all the same length), None = not applicable.
        weights: reward name -> weight; exactly the names in ``columns``.
        device: where to put the result.

    Returns:
        ``sum_k weights[k] * columns[k][i]`` over the rewards that applied to completion ``i``; NaN where
        none applied (:func:`group_advantages` gives those completions a zero advantage).

    Raises:
        ValueError: columns of different lengths, names without a weight (or weights without a column), or a
            non-finite value (a reward that cannot score a completion must return None, not NaN).
    """
    missing = [name for name in columns if name not in weights]
    extra = [name for name in weights if name not in columns]
    if missing or extra:
        raise ValueError(
            f"reward weights must name exactly the rewards computed; rewards without a weight: {missing}, "
            f"weights without a reward: {extra}"
        )
    table = reward_table(columns, device=device)  # [N, K], NaN = not applicable
    weight = torch.tensor([float(weights[name]) for name in columns], dtype=table.dtype, device=table.device)
    total = (table * weight).nansum(dim=1)  # [N]
    unscorable = torch.isnan(table).all(dim=1)  # [N]
    return total.masked_fill(unscorable, float("nan"))


def reward_table(
    columns: Mapping[str, Sequence[float | None]], *, device: torch.device | str | None = None
) -> Tensor:
    """Stack reward columns into a ``[B*G, K]`` float32 tensor (columns in ``columns`` order), None -> NaN."""
    if not columns:
        raise ValueError("no reward columns given; configure at least one reward function")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"every reward must return one value per completion; got lengths {lengths}")
    rows = []
    for name, values in columns.items():
        for index, value in enumerate(values):
            if value is not None and not math.isfinite(value):
                raise ValueError(
                    f"reward {name!r} returned {value} for completion {index}; return None for 'not applicable'"
                )
        rows.append([float("nan") if value is None else float(value) for value in values])
    return torch.tensor(rows, dtype=torch.float32, device=device).T.contiguous()  # [N, K]


def reward_stats(columns: Mapping[str, Sequence[float | None]]) -> dict[str, Tensor]:
    """Per-reward ``rewards/{name}/mean`` and ``rewards/{name}/std`` over the completions it applied to.

    A reward that applied to no completion (or to one, for the std) gets NaN, as in TRL's logs.
    """
    table = reward_table(columns)  # [N, K]
    means = torch.nanmean(table, dim=0)  # [K]
    stds = _nanstd(table, dim=0)  # [K]
    stats: dict[str, Tensor] = {}
    for k, name in enumerate(columns):
        stats[f"rewards/{name}/mean"] = means[k]
        stats[f"rewards/{name}/std"] = stds[k]
    return stats


def group_advantages(
    rewards: Tensor,
    num_generations: int,
    *,
    scale: RewardScale = "group",
    eps: float = 1e-4,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Group-relative advantages of ``B*G`` completions, ``G = num_generations`` consecutive rows per prompt.

    Args:
        rewards: ``[B*G]`` total rewards (see :func:`combine_rewards`); NaN marks an unscorable completion.
        num_generations: ``G``, completions per prompt (at least 2: with one, every advantage is 0).
        scale: ``group`` divides by the unbiased std of each group (GRPO), ``batch`` by the std of the whole
            batch (TRL's ``scale_rewards="batch"``), ``none`` does not divide (Dr. GRPO).
        eps: added to the std so that a group of equal rewards gives 0, not 0/0.

    Returns:
        ``(advantages, stats)``: ``[B*G]`` advantages in the rewards' dtype (0 for unscorable completions),
        and detached 0-dim tensors: ``reward/mean`` and ``reward/std`` over scorable completions,
        ``frac_reward_zero_std`` (fraction of groups whose rewards are all equal, so they teach nothing; always
        per group, whatever ``scale``) and ``num_unscorable``.

    Raises:
        ValueError: ``rewards`` not 1-D, its length not a multiple of ``num_generations``, fewer than 2
            generations, an unknown ``scale``, a negative ``eps`` or an infinite reward.
    """
    _check_arguments(rewards, num_generations, scale, eps)
    grouped = rewards.view(-1, num_generations)  # [B, G]
    group_mean = torch.nanmean(grouped, dim=1, keepdim=True)  # [B, 1]
    group_std = _nanstd(grouped, dim=1, keepdim=True)  # [B, 1], NaN for a group with < 2 scorable rows
    centred = grouped - group_mean  # [B, G]
    if scale == "group":
        advantages = centred / (group_std + eps)
    elif scale == "batch":
        advantages = centred / (_nanstd(rewards) + eps)
    else:
        advantages = centred
    # NaN here means "unscorable" or "no baseline to compare with": such a completion carries no signal.
    advantages = torch.nan_to_num(advantages.reshape(-1), nan=0.0)  # [B*G]

    with torch.no_grad():
        stats = {
            "reward/mean": torch.nanmean(rewards),
            "reward/std": _nanstd(rewards),
            "frac_reward_zero_std": torch.isclose(group_std, torch.zeros_like(group_std)).to(rewards.dtype).mean(),
            "num_unscorable": torch.isnan(rewards).sum().to(rewards.dtype),
        }
    return advantages, {name: value.detach() for name, value in stats.items()}


def _nanstd(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Unbiased standard deviation ignoring NaNs; NaN where fewer than two values remain."""
    dims = tuple(range(x.dim())) if dim is None else (dim,)
    mean = torch.nanmean(x, dim=dims, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dims, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dims, keepdim=True) * count / (count - 1)
    variance = torch.where(count > 1, variance, float("nan"))
    std = variance.sqrt()
    return std if keepdim else std.squeeze(dims)


def _check_arguments(rewards: Tensor, num_generations: int, scale: str, eps: float) -> None:
    if scale not in REWARD_SCALES:
        raise ValueError(f"Unknown reward scale {scale!r}; available: {', '.join(REWARD_SCALES)}")
    if rewards.dim() != 1 or not rewards.is_floating_point():
        raise ValueError(
            f"rewards must be a floating [B*G] tensor, got shape {tuple(rewards.shape)} of {rewards.dtype}"
        )
    if num_generations < 2:
        raise ValueError(
            f"num_generations must be >= 2 for group-relative advantages (a lone completion is its own "
            f"baseline, so its advantage is always 0), got {num_generations}"
        )
    if rewards.numel() == 0 or rewards.numel() % num_generations != 0:
        raise ValueError(
            f"rewards holds {rewards.numel()} values, which is not a positive multiple of "
            f"num_generations={num_generations}: each prompt needs exactly G consecutive completions"
        )
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if torch.isinf(rewards).any():
        raise ValueError(f"rewards must be finite or NaN (unscorable); got {rewards.tolist()}")
