"""Rollouts for GRPO: sample G completions per prompt, and score tokens under a policy or a reference.

The expensive parts are done once per step and shared:

* media go through the (frozen) towers once: :class:`~src.models.omni.TowerFeatures` are reused by the
  sampling pass, every policy forward and the reference forward;
* prompt embeddings are computed for the B prompts and repeated G times (one projector/gate pass per prompt);
* sampling is one batched KV-cache decode of all B*G completions from a single prefill
  (:func:`src.models.generation.generate`);
* scoring (policy, reference, old policy) runs the prompts through the decoder once each and the B*G
  completions against their repeated keys/values, and computes logits only at completion positions (no
  logits for prompt or media positions).

Works with any policy that has ``embed(input_ids, media, towers)`` and ``llm`` (the multimodal
:class:`~src.models.omni.OmniModel`, or :class:`TextPolicy` for text-only benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule
from transformers.cache_utils import DynamicCache

from src.models.generation import generate, plain_qwen2, positions_from_mask, root_params_gathered
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
    seeds: Sequence[int] | None = None,
) -> Rollout:
    """One batched decode of ``num_generations`` completions for each of the B left-padded prompts.

    ``seeds`` (one per prompt): prompt b's completions are drawn from ``seeds[b]`` alone
    (:func:`seeded_uniforms`), not from ``generator``, so they do not depend on which prompts share the batch.
    """
    uniforms = (
        seeded_uniforms(seeds, num_generations, max_new_tokens, prompt_ids.device) if seeds is not None else None
    )
    sharded = isinstance(policy, FSDPModule)  # FSDP2: only the root forward may run (towers recomputed there)
    with root_params_gathered(policy):
        towers = policy.tower_features(media) if media is not None and not sharded else None
        generation = generate(
            policy if sharded else _Frozen(policy, towers),
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
            uniforms=uniforms,
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


def seeded_uniforms(
    seeds: Sequence[int], num_generations: int, steps: int, device: torch.device | str = "cpu"
) -> Tensor:
    """``[B * G, steps]`` uniform draws in [0, 1): rows ``b * G .. b * G + G - 1`` from a generator seeded with
    ``seeds[b]``, one per decode step, so the G completions of prompt b depend on its seed (and the model) only.

    This is what makes sampling independent of how a global batch is split: a prompt seeded the same way
    draws the same completions on any rank, in any batch, as a single process over the whole batch would.
    """
    rows = [
        torch.rand(
            (num_generations, steps), generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64
        )
        for seed in seeds
    ]
    return torch.cat(rows).to(device)


class _Frozen:
    """The policy seen by :func:`generate`, with its tower features precomputed."""

    def __init__(self, policy: nn.Module, towers: TowerFeatures | None) -> None:
        self.policy, self.towers, self.llm = policy, towers, policy.llm
        self.video_token_id = getattr(policy, "video_token_id", None)
        self.audio_token_id = getattr(policy, "audio_token_id", None)

    def embed(self, input_ids: Tensor, media: MediaInputs | None = None) -> Tensor:
        return self.policy.embed(input_ids, media, self.towers)


def completion_logprobs(
    model: nn.Module,
    rollout: Rollout,
    *,
    towers: TowerFeatures | None = None,
    with_entropy: bool = False,
    chunk_rows: int = 8,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor | None]:
    """Log-probabilities ``[B*G, T]`` of the sampled completion tokens under ``model`` (and mean entropy).

    Autograd follows the caller's grad mode. The prompt (media spliced in) is embedded AND run through the
    decoder once per prompt: its keys/values are repeated for the G completions, which then attend to them
    (:func:`_completion_hidden`), so a step costs ``B * L + B * G * T`` token positions instead of
    ``B * G * (L + T)``; gradients are those of the full forward (a test compares both). Models whose parts
    cannot be called separately (FSDP-sharded, checkpointed layers, see
    :func:`~src.models.generation.plain_qwen2`) get the full forward. Positions after EOS hold 0.

    ``temperature`` divides the logits as sampling did (TRL's convention), so the ratio and KL compare the
    distributions the completions were drawn from. Sharded models (FSDP2 ``DTensor`` parameters) are scored
    through the root ``forward`` so FSDP's hooks gather and reduce the root parameters.
    """
    group = rollout.num_generations
    towers = towers if towers is not None else rollout.towers
    if any(type(p).__name__ == "DTensor" for p in model.parameters()):
        return _sharded_completion_logprobs(model, rollout, towers, with_entropy, temperature)
    prompt_embeds = model.embed(rollout.prompt_ids, rollout.media, towers)  # [B, L, H]
    completion_embeds = model.llm.get_input_embeddings()(rollout.completion_ids)  # [B*G, T, H]
    causal_lm = plain_qwen2(model.llm)
    if causal_lm is not None:
        hidden = _completion_hidden(causal_lm, prompt_embeds, completion_embeds, rollout)  # [B*G, T, H]
    else:
        causal_lm = model.causal_lm if hasattr(model, "causal_lm") else model.llm
        embeds = torch.cat([prompt_embeds.repeat_interleave(group, dim=0), completion_embeds], dim=1)
        mask = torch.cat([rollout.prompt_mask.repeat_interleave(group, dim=0), rollout.completion_mask], dim=1)
        hidden = causal_lm.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions_from_mask(mask)
        ).last_hidden_state  # [B*G, L+T, H]
        length = rollout.completion_ids.shape[1]
        hidden = hidden[:, -length - 1 : -1]  # positions that predict each completion token
    logprobs, entropies = [], []
    for start in range(0, hidden.shape[0], chunk_rows):  # bound the [rows, T, V] logits in memory
        logits = causal_lm.lm_head(hidden[start : start + chunk_rows]).float()
        chunk_lp, chunk_entropy = _token_logprobs(
            logits, rollout.completion_ids[start : start + chunk_rows], temperature, with_entropy
        )
        logprobs.append(chunk_lp)
        if chunk_entropy is not None:
            entropies.append(chunk_entropy)
    return _finish(torch.cat(logprobs), torch.cat(entropies) if with_entropy else None, rollout)


def _token_logprobs(
    logits: Tensor, tokens: Tensor, temperature: float, with_entropy: bool
) -> tuple[Tensor, Tensor | None]:
    log_softmax = F.log_softmax(logits / temperature, dim=-1)
    token_lp = log_softmax.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(log_softmax.exp() * log_softmax).sum(-1)
    return token_lp, entropy


def _finish(token_lp: Tensor, per_token_entropy: Tensor | None, rollout: Rollout) -> tuple[Tensor, Tensor | None]:
    mask = rollout.completion_mask
    entropy = None
    if per_token_entropy is not None:
        entropy = (per_token_entropy * mask).sum() / mask.sum().clamp(min=1)
    return token_lp * mask, entropy


def _sharded_completion_logprobs(
    model: nn.Module, rollout: Rollout, towers: TowerFeatures | None, with_entropy: bool, temperature: float
) -> tuple[Tensor, Tensor | None]:
    """The FSDP path: one root ``forward`` over the B*G full sequences (media still encoded once per clip)."""
    group = rollout.num_generations
    length = rollout.completion_ids.shape[1]
    input_ids = torch.cat([rollout.prompt_ids.repeat_interleave(group, dim=0), rollout.completion_ids], dim=1)
    mask = torch.cat([rollout.prompt_mask.repeat_interleave(group, dim=0), rollout.completion_mask], dim=1)
    media = rollout.media.repeat_interleave(group) if rollout.media is not None else None
    out = model(
        input_ids,
        mask,
        media,
        towers=towers,  # computed on the unique clips; media's row indices repeat them
        position_ids=positions_from_mask(mask),
        logits_to_keep=length + 1,
    )
    logits = out.logits[:, :-1].float()  # [B*G, T, V]: position t predicts completion token t
    token_lp, entropy = _token_logprobs(logits, rollout.completion_ids, temperature, with_entropy)
    return _finish(token_lp, entropy, rollout)


def _completion_hidden(
    causal_lm: nn.Module, prompt_embeds: Tensor, completion_embeds: Tensor, rollout: Rollout
) -> Tensor:
    """Final hidden states ``[B*G, T, H]`` at the positions that predict each completion token.

    Two decoder calls instead of one over ``[B*G, L+T]``: the B prompts fill a KV cache (autograd flows
    through it), the cache is repeated G times, and the completions run against it with the full attention
    mask and their own positions. The state that predicts completion token 0 is the prompt's last one. With
    dropout active (LoRA dropout in training), the G completions of a prompt share one dropout sample of its
    prompt pass, where the full forward would draw G.
    """
    group = rollout.num_generations
    decoder = causal_lm.model
    cache = DynamicCache()
    prompt_hidden = decoder(
        inputs_embeds=prompt_embeds,
        attention_mask=rollout.prompt_mask,
        position_ids=positions_from_mask(rollout.prompt_mask),
        past_key_values=cache,
        use_cache=True,
    ).last_hidden_state  # [B, L, H]
    cache.batch_repeat_interleave(group)
    mask = torch.cat([rollout.prompt_mask.repeat_interleave(group, dim=0), rollout.completion_mask], dim=1)
    completion_hidden = decoder(
        inputs_embeds=completion_embeds,
        attention_mask=mask,  # [B*G, L+T]: prompt padding and post-EOS positions masked, as in one forward
        position_ids=positions_from_mask(mask)[:, rollout.prompt_mask.shape[1] :],
        past_key_values=cache,
        use_cache=True,
    ).last_hidden_state  # [B*G, T, H]
    first = prompt_hidden[:, -1:].repeat_interleave(group, dim=0)  # [B*G, 1, H]
    return torch.cat([first, completion_hidden[:, :-1]], dim=1)
