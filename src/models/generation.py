"""Batched decoding with a KV cache, written for this model (used by GRPO rollouts, MI and evaluation).

Why not ``transformers``' ``generate``: at the sizes we train on a CPU its per-step bookkeeping dominates, and
it cannot share one prefill between the G samples of a prompt. Here the prompts (with their media) are
encoded and prefilled ONCE, the cache is repeated G times, and a plain loop samples until every row has
produced EOS. The greedy output equals ``llm.generate`` (a test checks it), with or without the cache.

Each decode step of a plain Qwen2 goes through :class:`_Qwen2StepDecoder` (preallocated key/value buffers,
rotary tables computed once, the layers' own sub-modules called directly), which costs about half of a call
of ``Qwen2Model.forward`` at these sizes; anything it cannot reproduce exactly (FSDP-sharded or hooked layers,
sliding-window or dynamic-RoPE configs, ``on_step``/``output_attentions`` callers) takes the model's forward.
Sampling draws by inverse CDF instead of ``torch.multinomial`` (same distribution, about 10x cheaper).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule
from transformers import Qwen2ForCausalLM
from transformers.cache_utils import DynamicCache
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2Attention,
    Qwen2DecoderLayer,
    Qwen2Model,
    apply_rotary_pos_emb,
)

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
    logits: Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
    uniform: Tensor | None = None,
) -> Tensor:
    """One token per row of ``logits`` ``[rows, V]``; ``uniform`` ``[rows]`` in [0, 1) replaces the random draw."""
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
    # Inverse-CDF draw, one uniform per row: the same distribution as torch.multinomial, about 10x faster on a
    # CPU (multinomial's per-call setup costs more than a decode step of the small models). The CDF is summed in
    # float64 (MPS has none) so that a 150k-token vocabulary adds no visible rounding; ``right=True`` and keeping
    # ``u`` below the total make a zero-probability (filtered) token impossible to draw.
    accumulate = torch.float32 if logits.device.type == "mps" else torch.float64
    cdf = torch.softmax(logits, dim=-1).to(accumulate).cumsum(dim=-1)  # [rows, V]
    total = cdf[:, -1:]
    if uniform is None:
        uniform = torch.rand(total.shape, dtype=cdf.dtype, device=cdf.device, generator=generator)
    u = uniform.reshape(total.shape).to(device=cdf.device, dtype=cdf.dtype) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(-1)


@contextmanager
def root_params_gathered(model: OmniModel) -> Iterator[None]:
    """Gather the root parameters of an FSDP1-wrapped model while we call its parts directly.

    Generation calls ``model.embed`` and ``model.llm`` instead of ``model.forward``, so FSDP's forward hooks on
    the root never run: under FSDP1 the root's parameters are summoned (without write-back); blocks are their
    own FSDP units and gather themselves when called. FSDP2 roots (``fully_shard``) need nothing here:
    :func:`generate` and the rollout scoring call them through ``forward`` (FSDP2 also requires the root's
    forward to run first). A no-op for unsharded models.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if isinstance(model, FSDP):
        with FSDP.summon_full_params(model, recurse=False, writeback=False):
            yield
        return
    yield


