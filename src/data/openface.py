r"""OpenFace 2 action-unit csv files: reading them, and aggregating a clip's frames into one AU summary.

OpenFace's ``FeatureExtraction`` writes one row per frame with ``", "`` between cells (so its header reads
``frame, face_id, timestamp, confidence, success, AU01_r, ...``): ``AUxx_r`` intensities (0..5, the FACS A..E
scale) for 17 action units, ``AUxx_c`` presences (0/1) for those and AU28, and ``success == 0`` for frames
without a face. :func:`read_openface_csv` keeps the valid frames (the others are counted) and says exactly what
is wrong and where otherwise; :func:`aggregate` turns them into one :class:`AUSummary` per clip:

* ``method="mean"`` (default): an AU is present when ``AUxx_c == 1`` in at least ``presence_rate`` (0.5) of the
  valid frames; its intensity is the mean ``AUxx_r`` over them.
* ``method="peak"``: Emotion-LLaMA's "emotional peak frame" (MERR construction: the frame with the largest
  summed intensity of the most frequently present AUs) alone gives the presences and intensities.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "clip.csv"
    >>> header = ["frame", "success", *(f"{au}_r" for au in OPENFACE_INTENSITY_AUS)]
    >>> header += [f"{au}_c" for au in OPENFACE_PRESENCE_AUS]
    >>> row = ["1", "1"] + ["0.0"] * 17 + ["0"] * 18
    >>> _ = path.write_text(", ".join(header) + "\n" + ", ".join(row) + "\n")
    >>> frames = read_openface_csv(path)
    >>> len(frames.frame), frames.dropped, sorted(aggregate(frames).present)
    (1, 0, [])
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

# OpenFace 2 action units: intensities (_r) and presences (_c, which add AU28).
OPENFACE_INTENSITY_AUS: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)  # fmt: skip
OPENFACE_PRESENCE_AUS: tuple[str, ...] = (*OPENFACE_INTENSITY_AUS[:-1], "AU28", "AU45")
# What each action unit looks like, in plain words (FACS names: AU06 cheek raiser, AU12 lip corner puller...).
AU_PHRASES: Mapping[str, str] = MappingProxyType(
    {
        "AU01": "raised inner brows",
        "AU02": "raised outer brows",
        "AU04": "lowered brows drawn together",
        "AU05": "raised upper eyelids",
        "AU06": "raised cheeks",
        "AU07": "tightened eyelids",
        "AU09": "a wrinkled nose",
        "AU10": "a raised upper lip",
        "AU12": "lip corners pulled up",
        "AU14": "dimples at the mouth corners",
        "AU15": "lip corners pulled down",
        "AU17": "a raised chin",
        "AU20": "lips stretched sideways",
        "AU23": "tightened lips",
        "AU25": "parted lips",
        "AU26": "a dropped jaw",
        "AU28": "lips sucked in",
        "AU45": "closing eyes",
    }
)
_META_REQUIRED: tuple[str, ...] = ("frame", "success")
_REQUIRED = (
    *_META_REQUIRED,
    *(f"{au}_r" for au in OPENFACE_INTENSITY_AUS),
    *(f"{au}_c" for au in OPENFACE_PRESENCE_AUS),
)
Method = Literal["mean", "peak"]


class OpenFaceError(ValueError):
    """An AU csv that cannot be used; the message names the file (and line)."""

    def __init__(self, message: str, *, path: Path, line: int | None = None) -> None:
        self.path, self.line = path, line
        super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


class NoFaceError(OpenFaceError):
    """The csv is well formed but no frame has a detected face; ``rows`` data rows, all with ``success == 0``."""

    def __init__(self, message: str, *, path: Path, rows: int) -> None:
        self.rows = rows
        super().__init__(message, path=path)


@dataclass(frozen=True)
class AUFrames:
    """The valid (face found) frames of one OpenFace csv.

    Attributes:
        intensity: AU name ("AU12") -> ``[T]`` ``AUxx_r`` values (0..5), for every ``_r`` column of the file.
        presence: AU name -> ``[T]`` bool (``AUxx_c == 1``), for every ``_c`` column.
        frame: ``[T]`` OpenFace frame numbers of the valid frames.
        rows: data rows in the file; ``dropped`` of them had ``success == 0`` and are excluded.
    """

    path: Path
    intensity: Mapping[str, np.ndarray]
    presence: Mapping[str, np.ndarray]
    frame: np.ndarray
    rows: int
    dropped: int


def read_openface_columns(
    path: str | os.PathLike[str], columns: Iterable[str] | None = None, *, binary: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """Columns of an OpenFace csv by (space-stripped) name as float arrays, every row included.

    Args:
        columns: the columns to read and require (default: every column of the file).
        binary: columns whose cells must be 0 or 1 (``success``, ``AUxx_c``).

    Raises:
        OpenFaceError: an unreadable or empty file, missing columns (line 1), a row with another number of cells
            than the header, a cell that is not a finite number or a binary cell other than 0/1 (naming the line
            and column).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise OpenFaceError(f"cannot read the AU csv ({error})", path=path) from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise OpenFaceError(
            "empty AU csv; expected an OpenFace header row (frame, face_id, ..., AU01_r, ...)", path=path
        )
    header = [cell.strip() for cell in lines[0].split(",")]
    wanted = list(header) if columns is None else list(dict.fromkeys(columns))
    missing = [name for name in wanted if name not in header]
    if missing:
        shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
        raise OpenFaceError(
            f"missing OpenFace column(s) {', '.join(missing)}; found {len(header)} columns: {shown}",
            path=path,
            line=1,
        )
    indices = [header.index(name) for name in wanted]
    binary = set(binary)
    flags = [position for position, name in enumerate(wanted) if name in binary]
    body = [(line_no, line) for line_no, line in enumerate(lines[1:], start=2) if line.strip()]
    table = _fast_table([line for _, line in body], len(header), indices, flags)
    if table is None:  # something is wrong: the line-by-line pass finds and reports it
        table = _checked_table(body, header, wanted, indices, flags, path)
    return {name: table[:, position] for position, name in enumerate(wanted)}


