"""Hand-computed cases for :func:`src.rl.loss.grpo_loss` (TRL parity lives in ``test_loss_vs_trl.py``)."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import src.rl.loss
from src.rl.loss import grpo_loss

CLIP = {"epsilon_low": 0.2, "epsilon_high": 0.2}


def _on_policy_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logprobs = torch.randn(4, 3).requires_grad_(True)  # N = 4 completions, T = 3 positions
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]])  # lengths 3, 1, 0, 2 (6 tokens)
    advantages = torch.tensor([1.0, -2.0, 5.0, 0.5])
    return logprobs, mask, advantages


@pytest.mark.parametrize(
    ("loss_type", "extra", "expected_loss", "token_weight"),
    [
        # grpo: per-completion token mean, then mean over all 4 completions (the empty one counts as 0)
        ("grpo", {}, (-1 + 2 + 0 - 0.5) / 4, [1 / 12, 1 / 4, 0.0, 1 / 8]),
        # bnpo: sum over the 6 tokens / 6
        ("bnpo", {}, (-3 + 2 - 1) / 6, [1 / 6] * 4),
        # dr_grpo: sum / (N * max_completion_length) = sum / 20
        ("dr_grpo", {"max_completion_length": 5}, (-3 + 2 - 1) / 20, [1 / 20] * 4),
        # dapo without a count: this batch's 6 tokens, same as bnpo
        ("dapo", {}, (-3 + 2 - 1) / 6, [1 / 6] * 4),
        # dapo with a global count of 12 tokens
        ("dapo", {"num_items_in_batch": 12}, (-3 + 2 - 1) / 12, [1 / 12] * 4),
        # ... also as a tensor (e.g. from an all-reduce)
        ("dapo", {"num_items_in_batch": torch.tensor(12)}, (-3 + 2 - 1) / 12, [1 / 12] * 4),
    ],
)
def test_on_policy_loss_and_gradient(
    loss_type: str, extra: dict, expected_loss: float, token_weight: list[float]
) -> None:
    logprobs, mask, advantages = _on_policy_batch()
    loss, _ = grpo_loss(logprobs, None, advantages, mask, beta=0.0, loss_type=loss_type, **CLIP, **extra)
    loss.backward()
    assert loss.item() == pytest.approx(expected_loss)
    # On-policy the ratio is 1 with gradient 1, so d loss / d logprob = -advantage * the token's weight.
    expected_grad = -advantages.unsqueeze(1) * torch.tensor(token_weight).unsqueeze(1) * mask
    torch.testing.assert_close(logprobs.grad, expected_grad)


def test_clipping_keeps_the_pessimistic_side_and_stops_its_gradient() -> None:
    ratios = torch.tensor([1.5, 1.1, 0.5, 1.5, 0.5])
    logprobs = ratios.log().unsqueeze(1).requires_grad_(True)  # 5 one-token completions
    old_logprobs = torch.zeros(5, 1)  # so ratio = exp(logprobs - 0) = ratios
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0])
    loss, stats = grpo_loss(
        logprobs, None, advantages, torch.ones(5, 1), old_logprobs=old_logprobs, beta=0.0, loss_type="bnpo", **CLIP
    )
    loss.backward()
    per_token_loss = [
        -1.2,  # A > 0, ratio 1.5 above 1.2: clipped to 1.2, no gradient
        -1.1,  # A > 0, ratio 1.1 inside the range: -ratio
        0.8,  # A < 0, ratio 0.5 below 0.8: clipped to 0.8, no gradient
        1.5,  # A < 0, ratio 1.5 above 1.2: the unclipped term is the smaller objective, kept with gradient
        -0.5,  # A > 0, ratio 0.5 below 0.8: likewise kept
    ]
    assert loss.item() == pytest.approx(sum(per_token_loss) / 5)
    torch.testing.assert_close(logprobs.grad.squeeze(1), torch.tensor([0.0, -1.1, 0.0, 1.5, -0.5]) / 5)
    assert stats["clip_ratio/high_mean"].item() == pytest.approx(1 / 5)  # token 0
    assert stats["clip_ratio/low_mean"].item() == pytest.approx(1 / 5)  # token 2
    assert stats["clip_ratio/region_mean"].item() == pytest.approx(2 / 5)
    assert stats["clip_ratio/high_max"].item() == 1.0  # completion 0 is entirely clipped
    assert stats["clip_ratio/low_min"].item() == 0.0
    assert stats["ratio/mean"].item() == pytest.approx(ratios.mean().item())
    assert stats["ratio/max"].item() == pytest.approx(1.5)
    assert stats["num_tokens"].item() == 5


def test_asymmetric_clip_range() -> None:
    logprobs = torch.tensor([[math.log(1.5)]], requires_grad=True)
    old_logprobs = torch.zeros(1, 1)
    loss, _ = grpo_loss(
        logprobs, None, torch.ones(1), torch.ones(1, 1), old_logprobs=old_logprobs, beta=0.0,
        epsilon_low=0.2, epsilon_high=0.6,
    )  # fmt: skip
    assert loss.item() == pytest.approx(-1.5)  # 1.5 < 1 + 0.6: not clipped


def test_k3_kl_value_gradient_and_bias_correction() -> None:
    deltas = torch.tensor([0.0, 0.5, -0.5])  # logprob - ref for three one-token completions
    ref_logprobs = torch.full((3, 1), -1.0)
    advantages = torch.zeros(3)  # isolate the KL term
    expected_kl = torch.exp(-deltas) + deltas - 1  # exp(ref - logp) - (ref - logp) - 1

    plain = (ref_logprobs + deltas.unsqueeze(1)).requires_grad_(True)
    loss, stats = grpo_loss(plain, ref_logprobs, advantages, torch.ones(3, 1), beta=0.5, loss_type="bnpo", **CLIP)
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * expected_kl.mean().item())
    assert stats["kl"].item() == pytest.approx(expected_kl.mean().item())
    expected_grad = 0.5 * (1 - torch.exp(-deltas)) / 3  # d kl / d logp = 1 - exp(ref - logp)
    torch.testing.assert_close(plain.grad.squeeze(1), expected_grad)

    corrected = (ref_logprobs + deltas.unsqueeze(1)).requires_grad_(True)
    loss, _ = grpo_loss(
        corrected, ref_logprobs, advantages, torch.ones(3, 1), beta=0.5, loss_type="bnpo", bias_corrected_kl=True,
        **CLIP,
    )  # fmt: skip
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * expected_kl.mean().item())  # the ratio is 1 in value ...
    # ... but its gradient (1 per token) adds kl itself: d(kl * ratio) = d kl + kl
    torch.testing.assert_close(corrected.grad.squeeze(1), expected_grad + 0.5 * expected_kl / 3)


def test_old_logprobs_none_equals_detached_current_policy() -> None:
    logprobs, mask, advantages = _on_policy_batch()
    ref_logprobs = torch.randn(4, 3)
    implicit = logprobs.detach().clone().requires_grad_(True)
    explicit = logprobs.detach().clone().requires_grad_(True)
    loss_implicit, _ = grpo_loss(implicit, ref_logprobs, advantages, mask, beta=0.04, **CLIP)
    loss_explicit, _ = grpo_loss(
        explicit, ref_logprobs, advantages, mask, old_logprobs=explicit.detach(), beta=0.04, **CLIP
    )
    (loss_implicit + loss_explicit).backward()
    assert loss_implicit.item() == loss_explicit.item()
    torch.testing.assert_close(implicit.grad, explicit.grad)


def test_bool_mask_and_padding_values_do_not_matter() -> None:
    logprobs, mask, advantages = _on_policy_batch()
    ref_logprobs = torch.randn(4, 3)
    loss, _ = grpo_loss(logprobs, ref_logprobs, advantages, mask, beta=0.04, **CLIP)
    garbage = torch.where(mask.bool(), logprobs.detach(), torch.tensor(-30.0))  # other values at padding
    garbage_ref = torch.where(mask.bool(), ref_logprobs, torch.tensor(7.0))
    same, _ = grpo_loss(garbage, garbage_ref, advantages, mask.bool(), beta=0.04, **CLIP)
    assert same.item() == pytest.approx(loss.item())


def test_stats_are_detached_scalars_and_kl_only_with_beta() -> None:
    logprobs, mask, advantages = _on_policy_batch()
    loss, stats = grpo_loss(logprobs, torch.randn(4, 3), advantages, mask, beta=0.04, **CLIP)
    assert loss.requires_grad and loss.dim() == 0
    assert all(value.dim() == 0 and not value.requires_grad for value in stats.values())
    assert "kl" in stats
    _, stats = grpo_loss(logprobs, None, advantages, mask, beta=0.0, **CLIP)
    assert "kl" not in stats  # no reference, no KL to report


def test_all_completions_empty_gives_zero_loss_and_nan_extremes() -> None:
    logprobs = torch.zeros(2, 3, requires_grad=True)
    loss, stats = grpo_loss(logprobs, None, torch.ones(2), torch.zeros(2, 3), beta=0.0, **CLIP)
    assert loss.item() == 0.0
    assert stats["num_tokens"].item() == 0
    assert math.isnan(stats["clip_ratio/high_max"].item())
    assert math.isnan(stats["ratio/max"].item())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_type": "grop"}, "Unknown loss_type 'grop'. Did you mean 'grpo'?"),
        ({"mask": torch.ones(4, 2)}, r"mask must have the shape of logprobs \(4, 3\), got \(4, 2\)"),
        ({"advantages": torch.zeros(4, 1)}, r"advantages must be \[B\*G\] = \(4,\)"),
        ({"ref_logprobs": None}, "beta=0.04 needs ref_logprobs"),
        ({"old_logprobs": torch.zeros(3, 3)}, "old_logprobs must have the shape"),
        ({"beta": -1.0}, "beta .* must be >= 0"),
        ({"epsilon_low": 1.0}, r"epsilon_low must be in \[0, 1\)"),
        ({"epsilon_high": -0.1}, "epsilon_high must be >= 0"),
        ({"loss_type": "dr_grpo"}, "pass max_completion_length"),
        ({"logprobs": torch.zeros(4, 3, dtype=torch.long)}, "logprobs must be a non-empty floating"),
        ({"logprobs": torch.zeros(0, 3)}, "logprobs must be a non-empty floating"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    arguments = {
        "logprobs": torch.zeros(4, 3),
        "ref_logprobs": torch.zeros(4, 3),
        "advantages": torch.zeros(4),
        "mask": torch.ones(4, 3),
        "beta": 0.04,
        **CLIP,
    }
    arguments.update(kwargs)
    if arguments["logprobs"].shape[0] == 0:  # keep the other shapes consistent with an empty batch
        arguments.update(ref_logprobs=None, advantages=torch.zeros(0), mask=torch.ones(0, 3), beta=0.0)
    with pytest.raises(ValueError, match=message):
        grpo_loss(**arguments)


def test_module_example_runs() -> None:
    result = doctest.testmod(src.rl.loss, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
