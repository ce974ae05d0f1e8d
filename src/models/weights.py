"""Reading a model folder's weights and ``config.json``: what every loader shares (ours and HumanOmni's).

:mod:`src.models.checkpoint` (our export folders, and the dispatch on ``model_type``) and
:mod:`src.models.humanomni` (released checkpoints) both read safetensors (single file or shards + index) and
load them strictly through these functions, so a missing or unexpected tensor is always an error listing the
keys, never a random init.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from src.models.omni import OmniModel

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


def weight_file_names(folder: str | os.PathLike) -> list[str]:
    """The safetensors files that hold a model folder's weights (shards in index order, or the single file)."""
    return _weight_files(Path(folder))


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


MODEL_TYPE = "migr_omni"  # config.json's model_type of our exports
HUMANOMNI_TYPE = "HumanOmni_qwen2"  # ... of released HumanOmni / R1-Omni / ERV checkpoints
ADAPTER_TYPE = "migr_omni_adapter"  # ... of a LoRA adapter on a quantized base (src.models.checkpoint)
MODEL_KINDS = {MODEL_TYPE: "export", HUMANOMNI_TYPE: "humanomni", ADAPTER_TYPE: "adapter"}


def model_kind(folder: str | os.PathLike, config: dict[str, Any] | None = None) -> str:
    """Which loader a model folder needs: ``"export"`` (ours), ``"adapter"`` (our export of a LoRA adapter on a
    quantized base) or ``"humanomni"`` (a released checkpoint).

    The one place that reads ``model_type``: describing, instantiating and loading a folder all dispatch on
    this. ``config`` is the folder's ``config.json`` when already read. Any other type is an error naming the
    file and the types known.
    """
    config = read_config(folder) if config is None else config
    model_type = config.get("model_type")
    if model_type not in MODEL_KINDS:
        raise CheckpointError(
            f"{Path(folder) / 'config.json'}: model_type {model_type!r} is not supported; expected "
            f"{MODEL_TYPE!r} (our exports), {ADAPTER_TYPE!r} (a LoRA adapter on a quantized base) or "
            f"{HUMANOMNI_TYPE!r} (released HumanOmni/R1-Omni/ERV checkpoints)"
        )
    return MODEL_KINDS[model_type]


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a model folder, with a clear error when absent or of another kind."""
    folder = Path(folder)
    path = folder / "config.json"
    if not path.exists():
        raise CheckpointError(f"{folder}: no config.json (is this a model folder? expected an export folder)")
    config = json.loads(path.read_text())
    return config
