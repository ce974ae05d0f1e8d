"""DFEW (Jiang et al., ACM MM 2020) to a manifest, one manifest per cross-validation fold.

Recognised layouts (the first that exists wins):

- labels: ``label/single_{train,test}set_{k}.csv`` (the repacked layout most DFER code uses) or the official
  ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_{k}.csv`` (also with ``single_labeled``). Rows are
  ``video_name,label`` with a header; ``label`` is 1..7 = happy, sad, neutral, angry, surprise, disgust, fear.
- clips: ``clip/``, ``Clip/original/``, ``Clip/clip_224x224/`` or ``clips/``, named ``00001.mp4`` (the
  5-digit zero-padded clip number; unpadded names are found too).
- votes (optional): ``Annotation/annotation.xlsx`` (or a csv export of it), each row
  ``vote_happy .. vote_fear, clip_name, annotation``. When present, every other emotion with at least
  ``min_secondary_votes`` votes becomes a secondary label (most votes first) and the votes are kept in the
  manifest's ``votes`` field: the evaluation's Surprise/Fear analysis reads them.
- action units (optional, ``au_dir``): OpenFace 2 csvs ``<au_dir>/00001.csv`` (DFEW ships none; run OpenFace's
  ``FeatureExtraction`` on the clips). Each found file becomes the sample's ``au_csv`` (the FAU filter's input).

Example:
    python -m src.data.adapters dfew /data/DFEW --fold 1 --out /data/DFEW/dfew_fold1.jsonl --val-fraction 0.1
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
    read_csv_rows,
    write_report,
)
from src.data.labels import labels_for, normalize_label
from src.data.manifest import Sample

DFEW_LABELS = labels_for("dfew")  # official ids 1..7 in this order
NUM_FOLDS = 5


def _label_file(root: Path, split: str, fold: int) -> Path:
    candidates = [root / "label" / f"single_{split}set_{fold}.csv"]
    for spelling in ("single-labeled", "single_labeled"):
        candidates.append(root / "EmoLabel_DataSplit" / f"{split}({spelling})" / f"set_{fold}.csv")
        candidates.append(root / f"{split}({spelling})" / f"set_{fold}.csv")
    return first_existing(candidates, f"DFEW {split} label file of fold {fold}")


def _clip_dir(root: Path) -> Path:
    candidates = [root / "clip", root / "Clip" / "original", root / "Clip" / "clip_224x224", root / "clips"]
    return first_existing(candidates, "DFEW clip folder", directory=True)


def _annotation_file(root: Path) -> Path | None:
    for folder in (root / "Annotation", root):
        for name in ("annotation.xlsx", "annotation.csv"):
            if (folder / name).is_file():
                return folder / name
    return None


def clip_key(name: str) -> str:
    """The canonical clip id: "1", "00001" and "00001.mp4" all give "00001"."""
    stem = Path(name.strip()).stem if name.strip().lower().endswith(".mp4") else name.strip()
    return f"{int(stem):05d}" if stem.isdigit() else stem


def _label_of(cell: str) -> str | None:
    if cell.isdigit() and 1 <= int(cell) <= len(DFEW_LABELS):
        return DFEW_LABELS[int(cell) - 1]
    return normalize_label(cell, "dfew")


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """Data rows of a csv or xlsx file as (line/row number, cells as strings)."""
    if path.suffix.lower() != ".xlsx":
        return list(read_csv_rows(path))
    try:
        import openpyxl
    except ImportError as error:
        raise AdapterError(
            f"{path}: reading .xlsx needs openpyxl (pip install openpyxl), or save the sheet as csv next to it"
        ) from error
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = []
        for row_no, values in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1):
            cells = ["" if value is None else str(value).strip() for value in values]
            cells = [cell[:-2] if cell.endswith(".0") and cell[:-2].isdigit() else cell for cell in cells]
            if any(cells):
                rows.append((row_no, cells))
        return rows
    finally:
        book.close()


def read_votes(path: Path) -> dict[str, dict[str, int]]:
    """Clip id -> {label: votes} from DFEW's annotation sheet (``vote_happy .. vote_fear, clip_name, ...``)."""
    votes: dict[str, dict[str, int]] = {}
    for row_no, cells in _rows(path):
        if len(cells) < 8:
            raise AdapterError(
                f"{path}:{row_no}: expected 7 vote columns then clip_name (and annotation); found {len(cells)} cells"
            )
        if not all(cell.isdigit() for cell in cells[:7]):
            if row_no == 1:
                continue  # header row
            raise AdapterError(f"{path}:{row_no}: the first 7 cells must be vote counts; found {cells[:7]}")
        votes[clip_key(cells[7])] = {label: int(cell) for label, cell in zip(DFEW_LABELS, cells[:7])}
    return votes


