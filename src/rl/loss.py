"""The GRPO objective as one pure function: clipped token-level surrogate, k3 KL to a reference, four aggregations.

:func:`grpo_loss` takes the per-token log-probabilities of ``B*G`` completions (``G`` consecutive rows per
prompt) and returns the scalar loss to back-propagate plus detached statistics to log. It has no model, no
optimiser and no distributed code in it, so the training module reads as the algorithm and the maths is
tested on plain tensors.

It computes what TRL 1.16's ``GRPOTrainer._compute_loss`` computes on its standard path
(``importance_sampling_level="token"``, no entropy mask, no off-policy mask, no vLLM importance-sampling
correction, no entropy bonus), for ``loss_type`` in ``grpo``, ``bnpo``, ``dr_grpo`` and ``dapo``; a test
compares loss values and gradients with TRL's own code. Differences, on purpose:

- gradient accumulation: TRL divides the loss by the number of accumulation steps; here the caller does
  (a pure loss should not know the optimiser's schedule);
- ``bias_corrected_kl`` defaults to False (TRL 1.16's ``use_bias_correction_kl`` defaults to True): the
  R1-Omni/ERV lineage this project follows used the plain k3 term;
- not available: GSPO's sequence-level ratio, ``delta`` two-sided clipping, ``top_entropy_quantile``,
  ``off_policy_mask_threshold``, the vLLM importance-sampling correction, the entropy bonus, and the
  ``cispo``/``sapo``/``luspo``/``vespo`` losses.

Example:
    >>> import torch
    >>> logprobs = torch.randn(8, 5, requires_grad=True)  # B=2 prompts x G=4 completions, 5 tokens
    >>> mask = torch.ones(8, 5)
    >>> advantages = torch.randn(8)
    >>> loss, stats = grpo_loss(
    ...     logprobs, logprobs.detach(), advantages, mask, beta=0.04, epsilon_low=0.2, epsilon_high=0.2
    ... )
    >>> loss.backward()
    >>> sorted(stats)[:3]
    ['clip_ratio/high_max', 'clip_ratio/high_mean', 'clip_ratio/low_mean']
"""

from __future__ import annotations

import difflib
from typing import Literal, get_args

import torch
from torch import Tensor

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
LOSS_TYPES: tuple[str, ...] = get_args(LossType)


