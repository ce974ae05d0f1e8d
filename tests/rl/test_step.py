"""The GRPO step's knobs on a tiny text policy: several updates per rollout (old log-probs, clipping) and
``mask_truncated``; each figure is recomputed by hand from snapshots of the policy."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer
from src.reward_set import RewardResult, reward_metrics
from src.rl.rollout import Rollout, TextPolicy, completion_logprobs
from src.rl.step import GRPOConfig, Prompts, grpo_step, loss_mask
from tests.helpers import eos_biased


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture
def policy(tokenizer) -> TextPolicy:
    torch.manual_seed(0)
    return TextPolicy(OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).llm).train()


@pytest.fixture
def prompts(tokenizer) -> Prompts:
    encoded = tokenizer(
        ["<|im_start|>user\nhow do you feel?", "hi"], padding=True, padding_side="left", return_tensors="pt"
    )
    return Prompts(encoded["input_ids"], encoded["attention_mask"])


def length_score(rollout: Rollout) -> RewardResult:
    """A reward with spread on random completions: characters / 100."""
    columns = {"length": [len(text) / 100 for text in rollout.texts]}
    return RewardResult(columns, {"length": 1.0}, reward_metrics(columns, {"length": 1.0}, {}, {}))


class SnapshotAdamW(torch.optim.AdamW):
    """AdamW that keeps a copy of the policy after every step."""

    def __init__(self, policy: torch.nn.Module, lr: float) -> None:
        super().__init__(policy.parameters(), lr=lr, weight_decay=0.0)
        self.policy, self.snapshots = policy, []

    def step(self, closure=None):
        result = super().step(closure)
        self.snapshots.append(copy.deepcopy(self.policy))
        return result


def test_several_iterations_reuse_the_rollout_against_its_old_logprobs_and_clip(policy, tokenizer, prompts):
    initial = copy.deepcopy(policy)
    optimizer = SnapshotAdamW(policy, lr=3e-2)
    cfg = GRPOConfig(
        num_generations=4, max_new_tokens=8, num_iterations=3, beta=0.0, epsilon_low=0.2, epsilon_high=0.2
    )
    result = grpo_step(
        policy,
        tokenizer,
        prompts,
        cfg,
        score=length_score,
        reference_logprobs=None,
        optimizer=optimizer,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(optimizer.snapshots) == 3  # three updates from one rollout
    assert result.advantages.abs().sum() > 0
    # by hand: the third update compares the policy after two updates with the one that sampled
    with torch.no_grad():
        old = completion_logprobs(initial, result.rollout)[0]
        new = completion_logprobs(optimizer.snapshots[1], result.rollout)[0]
    mask = result.rollout.completion_mask.float()
    ratio = torch.exp(new - old)
    advantage = result.advantages[:, None]
    clipped = (((ratio < 0.8) & (advantage < 0)) | ((ratio > 1.2) & (advantage > 0))).float()
    expected_clip = float((clipped * mask).sum() / mask.sum())
    assert expected_clip > 0, "the updates moved the ratio outside [0.8, 1.2] somewhere (clipping is active)"
    assert float(result.loss_stats["clip_ratio/region_mean"]) == pytest.approx(expected_clip, abs=1e-6)
    assert float(result.loss_stats["ratio/mean"]) == pytest.approx(
        float((ratio * mask).sum() / mask.sum()), rel=1e-5
    )
    # one update per rollout: the ratio is exactly 1 and nothing is clipped
    single = grpo_step(
        copy.deepcopy(initial),
        tokenizer,
        prompts,
        GRPOConfig(num_generations=4, max_new_tokens=8, beta=0.0),
        score=length_score,
        reference_logprobs=None,
        optimizer=torch.optim.AdamW(initial.parameters(), lr=3e-2),
        generator=torch.Generator().manual_seed(0),
    )
    assert (
        float(single.loss_stats["ratio/mean"]) == 1.0 and float(single.loss_stats["clip_ratio/region_mean"]) == 0.0
    )


def _step(policy, tokenizer, prompts, *, mask_truncated: bool):
    cfg = GRPOConfig(num_generations=4, max_new_tokens=4, beta=0.0, mask_truncated=mask_truncated)
    return grpo_step(
        policy,
        tokenizer,
        prompts,
        cfg,
        score=length_score,
        reference_logprobs=None,
        optimizer=torch.optim.SGD(policy.parameters(), lr=1.0),
        generator=torch.Generator().manual_seed(3),
    ), cfg


def test_mask_truncated_takes_completions_without_eos_out_of_the_loss(policy, tokenizer, prompts):
    eos = tokenizer.eos_token_id
    bias = float(math.log(len(tokenizer)) - 1.0)  # EOS about one draw in four: some rows stop, some run out
    masked_policy = copy.deepcopy(policy)
    with eos_biased(policy.llm, eos, bias):
        plain, _ = _step(policy, tokenizer, prompts, mask_truncated=False)
    with eos_biased(masked_policy.llm, eos, bias):
        before = {name: p.detach().clone() for name, p in masked_policy.named_parameters()}
        masked, cfg = _step(masked_policy, tokenizer, prompts, mask_truncated=True)
    rollout = masked.rollout
    assert torch.equal(rollout.completion_ids, plain.rollout.completion_ids)  # the same sampled completions
    truncated = ~(rollout.completion_ids == eos).any(dim=1)  # by hand: rows without EOS
    assert torch.equal(rollout.truncated, truncated)
    assert 0 < int(truncated.sum()) < len(truncated), "the draw has both kinds of rows"
    kept_tokens = rollout.completion_mask[~truncated].sum()
    assert float(masked.loss_stats["num_tokens"]) == float(kept_tokens)
    assert float(plain.loss_stats["num_tokens"]) == float(rollout.completion_mask.sum())
    mask = loss_mask(rollout, cfg)
    assert (mask[truncated] == 0).all() and torch.equal(
        mask[~truncated], rollout.completion_mask[~truncated].float()
    )
    changed = [n for n, p in masked_policy.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed  # the rows that stopped still teach


def test_mask_truncated_with_every_row_truncated_leaves_the_policy_unchanged(policy, tokenizer, prompts):
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    # no EOS bias and 4 new tokens: a random model does not stop (checked below)
    result, _ = _step(policy, tokenizer, prompts, mask_truncated=True)
    assert result.rollout.truncated.all()
    assert float(result.loss_stats["num_tokens"]) == 0.0 and float(result.loss) == 0.0
    assert all(torch.equal(before[n], p.detach()) for n, p in policy.named_parameters())
