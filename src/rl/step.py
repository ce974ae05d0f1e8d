"""One GRPO step as one function: rollout -> rewards -> advantages -> loss -> update, and what it logs.

:func:`grpo_step` is what ``GRPOModule.training_step`` runs and what both GRPO benchmarks time, so the
trainer, the profile and the comparison with TRL cannot drift apart. It has no Lightning in it: the caller
hands in how to score completions, how to get the reference log-probabilities, how to back-propagate and how
to clip (Lightning's ``manual_backward`` / ``clip_gradients`` in training, plain ``loss.backward()`` and
``clip_grad_norm_`` in the benchmarks)::

    rollout    = G completions per prompt, one batched KV-cache decode, media encoded once
    scores     = score(rollout): every reward's column (None = not applicable) and its metrics
    total      = combine_rewards(columns, weights)      NaN where no reward applies (the one rule, below)
    advantages = (total - mean_group) / (std_group + 1e-4), 0 for a completion no reward applied to
    repeat num_iterations times: loss = grpo_loss(policy, reference, old, advantages); backward; clip; step

Rows where no reward applies: their total is NaN (``None`` in ``completions.jsonl``), they are left out of
their group's mean and std and of ``reward``/``reward_std``, their advantage is 0, and they are counted as
``rows_without_reward`` (TRL 1.16 does the same). A metric that is undefined in a step (a reward that applied
to no completion, or was skipped after an error under ``rewards.on_error=skip``) is left out of that step's
log rather than logged as a number: a dashboard shows a gap, not a 0.0.

Simplifications, on purpose: one optimiser step per rollout batch per iteration (no mini-batching inside a
rollout); old log-probabilities are computed only when ``num_iterations > 1`` (otherwise the ratio is 1 and
its gradient is the policy gradient).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from src.models.omni import MediaInputs
from src.rl.advantages import REWARD_SCALES, combine_rewards, group_advantages
from src.rl.loss import LOSS_TYPES, grpo_loss
from src.rl.rollout import Rollout, completion_logprobs, sample_completions

STEP_PARTS: tuple[str, ...] = ("rollout", "reward", "loss")


@dataclass
class GRPOConfig:
    """The ``stage`` config of ``stage=grpo`` (``configs/stage/grpo.yaml``); validated on construction."""

    num_generations: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_iterations: int = 1
    beta: float = 0.04
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    loss_type: str = "grpo"
    bias_corrected_kl: bool = False
    scale_rewards: str = "group"
    mask_truncated: bool = False
    gradient_clip_val: float | None = 1.0
    log_completions: int = 4
    dominant_source: str = "mi"  # mi: the MIGR build's estimate (extra["mi_dominant"]) when present | manifest
    optim: dict[str, Any] = field(default_factory=lambda: {"lr": 1e-6, "warmup_ratio": 0.0})

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(
                f"stage.num_generations={self.num_generations} must be >= 2 (advantages compare within a group)"
            )
        if self.num_iterations < 1:
            raise ValueError(f"stage.num_iterations={self.num_iterations} must be >= 1")
        if self.dominant_source not in ("mi", "manifest"):
            raise ValueError(f"stage.dominant_source={self.dominant_source!r} must be 'mi' or 'manifest'")
        if self.temperature <= 0:
            raise ValueError(f"stage.temperature={self.temperature} must be > 0: GRPO needs sampled completions")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"stage.loss_type={self.loss_type!r} must be one of {', '.join(LOSS_TYPES)}")
        if self.scale_rewards not in REWARD_SCALES:
            raise ValueError(
                f"stage.scale_rewards={self.scale_rewards!r} must be one of {', '.join(REWARD_SCALES)}"
            )


class Scores(Protocol):
    """What scoring a rollout returns (:class:`src.reward_set.RewardResult` is one).

    ``metrics`` are logged as they are named (``rewards/<name>/<metric>``, ``rows_without_reward``).
    """

    columns: Mapping[str, Sequence[float | None]]
    weights: Mapping[str, float]
    metrics: Mapping[str, float]


@dataclass
class Prompts:
    """The B prompts of a step, left padded, with their media (None for text-only policies)."""

    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L]
    media: MediaInputs | None = None
    seeds: Sequence[int] | None = None  # one per prompt: its completions are drawn from it alone (else generator)


@dataclass
class StepResult:
    """Everything one step produced, for logging."""

    rollout: Rollout
    scores: Scores
    total: Tensor  # [B*G] weighted reward sum, NaN where no reward applied
    advantages: Tensor  # [B*G]
    advantage_stats: dict[str, Tensor]
    loss: Tensor  # the last iteration's loss, detached
    loss_stats: dict[str, Tensor]  # the last iteration's statistics
    entropy: Tensor | None  # mean token entropy of the policy (last iteration)
    seconds: dict[str, float]  # wall time of each part of STEP_PARTS


def rollout_prompts(
    policy: nn.Module, tokenizer: Any, prompts: Prompts, cfg: GRPOConfig, generator: torch.Generator | None = None
) -> Rollout:
    """Sample ``cfg.num_generations`` completions per prompt with the policy in eval mode (no dropout)."""
    was_training = policy.training
    policy.eval()
    try:
        return sample_completions(
            policy,
            tokenizer,
            prompts.input_ids,
            prompts.attention_mask,
            prompts.media,
            num_generations=cfg.num_generations,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            generator=generator,
            seeds=prompts.seeds,
        )
    finally:
        policy.train(was_training)


def rewards_to_advantages(
    scores: Scores, cfg: GRPOConfig, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """``(total [B*G], advantages [B*G], stats)`` from scored completions: the only place totals are made."""
    total = combine_rewards(scores.columns, scores.weights, device=device)  # [B*G], NaN = nothing applied
    advantages, stats = group_advantages(total, cfg.num_generations, scale=cfg.scale_rewards)
    return total, advantages, stats


def loss_mask(rollout: Rollout, cfg: GRPOConfig) -> Tensor:
    """``[B*G, T]`` float mask of the tokens in the loss: completion tokens, minus truncated rows when asked."""
    mask = rollout.completion_mask.float()
    if cfg.mask_truncated:
        mask = mask * (~rollout.truncated).float()[:, None]
    return mask


def grpo_step(
    policy: nn.Module,
    tokenizer: Any,
    prompts: Prompts,
    cfg: GRPOConfig,
    *,
    score: Callable[[Rollout], Scores],
    reference_logprobs: Callable[[Rollout], Tensor] | None,
    optimizer: Any,
    backward: Callable[[Tensor], None] = Tensor.backward,
    clip: Callable[[], None] | None = None,
    scheduler: Any | None = None,
    generator: torch.Generator | None = None,
) -> StepResult:
    """Run one GRPO step on ``prompts`` and update ``policy`` ``cfg.num_iterations`` times.

    Args:
        policy: the model being trained (an :class:`~src.models.omni.OmniModel` or a ``TextPolicy``).
        tokenizer: its tokenizer (EOS, padding, decoding of completions).
        prompts: the step's prompts.
        cfg: the GRPO settings.
        score: scores the rollout's completions (a :class:`~src.reward_set.RewardSet` call in training).
        reference_logprobs: ``[B*G, T]`` log-probs of the completions under the frozen reference; None with
            ``cfg.beta == 0``.
        optimizer: has ``zero_grad()`` and ``step()`` (a torch optimizer or Lightning's wrapper).
        backward: back-propagates the loss (``loss.backward()`` by default; Lightning's ``manual_backward``).
        clip: clips the gradients after ``backward`` (None: no clipping).
        scheduler: stepped after every optimiser step when given.
        generator: random source of the sampling (the global torch RNG when None) unless ``prompts.seeds``
            seeds each prompt's completions.
    """
    if cfg.beta > 0 and reference_logprobs is None:
        raise ValueError(f"stage.beta={cfg.beta} needs the reference policy's log-probs; got none")
    started = time.perf_counter()
    rollout = rollout_prompts(policy, tokenizer, prompts, cfg, generator)
    rolled = time.perf_counter()
    scores = score(rollout)
    total, advantages, advantage_stats = rewards_to_advantages(scores, cfg, rollout.completion_ids.device)
    scored = time.perf_counter()
    mask = loss_mask(rollout, cfg)  # [B*G, T]
    with torch.no_grad():
        ref_logprobs = reference_logprobs(rollout) if cfg.beta > 0 and reference_logprobs is not None else None
        old_logprobs = (
            completion_logprobs(policy, rollout, temperature=cfg.temperature)[0]
            if cfg.num_iterations > 1
            else None
        )
    for _ in range(cfg.num_iterations):
        logprobs, entropy = completion_logprobs(policy, rollout, with_entropy=True, temperature=cfg.temperature)
        loss, loss_stats = grpo_loss(
            logprobs,
            ref_logprobs,
            advantages,
            mask,
            old_logprobs=old_logprobs,
            beta=cfg.beta,
            epsilon_low=cfg.epsilon_low,
            epsilon_high=cfg.epsilon_high,
            loss_type=cfg.loss_type,
            bias_corrected_kl=cfg.bias_corrected_kl,
            max_completion_length=cfg.max_new_tokens,
        )
        optimizer.zero_grad()
        backward(loss)
        if clip is not None:
            clip()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    done = time.perf_counter()
    return StepResult(
        rollout=rollout,
        scores=scores,
        total=total,
        advantages=advantages,
        advantage_stats=advantage_stats,
        loss=loss.detach(),
        loss_stats=loss_stats,
        entropy=entropy,
        seconds=dict(zip(STEP_PARTS, (rolled - started, scored - rolled, done - scored))),
    )


def reward_metrics(scores: Scores, advantage_stats: Mapping[str, Tensor]) -> dict[str, float]:
    """The reward part of a step's log, named as TRL 1.16 logs it (``reward``, ``reward_std``,
    ``frac_reward_zero_std``, ``rewards/<name>/mean``, ``rewards/<name>/std``) plus our counts
    (``rewards/<name>/applicable``, ``/errors``, what rewards report such as ``/malformed``, and
    ``rows_without_reward``). Undefined values (NaN) are left out."""
    metrics = {
        "reward": float(advantage_stats["reward/mean"]),
        "reward_std": float(advantage_stats["reward/std"]),
        "frac_reward_zero_std": float(advantage_stats["frac_reward_zero_std"]),
        **{key: float(value) for key, value in scores.metrics.items()},
    }
    return {key: value for key, value in metrics.items() if not math.isnan(value)}


def step_metrics(result: StepResult, lr: float | None = None) -> dict[str, float]:
    """Every scalar a GRPO step logs (the trainer prefixes them with ``train/``); NaN values are left out."""
    lengths = result.rollout.lengths.float()
    metrics = {
        "loss": float(result.loss),
        "entropy": float(result.entropy) if result.entropy is not None else math.nan,
        "completion_length": float(lengths.mean()),
        "completion_length_min": float(lengths.min()),
        "completion_length_max": float(lengths.max()),
        "truncated_fraction": float(result.rollout.truncated.float().mean()),
        **{key: float(value) for key, value in result.loss_stats.items()},
        **reward_metrics(result.scores, result.advantage_stats),
    }
    if lr is not None:
        metrics["lr"] = float(lr)
    return {key: value for key, value in metrics.items() if not math.isnan(value)}
