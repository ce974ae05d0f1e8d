"""Our model folder: ``config.json`` + safetensors (sharded above a size) + ``tokenizer/`` + ``gate_tokenizer/``.

Every stage exports one of these and the next stage reads it (never another stage's Lightning checkpoint)::

    export/
      config.json                    {"model_type": "migr_omni", "omni": {...}, "video_token_id": ..., ...}
      model.safetensors              or model-0000k-of-0000n.safetensors + model.safetensors.index.json
      tokenizer/                     LLM tokenizer (HF files)
      gate_tokenizer/                BERT gate tokenizer

Loading is strict: a missing or unexpected tensor is an error listing the keys, never a random init.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from torch import Tensor, nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from src import atomic
from src.models.humanomni import load_humanomni
from src.models.omni import OmniModel
from src.models.presets import OmniConfig
from src.models.tokenizer import prepare_tokenizer
from src.models.weights import (
    INDEX_NAME,
    MODEL_TYPE,
    WEIGHTS_NAME,
    CheckpointError,
    LoadedModel,
    load_state_strict,
    model_kind,
    read_config,
    read_safetensors,
)

FORMAT_VERSION = 1


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
    folder = Path(folder)
    if state is None:
        state = state_dict_for_saving(model)
    else:
        state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        if model.causal_lm.config.tie_word_embeddings:
            state.pop("llm.lm_head.weight", None)
    config = {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "omni": model.config.to_dict(),
        "video_token_id": model.video_token_id,
        "audio_token_id": model.audio_token_id,
        "torch_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        **(extra or {}),
    }
    # a fixed staging name: an export killed midway is removed by the next one
    with atomic.replacing_folder(folder, staging=folder.with_name(folder.name + ".tmp")) as tmp:
        write_safetensors(state, tmp, max_shard_bytes)
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        tokenizer.save_pretrained(tmp / "tokenizer")
        gate_tokenizer.save_pretrained(tmp / "gate_tokenizer")
    return folder


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
    if model_kind(folder, config) == "humanomni":
        return load_humanomni(folder, device=device, dtype=dtype)
    for sub in ("tokenizer", "gate_tokenizer"):
        if not (folder / sub).is_dir():
            raise CheckpointError(f"{folder}: missing {sub}/ folder (a model export always has one)")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder / "tokenizer"))
    gate_tokenizer = AutoTokenizer.from_pretrained(folder / "gate_tokenizer")
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
