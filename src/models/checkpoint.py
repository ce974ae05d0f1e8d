"""Our model folder: ``config.json`` + safetensors (sharded above a size) + ``tokenizer/`` + ``gate_tokenizer/``.

Every stage exports one of these and the next stage reads it (never another stage's Lightning checkpoint)::

    export/
      config.json                    {"model_type": "migr_omni", "omni": {...}, "video_token_id": ..., ...}
      model.safetensors              or model-0000k-of-0000n.safetensors + model.safetensors.index.json
      tokenizer/                     LLM tokenizer (HF files)
      gate_tokenizer/                BERT gate tokenizer

Loading is strict: a missing or unexpected tensor is an error listing the keys, never a random init.

A run that trained LoRA on a 4/8-bit (bitsandbytes) language model has no full-precision weights of its own to
export: its folder is the adapter plus a reference to the base model it was trained on
(``model_type: migr_omni_adapter``, :func:`save_adapter_model`)::

    export/
      config.json                    {"model_type": "migr_omni_adapter", "base_model": {"path", "sha256", ...},
                                      "quantization_bits": 4, "lora": {r, alpha, ...}, "omni": {...}, ...}
      adapter.safetensors            the LoRA matrices and every other parameter the run trained (projectors...)
      tokenizer/  gate_tokenizer/

:func:`load_model` loads it as it was trained: the base (checked against its recorded hash), quantized the same
way (deterministic), the adapter applied and the trained tensors loaded strictly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file
from torch import Tensor, nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from src import atomic
from src.models.humanomni import load_humanomni
from src.models.omni import OmniModel
from src.models.presets import OmniConfig
from src.models.tokenizer import prepare_tokenizer
from src.models.weights import (
    ADAPTER_TYPE,
    INDEX_NAME,
    MODEL_TYPE,
    WEIGHTS_NAME,
    CheckpointError,
    LoadedModel,
    load_state_strict,
    model_kind,
    read_config,
    read_safetensors,
    weight_file_names,
)

FORMAT_VERSION = 1
ADAPTER_WEIGHTS = "adapter.safetensors"


@dataclass
class AdapterBase:
    """The full-precision model a quantized LoRA model was built from (set on ``model.adapter_base``).

    Attributes:
        folder: the base model folder (one of our exports or a released HumanOmni checkpoint; never an adapter).
        options: the :func:`src.models.humanomni.load_humanomni` options it was loaded with (released folders).
        adapter_from: the adapter export whose trained tensors were loaded on top (None: a fresh adapter).
    """

    folder: Path
    options: dict[str, Any] = field(default_factory=dict)
    adapter_from: Path | None = None


def weights_sha256(folder: str | os.PathLike) -> str:
    """SHA-256 over a model folder's weight files (names and bytes, in order): it identifies the weights."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for name in weight_file_names(folder):
        digest.update(name.encode())
        with (folder / name).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
    return digest.hexdigest()


def state_dict_for_saving(model: nn.Module) -> dict[str, Tensor]:
    """Contiguous CPU tensors with tied weights stored once (the tie is restored on load)."""
    state = model.state_dict()
    if getattr(model, "llm", None) is not None and model.llm.config.tie_word_embeddings:
        state.pop("llm.lm_head.weight", None)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def write_safetensors(state: dict[str, Tensor], folder: Path, max_shard_bytes: int = 4 * 1024**3) -> list[str]:
    """Write ``state`` as one file, or HF-style shards plus an index when larger than ``max_shard_bytes``."""
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    metadata = {"format": "pt"}
    if len(shards) == 1:
        atomic.save_tensors(shards[0], folder / WEIGHTS_NAME, metadata=metadata)
        return [WEIGHTS_NAME]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, shard in zip(names, shards):
        atomic.save_tensors(shard, folder / name, metadata=metadata)
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / INDEX_NAME).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
    )
    return names


