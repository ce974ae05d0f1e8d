"""EMER (Lian et al., "Explainable Multimodal Emotion Reasoning"; now OV-MERD) to a manifest.

EMER pairs MER2023 clips with human-checked explanations. Its reason csv comes in a few shapes, all read here
by column name (case, spaces, ``_`` and ``-`` do not matter):

========================  ===================================================================================
id                        ``name`` / ``names`` / ``video`` / ``video_name`` / ``id``
label                     ``emotion`` / ``emotions`` / ``label`` / ``discrete`` (or a separate ``labels_csv``
                          with ``name,label`` columns, as EMER-V2's ``final-EMER-reason.csv`` has no labels)
visual part               ``visual clue(s)`` / ``visual cue(s)`` / ``visual`` / ``vis_desc``
audio part                ``acoustic clue(s)`` / ``audio clue(s)`` / ``acoustic`` / ``audio`` / ``aud_desc``
think part                ``reasoning`` / ``multimodal reasoning`` / ``reasons`` / ``reason`` / ``english``
========================  ===================================================================================

A csv with one explanation paragraph (EMER-V1 ``reasons``, EMER-V2 ``english``) gives ``think`` only; the
visual/audio parts stay empty (None) rather than guessed. Every other column (``chinese``, ``subtitles``, ...)
is kept in the manifest row under its own name. Labels use EMER's five classes (angry, sad, surprise,
worried, happy); MER2023's ``neutral`` clips are not part of EMER and are reported as unknown labels.

Clips are looked up as ``<name>.mp4/.avi/...`` in ``clips_dir`` or in ``video/``, ``videos/``, ``clips/``
next to the csv; ``audio_dir`` optionally points at separate ``<name>.wav`` files.

Example:
    python -m src.data.adapters emer /data/EMER/EMER-reason.csv --out /data/EMER/emer.jsonl --val-fraction 0.1
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from src.data.adapters.common import (
    AdapterError,
    ConversionReport,
    OnError,
    SkipLog,
    carve_val,
    find_clip,
    first_existing,
    read_csv_rows,
    write_report,
)
from src.data.labels import labels_for, normalize_label
from src.data.manifest import Reasoning, Sample

EMER_LABELS = labels_for("emer")

# Column role -> accepted header spellings (after normalisation), most specific first.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("name", "names", "video name", "video", "video id", "clip", "id", "filename"),
    "label": ("emotion", "emotions", "label", "labels", "discrete", "discrete label"),
    "visual": ("visual clue", "visual clues", "visual cue", "visual cues", "visual", "vis desc"),
    "audio": ("acoustic clue", "acoustic clues", "audio clue", "audio clues", "acoustic", "audio", "aud desc"),
    "think": ("reasoning", "multimodal reasoning", "reasons", "reason", "english", "think"),
}


_MANIFEST_FIELDS = frozenset(
    {
        "id",
        "label",
        "label_raw",
        "dataset",
        "split",
        "video",
        "audio",
        "reasoning",
        "secondary_labels",
        "dominant",
        "au_csv",
    }
)


def _normal(header: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_\-]+", " ", header.strip().lower())).strip()


def _columns(header: list[str], path: Path) -> tuple[dict[str, int], dict[int, str]]:
    """Role -> column index, and the index -> header of every other (kept) column."""
    normal = [_normal(cell) for cell in header]
    roles: dict[str, int] = {}
    for role, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in normal and normal.index(alias) not in roles.values():
                roles[role] = normal.index(alias)
                break
    if "id" not in roles:
        raise AdapterError(
            f"{path}:1: no clip-name column; expected one of {', '.join(COLUMN_ALIASES['id'])}; found {header}"
        )
    # Other columns are kept under their own names; one that would shadow a manifest field gets a prefix.
    kept = {
        index: (f"csv_{cell}" if cell in _MANIFEST_FIELDS else cell)
        for index, cell in enumerate(header)
        if index not in roles.values() and cell
    }
    return roles, kept


def _read_labels(path: Path) -> dict[str, str]:
    rows = list(read_csv_rows(path))
    if not rows:
        raise AdapterError(f"{path}: empty labels file; expected 'name,label' rows")
    roles, _ = _columns(rows[0][1], path)
    if "label" not in roles:
        raise AdapterError(f"{path}:1: no label column; expected one of {', '.join(COLUMN_ALIASES['label'])}")
    return {cells[roles["id"]]: cells[roles["label"]] for _, cells in rows[1:] if len(cells) > roles["label"]}


def emer_samples(
    csv_path: str | os.PathLike[str],
    *,
    clips_dir: str | os.PathLike[str] | None = None,
    audio_dir: str | os.PathLike[str] | None = None,
    labels_csv: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    on_error: OnError = "raise",
) -> tuple[list[Sample], list[tuple[str, str]]]:
    """EMER's samples (split ``train``, optionally a seeded stratified ``val``) and the skipped rows.

    Args:
        csv_path: the reason csv.
        clips_dir: the clip folder when it is not ``video/``, ``videos/`` or ``clips/`` beside the csv.
        audio_dir: separate audio files ``<name>.wav``; None reads the sound track of each clip.
        labels_csv: ``name,label`` file for reason csvs without a label column.
        val_fraction: share of each label's clips moved to ``val``.
        on_error: "raise" stops at the first bad row; "skip" counts it.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise AdapterError(f"EMER reason csv not found: {csv_path}")
    rows = list(read_csv_rows(csv_path))
    if not rows:
        raise AdapterError(f"{csv_path}: empty file; expected a header row and one row per clip")
    roles, kept = _columns(rows[0][1], csv_path)
    external_labels = _read_labels(Path(labels_csv)) if labels_csv is not None else None
    if "label" not in roles and external_labels is None:
        raise AdapterError(
            f"{csv_path}:1: no label column ({', '.join(COLUMN_ALIASES['label'])}); pass labels_csv= a name,label file"
        )
    base = csv_path.parent
    clip_dir = (
        Path(clips_dir)
        if clips_dir is not None
        else first_existing([base / "video", base / "videos", base / "clips"], "EMER clip folder", directory=True)
    )
    log = SkipLog(on_error)
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    for line_no, cells in rows[1:]:
        where = f"{csv_path}:{line_no}"
        cells = cells + [""] * (len(rows[0][1]) - len(cells))
        name = Path(cells[roles["id"]]).stem
        raw_label = external_labels.get(name, "") if external_labels is not None else cells[roles["label"]]
        label = normalize_label(raw_label, "emer")
        if label is None:
            log.problem(
                where, f"unknown label {raw_label!r} for clip {name!r}; EMER labels: {', '.join(EMER_LABELS)}"
            )
            continue
        if name in seen:
            log.problem(where, f"duplicate clip {name!r} (already in {seen[name]})")
            continue
        clip = find_clip(clip_dir, [cells[roles["id"]], name])
        if clip is None:
            log.problem(where, f"clip not found: {clip_dir / name}.mp4 (nor .avi/.mkv/.mov/.webm)")
            continue
        audio = None
        if audio_dir is not None:
            candidates = [Path(audio_dir) / f"{name}{suffix}" for suffix in (".wav", ".flac")]
            audio = next((candidate for candidate in candidates if candidate.is_file()), None)
            if audio is None:
                log.problem(where, f"audio not found: {Path(audio_dir) / name}.wav")
                continue
        seen[name] = where
        parts = {
            role: (cells[roles[role]] or None) if role in roles else None for role in ("visual", "audio", "think")
        }
        extra: dict[str, Any] = {header: cells[index] for index, header in kept.items() if cells[index]}
        if raw_label != label:
            extra["label_raw"] = raw_label
        samples.append(
            Sample(
                id=name,
                label=label,
                dataset="emer",
                split="train",
                video=clip.resolve(),
                audio=audio.resolve() if audio is not None else None,
                reasoning=Reasoning(**parts) if any(parts.values()) else None,
                extra=extra,
            )
        )
    return carve_val(samples, val_fraction, seed), log.skipped


def convert_emer(
    csv_path: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any
) -> ConversionReport:
    """Write EMER as a manifest at ``out``; see :func:`emer_samples`."""
    samples, skipped = emer_samples(csv_path, **options)
    return write_report(samples, out, skipped)
