"""Rollouts for GRPO: sample G completions per prompt, and score tokens under a policy or a reference.

The expensive parts are done once per step and shared:

* media go through the (frozen) towers once: :class:`~src.models.omni.TowerFeatures` are reused by the
  sampling pass, every policy forward and the reference forward;
* prompt embeddings are computed for the B prompts and repeated G times (one projector/gate pass per prompt);
* sampling is one batched KV-cache decode of all B*G completions from a single prefill
  (:func:`src.models.generation.generate`);
* log-probabilities are computed only at completion positions (no logits for prompt or media positions).

Works with any policy that has ``embed(input_ids, media, towers)`` and ``llm`` (the multimodal
:class:`~src.models.omni.OmniModel`, or :class:`TextPolicy` for text-only benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.generation import generate, positions_from_mask, root_params_gathered
from src.models.omni import MediaInputs, TowerFeatures


@dataclass
class Rollout:
    """B prompts x G sampled completions; row ``b * G + g`` is sample ``g`` of prompt ``b``."""

    prompt_ids: Tensor  # [B, L] left padded
    prompt_mask: Tensor  # [B, L]
    completion_ids: Tensor  # [B*G, T] pad after EOS
    completion_mask: Tensor  # [B*G, T] 1 up to and including EOS
    texts: list[str]  # B*G decoded completions (tags kept, special tokens dropped)
    num_generations: int
    media: MediaInputs | None
    towers: TowerFeatures | None
    truncated: Tensor  # [B*G] bool: no EOS within max_new_tokens

    @property
    def lengths(self) -> Tensor:
        return self.completion_mask.sum(dim=1)


class TextPolicy(nn.Module):
    """A text-only causal LM behind the policy interface (benchmarks against TRL use a plain Qwen2)."""

    def __init__(self, llm: nn.Module) -> None:
        super().__init__()
        self.llm = llm

    def embed(
        self, input_ids: Tensor, media: MediaInputs | None = None, towers: TowerFeatures | None = None
    ) -> Tensor:
        return self.llm.get_input_embeddings()(input_ids)

    def tower_features(self, media: MediaInputs | None) -> None:
        return None


@torch.no_grad()
def sample_completions(
    policy: nn.Module,
    tokenizer,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    media: MediaInputs | None,
    *,
    num_generations: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> Rollout:
    """One batched decode of ``num_generations`` completions for each of the B left-padded prompts."""
    with root_params_gathered(policy):
        towers = policy.tower_features(media) if media is not None else None
        generation = generate(
            _Frozen(policy, towers),
            prompt_ids,
            prompt_mask,
            media,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            num_return_sequences=num_generations,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            generator=generator,
        )
    ids = generation.tokens
    truncated = ~(ids == tokenizer.eos_token_id).any(dim=1)
    return Rollout(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=ids,
        completion_mask=generation.completion_mask,
        texts=tokenizer.batch_decode(ids, skip_special_tokens=True),
        num_generations=num_generations,
        media=media,
        towers=towers,
        truncated=truncated,
    )


class _Frozen:
    """The policy seen by :func:`generate`, with its tower features precomputed."""

    def __init__(self, policy: nn.Module, towers: TowerFeatures | None) -> None:
        self.policy, self.towers, self.llm = policy, towers, policy.llm

    def embed(self, input_ids: Tensor, media: MediaInputs | None = None) -> Tensor:
        return self.policy.embed(input_ids, media, self.towers)


def completion_logprobs(
    model: nn.Module,
    rollout: Rollout,
    *,
    towers: TowerFeatures | None = None,
    with_entropy: bool = False,
    chunk_rows: int = 8,
) -> tuple[Tensor, Tensor | None]:
    """Log-probabilities ``[B*G, T]`` of the sampled completion tokens under ``model`` (and mean entropy).

    Autograd follows the caller's grad mode. The prompt embedding (media spliced in) is computed once per
    prompt and repeated for its G completions. Positions after EOS hold 0.
    """
    group = rollout.num_generations
    towers = towers if towers is not None else rollout.towers
    prompt_embeds = model.embed(rollout.prompt_ids, rollout.media, towers)  # [B, L, H]
    completion_embeds = model.llm.get_input_embeddings()(rollout.completion_ids)  # [B*G, T, H]
    embeds = torch.cat([prompt_embeds.repeat_interleave(group, dim=0), completion_embeds], dim=1)
    mask = torch.cat([rollout.prompt_mask.repeat_interleave(group, dim=0), rollout.completion_mask], dim=1)
    causal_lm = model.causal_lm if hasattr(model, "causal_lm") else model.llm
    hidden = causal_lm.model(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions_from_mask(mask)
    ).last_hidden_state  # [B*G, L+T, H]
    length = rollout.completion_ids.shape[1]
    hidden = hidden[:, -length - 1 : -1]  # positions that predict each completion token
    logprobs, entropies = [], []
    for start in range(0, hidden.shape[0], chunk_rows):  # bound the [rows, T, V] logits in memory
        logits = causal_lm.lm_head(hidden[start : start + chunk_rows]).float()
        log_softmax = F.log_softmax(logits, dim=-1)
        tokens = rollout.completion_ids[start : start + chunk_rows]
        logprobs.append(log_softmax.gather(-1, tokens.unsqueeze(-1)).squeeze(-1))
        if with_entropy:
            with torch.no_grad():
                entropies.append(-(log_softmax.exp() * log_softmax).sum(-1))
    token_logprobs = torch.cat(logprobs) * rollout.completion_mask
    entropy = None
    if with_entropy:
        per_token = torch.cat(entropies)
        entropy = (per_token * rollout.completion_mask).sum() / rollout.completion_mask.sum().clamp(min=1)
    return token_logprobs, entropy