def save_model(
    model: OmniModel,
    tokenizer: PreTrainedTokenizerBase,
    gate_tokenizer: PreTrainedTokenizerBase,
    folder: str | os.PathLike,
    *,
    extra: dict[str, Any] | None = None,
    max_shard_bytes: int = 4 * 1024**3,
    state: dict[str, Tensor] | None = None,
) -> Path:
    """Export ``model`` as a self-contained folder (atomic: written beside, then renamed into place).

    ``state`` overrides the weights written (e.g. LoRA merged, or gathered from FSDP shards); names must be
    plain :class:`OmniModel` names.
    """
    from src.models.quantize import is_quantized

    folder = Path(folder)
    if is_quantized(model):
        raise CheckpointError(
            f"{folder}: the model's LLM is {model.config.extra['quantization_bits']}-bit quantized; it has no "
            "full-precision weights to save as a model folder (save_adapter_model writes its adapter and a "
            "reference to the base)"
        )
    if state is None:
        state = state_dict_for_saving(model)
    else:
        state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        if model.causal_lm.config.tie_word_embeddings:
            state.pop("llm.lm_head.weight", None)
    config = {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        **_model_fields(model),
        "torch_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        **(extra or {}),
    }
    return _write_export(
        folder, config, tokenizer, gate_tokenizer, lambda tmp: write_safetensors(state, tmp, max_shard_bytes)
    )


def _model_fields(model: OmniModel) -> dict[str, Any]:
    """The config.json entries every export of ours records: the model's shapes and its media token ids."""
    return {
        "omni": model.config.to_dict(),
        "video_token_id": model.video_token_id,
        "audio_token_id": model.audio_token_id,
    }


def _write_export(
    folder: Path,
    config: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    gate_tokenizer: PreTrainedTokenizerBase,
    write_weights: Callable[[Path], object],
) -> Path:
    """Write an export folder atomically: ``write_weights(staging folder)``, config.json and both tokenizers."""
    # a fixed staging name: an export killed midway is removed by the next one
    with atomic.replacing_folder(folder, staging=folder.with_name(folder.name + ".tmp")) as tmp:
        write_weights(tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        tokenizer.save_pretrained(tmp / "tokenizer")
        gate_tokenizer.save_pretrained(tmp / "gate_tokenizer")
    return folder


def save_adapter_model(
    model: OmniModel,
    tokenizer: PreTrainedTokenizerBase,
    gate_tokenizer: PreTrainedTokenizerBase,
    folder: str | os.PathLike,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Export a LoRA model on a quantized LLM: its trained tensors plus a reference to the base (atomic).

    The tensors written are every parameter that requires grad (the LoRA matrices, and the projectors / gate /
    towers when they train); everything else is the base's, re-read and re-quantized on load. The base is
    recorded by path (relative to the export, so a moved runs folder still loads) and by the SHA-256 of its
    weights, so a base that changed since is refused instead of silently used.
    """
    from src.models.lora import has_lora, lora_options
    from src.models.quantize import is_quantized

    folder = Path(folder)
    base: AdapterBase | None = getattr(model, "adapter_base", None)
    if not (is_quantized(model) and has_lora(model)) or base is None:
        raise CheckpointError(
            f"{folder}: an adapter export needs a quantized LLM with LoRA and the base folder it was built from "
            f"(quantized: {is_quantized(model)}, LoRA: {has_lora(model)}, base: {base})"
        )
    state = {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}
    base_folder = base.folder.resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = os.path.relpath(base_folder, folder.resolve())
    except ValueError:  # another drive (Windows)
        path = str(base_folder)
    config = {
        "model_type": ADAPTER_TYPE,
        "format_version": FORMAT_VERSION,
        "base_model": {
            "path": path,
            "resolved_at_export": str(base_folder),
            "sha256": weights_sha256(base_folder),
            "model_type": read_config(base_folder).get("model_type"),
            "options": base.options,
        },
        "quantization_bits": model.config.extra["quantization_bits"],
        "lora": lora_options(model),
        **_model_fields(model),
        "trained_tensors": len(state),
        **(extra or {}),
    }
    return _write_export(
        folder,
        config,
        tokenizer,
        gate_tokenizer,
        lambda tmp: atomic.save_tensors(state, tmp / ADAPTER_WEIGHTS, metadata={"format": "pt"}),
    )


def load_adapter_model(
    folder: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> LoadedModel:
    """Load an adapter export (:func:`save_adapter_model`) as it was trained: base, quantized, adapter on top."""
    from src.models.lora import apply_lora
    from src.models.quantize import quantize_llm

    folder = Path(folder)
    config = read_config(folder)
    record = config["base_model"]
    base = (folder / record["path"]).resolve()
    if not (base / "config.json").exists():
        raise CheckpointError(
            f"{folder}: its base model {record['path']!r} (at export: {record['resolved_at_export']}) is not at "
            f"{base}; put the base folder back there (an adapter export holds only the trained tensors)"
        )
    found = weights_sha256(base)
    if found != record["sha256"]:
        raise CheckpointError(
            f"{folder}: the base model at {base} is not the one the adapter was trained on (weights sha256 "
            f"{found[:12]}..., recorded {record['sha256'][:12]}...)"
        )
    options = record.get("options") or {}
    kind = model_kind(base)
    if kind == "adapter":
        raise CheckpointError(f"{folder}: its base {base} is itself an adapter export (expected full weights)")
    loaded = load_humanomni(base, dtype=dtype, **options) if kind == "humanomni" else load_model(base, dtype=dtype)
    model = loaded.model
    stored = OmniConfig.from_dict(config["omni"])
    model.config.preprocess = stored.preprocess  # the one setting a run may choose over the base's own
    model.config.__post_init__()
    quantize_llm(model, int(config["quantization_bits"]), compute_dtype=dtype or torch.float32)
    if model.config.to_dict() != stored.to_dict():
        differ = sorted(k for k, v in stored.to_dict().items() if model.config.to_dict().get(k) != v)
        raise CheckpointError(f"{folder}: the base at {base} builds another model (differs in {differ})")
    apply_lora(model, **config["lora"])
    state = load_file(str(folder / ADAPTER_WEIGHTS))
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(
        n for n, p in model.named_parameters() if p.requires_grad and ".lora_" in n and n not in state
    )
    bad_shapes = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if unexpected or missing or bad_shapes:
        raise CheckpointError(
            f"{folder}/{ADAPTER_WEIGHTS} does not fit the base {base} with LoRA {config['lora']} (unexpected: "
            f"{unexpected[:10]}, missing LoRA tensors: {missing[:10]}, shape mismatches: {bad_shapes[:10]})"
        )
    model.load_state_dict(state, strict=False)
    model.adapter_base = AdapterBase(folder=base, options=options, adapter_from=folder)
    model.to(device)
    model.eval()
    tokenizer, gate_tokenizer = _tokenizers(folder)
    return LoadedModel(model=model, tokenizer=tokenizer, gate_tokenizer=gate_tokenizer, folder=folder)


def _tokenizers(folder: Path) -> tuple[PreTrainedTokenizerBase, PreTrainedTokenizerBase]:
    """The LLM tokenizer (prepared: special tokens, padding) and the gate's, as an export of ours stores them."""
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder / "tokenizer"))
    return tokenizer, AutoTokenizer.from_pretrained(folder / "gate_tokenizer")


