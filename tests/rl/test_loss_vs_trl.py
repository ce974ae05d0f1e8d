"""Parity of :func:`src.rl.loss.grpo_loss` with TRL 1.16's ``GRPOTrainer._compute_loss``.

TRL's real method runs on a real trainer (tiny model, see ``conftest.py``); only its model-forward helper
``_get_per_token_logps_and_entropies`` is replaced so that it returns our log-prob tensor. The trainer is
built with TRL's defaults for every knob our loss does not have (token-level importance sampling,
``top_entropy_quantile=1``, no off-policy mask, no vLLM, no entropy bonus, ``delta=None``); the test checks
that those defaults indeed give the standard path, then compares loss, gradient and logged statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from src.rl.loss import LOSS_TYPES, grpo_loss

pytestmark = [
    pytest.mark.slow,  # importing TRL takes a few seconds; each case then runs in ~50 ms
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # transformers' deprecation notices inside TRL
]

NUM_ROWS, NUM_TOKENS = 8, 6  # B=2 prompts x G=4 completions, 6 completion positions
LENGTHS = [6, 4, 1, 6, 3, 0, 5, 2]  # real tokens per completion; one completion is empty
MAX_COMPLETION_LENGTH = 10  # > NUM_TOKENS, so dr_grpo's constant is visibly not the padded width
EPSILON_LOW, EPSILON_HIGH = 0.2, 0.28


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logprobs = -2 * torch.rand(NUM_ROWS, NUM_TOKENS, generator=generator)
    mask = (torch.arange(NUM_TOKENS) < torch.tensor(LENGTHS).unsqueeze(1)).long()
    return {
        "logprobs": logprobs,  # padded positions keep random (finite) values: the mask alone must hide them
        # Spread of +-0.5 in log space puts many ratios outside [0.8, 1.28]: both clip sides trigger.
        "old_logprobs": logprobs + 0.5 * torch.randn(NUM_ROWS, NUM_TOKENS, generator=generator),
        "ref_logprobs": logprobs + 0.3 * torch.randn(NUM_ROWS, NUM_TOKENS, generator=generator),
        "advantages": torch.tensor([1.2, -0.7, 0.4, -1.5, 0.9, 0.3, -0.2, -0.8]),
        "mask": mask,
    }


def _trl_loss(
    trainer: Any, batch: dict[str, torch.Tensor], logprobs: torch.Tensor, *, with_old: bool, num_items: int
) -> torch.Tensor:
    """Run TRL's ``_compute_loss`` with its forward helper answering ``logprobs``."""
    entropies = torch.zeros_like(logprobs)
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (logprobs, entropies, None)
    inputs = {
        "prompt_ids": torch.ones(NUM_ROWS, 2, dtype=torch.long),
        "prompt_mask": torch.ones(NUM_ROWS, 2, dtype=torch.long),
        "completion_ids": torch.ones(NUM_ROWS, NUM_TOKENS, dtype=torch.long),
        "completion_mask": batch["mask"],
        "advantages": batch["advantages"],
        "old_per_token_logps": batch["old_logprobs"] if with_old else None,
        "ref_per_token_logps": batch["ref_logprobs"],
        "num_items_in_batch": torch.tensor(num_items),
    }
    return trainer._compute_loss(trainer.model, inputs)


def _trainer(make_trl_trainer: Callable[..., Any], loss_type: str, beta: float, bias_corrected_kl: bool) -> Any:
    trainer = make_trl_trainer(
        loss_type=loss_type,
        beta=beta,
        epsilon=EPSILON_LOW,
        epsilon_high=EPSILON_HIGH,
        use_bias_correction_kl=bias_corrected_kl,
        max_completion_length=MAX_COMPLETION_LENGTH,
    )
    # TRL's defaults must select the path our loss implements; fail loudly if a new TRL changes one.
    assert trainer.importance_sampling_level == "token"
    assert trainer.top_entropy_quantile == 1.0
    assert trainer.off_policy_mask_threshold is None
    assert trainer.args.delta is None
    assert not trainer.use_vllm
    assert not trainer._entropy_bonus_enabled
    assert not trainer.aux_loss_enabled
    assert trainer.args.steps_per_generation == 1
    return trainer


