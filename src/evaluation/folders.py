"""Where an evaluation reads its model and writes its outputs, and what makes resuming a folder safe.

Model (``model_path``): a model folder, or ``auto`` = the first of ``<runs_dir>/<stage>/export`` that exists for
``stage`` in ``model_search`` (default ``grpo, sft, base``: the latest stage of the pipeline first).

Output folder (``output_dir``): a path, or ``auto`` = ``<runs_dir>/eval/<model name>-<dataset>-<split>``, where
the model name is the stage folder of an ``.../<stage>/export`` path (``grpo``) or the folder's own name.

Resuming: ``run.json`` in the output folder records the settings that decide what a completion is (model and
its weight files, manifest, split, task, sampling, attention layer, ...). A rerun with the same settings resumes;
with different ones it stops and names the differing settings instead of mixing two evaluations in one file
(``overwrite=true`` starts the folder afresh).

Example:
    >>> from pathlib import Path
    >>> model_name(Path("runs/grpo/export")), model_name(Path("/ckpt/ERV-0.5B"))
    ('grpo', 'ERV-0.5B')
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from src import atomic
from src.evaluation.predictions import EvaluationError

DEFAULT_SEARCH: tuple[str, ...] = ("grpo", "sft", "base")
RUN_NAME = "run.json"


def find_model(
    model_path: str | os.PathLike[str], *, runs_dir: str | os.PathLike[str], search: Sequence[str]
) -> Path:
    """The model folder to evaluate (see the module docstring); ``auto`` with no export is an error."""
    if str(model_path) != "auto":
        return Path(model_path)
    candidates = [Path(runs_dir) / stage / "export" for stage in search]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    listed = ", ".join(str(candidate) for candidate in candidates)
    raise EvaluationError(
        f"model_path=auto found no exported model (looked for {listed}, in that order; runs_dir comes from "
        "MIGR_RUNS). Train one first (python -m src.train stage=sft) or pass model_path=/path/to/model_folder"
    )


def model_name(model_dir: Path) -> str:
    """A short name for a model folder: its stage for ``.../<stage>/export``, else the folder name."""
    resolved = Path(model_dir)
    return resolved.parent.name if resolved.name == "export" and resolved.parent.name else resolved.name


def output_folder(
    output_dir: str | os.PathLike[str],
    *,
    runs_dir: str | os.PathLike[str],
    model_dir: Path,
    dataset: str,
    split: str,
) -> Path:
    """The evaluation folder (see the module docstring)."""
    if str(output_dir) != "auto":
        return Path(output_dir)
    return Path(runs_dir) / "eval" / f"{model_name(model_dir)}-{dataset}-{split}"


def weight_files(model_dir: Path) -> dict[str, list[int]]:
    """``{file: [size, mtime_ns]}`` of a model folder's weights: a retrained or replaced model differs."""
    files = sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.index.json"))
    return {path.name: [path.stat().st_size, path.stat().st_mtime_ns] for path in files}


def check_run_settings(folder: Path, settings: Mapping[str, Any], *, overwrite: bool) -> bool:
    """Compare ``settings`` with the folder's ``run.json`` (written when absent). Returns whether the folder
    already held an evaluation (that is resumed).

    Raises:
        EvaluationError: the folder holds an evaluation made with other settings (each listed, old -> new).
    """
    path = folder / RUN_NAME
    plain = json.loads(json.dumps(settings))
    if overwrite or not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(plain, indent=1) + "\n")
        return False
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{path}: unreadable ({error.msg}); delete it or pass overwrite=true") from None
    changed = sorted(key for key in set(stored) | set(plain) if stored.get(key) != plain.get(key))
    if changed:
        details = "; ".join(f"{key}: {stored.get(key)!r} -> {plain.get(key)!r}" for key in changed)
        raise EvaluationError(
            f"{folder} holds an evaluation made with other settings ({details}). Choose another output_dir, "
            "or pass overwrite=true to discard it and start again"
        )
    return True