def _fast_table(lines: list[str], width: int, indices: list[int], flags: list[int]) -> np.ndarray | None:
    """numpy's C parser over well-formed rows (2x faster on OpenFace's ~700 columns); None when any check fails."""
    if not lines:
        return np.zeros((0, len(indices)))
    if any(line.count(",") != width - 1 for line in lines):
        return None
    try:
        table = np.loadtxt(lines, delimiter=",", usecols=indices, ndmin=2, dtype=np.float64, comments=None)
    except ValueError:
        return None
    binary = table[:, flags]
    if not np.isfinite(table).all() or not ((binary == 0) | (binary == 1)).all():
        return None
    return table


def _checked_table(
    body: list[tuple[int, str]],
    header: list[str],
    wanted: list[str],
    indices: list[int],
    flags: list[int],
    path: Path,
) -> np.ndarray:
    """The rows parsed one by one, raising :class:`OpenFaceError` at the first bad line."""
    values: list[list[float]] = []
    for line_no, line in body:
        cells = line.split(",")
        if len(cells) != len(header):
            raise OpenFaceError(
                f"expected {len(header)} cells like the header, found {len(cells)}", path=path, line=line_no
            )
        row = [_number(cells[index]) for index in indices]
        bad = next((position for position, value in enumerate(row) if value is None), None)
        if bad is not None:
            raise OpenFaceError(
                f"column {wanted[bad]} holds {cells[indices[bad]].strip()!r}; expected a finite number",
                path=path,
                line=line_no,
            )
        bad = next((position for position in flags if row[position] not in (0.0, 1.0)), None)
        if bad is not None:
            raise OpenFaceError(
                f"column {wanted[bad]} holds {cells[indices[bad]].strip()!r}; expected 0 or 1",
                path=path,
                line=line_no,
            )
        values.append(row)  # type: ignore[arg-type]  # no None left
    return np.asarray(values, dtype=np.float64).reshape(len(values), len(wanted))


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_openface_csv(path: str | os.PathLike[str]) -> AUFrames:
    """Read an OpenFace 2 AU csv: every AU column, valid frames only.

    Requires ``frame``, ``success`` and OpenFace 2's 17 ``AUxx_r`` and 18 ``AUxx_c`` columns (extra columns such
    as landmarks or gaze are ignored); rows from every ``face_id`` are pooled.

    Raises:
        OpenFaceError: see :func:`read_openface_columns`.
        NoFaceError: no data row, or every row has ``success == 0`` (``error.rows`` tells how many rows).
    """
    path = Path(path)
    names = list(dict.fromkeys([*_REQUIRED, *(name for name in _header(path) if _au_column(name))]))
    binary = [name for name in names if name == "success" or name.endswith("_c")]
    table = read_openface_columns(path, names, binary=binary)
    rows = len(table["success"])
    valid = table["success"] == 1
    if not valid.any():
        detail = "no data rows" if rows == 0 else f"all {rows} rows have success == 0"
        raise NoFaceError(f"no frame with a detected face ({detail})", path=path, rows=rows)
    intensity = {name[:-2]: table[name][valid] for name in names if name.endswith("_r")}
    presence = {name[:-2]: table[name][valid] == 1 for name in names if name.endswith("_c")}
    return AUFrames(
        path=path,
        intensity=MappingProxyType(intensity),
        presence=MappingProxyType(presence),
        frame=table["frame"][valid].astype(np.int64),
        rows=rows,
        dropped=int(rows - valid.sum()),
    )


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as error:
        raise OpenFaceError(f"cannot read the AU csv ({error})", path=path) from None
    return [cell.strip() for cell in first.split(",")]


