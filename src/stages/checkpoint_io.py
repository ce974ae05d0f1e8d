"""Lightning resume checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint ``last.ckpt`` is a JSON skeleton naming its tensor file ``last.ckpt.<unique>.safetensors``. The
tensors are written first, then the skeleton is written to a temporary name and renamed over the old one (the
commit point), then the old tensor file is deleted: a run killed at any moment (SIGKILL) leaves a complete,
resumable checkpoint.

Types JSON lacks are tagged (tuples, non-string dict keys, torch dtypes, Paths); anything else (an arbitrary
object) is an error naming its path in the checkpoint, never a silent pickle.
"""

from __future__ import annotations

import glob
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from safetensors.torch import load_file
from typing_extensions import override

from src import atomic

TENSORS_SUFFIX = ".safetensors"


def _store(value: torch.Tensor, tensors: dict[str, torch.Tensor]) -> str:
    """Key of ``value`` in ``tensors``: tied tensors (same memory, shape, dtype) are stored once."""
    value = value.detach().to("cpu")
    ident = (
        value.untyped_storage().data_ptr(),
        value.storage_offset(),
        tuple(value.shape),
        tuple(value.stride()),
        value.dtype,
    )
    seen = tensors.setdefault("__seen__", {})  # type: ignore[arg-type]
    if ident in seen:
        return seen[ident]
    storages = tensors.setdefault("__storages__", set())  # type: ignore[arg-type]
    shares_memory = value.untyped_storage().data_ptr() in storages
    storages.add(value.untyped_storage().data_ptr())
    key = f"t{len(seen)}"
    seen[ident] = key
    tensors[key] = value.clone() if shares_memory or not value.is_contiguous() else value
    return key


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return {"__tensor__": _store(value, tensors)}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v, f"{path}.{k}", tensors) for k, v in value.items()}
        return {
            "__dict__": [
                [_encode(k, f"{path}.<key>", tensors), _encode(v, f"{path}.{k}", tensors)]
                for k, v in value.items()
            ]
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{path}[{i}]", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}[{i}]", tensors) for i, v in enumerate(value)]
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "items") and callable(value.items):  # OmegaConf DictConfig, mappingproxy, ...
        return _encode(dict(value.items()), path, tensors)
    raise TypeError(
        f"checkpoint entry {path} has type {type(value).__name__}, which cannot be stored without pickle"
    )


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__dict__"]}
    if "__dtype__" in value:
        return getattr(torch, value["__dtype__"])
    if "__path__" in value:
        return Path(value["__path__"])
    return {k: _decode(v, tensors) for k, v in value.items()}


def _tensor_file_of(path: Path) -> Path | None:
    try:
        return path.with_name(json.loads(path.read_text())["tensor_file"])
    except (OSError, ValueError, KeyError):
        return None


def save_checkpoint_files(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the skeleton ``path`` and a uniquely named tensor file; the skeleton's rename is the commit point.

    A kill at any moment leaves ``path`` pointing at a complete tensor file (the old one or the new one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(checkpoint, "checkpoint", tensors)
    tensors = {k: v for k, v in tensors.items() if not k.startswith("__")}
    tensor_name = f"{path.name}.{os.getpid()}-{time.time_ns()}{TENSORS_SUFFIX}"
    atomic.save_tensors(tensors, path.with_name(tensor_name))
    atomic.write_text(
        path, json.dumps({"format": "migr-safe-checkpoint/1", "tensor_file": tensor_name, "checkpoint": skeleton})
    )
    for stale in path.parent.glob(f"{glob.escape(path.name)}.*{TENSORS_SUFFIX}"):
        if stale.name != tensor_name:  # the previous save's tensors, or an orphan of a killed save
            stale.unlink(missing_ok=True)


def load_checkpoint_files(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    document = json.loads(path.read_text())
    tensor_file = path.with_name(document["tensor_file"])
    if not tensor_file.exists():
        raise FileNotFoundError(f"checkpoint {path} refers to {tensor_file.name}, which is missing")
    return _decode(document["checkpoint"], load_file(str(tensor_file)))


class SafeCheckpointIO(CheckpointIO):
    """Lightning ``CheckpointIO`` plugin writing :func:`save_checkpoint_files` pairs atomically."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        save_checkpoint_files(checkpoint, path)

    @override
    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        checkpoint = load_checkpoint_files(path)
        if map_location is not None:
            checkpoint = _map(checkpoint, map_location)
        return checkpoint

    @override
    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        path = Path(path)
        tensor_file = _tensor_file_of(path) if path.exists() else None
        for file in (path, tensor_file):
            if file is not None and file.exists():
                file.unlink()


def _map(value: Any, location: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(location) if not callable(location) else value
    if isinstance(value, dict):
        return {k: _map(v, location) for k, v in value.items()}
    if isinstance(value, list):
        return [_map(v, location) for v in value]
    if isinstance(value, tuple):
        return tuple(_map(v, location) for v in value)
    return value
