"""Batched decoding with a KV cache, written for this model (used by GRPO rollouts, MI and evaluation).

Why not ``transformers``' ``generate``: at the sizes we train on a CPU its per-step bookkeeping dominates, and
it cannot share one prefill between the G samples of a prompt. Here the prompts (with their media) are
encoded and prefilled ONCE, the cache is repeated G times, and a plain loop samples until every row has
produced EOS. The greedy output equals ``llm.generate`` (a test checks it), with or without the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers.cache_utils import DynamicCache

from src.models.omni import MediaInputs, OmniModel


@dataclass
class Generation:
    """Completions of a batch, rows ``[b * G + g]`` for prompt ``b`` and sample ``g``.

    Attributes:
        tokens: ``[B*G, T]`` generated ids; ``pad_token_id`` after a row's EOS.
        completion_mask: ``[B*G, T]`` 1 for generated tokens up to and including EOS, else 0.
        prompt_mask: ``[B*G, L]`` the (repeated) prompt attention mask.
    """

    tokens: Tensor
    completion_mask: Tensor
    prompt_mask: Tensor

    @property
    def lengths(self) -> Tensor:
        return self.completion_mask.sum(dim=1)


def _sample(
    logits: Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator | None
) -> Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the token crossing top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@contextmanager
def root_params_gathered(model: OmniModel) -> Iterator[None]:
    """Gather the parameters a sharded model keeps at its root while we call its parts directly.

    Generation calls ``model.embed`` and ``model.llm`` instead of ``model.forward``, so FSDP's forward hooks on
    the root never run: under FSDP2 (``fully_shard``) the root is unsharded explicitly; under FSDP1 its
    parameters are summoned (without write-back). Transformer blocks are their own FSDP units and gather
    themselves when called. A no-op for unsharded models.
    """
    if hasattr(model, "unshard") and hasattr(model, "reshard"):  # FSDP2 FSDPModule
        model.unshard()
        try:
            yield
        finally:
            model.reshard()
        return
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if isinstance(model, FSDP):
        with FSDP.summon_full_params(model, recurse=False, writeback=False):
            yield
        return
    yield


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids for left-padded rows: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


@torch.no_grad()
def generate(
    model: OmniModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    media: MediaInputs | None = None,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    num_return_sequences: int = 1,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, object], None] | None = None,
    output_attentions: bool = False,
) -> Generation:
    """Decode ``num_return_sequences`` completions for each left-padded prompt row.

    Args:
        input_ids / attention_mask: ``[B, L]`` prompts, LEFT padded, placeholders expanded.
        media: the prompts' media (encoded once, whatever ``num_return_sequences``).
        temperature: 0 = greedy; otherwise sampling with optional ``top_k`` / ``top_p``.
        use_cache: False recomputes the whole sequence each step (a reference path for tests).
        on_step: called as ``on_step(step, llm_output)`` after every forward (attention analysis hooks).
        output_attentions: ask the LLM for attention maps (needs ``model.llm`` in eager attention mode);
            ``on_step`` receives them in ``llm_output.attentions``.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    if bool((attention_mask[:, -1] == 0).any()):
        raise ValueError("prompts must be left padded (a row's last position is padding)")
    with root_params_gathered(model):
        return _decode(
            model,
            input_ids,
            attention_mask,
            media,
            max_new_tokens,
            eos_token_id,
            pad_token_id,
            num_return_sequences,
            temperature,
            top_k,
            top_p,
            use_cache,
            generator,
            on_step,
            output_attentions,
        )


def _decode(
    model: OmniModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    media: MediaInputs | None,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    group: int,
    temperature: float,
    top_k: int,
    top_p: float,
    use_cache: bool,
    generator: torch.Generator | None,
    on_step: Callable[[int, object], None] | None,
    output_attentions: bool = False,
) -> Generation:
    extra = {"output_attentions": True} if output_attentions else {}
    embeds = model.embed(input_ids, media)  # [B, L, H]: media encoded once per prompt
    mask = attention_mask.long()
    positions = positions_from_mask(mask)
    cache = DynamicCache() if use_cache else None
    out = model.llm(
        inputs_embeds=embeds,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=use_cache,
        logits_to_keep=1,
        **extra,
    )
    if on_step is not None:
        on_step(0, out)
    logits = out.logits[:, -1]
    if group > 1:  # one prefill, G continuations
        logits = logits.repeat_interleave(group, dim=0)
        mask = mask.repeat_interleave(group, dim=0)
        positions = positions.repeat_interleave(group, dim=0)
        embeds = embeds.repeat_interleave(group, dim=0) if not use_cache else embeds
        if use_cache:
            cache.batch_repeat_interleave(group)
    prompt_mask = mask
    rows = logits.shape[0]
    finished = torch.zeros(rows, dtype=torch.bool, device=logits.device)
    next_position = positions[:, -1] + 1
    tokens: list[Tensor] = []
    embed_tokens = model.llm.get_input_embeddings()
    for step in range(max_new_tokens):
        next_token = _sample(logits, temperature, top_k, top_p, generator)
        next_token = torch.where(finished, torch.full_like(next_token, pad_token_id), next_token)
        tokens.append(next_token)
        finished |= next_token == eos_token_id
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype, device=mask.device)], dim=1)
        if use_cache:
            out = model.llm(
                input_ids=next_token[:, None],
                attention_mask=mask,
                position_ids=next_position[:, None],
                past_key_values=cache,
                use_cache=True,
                **extra,
            )
        else:
            embeds = torch.cat([embeds, embed_tokens(next_token[:, None])], dim=1)
            out = model.llm(
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=positions_from_mask(mask),
                logits_to_keep=1,
                **extra,
            )
        if on_step is not None:
            on_step(step + 1, out)
        logits = out.logits[:, -1]
        next_position = next_position + 1
    sequence = torch.stack(tokens, dim=1)  # [B*G, T]
    is_eos = (sequence == eos_token_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return Generation(tokens=sequence, completion_mask=(~after_eos).long(), prompt_mask=prompt_mask)