def decodes_in_lockstep(model: object) -> bool:
    """Whether the ranks must decode the same number of steps: some module of ``model`` is FSDP-sharded (FSDP2
    ``fully_shard`` or FSDP1), so each of its forwards is a collective that every rank must join."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    if torch.distributed.get_world_size() < 2:
        return False
    root = model if isinstance(model, nn.Module) else model.llm  # the rollout's wrapper holds the policy's LLM
    return any(isinstance(module, (FSDPModule, FSDP)) for module in root.modules())


def all_finished(finished: Tensor, lockstep: bool) -> bool:
    """Whether decoding may stop: every row has produced EOS, on every rank when they decode in lockstep.

    Under FSDP a rank whose rows all ended would otherwise leave the loop while the others still call the
    sharded forward: the collectives no longer pair up (the run hangs, or gathers mismatch). Its finished
    rows keep producing padding until every rank is done (one 1-element all-reduce per step).
    """
    if not lockstep:
        return bool(finished.all())
    pending = (~finished).any().to(torch.int32).reshape(1)
    torch.distributed.all_reduce(pending, op=torch.distributed.ReduceOp.MAX)
    return int(pending.item()) == 0


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids for left-padded rows: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def plain_qwen2(llm: nn.Module) -> Qwen2ForCausalLM | None:
    """The ``Qwen2ForCausalLM`` inside ``llm`` (under a peft wrapper or not) if its parts may be called directly.

    Fast paths call a model's sub-modules one by one (decode steps) or its decoder twice with a shared KV cache
    (prompt once, completions after): that computes what one forward computes only when nothing relies on the
    forward being called as a whole. None, so the caller runs the plain forward, for another architecture,
    FSDP-sharded modules (they gather their weights in forward hooks), modules with forward hooks or
    accelerate device-map hooks, layers wrapped or checkpointed (a recomputed layer would append to the cache
    twice) and sliding-window attention.
    """
    causal_lm = llm.get_base_model() if hasattr(llm, "get_base_model") else llm  # peft keeps the modules
    decoder = getattr(causal_lm, "model", None)
    if type(causal_lm) is not Qwen2ForCausalLM or type(decoder) is not Qwen2Model:
        return None
    if any(kind != "full_attention" for kind in decoder.config.layer_types):
        return None
    for layer in decoder.layers:
        if type(layer) is not Qwen2DecoderLayer or type(layer.self_attn) is not Qwen2Attention:
            return None
        if layer.gradient_checkpointing:
            return None
    bypassed = [causal_lm, decoder, *decoder.layers, *(layer.self_attn for layer in decoder.layers)]
    for module in bypassed:
        if isinstance(module, FSDPModule) or module._forward_hooks or module._forward_pre_hooks:
            return None
        if hasattr(module, "_hf_hook"):  # accelerate's device-map/offload hooks replace forward
            return None
    return causal_lm


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
    uniforms: Tensor | None = None,
    on_step: Callable[[int, object], None] | None = None,
    output_attentions: bool = False,
) -> Generation:
    """Decode ``num_return_sequences`` completions for each left-padded prompt row.

    Args:
        input_ids / attention_mask: ``[B, L]`` prompts, LEFT padded, placeholders expanded.
        media: the prompts' media (encoded once, whatever ``num_return_sequences``).
        temperature: 0 = greedy; otherwise sampling with optional ``top_k`` / ``top_p``.
        generator: random source of the sampling (the global generator when None).
        uniforms: ``[B * num_return_sequences, max_new_tokens]`` uniform draws in [0, 1), one per row and step,
            used instead of ``generator`` (rows seeded one by one: see :func:`src.rl.rollout.seeded_uniforms`).
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
            uniforms,
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
    uniforms: Tensor | None,
    on_step: Callable[[int, object], None] | None,
    output_attentions: bool = False,
) -> Generation:
    extra = {"output_attentions": True} if output_attentions else {}
    sharded = isinstance(model, FSDPModule)  # FSDP2 root: every call goes through its forward (hooks)
    mask = attention_mask.long()
    positions = positions_from_mask(mask)
    cache = DynamicCache() if use_cache else None
    if sharded:
        embeds = None
        out = model(
            input_ids,
            mask,
            media,
            position_ids=positions,
            past_key_values=cache,
            use_cache=use_cache,
            logits_to_keep=1,
        )
    else:
        embeds = model.embed(input_ids, media)  # [B, L, H]: media encoded once per prompt
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
    logits = out.logits[:, -1].repeat_interleave(group, dim=0)  # one prefill, G continuations
    prompt_mask = mask.repeat_interleave(group, dim=0)  # [B*G, L]
    rows = logits.shape[0]
    if uniforms is not None and tuple(uniforms.shape) != (rows, max_new_tokens):
        raise ValueError(f"uniforms has shape {tuple(uniforms.shape)}; expected ({rows}, {max_new_tokens})")
    stepper: _Qwen2StepDecoder | None = None
    if use_cache and max_new_tokens > 1 and on_step is None and not output_attentions and not sharded:
        stepper = _Qwen2StepDecoder.build(model.llm, cache, mask, group, steps=max_new_tokens - 1)
    if stepper is None and group > 1:
        mask, positions = prompt_mask, positions.repeat_interleave(group, dim=0)
        if use_cache:
            cache.batch_repeat_interleave(group)
        elif sharded:
            input_ids = input_ids.repeat_interleave(group, dim=0)
            media = media.repeat_interleave(group) if media is not None else None
        else:
            embeds = embeds.repeat_interleave(group, dim=0)
    next_position = positions[:, -1] + 1
    tokens = torch.full((rows, max_new_tokens), pad_token_id, dtype=torch.long, device=logits.device)
    finished = torch.zeros(rows, dtype=torch.bool, device=logits.device)
    embed_tokens = model.llm.get_input_embeddings()
    # A completion never contains the media placeholders: those positions stand for features, not text.
    banned = [
        i
        for i in (getattr(model, "video_token_id", None), getattr(model, "audio_token_id", None))
        if i is not None
    ]
    banned_ids = torch.tensor(banned, dtype=torch.long, device=logits.device)
    lockstep = decodes_in_lockstep(model)
    for step in range(max_new_tokens):
        if banned:
            logits = logits.index_fill(-1, banned_ids, float("-inf"))
        uniform = uniforms[:, step] if uniforms is not None else None
        next_token = _sample(logits, temperature, top_k, top_p, generator, uniform)
        next_token = next_token.masked_fill(finished, pad_token_id)
        tokens[:, step] = next_token
        finished |= next_token == eos_token_id
        if step == max_new_tokens - 1 or all_finished(finished, lockstep):
            break
        if stepper is not None:
            logits = stepper.step(next_token)
            continue
        mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype, device=mask.device)], dim=1)
        if sharded and use_cache:
            out = model(
                next_token[:, None],
                mask,
                None,
                position_ids=next_position[:, None],
                past_key_values=cache,
                use_cache=True,
            )
        elif sharded:
            input_ids = torch.cat([input_ids, next_token[:, None]], dim=1)
            out = model(input_ids, mask, media, position_ids=positions_from_mask(mask), logits_to_keep=1)
        elif use_cache:
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
    sequence = tokens[:, : step + 1]  # [B*G, T]
    is_eos = (sequence == eos_token_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return Generation(tokens=sequence, completion_mask=(~after_eos).long(), prompt_mask=prompt_mask)


class _Qwen2StepDecoder:
    """One-token decode steps of a plain ``Qwen2ForCausalLM`` over preallocated key/value buffers.

    ``Qwen2Model.forward`` rebuilds the 4-D attention mask, recomputes the rotary tables, grows the cache with
    ``torch.cat`` and passes through several wrappers on every call; for a 2-layer model that costs more than
    the arithmetic. Here, once per decode: the prefill's keys/values are copied G times into buffers sized for
    the whole completion, the padding mask and the rotary tables of every future position are built. Each
    step then calls the layers' own sub-modules (so LoRA adapters and quantised linears apply unchanged) and
    ``scaled_dot_product_attention`` on a view of the buffers: the same operations as the model's forward
    (max |logit difference| ~1e-7, greedy output identical: tests check it).

    Built only where that equivalence holds (:meth:`build` returns None otherwise).
    """

    def __init__(self, causal_lm: Qwen2ForCausalLM, cache: DynamicCache, mask: Tensor, group: int, steps: int):
        decoder = causal_lm.model
        self.layers: list[Qwen2DecoderLayer] = list(decoder.layers)
        self.embed_tokens, self.norm, self.lm_head = decoder.embed_tokens, decoder.norm, causal_lm.lm_head
        prompts, prompt_length = mask.shape
        self.rows, self.length = prompts * group, prompt_length
        capacity = prompt_length + steps
        self.keys: list[Tensor] = []  # per layer [B*G, kv_heads, L + steps, head_dim]
        self.values: list[Tensor] = []
        for layer_cache in cache.layers:
            for prefill, buffers in ((layer_cache.keys, self.keys), (layer_cache.values, self.values)):
                heads, head_dim = prefill.shape[1], prefill.shape[3]
                buffer = prefill.new_empty(prompts, group, heads, capacity, head_dim)
                buffer[:, :, :, :prompt_length] = prefill[:, None]  # sample g of prompt b reads prompt b's cache
                buffers.append(buffer.view(self.rows, heads, capacity, head_dim))
        prompt_mask = mask.bool().repeat_interleave(group, dim=0)  # [B*G, L]
        attend = torch.cat([prompt_mask, prompt_mask.new_ones(self.rows, steps)], dim=1)  # [B*G, L + steps]
        self.attend = None if bool(attend.all()) else attend[:, None, None, :]  # no mask: SDPA's fast path
        first = positions_from_mask(prompt_mask)[:, -1:] + 1  # [B*G, 1]
        positions = first + torch.arange(steps, device=mask.device)  # [B*G, steps]
        self.cos, self.sin = decoder.rotary_emb(self.keys[0], positions)  # [B*G, steps, head_dim]
        self.step_index = 0

    @classmethod
    def build(
        cls, llm: nn.Module, cache: DynamicCache, mask: Tensor, group: int, *, steps: int
    ) -> _Qwen2StepDecoder | None:
        """The step decoder for ``llm`` after a prefill into ``cache``, or None where the model's forward must run.

        Besides what :func:`plain_qwen2` excludes: RoPE variants that depend on the sequence length, and
        attention dropout in training mode, which the model's forward would apply.
        """
        causal_lm = plain_qwen2(llm)
        if causal_lm is None:
            return None
        decoder = causal_lm.model
        if decoder.training and decoder.config.attention_dropout > 0:
            return None
        rope_type = str(getattr(decoder.rotary_emb, "rope_type", "default"))
        if "dynamic" in rope_type or rope_type == "longrope":
            return None
        return cls(causal_lm, cache, mask, group, steps)

    def step(self, tokens: Tensor) -> Tensor:
        """Feed ``tokens`` ``[B*G]`` (the last sampled ones) and return next-token logits ``[B*G, V]``."""
        rows, position = self.rows, self.length
        index = self.step_index
        cos, sin = self.cos[:, index : index + 1], self.sin[:, index : index + 1]  # [B*G, 1, head_dim]
        attend = None if self.attend is None else self.attend[..., : position + 1]
        hidden = self.embed_tokens(tokens[:, None])  # [B*G, 1, H]
        for layer, keys, values in zip(self.layers, self.keys, self.values):
            attention = layer.self_attn
            head_dim = attention.head_dim
            x = layer.input_layernorm(hidden)
            query = attention.q_proj(x).view(rows, 1, -1, head_dim).transpose(1, 2)  # [B*G, heads, 1, D]
            key = attention.k_proj(x).view(rows, 1, -1, head_dim).transpose(1, 2)  # [B*G, kv_heads, 1, D]
            value = attention.v_proj(x).view(rows, 1, -1, head_dim).transpose(1, 2)
            query, key = apply_rotary_pos_emb(query, key, cos, sin)
            keys[:, :, position] = key[:, :, 0]
            values[:, :, position] = value[:, :, 0]
            attended = F.scaled_dot_product_attention(
                query,
                keys[:, :, : position + 1],
                values[:, :, : position + 1],
                attn_mask=attend,
                scale=attention.scaling,
                enable_gqa=query.shape[1] != key.shape[1],
            )  # [B*G, heads, 1, D]
            hidden = hidden + attention.o_proj(attended.transpose(1, 2).reshape(rows, 1, -1))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        self.length += 1
        self.step_index += 1
        return self.lm_head(self.norm(hidden))[:, -1]
