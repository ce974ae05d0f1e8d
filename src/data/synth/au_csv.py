"""OpenFace 2 action-unit csv files: writing the synthetic face's AUs, reading any OpenFace output back.

OpenFace's ``FeatureExtraction`` writes one row per frame with ``", "`` between cells (so its header reads
``frame, face_id, timestamp, confidence, success, AU01_r, ...``); intensities ``AUxx_r`` are on 0..5 and
presences ``AUxx_c`` are 0/1 (AU28 has a presence only); ``success == 0`` marks frames without a face. The
synthetic corpus writes that subset of columns, so MIGR's FAU filter can be exercised on it unchanged.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "clip.csv"
    >>> aus = np.zeros((2, len(AU_INTENSITY)), dtype=np.float32)
    >>> aus[:, AU_INTENSITY.index("AU12")] = 0.9
    >>> write_au_csv(path, aus, fps=8, rng=np.random.default_rng(0))
    >>> path.read_text().splitlines()[0][:48]
    'frame, face_id, timestamp, confidence, success, '
    >>> table = read_au_csv(path)
    >>> table["AU12_c"].tolist(), bool(table["AU12_r"].min() > 4)
    ([1.0, 1.0], True)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from src.data.openface import OpenFaceError, read_openface_columns
from src.data.synth.spec import AU_INTENSITY, AU_PRESENCE

META_COLUMNS: tuple[str, ...] = ("frame", "face_id", "timestamp", "confidence", "success")
COLUMNS: tuple[str, ...] = (
    *META_COLUMNS,
    *(f"{name}_r" for name in AU_INTENSITY),
    *(f"{name}_c" for name in AU_PRESENCE),
)
PRESENCE_THRESHOLD = 1.0  # an AU counts as present from intensity 1 of 5


def write_au_csv(path: str | os.PathLike[str], aus: np.ndarray, *, fps: float, rng: np.random.Generator) -> None:
    """Write ``aus`` ``[T, n_AU]`` (0..1, :data:`AU_INTENSITY` order) as an OpenFace csv, with estimator noise."""
    frames = aus.shape[0]
    intensity = np.clip(5.0 * aus + rng.normal(0.0, 0.08, size=aus.shape), 0.0, 5.0)
    presence = {name: (intensity[:, index] >= PRESENCE_THRESHOLD) for index, name in enumerate(AU_INTENSITY)}
    presence["AU28"] = np.zeros(frames, dtype=bool)  # lip suck: never drawn
    lines = [", ".join(COLUMNS)]
    for row in range(frames):
        meta = [str(row + 1), "0", f"{row / fps:.3f}", "0.98", "1"]
        values = [f"{value:.2f}" for value in intensity[row]]
        flags = [str(int(presence[name][row])) for name in AU_PRESENCE]
        lines.append(", ".join(meta + values + flags))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_au_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Columns of an OpenFace csv by (stripped) name, as float arrays; extra OpenFace columns are kept too.

    Parsing and its errors are MIGR's general OpenFace reader (:func:`src.data.openface.read_openface_columns`).
    """
    table = read_openface_columns(path)
    missing = [name for name in META_COLUMNS if name not in table]
    if missing:
        raise OpenFaceError(
            f"not an OpenFace csv, missing column(s) {', '.join(missing)}", path=Path(path), line=1
        )
    return table