def _secondary(label: str, clip_votes: dict[str, int] | None, min_votes: int) -> tuple[str, ...]:
    if not clip_votes:
        return ()
    others = [name for name in DFEW_LABELS if name != label and clip_votes.get(name, 0) >= min_votes]
    return tuple(sorted(others, key=lambda name: (-clip_votes[name], DFEW_LABELS.index(name))))


def dfew_samples(
    root: str | os.PathLike[str],
    *,
    fold: int = 1,
    clips_dir: str | os.PathLike[str] | None = None,
    annotation: str | os.PathLike[str] | bool | None = True,
    au_dir: str | os.PathLike[str] | None = None,
    min_secondary_votes: int = 1,
    val_fraction: float = 0.0,
    seed: int = 0,
    on_error: OnError = "raise",
) -> tuple[list[Sample], list[tuple[str, str]]]:
    """The samples of DFEW fold ``fold`` (train, optional val carved from train, test) and the skipped rows.

    Args:
        root: the DFEW folder.
        fold: 1..5.
        clips_dir: the clip folder when it is not in a recognised place.
        annotation: the votes sheet; True looks in the recognised places (and goes on without when absent),
            False ignores votes.
        au_dir: folder of OpenFace csvs named after the clips (``00001.csv``); None: no ``au_csv``.
        min_secondary_votes: votes an emotion needs to count as secondary.
        val_fraction: share of each label's training clips moved to a ``val`` split (seeded).
        on_error: "raise" stops at the first bad row; "skip" counts it (unknown label, missing clip, ...).
    """
    root = Path(root)
    if not 1 <= fold <= NUM_FOLDS:
        raise AdapterError(f"DFEW has folds 1..{NUM_FOLDS}; got fold={fold}")
    clip_dir = Path(clips_dir) if clips_dir is not None else _clip_dir(root)
    if annotation is True:
        annotation_path = _annotation_file(root)
    else:
        annotation_path = Path(annotation) if annotation else None
    votes = read_votes(annotation_path) if annotation_path is not None else {}
    aus = au_folder(au_dir, "DFEW")
    log = SkipLog(on_error)
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    for split in ("train", "test"):
        path = _label_file(root, split, fold)
        for line_no, cells in read_csv_rows(path):
            where = f"{path}:{line_no}"
            if len(cells) < 2:
                log.problem(where, f"expected 'video_name,label'; found {cells}")
                continue
            name, label_cell = cells[0], cells[1]
            label = _label_of(label_cell)
            if label is None:
                if line_no == 1 and not label_cell.isdigit():
                    continue  # header row (video_name,label)
                log.problem(
                    where, f"unknown label {label_cell!r}; expected 1..7 or one of {', '.join(DFEW_LABELS)}"
                )
                continue
            key = clip_key(name)
            if key in seen:
                log.problem(where, f"duplicate clip {key!r} (already in {seen[key]})")
                continue
            stem = Path(name).stem
            clip = find_clip(clip_dir, dict.fromkeys([key, stem, str(int(stem)) if stem.isdigit() else stem]))
            if clip is None:
                log.problem(where, f"clip not found: {clip_dir / key}.mp4 (nor other spellings/suffixes)")
                continue
            seen[key] = where
            extra: dict[str, Any] = {"fold": fold}
            if label_cell != label:
                extra["label_id"] = int(label_cell) if label_cell.isdigit() else label_cell
            if key in votes:
                extra["votes"] = votes[key]
            samples.append(
                Sample(
                    id=key,
                    label=label,
                    dataset="dfew",
                    split=split,
                    video=clip.resolve(),
                    audio=None,
                    secondary_labels=_secondary(label, votes.get(key), min_secondary_votes),
                    au_csv=find_au_csv(aus, dict.fromkeys([key, stem])),
                    extra=extra,
                )
            )
    return carve_val(samples, val_fraction, seed), log.skipped


def convert_dfew(root: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> ConversionReport:
    """Write fold ``options['fold']`` (default 1) of DFEW as a manifest at ``out``; see :func:`dfew_samples`."""
    samples, skipped = dfew_samples(root, **options)
    return write_report(samples, out, skipped)
