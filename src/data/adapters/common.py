"""What the dataset adapters share: errors, the conversion report, locating files in official layouts.

Researchers unpack DFEW, MAFW and EMER in slightly different ways (the official archive names, or the flatter
layouts that DFER code bases use). Adapters therefore look for each piece in a short list of known places and,
when none exists, say exactly which paths they tried.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from src.data.manifest import SPLITS, Sample, write_manifest
from src.data.splits import stratified_split

OnError = Literal["raise", "skip"]
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".webm")


class AdapterError(ValueError):
    """An official file is missing or malformed; the message names the file (and line) and what was expected."""


@dataclass
class ConversionReport:
    """The outcome of a conversion: where the manifest is, how many samples per split, what was skipped."""

    manifest: Path
    counts: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sample id or file:line, reason)

    def summary(self) -> str:
        """Human-readable account for the CLI."""
        total = sum(self.counts.values())
        splits = ", ".join(f"{split} {number}" for split, number in self.counts.items())
        lines = [f"wrote {total} samples ({splits}) to {self.manifest}"]
        if self.skipped:
            reasons = Counter(reason.split(":")[0] for _, reason in self.skipped)
            lines.append(
                f"skipped {len(self.skipped)} rows (on_error=skip): "
                + ", ".join(f"{n} {r}" for r, n in reasons.most_common())
            )
            lines.extend(f"  {where}: {reason}" for where, reason in self.skipped[:20])
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


class SkipLog:
    """Collects row problems under an ``on_error`` policy: raise at once, or count and go on."""

    def __init__(self, on_error: OnError) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
        self.on_error = on_error
        self.skipped: list[tuple[str, str]] = []

    def problem(self, where: str, reason: str) -> None:
        """Report a bad row: raises :class:`AdapterError` under "raise", else records it."""
        if self.on_error == "raise":
            raise AdapterError(f"{where}: {reason}")
        self.skipped.append((where, reason))


def first_existing(candidates: Sequence[Path], what: str, *, directory: bool = False) -> Path:
    """The first of ``candidates`` that exists, else an :class:`AdapterError` listing them all."""
    for candidate in candidates:
        if candidate.is_dir() if directory else candidate.is_file():
            return candidate
    tried = "\n  ".join(str(candidate) for candidate in candidates)
    raise AdapterError(f"cannot find the {what}; looked for:\n  {tried}")


def find_clip(clip_dir: Path, names: Iterable[str]) -> Path | None:
    """The first ``clip_dir/<name><suffix>`` that exists (names may already carry a suffix)."""
    for name in names:
        candidate = clip_dir / name
        if candidate.suffix.lower() in VIDEO_SUFFIXES and candidate.is_file():
            return candidate
        for suffix in VIDEO_SUFFIXES:
            with_suffix = clip_dir / f"{name}{suffix}"
            if with_suffix.is_file():
                return with_suffix
    return None


def au_folder(au_dir: str | os.PathLike[str] | None, dataset: str) -> Path | None:
    """The OpenFace csv folder of an adapter's ``au_dir`` option (None: not given); a missing folder is an error."""
    if au_dir is None:
        return None
    folder = Path(au_dir)
    if not folder.is_dir():
        raise AdapterError(f"{dataset} au_dir (the folder of OpenFace csvs) not found: {folder}")
    return folder


def find_au_csv(au_dir: Path | None, names: Iterable[str]) -> Path | None:
    """The OpenFace csv of a clip: the first ``au_dir/<name>.csv`` that exists (None: no ``au_dir``, or none).

    OpenFace's ``FeatureExtraction -f clip/00001.mp4 -out_dir AU`` writes ``AU/00001.csv``; a clip without one is
    not an error here (the FAU filter counts it as ``no_au_file``).
    """
    if au_dir is None:
        return None
    for name in names:
        candidate = au_dir / f"{Path(name).stem}.csv"
        if candidate.is_file():
            return candidate.resolve()
    return None


def read_csv_rows(path: Path, *, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of each non-blank row of a UTF-8 (BOM tolerated) csv file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line_no, cells in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
            cells = [cell.strip() for cell in cells]
            if any(cells):
                yield line_no, cells


def carve_val(samples: list[Sample], val_fraction: float, seed: int) -> list[Sample]:
    """Move ``val_fraction`` of each label's training samples to a ``val`` split (seeded, stratified)."""
    if not 0.0 <= val_fraction < 1.0:
        raise AdapterError(f"val_fraction must be in [0, 1); got {val_fraction}")
    if val_fraction == 0.0:
        return samples
    train = [index for index, sample in enumerate(samples) if sample.split == "train"]
    splits = stratified_split(
        [samples[index].label for index in train], {"train": 1.0 - val_fraction, "val": val_fraction}, seed=seed
    )
    result = list(samples)
    for index, split in zip(train, splits):
        result[index] = replace(samples[index], split=split)
    return result


def write_report(
    samples: list[Sample], out: str | os.PathLike[str], skipped: list[tuple[str, str]]
) -> ConversionReport:
    """Write the manifest and describe it."""
    if not samples:
        raise AdapterError(
            "no sample could be converted"
            + (f"; {len(skipped)} rows skipped, first: {skipped[0]}" if skipped else "")
        )
    path = write_manifest(samples, out)
    tally = Counter(sample.split for sample in samples)
    counts = {split: tally[split] for split in SPLITS if tally[split]}
    return ConversionReport(manifest=path, counts=counts, skipped=skipped)
