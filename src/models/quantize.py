"""4/8-bit loading of the language model with bitsandbytes (its CPU backend runs here; GPUs as usual).

Quantization replaces the LLM's decoder ``nn.Linear`` layers (not ``lm_head``, not the towers/projectors) by
bitsandbytes layers holding the same weights. Combine with :func:`src.models.lora.apply_lora` for QLoRA-style
training. A quantized model is never exported as merged full-precision weights: its export is the LoRA adapter
plus a reference to the base (:func:`src.models.checkpoint.save_adapter_model`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from src.models.omni import OmniModel


def _quantized(linear: nn.Linear, bits: Literal[4, 8], compute_dtype: torch.dtype) -> nn.Module:
    import bitsandbytes as bnb

    device = linear.weight.device
    weight = linear.weight.data.to("cpu")
    if bits == 8:
        layer = bnb.nn.Linear8bitLt(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            has_fp16_weights=False,
            threshold=6.0,
        )
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        layer = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            compute_dtype=compute_dtype,
            quant_type="nf4",
        )
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        # On a CPU with AVX512-BF16, bitsandbytes repacks the weight in place at the first eval-mode forward
        # without grad, and the layer then fails in training ("a view of a leaf Variable that requires grad is
        # being used in an in-place operation"): GRPO alternates generation and training, so keep the canonical
        # NF4 layout (same weights; the repacked form only speeds up CPU inference).
        layer.support_avx512bf16_for_cpu = False
    if linear.bias is not None:
        layer.bias = nn.Parameter(linear.bias.data.clone(), requires_grad=False)
    return layer.to(device)  # moving the layer quantizes its weight


def quantize_llm(model: OmniModel, bits: int, compute_dtype: torch.dtype = torch.float32) -> OmniModel:
    """Quantize the LLM decoder's linear layers to ``bits`` (4 = NF4, 8 = LLM.int8) in place."""
    if bits not in (4, 8):
        raise ValueError(f"model.quantization.bits={bits} must be 4 or 8")
    decoder = model.causal_lm.model
    targets = [(name, module) for name, module in decoder.named_modules() if isinstance(module, nn.Linear)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = decoder.get_submodule(parent_name) if parent_name else decoder
        setattr(parent, child, _quantized(module, bits, compute_dtype))  # type: ignore[arg-type]
    model.config.extra["quantization_bits"] = bits
    return model


def is_quantized(model: OmniModel) -> bool:
    return "quantization_bits" in model.config.extra