def load_model(
    folder: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load one of our exported folders (``model_type: migr_omni``) or a released HumanOmni checkpoint.

    HumanOmni folders (``model_type: HumanOmni_qwen2``) are delegated to :func:`src.models.humanomni.load_humanomni`.
    """
    folder = Path(folder)
    config = read_config(folder)
    kind = model_kind(folder, config)
    if kind == "humanomni":
        return load_humanomni(folder, device=device, dtype=dtype)
    if kind == "adapter":
        return load_adapter_model(folder, device=device, dtype=dtype)
    for sub in ("tokenizer", "gate_tokenizer"):
        if not (folder / sub).is_dir():
            raise CheckpointError(f"{folder}: missing {sub}/ folder (a model export always has one)")
    tokenizer, gate_tokenizer = _tokenizers(folder)
    omni = OmniConfig.from_dict(config["omni"])
    with init_empty_weights():  # parameters on meta, buffers (rotary tables, position ids) real
        model = OmniModel(omni, video_token_id=config["video_token_id"], audio_token_id=config["audio_token_id"])
    load_state_strict(model, read_safetensors(folder), str(folder))
    model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, gate_tokenizer=gate_tokenizer, folder=folder)


def resolve_model_folder(value: str | None, runs_dir: str, *, default_stage: str) -> Path:
    """A model folder argument: a path, or ``auto`` = ``<runs_dir>/<default_stage>/export`` (must exist)."""
    folder = Path(runs_dir) / default_stage / "export" if value in (None, "auto") else Path(value)
    if not (folder / "config.json").exists():
        hint = f" (train it first: python -m src.train stage={default_stage})" if value in (None, "auto") else ""
        raise FileNotFoundError(f"model_path={value!r}: no model folder at {folder}{hint}")
    return folder
