"""LoRA and 4/8-bit options of the model."""

from __future__ import annotations

import pytest
import torch

from src.models.checkpoint import load_model, save_model
from src.models.lora import adapter_disabled, apply_lora, merged_state_dict
from src.models.quantize import quantize_llm
from tests.models.conftest import collator_for, make_examples


def test_lora_trains_only_adapters_in_the_llm_and_exports_merged(tiny_model, tokenizer, tmp_path):
    model = apply_lora(tiny_model, r=4, alpha=8, dropout=0.0)
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in n for n in llm_trainable)
    batch = collator_for(model, tokenizer)(make_examples([(True, True)]))
    with torch.no_grad():
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.normal_()  # make the adapter matter
        adapted = model(batch.input_ids, batch.attention_mask, batch.media).logits
        with adapter_disabled(model):
            base = model(batch.input_ids, batch.attention_mask, batch.media).logits
    assert not torch.allclose(adapted, base)
    state = merged_state_dict(model)
    assert not any("lora_" in k or "base_model" in k for k in state)
    # the merged export reproduces the adapted model
    plain = type(model)(model.config, video_token_id=model.video_token_id, audio_token_id=model.audio_token_id)
    plain.load_state_dict(state)
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            plain(batch.input_ids, batch.attention_mask, batch.media).logits, adapted, atol=1e-4, rtol=1e-4
        )
    folder = save_model(plain, tokenizer, tokenizer, tmp_path / "merged")
    assert load_model(folder).model.llm.__class__.__name__ == "Qwen2ForCausalLM"


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_llm_runs_forward_and_backward_with_lora(tiny_model, tokenizer, bits):
    batch = collator_for(tiny_model, tokenizer, "right")(
        make_examples([(True, True)], target="<answer>sad</answer>")
    )
    with torch.no_grad():
        reference = tiny_model(batch.input_ids, batch.attention_mask, batch.media).logits
    model = quantize_llm(tiny_model, bits)
    linear_types = {type(m).__name__ for m in model.llm.model.modules() if "Linear" in type(m).__name__}
    assert linear_types == ({"Linear8bitLt"} if bits == 8 else {"Linear4bit"})
    with torch.no_grad():
        quantized = model(batch.input_ids, batch.attention_mask, batch.media).logits
    assert torch.corrcoef(torch.stack([quantized.flatten(), reference.flatten()]))[0, 1] > 0.95
    model = apply_lora(model, r=4, alpha=8, dropout=0.0)
    loss = model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels).loss
    loss.backward()
    assert any(p.grad is not None for n, p in model.llm.named_parameters() if "lora_A" in n)


@pytest.mark.slow
def test_training_without_lora_or_quantization_imports_neither_peft_nor_bitsandbytes():
    import subprocess
    import sys

    from tests.helpers import REPO

    code = (
        "import sys; import src.stages.runner, src.stages.sft, src.stages.grpo, src.stages.export, src.train; "
        "print(sorted(m for m in ('peft', 'bitsandbytes') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"  # each costs every process ~1.2 s of start-up when imported