@pytest.mark.parametrize("bias_corrected_kl", [False, True])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("with_old", [True, False], ids=["old-logprobs", "on-policy"])
def test_loss_gradient_and_stats_match_trl(
    make_trl_trainer: Callable[..., Any], loss_type: str, bias_corrected_kl: bool, with_old: bool
) -> None:
    beta = 0.04
    batch = _batch()
    # dapo divides by a global token count; make it differ from this batch's (as with several ranks).
    num_items = 3 * sum(LENGTHS)
    trainer = _trainer(make_trl_trainer, loss_type, beta, bias_corrected_kl)

    theirs_logprobs = batch["logprobs"].clone().requires_grad_(True)
    theirs = _trl_loss(trainer, batch, theirs_logprobs, with_old=with_old, num_items=num_items)
    theirs.backward()

    ours_logprobs = batch["logprobs"].clone().requires_grad_(True)
    ours, stats = grpo_loss(
        ours_logprobs,
        batch["ref_logprobs"],
        batch["advantages"],
        batch["mask"],
        old_logprobs=batch["old_logprobs"] if with_old else None,
        beta=beta,
        epsilon_low=EPSILON_LOW,
        epsilon_high=EPSILON_HIGH,
        loss_type=loss_type,
        bias_corrected_kl=bias_corrected_kl,
        max_completion_length=MAX_COMPLETION_LENGTH,
        num_items_in_batch=num_items,
    )
    ours.backward()

    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_logprobs.grad, theirs_logprobs.grad, rtol=0, atol=1e-6)
    assert ours_logprobs.grad.abs().sum() > 0  # a real gradient was compared, not two zeros
    assert ours_logprobs.grad[batch["mask"] == 0].abs().sum() == 0  # padding gets no gradient

    logged = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    for name in (
        "kl",
        "clip_ratio/low_mean",
        "clip_ratio/high_mean",
        "clip_ratio/region_mean",
        "clip_ratio/low_min",
        "clip_ratio/high_max",
    ):
        assert stats[name].item() == pytest.approx(logged[name], abs=1e-6), name
    if with_old:  # the comparison exercised both clip sides
        assert stats["clip_ratio/low_mean"] > 0
        assert stats["clip_ratio/high_mean"] > 0
    else:  # on-policy the ratio is exactly 1: nothing is clipped
        assert stats["clip_ratio/region_mean"] == 0


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_loss_without_kl_matches_trl(make_trl_trainer: Callable[..., Any], loss_type: str) -> None:
    batch = _batch(seed=1)
    trainer = _trainer(make_trl_trainer, loss_type, beta=0.0, bias_corrected_kl=False)
    theirs_logprobs = batch["logprobs"].clone().requires_grad_(True)
    theirs = _trl_loss(trainer, batch, theirs_logprobs, with_old=True, num_items=sum(LENGTHS))
    theirs.backward()

    ours_logprobs = batch["logprobs"].clone().requires_grad_(True)
    ours, stats = grpo_loss(
        ours_logprobs,
        None,  # no reference needed when beta == 0
        batch["advantages"],
        batch["mask"],
        old_logprobs=batch["old_logprobs"],
        beta=0.0,
        epsilon_low=EPSILON_LOW,
        epsilon_high=EPSILON_HIGH,
        loss_type=loss_type,
        max_completion_length=MAX_COMPLETION_LENGTH,
    )
    ours.backward()

    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_logprobs.grad, theirs_logprobs.grad, rtol=0, atol=1e-6)
    assert "kl" not in stats and "kl" not in trainer._metrics["train"]
