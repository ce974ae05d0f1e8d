"""Options that fail early, and QLoRA (LoRA on a 4-bit LLM, bitsandbytes' CPU backend) through `src.train`.

Every impossible combination is refused by `run_stage` before the run folder, the data or the model exists; a
4-bit LoRA run exports its adapter plus a reference to the base (never merged weights), and the project's loaders
(evaluation, explain) load it back as it was trained.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from src.config_check import ConfigError
from src.models.checkpoint import (
    ADAPTER_TYPE,
    ADAPTER_WEIGHTS,
    CheckpointError,
    load_model,
    save_adapter_model,
    save_model,
)
from src.models.factory import ModelSpec, instantiate
from tests.helpers import compose, compose_train, corpus_overrides
from tests.models.conftest import collator_for, make_examples

QLORA = ["model.quantization_bits=4", "model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8"]
LORA = ["model.lora.enabled=true"]

# (overrides, what the error says): each names the keys, their values and what is allowed
COMBINATIONS = [
    (
        [*LORA, "trainer=fsdp2", "trainer.accelerator=cpu", "trainer.devices=2"],
        r"model.lora.enabled=true with trainer.strategy=fsdp2: .* allowed: LoRA with trainer=cpu\|gpu\|ddp, or "
        r"trainer=fsdp2 with model.lora.enabled=false",
    ),
    ([*LORA, "trainer=fsdp"], r"model.lora.enabled=true with trainer.strategy=fsdp: .*sharded parameters"),
    (
        [*QLORA, "trainer=fsdp2"],
        r"model.quantization_bits=4 with trainer.strategy=fsdp2: FSDP cannot shard bitsandbytes' 4-bit weights; "
        r"allowed: quantization with trainer=cpu\|gpu\|ddp, or trainer=fsdp2 with model.quantization_bits=null",
    ),
    (
        [*QLORA, "model.quantization_bits=8", "trainer=fsdp"],
        r"model.quantization_bits=8 with trainer.strategy=fsdp:",
    ),
    (
        ["model.quantization_bits=4"],
        r"model.quantization_bits=4 with model.lora.enabled=false: the 4-bit LLM weights take no gradient .* "
        r"allowed: model.lora.enabled=true \(QLoRA: the export is the adapter plus a reference to the base model\) "
        r"or model.quantization_bits=null",
    ),
    (["stage=grpo", "model.quantization_bits=8"], r"model.quantization_bits=8 with model.lora.enabled=false"),
    ([*QLORA, "model.quantization_bits=3"], r"model.quantization_bits=3: expected 4, 8 or null"),
    (  # a fresh preset has no full-precision base to quantize and to refer the exported adapter to
        [*QLORA, "stage.init_from=null"],
        r"model.quantization_bits=4 needs full-precision base weights .* set stage.init_from or model.pretrained",
    ),
]


def _refused(tmp_path, *overrides: str) -> str:
    """The error `run_stage` stops with; checks that nothing was created or read before it."""
    from src.stages.runner import run_stage

    missing = tmp_path / "no_corpus" / "manifest.jsonl"  # reading data would fail differently
    cfg = compose_train(
        "stage=sft", f"runs_dir={tmp_path / 'runs'}", f"data.manifest={missing}", "data.synth=null", *overrides
    )
    with pytest.raises(ConfigError) as error:
        run_stage(cfg)
    assert not (tmp_path / "runs").exists()  # no run folder, lock, checkpoint or data cache
    return str(error.value)


@pytest.mark.parametrize(("overrides", "message"), COMBINATIONS, ids=lambda v: v if isinstance(v, str) else None)
def test_an_impossible_combination_is_refused_when_the_run_starts(overrides, message, tmp_path):
    import re

    assert re.search(message, _refused(tmp_path, *overrides)), message


@pytest.fixture(scope="module")
def adapter_export(tiny_export, tmp_path_factory):
    """A QLoRA model of the tiny export with a trained-looking adapter and projector, exported as an adapter."""
    loaded = instantiate(
        ModelSpec(preset="tiny", quantization_bits=4, lora={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0}),
        str(tiny_export),
    )
    model = loaded.model
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or name.startswith("mm_projector"):
                param.add_(0.05 * torch.randn_like(param))
    model.eval()
    folder = save_adapter_model(
        model, loaded.tokenizer, loaded.gate_tokenizer, tmp_path_factory.mktemp("qlora") / "export"
    )
    return folder, loaded


def test_a_run_from_an_adapter_export_must_continue_it_as_it_is(adapter_export, tmp_path):
    folder, _ = adapter_export
    message = _refused(tmp_path, f"stage.init_from={folder}")  # as full precision: no quantization, no LoRA
    assert f"stage.init_from='{folder}' is a LoRA adapter on a 4-bit base (r=4, alpha=8)" in message
    assert "allowed model.quantization_bits=4 model.lora.enabled=true with the same model.lora.r/alpha" in message
    assert "got model.quantization_bits=None, model.lora.enabled=false" in message
    message = _refused(tmp_path, f"stage.init_from={folder}", *QLORA, "model.lora.r=8")
    assert "model.lora.r=8" in message


def test_a_quantized_model_is_never_saved_as_full_precision_weights(adapter_export, tmp_path):
    _, loaded = adapter_export
    with pytest.raises(CheckpointError, match="4-bit quantized; it has no full-precision weights"):
        save_model(loaded.model, loaded.tokenizer, loaded.gate_tokenizer, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def _logits(model, tokenizer):
    batch = collator_for(model, tokenizer, "right")(make_examples([(True, True)], target="<answer>sad</answer>"))
    with torch.no_grad():
        return model(batch.input_ids, batch.attention_mask, batch.media).logits


def test_an_adapter_export_holds_the_adapter_and_the_base_reference_and_loads_as_trained(
    adapter_export, tiny_export, tmp_path
):
    folder, loaded = adapter_export
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == ADAPTER_TYPE and config["quantization_bits"] == 4
    assert (folder / config["base_model"]["path"]).resolve() == tiny_export.resolve()
    assert not (folder / "model.safetensors").exists()
    stored = load_file(folder / ADAPTER_WEIGHTS)
    # the trained tensors only: LoRA matrices and the parts outside the LLM, no (quantized or merged) base weight
    assert any(".lora_A." in k for k in stored) and any(k.startswith("mm_projector") for k in stored)
    assert not any(k.startswith("llm.") and ".lora_" not in k for k in stored)
    base_bytes = (tiny_export / "model.safetensors").stat().st_size
    assert (folder / ADAPTER_WEIGHTS).stat().st_size < base_bytes / 2

    back = load_model(folder).model
    assert {type(m).__name__ for m in back.llm.modules()} >= {"Linear4bit"}
    reference = _logits(loaded.model, loaded.tokenizer)
    torch.testing.assert_close(_logits(back, loaded.tokenizer), reference, rtol=0, atol=0)
    # and not the base: the adapter and projector changes are in what was loaded
    base = load_model(tiny_export).model
    assert not torch.allclose(_logits(base, loaded.tokenizer), reference, atol=1e-3)


def test_an_adapter_export_refuses_a_base_that_changed(adapter_export, tiny_export, tmp_path):
    import shutil

    folder, _ = adapter_export
    moved = tmp_path / "runs"
    shutil.copytree(folder, moved / "sft" / "export")
    config = json.loads((folder / "config.json").read_text())
    with pytest.raises(CheckpointError, match="is not at"):  # the base is not where the export says
        load_model(moved / "sft" / "export")
    base = (moved / "sft" / "export" / config["base_model"]["path"]).resolve()
    shutil.copytree(tiny_export, base)
    load_model(moved / "sft" / "export")  # a copy of the same base: fine
    weights = load_file(base / "model.safetensors")
    key = next(k for k in sorted(weights) if k.startswith("mm_projector"))
    weights[key] = weights[key] + 1
    from safetensors.torch import save_file

    save_file(weights, base / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not the one the adapter was trained on"):
        load_model(moved / "sft" / "export")


@pytest.mark.slow
def test_qlora_sft_then_grpo_through_src_train_export_adapters_the_loaders_read(
    stage_corpus, tiny_export, run_train, tmp_path
):
    from src.evaluation.config import EvalConfig
    from src.evaluation.explain import load_explainer
    from src.evaluation.runner import load_for_evaluation
    from src.stages.checkpoint_io import SafeCheckpointIO

    common = [
        *corpus_overrides(stage_corpus),
        *QLORA,
        "model.freeze.vision_tower=true",
        "model.freeze.audio_tower=true",
        "logger=csv",
        "trainer.limit_val_batches=0",
    ]
    sft = run_train(
        "stage=sft", *common, f"stage.init_from={tiny_export}", "stage.max_steps=2", "data.batch_size=4"
    )
    assert "stage settings: demo" in sft.stdout + sft.stderr
    grpo = run_train(  # init_from=auto: the SFT export, an adapter, continued on the same 4-bit base
        "stage=grpo",
        *common,
        "stage.max_steps=1",
        "stage.batch_size=2",
        "stage.max_new_tokens=8",
        "stage.optim.lr=1e-2",
        "+callbacks.reward._target_=tests.stages.helpers.LengthRewardOnly",
    )
    assert "LoRA adapter of" in grpo.stdout + grpo.stderr
    runs = tmp_path / "runs"
    adapters = {}
    for stage in ("sft", "grpo"):
        export = runs / stage / "export"
        config = json.loads((export / "config.json").read_text())
        assert config["model_type"] == ADAPTER_TYPE and config["quantization_bits"] == 4, stage
        assert (export / config["base_model"]["path"]).resolve() == tiny_export.resolve(), stage  # one base
        assert not (export / "model.safetensors").exists()
        adapters[stage] = load_file(export / ADAPTER_WEIGHTS)
        # the export's tensors are the trained ones Lightning checkpointed at the last step, bit for bit
        checkpoint = SafeCheckpointIO().load_checkpoint(runs / stage / "checkpoints" / "last.ckpt")["state_dict"]
        for key, value in adapters[stage].items():
            torch.testing.assert_close(value, checkpoint[f"model.{key}"], rtol=0, atol=0, msg=key)
    lora = [k for k in adapters["sft"] if ".lora_B." in k]
    assert any(adapters["sft"][k].abs().sum() > 0 for k in lora)  # SFT trained the adapter (B starts at 0)
    assert any(not torch.equal(adapters["sft"][k], adapters["grpo"][k]) for k in lora)  # GRPO moved it on

    # the evaluation's and the explainer's loaders: the base re-quantized equals the trained 4-bit weights
    export = runs / "grpo" / "export"
    evaluation = EvalConfig.from_config(compose("evaluate", f"model_path={export}", f"runs_dir={runs}"))
    model = load_for_evaluation(evaluation, export)[0].model
    explainer = load_explainer(compose("explain", f"model_path={export}", f"runs_dir={runs}"))
    quantized = {k: v for k, v in checkpoint.items() if k.endswith("base_layer.weight")}
    assert quantized and all(v.dtype == torch.uint8 for v in quantized.values())  # packed 4-bit, not float
    for loaded in (model, explainer.loaded.model):
        state = loaded.state_dict()
        for key, value in quantized.items():
            assert torch.equal(state[key.removeprefix("model.")], value), key
        for key, value in adapters["grpo"].items():
            assert torch.equal(state[key], value), key