def _au_column(name: str) -> bool:
    return len(name) == 6 and name.startswith("AU") and name[2:4].isdigit() and name[4:] in ("_r", "_c")


@dataclass(frozen=True)
class AUSummary:
    """One clip's AUs after aggregation over its valid frames.

    Attributes:
        present: AUs counted as present.
        presence: AU -> fraction of valid frames with ``AUxx_c == 1`` (``mean``) or the peak frame's 0/1.
        intensity: AU -> mean ``AUxx_r`` over the valid frames (``mean``) or the peak frame's value.
        peak_frame: the OpenFace frame number of the peak frame (``peak`` method only).
    """

    present: frozenset[str]
    presence: Mapping[str, float]
    intensity: Mapping[str, float]
    frames: int
    method: Method
    peak_frame: int | None = None


def aggregate(frames: AUFrames, *, method: Method = "mean", presence_rate: float = 0.5) -> AUSummary:
    """Aggregate the valid frames of a clip into one :class:`AUSummary` (rules in the module docstring).

    ``peak``: the frequently present AUs are those present in at least ``presence_rate`` of the frames (all AUs
    when none is); the peak frame maximises their summed intensity (first such frame on ties).
    """
    if not 0.0 < presence_rate <= 1.0:
        raise ValueError(f"presence_rate must be in (0, 1]; got {presence_rate}")
    rate = {au: float(flags.mean()) for au, flags in frames.presence.items()}
    count = len(frames.frame)
    if method == "mean":
        return AUSummary(
            present=frozenset(au for au, value in rate.items() if value >= presence_rate),
            presence=MappingProxyType(rate),
            intensity=MappingProxyType({au: float(values.mean()) for au, values in frames.intensity.items()}),
            frames=count,
            method=method,
        )
    if method != "peak":
        raise ValueError(f"method must be 'mean' or 'peak'; got {method!r}")
    frequent = [au for au in frames.intensity if rate.get(au, 0.0) >= presence_rate] or list(frames.intensity)
    total = np.sum([frames.intensity[au] for au in frequent], axis=0)
    peak = int(np.argmax(total))
    presence = {au: float(flags[peak]) for au, flags in frames.presence.items()}
    return AUSummary(
        present=frozenset(au for au, value in presence.items() if value == 1.0),
        presence=MappingProxyType(presence),
        intensity=MappingProxyType({au: float(values[peak]) for au, values in frames.intensity.items()}),
        frames=count,
        method=method,
        peak_frame=int(frames.frame[peak]),
    )
