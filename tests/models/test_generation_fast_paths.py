"""The decode fast paths: step decoder == model forward, fallbacks where it cannot be, sampler distribution."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

from src.models.generation import _sample, generate, plain_qwen2
from tests.models.conftest import collator_for, make_examples

AV, V, A = (True, True), (True, False), (False, True)


def _batch(model, tokenizer):
    return collator_for(model, tokenizer, "left")(make_examples([AV, V, A]))


def _sampled(model, tokenizer, batch, *, through_forward: bool, seed: int = 3, **kwargs):
    """Sampled tokens; ``through_forward`` makes generate call the model's forward at every step."""
    return generate(
        model,
        batch.input_ids,
        batch.attention_mask,
        batch.media,
        max_new_tokens=kwargs.pop("max_new_tokens", 20),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_return_sequences=3,
        temperature=1.0,
        generator=torch.Generator().manual_seed(seed),
        on_step=(lambda step, out: None) if through_forward else None,  # on_step needs the forward's output
        **kwargs,
    ).tokens


def test_step_decoder_samples_exactly_what_the_model_forward_samples(tiny_model, tokenizer):
    batch = _batch(tiny_model, tokenizer)  # left padded rows of three lengths, media spliced in
    fast = _sampled(tiny_model, tokenizer, batch, through_forward=False, top_k=50)
    reference = _sampled(tiny_model, tokenizer, batch, through_forward=True, top_k=50)
    assert fast.shape == (9, 20)
    assert torch.equal(fast, reference)


def test_step_decoder_calls_the_model_forward_only_for_the_prefill(tiny_model, tokenizer):
    batch = _batch(tiny_model, tokenizer)
    rotary_calls: list[int] = []  # Qwen2Model.forward computes rotary tables once per call
    tiny_model.llm.model.rotary_emb.register_forward_hook(lambda m, i, o: rotary_calls.append(o[0].shape[1]))
    _sampled(tiny_model, tokenizer, batch, through_forward=False, max_new_tokens=10)
    assert rotary_calls == [batch.input_ids.shape[1], 9]  # the prefill, then the table of the 9 decode steps
    rotary_calls.clear()
    _sampled(tiny_model, tokenizer, batch, through_forward=True, max_new_tokens=10)
    assert rotary_calls == [batch.input_ids.shape[1]] + [1] * 9  # the forward path: one call per step


def _hooked(model):
    model.llm.model.layers[0].register_forward_pre_hook(lambda module, args: None)


def _checkpointed(model):
    model.llm.activation_checkpointing_enable()


def _fsdp_like(model):
    # fully_shard swaps each sharded module's class for a generated subclass named FSDP<Class>
    layer = model.llm.model.layers[0]
    layer.__class__ = type("FSDPQwen2DecoderLayer", (Qwen2DecoderLayer,), {})


def _device_mapped(model):
    from accelerate.hooks import ModelHook, add_hook_to_module

    add_hook_to_module(model.llm.model.layers[0], ModelHook())  # what device_map / offloading installs


@pytest.mark.parametrize(
    "wrap",
    [_hooked, _checkpointed, _fsdp_like, _device_mapped],
    ids=["hooked", "checkpointed", "fsdp-like", "device-mapped"],
)
def test_layers_that_must_run_their_own_forward_disable_the_fast_paths(tiny_model, tokenizer, wrap):
    assert plain_qwen2(tiny_model.llm) is tiny_model.llm  # a plain Qwen2 takes the fast paths
    wrap(tiny_model)
    assert plain_qwen2(tiny_model.llm) is None


def test_other_architectures_and_sliding_window_take_the_model_forward():
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
        )
    )
    assert plain_qwen2(llama) is None  # not reproduced by the step decoder
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=16,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        use_sliding_window=True,
        sliding_window=8,
        max_window_layers=1,
    )
    assert plain_qwen2(Qwen2ForCausalLM(config)) is None  # layer 1 uses sliding-window attention


def test_lora_adapters_apply_in_the_step_decoder(tiny_model, tokenizer):
    tiny_model.llm = get_peft_model(
        tiny_model.llm, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"])
    )
    for name, parameter in tiny_model.llm.named_parameters():
        if "lora_B" in name:  # peft starts B at 0 (a no-op adapter): make the adapter change the outputs
            torch.nn.init.normal_(parameter, std=0.5)
    assert plain_qwen2(tiny_model.llm) is tiny_model.llm.get_base_model()
    batch = _batch(tiny_model, tokenizer)
    fast = _sampled(tiny_model, tokenizer, batch, through_forward=False)
    assert torch.equal(fast, _sampled(tiny_model, tokenizer, batch, through_forward=True))
    with tiny_model.llm.disable_adapter():
        base = _sampled(tiny_model, tokenizer, batch, through_forward=False)
    assert not torch.equal(fast, base)  # the adapter took part in the fast path


def test_sampler_draws_each_token_with_its_softmax_probability():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]]).expand(200_000, -1)
    draws = _sample(logits, 0.7, 0, 1.0, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws, minlength=5).double() / draws.numel()
    expected = torch.softmax(logits[0].double() / 0.7, dim=0)
    # 200k draws: the standard error of each frequency is below 0.0012; allow about 4 of them
    assert torch.allclose(frequencies, expected, atol=0.005)


def test_sampler_never_draws_tokens_removed_by_top_k_or_top_p():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).expand(50_000, -1)
    generator = torch.Generator().manual_seed(0)
    top_k = _sample(logits, 1.0, 2, 1.0, generator)
    assert set(top_k.unique().tolist()) == {0, 1}  # the two largest logits only
    top_p = _sample(logits, 1.0, 0, 0.8, generator)  # probabilities 0.64, 0.24, 0.09, ...: 0.64 + 0.24 >= 0.8
    assert set(top_p.unique().tolist()) == {0, 1}
    share = (top_p == 0).double().mean().item()
    assert share == pytest.approx(0.64 / (0.64 + 0.24), abs=0.01)  # renormalised over the kept tokens


def test_greedy_sampling_is_the_argmax():
    logits = torch.tensor([[0.1, 0.3, -2.0], [5.0, 4.0, 4.5]])
    assert _sample(logits, 0.0, 0, 1.0, None).tolist() == [1, 0]
