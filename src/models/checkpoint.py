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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from safetensors import safe_open
from torch import Tensor, nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from src import atomic
from src.models.omni import OmniModel
from src.models.presets import OmniConfig
from src.models.tokenizer import prepare_tokenizer

MODEL_TYPE = "migr_omni"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


@dataclass
class LoadedModel:
    """A model with the tokenizers it was trained with."""

    model: OmniModel
    tokenizer: PreTrainedTokenizerBase
    gate_tokenizer: PreTrainedTokenizerBase
    folder: Path | None = None


class CheckpointError(RuntimeError):
    """A model folder that cannot be loaded as asked; the message names the folder and the keys."""


def _key_list(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


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


def _weight_files(folder: Path) -> list[str]:
    """The safetensors files of a folder: the shards its index lists, or ``model.safetensors``."""
    index = folder / INDEX_NAME
    if index.exists():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    if (folder / WEIGHTS_NAME).exists():
        return [WEIGHTS_NAME]
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise CheckpointError(
        f"{folder}: no {WEIGHTS_NAME} or {INDEX_NAME} (found: {found or 'nothing'}); "
        "pickled .bin weights are not read"
    )


def stored_keys(folder: Path) -> list[str]:
    """Tensor names of a weights folder, read from the headers only (no tensor is loaded)."""
    keys: list[str] = []
    for name in _weight_files(Path(folder)):
        with safe_open(str(Path(folder) / name), framework="pt") as handle:
            keys.extend(handle.keys())
    return keys


def read_safetensors(folder: Path) -> dict[str, Tensor]:
    """All tensors of a folder holding ``model.safetensors`` or an index with shards."""
    folder = Path(folder)
    files = _weight_files(folder)
    tensors: dict[str, Tensor] = {}
    for name in files:
        path = folder / name
        if not path.exists():
            raise CheckpointError(f"{folder}: shard {name} listed in {INDEX_NAME} is missing")
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                # clone: fresh, aligned memory (sliced buffers take other SIMD paths: bitwise-different results)
                tensors[key] = handle.get_tensor(key).clone()
    return tensors


def load_state_strict(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load every tensor of ``state`` into ``model``; any missing/unexpected key or shape mismatch raises."""
    expected = model.state_dict()
    tied = getattr(model, "llm", None) is not None and model.llm.config.tie_word_embeddings
    missing = set(expected) - set(state) - ({"llm.lm_head.weight"} if tied else set())
    unexpected = set(state) - set(expected)
    bad_shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or bad_shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys: {_key_list(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: {_key_list(unexpected)}")
        if bad_shapes:
            parts.append(f"shape mismatches: {'; '.join(sorted(bad_shapes)[:10])}")
        raise CheckpointError(f"{source}: weights do not match the model ({' | '.join(parts)})")
    model.load_state_dict(state, strict=False, assign=any(p.is_meta for p in model.parameters()))
    still_meta = [name for name, p in model.named_parameters() if p.is_meta and name != "llm.lm_head.weight"]
    if still_meta:
        raise CheckpointError(f"{source}: parameters left uninitialised: {_key_list(still_meta)}")
    if tied:
        model.llm.tie_weights()


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
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    if state is None:
        state = state_dict_for_saving(model)
    else:
        state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        if model.causal_lm.config.tie_word_embeddings:
            state.pop("llm.lm_head.weight", None)
    write_safetensors(state, tmp, max_shard_bytes)
    config = {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "omni": model.config.to_dict(),
        "video_token_id": model.video_token_id,
        "audio_token_id": model.audio_token_id,
        "torch_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        **(extra or {}),
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    tokenizer.save_pretrained(tmp / "tokenizer")
    gate_tokenizer.save_pretrained(tmp / "gate_tokenizer")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a model folder, with a clear error when absent or of another kind."""
    folder = Path(folder)
    path = folder / "config.json"
    if not path.exists():
        raise CheckpointError(f"{folder}: no config.json (is this a model folder? expected an export folder)")
    config = json.loads(path.read_text())
    return config


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
    model_type = config.get("model_type")
    if model_type == "HumanOmni_qwen2":
        from src.models.humanomni import load_humanomni

        return load_humanomni(folder, device=device, dtype=dtype)
    if model_type != MODEL_TYPE:
        raise CheckpointError(
            f"{folder}/config.json: model_type {model_type!r} is not supported; expected {MODEL_TYPE!r} "
            "(our exports) or 'HumanOmni_qwen2' (released HumanOmni/R1-Omni/ERV checkpoints)"
        )
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