def grpo_loss(
    logprobs: Tensor,
    ref_logprobs: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    old_logprobs: Tensor | None = None,
    beta: float,
    epsilon_low: float,
    epsilon_high: float,
    loss_type: LossType = "grpo",
    bias_corrected_kl: bool = False,
    max_completion_length: int | None = None,
    num_items_in_batch: int | float | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The GRPO loss of a batch of completions, and detached statistics about it.

    Per token ``t`` of completion ``i``, with ratio ``r = exp(logprobs - old_logprobs)``::

        loss_it = -min(r * A_i, clip(r, 1 - epsilon_low, 1 + epsilon_high) * A_i) + beta * kl_it
        kl_it   = exp(ref - logprobs) - (ref - logprobs) - 1          (k3 estimator, times r if bias_corrected_kl)

    then aggregated over the tokens where ``mask`` is set:

    - ``grpo``: mean over each completion's tokens, then mean over completions (short completions weigh
      as much as long ones; the GRPO paper and the R1-Omni/ERV lineage);
    - ``bnpo``: sum over all tokens / number of tokens in this batch;
    - ``dr_grpo``: sum over all tokens / (``B*G`` * ``max_completion_length``), a constant (Dr. GRPO);
    - ``dapo``: sum over all tokens / ``num_items_in_batch`` (DAPO), by default this batch's token count.

    Args:
        logprobs: ``[B*G, T]`` log-probabilities of the sampled tokens under the policy being trained
            (carrying gradient). Padded positions must hold finite values (0 is fine).
        ref_logprobs: ``[B*G, T]`` the same under the frozen reference; may be None when ``beta == 0``.
        advantages: ``[B*G]`` one advantage per completion (see :func:`src.rl.advantages.group_advantages`).
        mask: ``[B*G, T]`` 1/True for completion tokens that count, 0/False for padding and anything after EOS.
        old_logprobs: ``[B*G, T]`` log-probabilities under the policy that sampled the completions, needed
            when one rollout feeds several updates (``num_iterations > 1``). None means "the same policy":
            the ratio is then exactly 1 in value but still carries the gradient of ``logprobs``.
        beta: KL coefficient; 0 disables the KL term (no reference needed).
        epsilon_low: the ratio is clipped from below at ``1 - epsilon_low``.
        epsilon_high: the ratio is clipped from above at ``1 + epsilon_high`` (DAPO's clip-higher uses 0.28).
        loss_type: the aggregation, one of :data:`LOSS_TYPES`.
        bias_corrected_kl: multiply the per-token KL by the ratio (TRL's ``use_bias_correction_kl``,
            DeepSeek-V3.2), which makes its gradient the unbiased reverse-KL gradient. Changes the gradient even
            on-policy, where the ratio is 1 in value.
        max_completion_length: the generation budget; required by ``dr_grpo`` (its constant normaliser),
            ignored by the other loss types.
        num_items_in_batch: the token count ``dapo`` divides by, ignored by the other loss types. For a
            global token mean across data-parallel ranks pass ``global_token_count / world_size``: DDP averages
            gradients over ranks, and TRL divides by the number of processes the same way.

    Returns:
        ``(loss, stats)``: the scalar loss, and a dict of detached 0-dim tensors (no device sync), named as
        TRL logs them: ``kl`` (masked token mean of the KL term, only when ``beta != 0``),
        ``clip_ratio/low_mean``, ``clip_ratio/high_mean``, ``clip_ratio/region_mean`` (fractions of tokens
        whose update the clip removed: ratio below ``1 - epsilon_low`` with a negative advantage, above
        ``1 + epsilon_high`` with a positive one, either), ``clip_ratio/low_min`` and ``clip_ratio/high_max``
        (extremes of the per-completion fractions), and ``ratio/mean``, ``ratio/max``, ``num_tokens``.

    Raises:
        ValueError: on inconsistent shapes, an unknown ``loss_type``, a negative ``beta`` or epsilon, a
            missing ``ref_logprobs`` with ``beta > 0``, or ``dr_grpo`` without ``max_completion_length``.
    """
    _check_arguments(
        logprobs,
        ref_logprobs,
        advantages,
        mask,
        old_logprobs,
        beta=beta,
        epsilon_low=epsilon_low,
        epsilon_high=epsilon_high,
        loss_type=loss_type,
        max_completion_length=max_completion_length,
    )
    mask = mask.to(logprobs.dtype)  # [N, T], N = B*G
    if old_logprobs is None:
        old_logprobs = logprobs.detach()

    ratio = torch.exp(logprobs - old_logprobs)  # [N, T]
    clipped_ratio = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)  # [N, T]
    advantages = advantages.unsqueeze(1)  # [N, 1]
    per_token_loss = -torch.min(ratio * advantages, clipped_ratio * advantages)  # [N, T]

    per_token_kl: Tensor | None = None
    if beta != 0.0:
        assert ref_logprobs is not None  # checked above; narrows the type
        ref_minus_policy = ref_logprobs - logprobs  # [N, T]
        per_token_kl = torch.exp(ref_minus_policy) - ref_minus_policy - 1  # [N, T], >= 0
        if bias_corrected_kl:
            per_token_kl = per_token_kl * ratio
        per_token_loss = per_token_loss + beta * per_token_kl

    loss = _aggregate(per_token_loss, mask, loss_type, max_completion_length, num_items_in_batch)
    stats = _loss_stats(ratio, advantages, mask, per_token_kl, epsilon_low, epsilon_high)
    return loss, stats


def _aggregate(
    per_token_loss: Tensor,
    mask: Tensor,
    loss_type: str,
    max_completion_length: int | None,
    num_items_in_batch: int | float | Tensor | None,
) -> Tensor:
    """Reduce ``[N, T]`` per-token losses to the scalar the chosen ``loss_type`` defines."""
    masked = per_token_loss * mask  # [N, T]
    if loss_type == "grpo":
        # Completions with no token (all masked) contribute 0 but still count in the mean, as in TRL.
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        assert max_completion_length is not None  # checked in _check_arguments; narrows the type
        return masked.sum() / (per_token_loss.size(0) * max_completion_length)
    # dapo
    if num_items_in_batch is None:
        normaliser = mask.sum()
    else:
        normaliser = torch.as_tensor(num_items_in_batch, dtype=mask.dtype, device=mask.device)
    return masked.sum() / normaliser.clamp(min=1.0)


@torch.no_grad()
def _loss_stats(
    ratio: Tensor,
    advantages: Tensor,
    mask: Tensor,
    per_token_kl: Tensor | None,
    epsilon_low: float,
    epsilon_high: float,
) -> dict[str, Tensor]:
    """Detached logging statistics; every mean is over the masked (real) tokens."""
    num_tokens = mask.sum()
    tokens_per_row = mask.sum(-1)  # [N]
    has_tokens = tokens_per_row > 0  # [N]

    def token_mean(x: Tensor) -> Tensor:
        return (x * mask).sum() / num_tokens.clamp(min=1.0)

    def row_means(x: Tensor) -> Tensor:  # [N]; rows without tokens are left out of the extremes below
        return (x * mask).sum(-1) / tokens_per_row.clamp(min=1.0)

    is_low_clipped = ((ratio < 1 - epsilon_low) & (advantages < 0)).to(mask.dtype)  # [N, T]
    is_high_clipped = ((ratio > 1 + epsilon_high) & (advantages > 0)).to(mask.dtype)  # [N, T]
    is_region_clipped = torch.maximum(is_low_clipped, is_high_clipped)  # logical or on 0/1 values
    nan = torch.full((), float("nan"), dtype=mask.dtype, device=mask.device)
    low_per_row = torch.where(has_tokens, row_means(is_low_clipped), float("inf")).min()
    high_per_row = torch.where(has_tokens, row_means(is_high_clipped), float("-inf")).max()

    stats = {
        "clip_ratio/low_mean": token_mean(is_low_clipped),
        "clip_ratio/high_mean": token_mean(is_high_clipped),
        "clip_ratio/region_mean": token_mean(is_region_clipped),
        "clip_ratio/low_min": torch.where(has_tokens.any(), low_per_row, nan),
        "clip_ratio/high_max": torch.where(has_tokens.any(), high_per_row, nan),
        "ratio/mean": token_mean(ratio),
        "ratio/max": torch.where(num_tokens > 0, torch.where(mask > 0, ratio, float("-inf")).max(), nan),
        "num_tokens": num_tokens,
    }
    if per_token_kl is not None:
        stats["kl"] = token_mean(per_token_kl)
    return {name: value.detach() for name, value in stats.items()}


def _check_arguments(
    logprobs: Tensor,
    ref_logprobs: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    old_logprobs: Tensor | None,
    *,
    beta: float,
    epsilon_low: float,
    epsilon_high: float,
    loss_type: str,
    max_completion_length: int | None,
) -> None:
    """Fail early, naming the argument, on anything the maths would silently broadcast or misread."""
    if loss_type not in LOSS_TYPES:
        close = difflib.get_close_matches(str(loss_type), LOSS_TYPES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown loss_type {loss_type!r}.{hint} Available: {', '.join(LOSS_TYPES)}")
    if logprobs.dim() != 2 or not logprobs.is_floating_point() or logprobs.numel() == 0:
        raise ValueError(
            "logprobs must be a non-empty floating [B*G, T] tensor, "
            f"got shape {tuple(logprobs.shape)} of {logprobs.dtype}"
        )
    shape = tuple(logprobs.shape)
    for name, tensor in (("mask", mask), ("ref_logprobs", ref_logprobs), ("old_logprobs", old_logprobs)):
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have the shape of logprobs {shape}, got {tuple(tensor.shape)}")
    if tuple(advantages.shape) != shape[:1]:
        raise ValueError(
            f"advantages must be [B*G] = ({shape[0]},), one per completion row of logprobs, "
            f"got {tuple(advantages.shape)}"
        )
    if beta < 0:
        raise ValueError(f"beta (the KL coefficient) must be >= 0, got {beta}")
    if beta != 0.0 and ref_logprobs is None:
        raise ValueError(f"beta={beta} needs ref_logprobs (the reference policy's log-probs); got None")
    if not 0 <= epsilon_low < 1:
        raise ValueError(f"epsilon_low must be in [0, 1) so that 1 - epsilon_low > 0, got {epsilon_low}")
    if epsilon_high < 0:
        raise ValueError(f"epsilon_high must be >= 0, got {epsilon_high}")
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length <= 0):
        raise ValueError(
            "loss_type='dr_grpo' divides by the constant B*G * max_completion_length; pass "
            f"max_completion_length (the generation budget, e.g. max_new_tokens), got {max_completion_length!r}"
        )
