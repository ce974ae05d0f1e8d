"""Rollout scoring: the shared prompt pass gives the full forward's log-probs and gradients, at less cost."""

from __future__ import annotations

import pytest
import torch

from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer
from src.rl.rollout import Rollout, TextPolicy, completion_logprobs, sample_completions
from tests.models.conftest import collator_for, make_examples

AV, V, A = (True, True), (True, False), (False, True)
GROUP = 3


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture
def model(tokenizer) -> OmniModel:
    torch.manual_seed(0)
    return OmniModel.from_tokenizer(get_preset("tiny"), tokenizer)


def _rollout(model: torch.nn.Module, tokenizer, input_ids, attention_mask, media=None) -> Rollout:
    model.eval()
    rollout = sample_completions(
        model,
        tokenizer,
        input_ids,
        attention_mask,
        media,
        num_generations=GROUP,
        max_new_tokens=10,
        temperature=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    model.train()
    # completion 1 ends early: EOS at position 4, padding and mask 0 after it
    rollout.completion_ids[1, 4] = tokenizer.eos_token_id
    rollout.completion_ids[1, 5:] = tokenizer.pad_token_id
    rollout.completion_mask[1, 5:] = 0
    return rollout


def _scored(
    model: torch.nn.Module, rollout: Rollout
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Log-probs, entropy and the gradients of a random linear function of the log-probs."""
    model.zero_grad()
    logprobs, entropy = completion_logprobs(model, rollout, with_entropy=True)
    weights = torch.randn(logprobs.shape, generator=torch.Generator().manual_seed(1))
    (logprobs * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logprobs.detach(), entropy, grads


def _full_forward_only(model: torch.nn.Module) -> None:
    """A no-op hook on a decoder layer: the model must then run as one forward (see plain_qwen2)."""
    model.llm.model.layers[0].register_forward_pre_hook(lambda module, args: None)


@pytest.mark.parametrize("multimodal", [True, False], ids=["omni", "text"])
def test_shared_prompt_pass_gives_the_full_forward_logprobs_and_gradients(model, tokenizer, multimodal):
    if multimodal:  # media spliced into the prompts, left padding of three lengths
        batch = collator_for(model, tokenizer, "left")(make_examples([AV, V, A]))
        policy, prompts = model, (batch.input_ids, batch.attention_mask, batch.media)
    else:  # the benchmark's text-only policy
        policy = TextPolicy(model.llm)
        encoded = tokenizer(
            ["<|im_start|>user\nhow do you feel?", "hi"], padding=True, padding_side="left", return_tensors="pt"
        )
        prompts = (encoded["input_ids"], encoded["attention_mask"])
    rollout = _rollout(policy, tokenizer, *prompts)
    shared, shared_entropy, shared_grads = _scored(policy, rollout)
    _full_forward_only(model)
    full, full_entropy, full_grads = _scored(policy, rollout)

    assert torch.allclose(shared, full, atol=1e-5)
    assert torch.allclose(shared_entropy, full_entropy, atol=1e-5)
    assert shared_grads.keys() == full_grads.keys()
    assert len(shared_grads) > 20  # the LLM, projectors and gate all received gradients
    for name, grad in full_grads.items():  # equal up to float32 summation order, relative to each tensor's scale
        torch.testing.assert_close(shared_grads[name], grad, rtol=0, atol=1e-5 * float(grad.abs().max()) + 1e-8)
    assert (shared[1, 5:] == 0).all() and (shared[1, :5] != 0).all()  # zero after EOS, real values before


def test_prompt_positions_run_once_per_prompt_not_once_per_completion(model, tokenizer):
    batch = collator_for(model, tokenizer, "left")(make_examples([AV, A]))
    rollout = _rollout(model, tokenizer, batch.input_ids, batch.attention_mask, batch.media)
    positions: list[int] = []  # token positions through the first MLP (not a bypassed module: see plain_qwen2)
    model.llm.model.layers[0].mlp.register_forward_hook(lambda m, i, o: positions.append(o.shape[0] * o.shape[1]))
    completion_logprobs(model, rollout)
    prompts, length = batch.input_ids.shape
    completions, new_tokens = rollout.completion_ids.shape
    assert positions == [prompts * length, completions * new_tokens]  # not completions * (length + new_tokens)
