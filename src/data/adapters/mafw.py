"""MAFW (Liu et al., ACM MM 2022), single-label protocol, to a manifest, one per cross-validation fold.

Recognised layouts (the first that exists wins):

- splits: ``Train & Test Set/single/no_caption/set_{k}/{train,test}.txt`` (the official archive),
  ``split/single/no_caption/set_{k}/...``, ``single/no_caption/set_{k}/...`` or ``set_{k}/...`` directly under
  the root. Each line is ``<file name> <label>``, e.g. ``00025.mp4 anger``.
- clips: ``data/clips/``, ``clips/``, ``data/video/`` or ``videos/``.
- action units (optional, ``au_dir``): OpenFace 2 csvs ``<au_dir>/00025.csv``, one per clip (MAFW ships none),
  each becoming the sample's ``au_csv`` (the FAU filter's input).

Labels are the 11 MAFW classes; other spellings are normalised through :mod:`src.data.labels`
("anxious" -> anxiety, "happy" -> happiness, "helpless" -> helplessness) and the original spelling is kept
in the manifest's ``label_raw`` field.

Example:
    python -m src.data.adapters mafw /data/MAFW --fold 1 --out /data/MAFW/mafw_fold1.jsonl --val-fraction 0.1
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from src.data.adapters.common import (
    AdapterError,
    ConversionReport,
    OnError,
    SkipLog,
    au_folder,
    carve_val,
    find_au_csv,
    find_clip,
    first_existing,
    write_report,
)
from src.data.labels import labels_for, normalize_label
from src.data.manifest import Sample

MAFW_LABELS = labels_for("mafw")
NUM_FOLDS = 5


def _split_file(root: Path, split: str, fold: int) -> Path:
    bases = [
        root / "Train & Test Set" / "single" / "no_caption",
        root / "split" / "single" / "no_caption",
        root / "single" / "no_caption",
        root,
    ]
    return first_existing(
        [base / f"set_{fold}" / f"{split}.txt" for base in bases], f"MAFW {split} list of fold {fold}"
    )


def _clip_dir(root: Path) -> Path:
    candidates = [root / "data" / "clips", root / "clips", root / "data" / "video", root / "videos"]
    return first_existing(candidates, "MAFW clip folder", directory=True)


def mafw_samples(
    root: str | os.PathLike[str],
    *,
    fold: int = 1,
    clips_dir: str | os.PathLike[str] | None = None,
    au_dir: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    on_error: OnError = "raise",
) -> tuple[list[Sample], list[tuple[str, str]]]:
    """The samples of MAFW fold ``fold`` (train, optional val carved from train, test) and the skipped rows.

    Args:
        root: the MAFW folder.
        fold: 1..5.
        clips_dir: the clip folder when it is not in a recognised place.
        au_dir: folder of OpenFace csvs named after the clips (``00025.csv``); None: no ``au_csv``.
        val_fraction: share of each label's training clips moved to a ``val`` split (seeded).
        on_error: "raise" stops at the first bad line; "skip" counts it (unknown label, missing clip, ...).
    """
    root = Path(root)
    if not 1 <= fold <= NUM_FOLDS:
        raise AdapterError(f"MAFW has folds 1..{NUM_FOLDS}; got fold={fold}")
    clip_dir = Path(clips_dir) if clips_dir is not None else _clip_dir(root)
    aus = au_folder(au_dir, "MAFW")
    log = SkipLog(on_error)
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    for split in ("train", "test"):
        path = _split_file(root, split, fold)
        with path.open(encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
        for line_no, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            where = f"{path}:{line_no}"
            parts = text.split()
            if len(parts) != 2:
                log.problem(where, f"expected '<file name> <label>'; found {text.strip()!r}")
                continue
            name, raw_label = parts
            label = normalize_label(raw_label, "mafw")
            if label is None:
                log.problem(where, f"unknown label {raw_label!r}; MAFW labels: {', '.join(MAFW_LABELS)}")
                continue
            key = Path(name).stem
            if key in seen:
                log.problem(where, f"duplicate clip {key!r} (already in {seen[key]})")
                continue
            clip = find_clip(clip_dir, dict.fromkeys([name, key]))
            if clip is None:
                log.problem(where, f"clip not found: {clip_dir / name}")
                continue
            seen[key] = where
            extra: dict[str, Any] = {"fold": fold}
            if raw_label != label:
                extra["label_raw"] = raw_label
            samples.append(
                Sample(
                    id=key,
                    label=label,
                    dataset="mafw",
                    split=split,
                    video=clip.resolve(),
                    audio=None,
                    au_csv=find_au_csv(aus, dict.fromkeys([key, name])),
                    extra=extra,
                )
            )
    return carve_val(samples, val_fraction, seed), log.skipped


def convert_mafw(root: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> ConversionReport:
    """Write fold ``options['fold']`` (default 1) of MAFW as a manifest at ``out``; see :func:`mafw_samples`."""
    samples, skipped = mafw_samples(root, **options)
    return write_report(samples, out, skipped)
