"""Building the model a run asks for: a fresh preset, one of our exports, or a released HumanOmni checkpoint.

The ``model`` config group maps onto :class:`ModelSpec`. Two steps, so data can be prepared before weights
exist (Lightning builds weights in ``configure_model``):

* :func:`describe` -> shapes and tokenizers (cheap; no weights);
* :func:`instantiate` -> the model with weights, towers frozen as configured, LoRA / 4-8 bit applied.

Where weights come from, in order: the stage's ``init_from`` (the previous stage's export), else
``model.pretrained`` (a released or exported folder), else a fresh random init of ``model.preset``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from src.config_check import ConfigError
from src.models.checkpoint import AdapterBase, LoadedModel, load_model, model_kind, read_config
from src.models.lora import apply_lora
from src.models.omni import OmniModel
from src.models.presets import OmniConfig, get_preset
from src.models.quantize import quantize_llm
from src.models.tokenizer import build_tiny_tokenizer, prepare_tokenizer

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelSpec:
    """The ``model`` config group (``configs/model/*.yaml``)."""

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    freeze: dict[str, bool] = field(
        default_factory=lambda: {"vision_tower": True, "audio_tower": True, "bert_model": True}
    )
    lora: dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    quantization_bits: int | None = None
    dtype: str = "float32"
    vision_tower_path: str | None = None
    audio_tower_path: str | None = None
    bert_tokenizer_path: str | None = None
    preprocess: str | None = None  # src.data.preprocess setting; None: the model's own (preset / checkpoint)
    video_compressor: str | None = None  # none | slow_fast; None: the preset's / what the checkpoint stores

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"model.dtype={self.dtype!r} must be one of {sorted(DTYPES)}")
        unknown = set(self.freeze) - {"vision_tower", "audio_tower", "bert_model"}
        if unknown:
            raise ValueError(
                f"model.freeze has unknown parts {sorted(unknown)}; known: vision_tower, audio_tower, bert_model"
            )


@dataclass
class ModelDescription:
    """Shapes and tokenizers of the model a run will train, known before any weight is built."""

    config: OmniConfig
    tokenizer: PreTrainedTokenizerBase
    gate_tokenizer: PreTrainedTokenizerBase
    source: Path | None  # folder the weights come from, None = fresh init

    @property
    def token_counts(self) -> dict[str, int]:
        return {"video": self.config.num_video_tokens, "audio": self.config.num_audio_tokens}


def weights_source(spec: ModelSpec, init_from: str | None) -> Path | None:
    """The folder weights come from (``init_from`` first, then ``model.pretrained``), or None for fresh init."""
    for key, value in (("stage.init_from", init_from), ("model.pretrained", spec.pretrained)):
        if value:
            path = Path(value)
            if not (path / "config.json").exists():
                raise FileNotFoundError(
                    f"{key}={value!r}: no model folder there (expected {path / 'config.json'})"
                )
            return path
    return None


def describe(spec: ModelSpec, init_from: str | None = None) -> ModelDescription:
    source = weights_source(spec, init_from)
    if source is None:
        choices = {
            k: v for k, v in (("preprocess", spec.preprocess), ("video_compressor", spec.video_compressor)) if v
        }
        config = get_preset(spec.preset, **{**spec.overrides, **choices})
        tokenizer = build_tiny_tokenizer() if config.preset == "tiny" else None
        if tokenizer is None:
            raise ValueError(
                f"model.preset={spec.preset!r} has no built-in tokenizer; set model.pretrained=/path/to/checkpoint"
            )
        return ModelDescription(config=config, tokenizer=tokenizer, gate_tokenizer=tokenizer, source=None)
    raw = read_config(source)
    if model_kind(source, raw) == "humanomni":
        from src.models.humanomni import humanomni_config, released_tokenizer

        config = humanomni_config(source, **_released_options(spec))
        tokenizer = released_tokenizer(source)
        bert = Path(spec.bert_tokenizer_path) if spec.bert_tokenizer_path else source / "bert"
        gate_tokenizer = AutoTokenizer.from_pretrained(bert)
    else:
        config = _with_preprocess(OmniConfig.from_dict(raw["omni"]), spec, source)
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source / "tokenizer"))
        gate_tokenizer = AutoTokenizer.from_pretrained(source / "gate_tokenizer")
    return ModelDescription(config=config, tokenizer=tokenizer, gate_tokenizer=gate_tokenizer, source=source)


def _released_options(spec: ModelSpec) -> dict[str, Any]:
    """The :func:`src.models.humanomni.load_humanomni` options a spec sets."""
    return {
        "vision_tower_path": spec.vision_tower_path,
        "audio_tower_path": spec.audio_tower_path,
        "bert_tokenizer_path": spec.bert_tokenizer_path,
        "video_compressor": spec.video_compressor,
        "preprocess": spec.preprocess,
    }


def _with_preprocess(config: OmniConfig, spec: ModelSpec, source: Path) -> OmniConfig:
    """An export's config with ``model.preprocess`` applied; its compressor is part of its weights."""
    if spec.video_compressor and spec.video_compressor != config.video_compressor:
        raise ValueError(
            f"model.video_compressor={spec.video_compressor!r}: {source} was trained with "
            f"video_compressor={config.video_compressor!r} (an export's compressor cannot be switched)"
        )
    if spec.preprocess:
        config.preprocess = spec.preprocess
        config.__post_init__()
    return config


def instantiate(spec: ModelSpec, init_from: str | None = None, *, seed: int = 0) -> LoadedModel:
    """The model with weights, freezing, LoRA and quantization applied as ``spec`` says."""
    source = weights_source(spec, init_from)
    if source is None:
        description = describe(spec)
        torch.manual_seed(seed)
        model = OmniModel.from_tokenizer(description.config, description.tokenizer, description.gate_tokenizer)
        loaded = LoadedModel(
            model=model, tokenizer=description.tokenizer, gate_tokenizer=description.gate_tokenizer
        )
        log.info("model: fresh %s preset (seed %d)", spec.preset, seed)
    elif model_kind(source) == "adapter":
        return _continue_adapter(spec, source)
    else:
        if model_kind(source) == "humanomni":
            from src.models.humanomni import load_humanomni

            loaded = load_humanomni(source, **_released_options(spec))
        else:
            loaded = load_model(source)
            _with_preprocess(loaded.model.config, spec, source)
        log.info("model: weights from %s", source)
    model = loaded.model
    model.to(DTYPES[spec.dtype])
    model.freeze(**{**{"vision_tower": True, "audio_tower": True, "bert_model": True}, **spec.freeze})
    if spec.quantization_bits:
        if source is None:
            raise ConfigError(QUANTIZED_NEEDS_BASE.format(bits=spec.quantization_bits))
        quantize_llm(model, spec.quantization_bits, compute_dtype=DTYPES[spec.dtype])
        options = _released_options(spec) if model_kind(source) == "humanomni" else {}
        model.adapter_base = AdapterBase(folder=source, options=options)  # what the adapter export refers to
    if spec.lora.get("enabled"):
        options = {k: v for k, v in spec.lora.items() if k != "enabled"}
        apply_lora(model, **options)
    model.train()
    return loaded


QUANTIZED_NEEDS_BASE = (
    "model.quantization_bits={bits} needs full-precision base weights to quantize and to refer the exported "
    "adapter to: set stage.init_from or model.pretrained to a model folder (a fresh model.preset has none)"
)


def check_weights_source(spec: ModelSpec, init_from: str | None) -> None:
    """Refuse, before anything is built, a run whose weights source does not fit its quantization / LoRA.

    A quantized run needs a base folder; a run starting from an adapter export (a LoRA adapter on a quantized
    base) can only continue that adapter: same bits, LoRA on, same adapter shape. Anything else would train or
    export a model that is not the one the adapter describes.

    Raises:
        ConfigError: naming the keys, the values and what is allowed.
    """
    source = weights_source(spec, init_from)
    bits = spec.quantization_bits
    if bits and source is None:
        raise ConfigError(QUANTIZED_NEEDS_BASE.format(bits=bits))
    if source is None or model_kind(source) != "adapter":
        return
    raw = read_config(source)
    key = "stage.init_from" if init_from else "model.pretrained"
    wanted = {k: v for k, v in spec.lora.items() if k != "enabled"}
    stored = raw["lora"]
    different = sorted(k for k in ("r", "alpha") if k in wanted and wanted[k] != stored[k])
    if bits != raw["quantization_bits"] or not spec.lora.get("enabled") or different:
        raise ConfigError(
            f"{key}={str(source)!r} is a LoRA adapter on a {raw['quantization_bits']}-bit base "
            f"(r={stored['r']}, alpha={stored['alpha']}); a run from it continues that adapter: allowed "
            f"model.quantization_bits={raw['quantization_bits']} model.lora.enabled=true with the same "
            f"model.lora.r/alpha (got model.quantization_bits={bits}, model.lora.enabled="
            f"{str(bool(spec.lora.get('enabled'))).lower()}"
            + "".join(f", model.lora.{k}={wanted[k]}" for k in different)
            + ")"
        )


def _continue_adapter(spec: ModelSpec, source: Path) -> LoadedModel:
    """A run from an adapter export: its base quantized again, its adapter (and trained tensors) trainable."""
    check_weights_source(spec, str(source))
    loaded = load_model(source, dtype=DTYPES[spec.dtype])
    model = loaded.model
    model.freeze(**{**{"vision_tower": True, "audio_tower": True, "bert_model": True}, **spec.freeze})
    for name, param in model.llm.named_parameters():
        if ".lora_" in name:
            param.requires_grad_(True)
    log.info("model: LoRA adapter of %s on its base %s", source, model.adapter_base.folder)
    model.train()
    return loaded
