"""LoRA on the language model (peft), and exporting a LoRA-trained model as plain merged weights.

With LoRA the reference model of GRPO needs no second copy: it is the same module with the adapter disabled
(:func:`adapter_disabled`).

peft is imported only when LoRA is applied: it imports bitsandbytes, which costs every process about 1.2 s of
start-up (and prints a warning about optional CPU kernels) when no LoRA is in use.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from torch import Tensor

from src.models.omni import OmniModel

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def apply_lora(
    model: OmniModel,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
) -> OmniModel:
    """Wrap ``model.llm`` with LoRA adapters; only adapter weights of the LLM stay trainable.

    Projectors and the gate keep their own ``requires_grad`` (they are trained fully, as HumanOmni does).
    """
    from peft import LoraConfig, get_peft_model

    if has_lora(model):
        return model
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
    model.llm = get_peft_model(model.llm, config)
    return model


def has_lora(model: OmniModel) -> bool:
    if "peft" not in sys.modules:  # nothing imported peft, so nothing wrapped the model with it
        return False
    from peft import PeftModel

    return isinstance(model.llm, PeftModel)


def lora_options(model: OmniModel) -> dict[str, Any]:
    """The :func:`apply_lora` keyword arguments that rebuild ``model``'s adapter (for an adapter export)."""
    config = model.llm.peft_config["default"]
    return {
        "r": int(config.r),
        "alpha": int(config.lora_alpha),
        "dropout": float(config.lora_dropout),
        "target_modules": sorted(config.target_modules),
    }


@contextmanager
def adapter_disabled(model: OmniModel) -> Iterator[None]:
    """Run the base weights (the GRPO reference) inside the block; a no-op for non-LoRA models."""
    context = model.llm.disable_adapter() if has_lora(model) else nullcontext()
    with context:
        yield


def merged_state_dict(model: OmniModel) -> dict[str, Tensor]:
    """The state dict of the model with LoRA merged into the base weights, under plain (non-peft) names.

    The adapter is merged, read and unmerged again, so training can continue afterwards.
    """
    if not has_lora(model):
        return dict(model.state_dict())
    model.llm.merge_adapter()
    try:
        state = {}
        for key, value in model.state_dict().items():
            if ".lora_" in key:
                continue
            clean = key.replace("llm.base_model.model.", "llm.").replace(".base_layer.", ".")
            state[clean] = value.detach().clone()
    finally:
        model.llm.unmerge_adapter()
    return state
