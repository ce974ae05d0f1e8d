"""The one sample format: a JSONL manifest with one clip per line.

Every data source (the DFEW/MAFW/EMER adapters, the synthetic corpus, MIGR's reordered SFT sets) writes this
format and every consumer (datasets, Modality Importance, evaluation) reads it through :func:`read_manifest`,
which validates each row and says exactly what is wrong and where::

    {"id": "00017", "label": "happy", "dataset": "dfew", "split": "train", "video": "clip/00017.mp4",
     "secondary_labels": ["surprise"], "votes": {"happy": 7, "surprise": 3}}

Reading accepts UTF-8 with or without a byte-order mark and LF or CRLF line ends. A line that is not UTF-8 is
an error naming the file, line and byte; so is a label that is not an emotion of the dataset (``"None"``,
``"null"``, ``""``: a placeholder is not ``neutral``). A referenced media file that does not exist is an error
too, or, with ``on_error="skip"``, a skipped row counted in a :class:`~src.data.media_report.SkipReport` (reason
``missing file``, with its line), like every other per-clip problem.

Fields:
    id: unique within the manifest.
    label: one of the dataset's labels (:data:`src.data.labels.DATASET_LABELS`); other spellings are
        normalised ("happiness" -> "happy" for DFEW) and the original spelling is kept in ``label_raw``.
    dataset, split: the dataset name and one of :data:`SPLITS`.
    video, audio: media paths, relative to the manifest's folder unless absolute. At least one is present;
        without ``audio`` the sound track is read from the video container.
    reasoning: optional ``{"visual": ..., "audio": ..., "think": ...}`` explanation parts.
    secondary_labels: optional concurrent/secondary emotions (annotator votes, a misleading cue, ...).
    dominant: optional ground-truth dominant modality, one of :data:`DOMINANT_VALUES`.
    au_csv: optional OpenFace action-unit csv of the clip.
    Any other key (MI annotations, votes, ...) is kept in :attr:`Sample.extra` and written back unchanged.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> sample = Sample(id="a", label="sad", dataset="dfew", split="test", video=folder / "a.mp4", audio=None)
    >>> path = write_manifest([sample], folder / "manifest.jsonl")
    >>> path.read_text().strip()
    '{"id": "a", "label": "sad", "dataset": "dfew", "split": "test", "video": "a.mp4"}'
    >>> read_manifest(path, check_media=False)[0] == sample
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from src import atomic
from src.data.labels import DATASET_LABELS, labels_for, normalize_label
from src.data.media_report import EXPECTED, SkipRecord, SkipReport
from src.paths import printable

SPLITS: tuple[str, ...] = ("train", "val", "test")
DOMINANT_VALUES: tuple[str, ...] = ("audio", "visual", "both")
REASONING_KEYS: tuple[str, ...] = ("visual", "audio", "think")
# Keys with a meaning of their own; everything else in a row is kept in `Sample.extra`.
_KNOWN_KEYS = frozenset(
    {"id", "label", "dataset", "split", "video", "audio", "reasoning", "secondary_labels", "dominant", "au_csv"}
)
_REQUIRED_KEYS = ("id", "label", "dataset", "split")
# Placeholders some tools write for "no label": never an emotion, even where a lexicon maps them (none->neutral).
NOT_LABELS = frozenset({"none", "null", "nil", "nan", "na", "n a", "unknown", "undefined", "missing", "no label"})
_BOM = b"\xef\xbb\xbf"


class ManifestError(ValueError):
    """A manifest row (or the whole file) is invalid; the message names the file and line."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        name = printable(path) if path is not None else None
        where = f"{name}:{line}: " if name is not None and line is not None else (f"{name}: " if name else "")
        super().__init__(where + message)


@dataclass(frozen=True)
class Reasoning:
    """The explanation of a sample, split by modality (EMER style). Any part may be missing (None)."""

    visual: str | None = None
    audio: str | None = None
    think: str | None = None


@dataclass(frozen=True)
class Sample:
    """One clip of a manifest.

    ``video``/``audio`` are absolute (resolved) paths once read. ``audio=None`` with a video means "take the
    sound track from the video container"; ``video=None`` means an audio-only sample.
    """

    id: str
    label: str
    dataset: str
    split: str
    video: Path | None
    audio: Path | None
    reasoning: Reasoning | None = None
    secondary_labels: tuple[str, ...] = ()
    dominant: str | None = None
    au_csv: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # "<manifest>:<line>" the sample was read from (printable), for messages; not part of its identity
    where: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.video is None and self.audio is None:
            raise ValueError(f"sample {self.id!r} has neither a video nor an audio path; give at least one")
        if not isinstance(self.extra, MappingProxyType):
            # Read-only view so a frozen Sample really is immutable (and shared safely across workers).
            object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # A mappingproxy cannot be pickled (DataLoader workers, process pools): rebuild from a plain dict.
        state = {item.name: getattr(self, item.name) for item in fields(self)}
        state["extra"] = dict(self.extra)
        return _sample_from_state, (state,)

    @property
    def audio_source(self) -> Path | None:
        """Where the sound comes from: the separate audio file, else the video container."""
        return self.audio if self.audio is not None else self.video


def _sample_from_state(state: dict[str, Any]) -> Sample:
    return Sample(**state)


def read_manifest(
    path: str | os.PathLike[str],
    *,
    check_media: bool = True,
    on_error: str = "raise",
    report: SkipReport | None = None,
) -> list[Sample]:
    """Read and validate a JSONL manifest.

    Args:
        path: the ``.jsonl`` file (UTF-8, an optional BOM, LF or CRLF). Relative media paths resolve against its
            folder.
        check_media: also require every referenced media/AU file to exist.
        on_error: ``"raise"``: a missing media file is a :class:`ManifestError`; ``"skip"``: its row is left
            out and counted in ``report`` (reason ``missing file``). Every other problem raises either way: it
            is the manifest that needs fixing, not a clip.
        report: where skipped rows are counted (a fresh report, thrown away, when None).

    Raises:
        ManifestError: naming the file and line for bytes that are not UTF-8, bad JSON, a missing required field,
            an unknown dataset or label (listing the dataset's labels), a bad split/dominant value, a duplicate id
            or (``on_error="raise"``) a missing file.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise ManifestError("manifest file not found", path=path)
    report = report if report is not None else SkipReport()
    base = path.parent.resolve()
    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    skipped = 0
    for line_no, text in _lines(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            message = error.msg.removesuffix(" at")  # json's "Invalid control character at"
            raise ManifestError(
                f"invalid JSON ({message} at column {error.colno})", path=path, line=line_no
            ) from None
        if not isinstance(row, dict):
            raise ManifestError(f"expected a JSON object, found {type(row).__name__}", path=path, line=line_no)
        sample, missing = _row_to_sample(row, base=base, path=path, line=line_no, check_media=check_media)
        if sample.id in first_line:
            raise ManifestError(
                f"duplicate id {sample.id!r} (first seen on line {first_line[sample.id]})",
                path=path,
                line=line_no,
            )
        first_line[sample.id] = line_no
        if missing is not None:
            key, media = missing
            if on_error == "raise":
                raise ManifestError(
                    f"sample {sample.id!r}: {key} file not found: {printable(media)}; expected "
                    f"{EXPECTED['missing file']}",
                    path=path,
                    line=line_no,
                )
            report.add(SkipRecord(sample.id, printable(media), "missing file", f"{key} file", sample.where or ""))
            skipped += 1
            continue
        samples.append(sample)
    if not samples:
        if skipped:
            raise ManifestError(
                f"every sample was skipped ({skipped}, on_error=skip):\n{report.summary()}", path=path
            )
        raise ManifestError("manifest is empty: expected one JSON object per line", path=path)
    return samples


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 manifest (a leading BOM dropped); other bytes fail naming the line."""
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ManifestError(
                    f"not UTF-8: byte 0x{raw[error.start]:02x} at column {error.start + 1}; save the manifest as "
                    "UTF-8 (a file name that is not UTF-8 is written as JSON \\udcNN escapes, as json.dumps(os.fsdecode(name)) "
                    "does)",
                    path=path,
                    line=line_no,
                ) from None


def write_manifest(samples: Iterable[Sample], path: str | os.PathLike[str]) -> Path:
    """Write ``samples`` as JSONL (atomically); media inside the manifest's folder are stored relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bases = tuple(dict.fromkeys((path.parent.absolute(), path.parent.resolve())))
    lines = [_json_line(_sample_to_row(sample, bases=bases)) for sample in samples]
    return atomic.write_text(path, "".join(line + "\n" for line in lines))


def _json_line(row: dict[str, Any]) -> str:
    """A row as JSON: readable UTF-8, or ASCII escapes where a file name holds bytes that are not UTF-8."""
    text = json.dumps(row, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a surrogate-escaped (non-UTF-8) file name: "\udcff" round-trips through loads
        return json.dumps(row)
    return text


def _row_to_sample(
    row: dict[str, Any], *, base: Path, path: Path, line: int, check_media: bool
) -> tuple[Sample, tuple[str, Path] | None]:
    """The sample of a row and its first missing media file (``(key, path)``, None when all exist)."""

    def fail(message: str) -> ManifestError:
        return ManifestError(message, path=path, line=line)

    missing = [key for key in _REQUIRED_KEYS if row.get(key) in (None, "")]
    if missing:
        raise fail(
            f"missing required field(s) {', '.join(missing)}; found fields: {', '.join(sorted(row)) or 'none'}"
        )
    sample_id = str(row["id"])
    dataset = str(row["dataset"])
    if dataset not in DATASET_LABELS:
        raise fail(f"unknown dataset {dataset!r}; known datasets: {', '.join(sorted(DATASET_LABELS))}")
    split = str(row["split"])
    if split not in SPLITS:
        raise fail(f"split must be one of {', '.join(SPLITS)}; found {split!r}")

    extra = {key: value for key, value in row.items() if key not in _KNOWN_KEYS}
    raw_label = row["label"]
    label = _label(raw_label, dataset)
    if label is None:
        raise fail(
            f"label {raw_label!r} is not an emotion of dataset {dataset!r}; expected one of its labels "
            f"({', '.join(labels_for(dataset))}) or a synonym listed in src/data/labels.py"
        )
    if label != raw_label:
        extra.setdefault("label_raw", raw_label)

    secondary_raw = row.get("secondary_labels") or []
    if not isinstance(secondary_raw, list):
        raise fail(f"secondary_labels must be a list of labels, found {type(secondary_raw).__name__}")
    secondary = []
    for item in secondary_raw:
        name = _label(item, dataset)
        if name is None:
            raise fail(
                f"unknown secondary label {item!r} for dataset {dataset!r}; its labels: {', '.join(labels_for(dataset))}"
            )
        secondary.append(name)

    dominant = row.get("dominant")
    if dominant is not None and dominant not in DOMINANT_VALUES:
        raise fail(f"dominant must be one of {', '.join(DOMINANT_VALUES)} or null; found {dominant!r}")

    video = _media_path(row, "video", base=base, fail=fail)
    audio = _media_path(row, "audio", base=base, fail=fail)
    if video is None and audio is None:
        raise fail("no media: give a 'video' path, an 'audio' path, or both")
    au_csv = _media_path(row, "au_csv", base=base, fail=fail)
    missing = None
    if check_media:
        media = {"video": video, "audio": audio, "au_csv": au_csv}
        missing = next(
            ((key, file) for key, file in media.items() if file is not None and not file.is_file()), None
        )
    return Sample(
        id=sample_id,
        label=label,
        dataset=dataset,
        split=split,
        video=video,
        audio=audio,
        reasoning=_reasoning(row.get("reasoning"), fail=fail),
        secondary_labels=tuple(secondary),
        dominant=dominant,
        au_csv=au_csv,
        extra=extra,
        where=f"{printable(path)}:{line}",
    ), missing


def _label(value: Any, dataset: str) -> str | None:
    """``dataset``'s label for a manifest value: its own word or a synonym; placeholders and non-strings: None."""
    if not isinstance(value, str):
        return None
    word = " ".join(value.lower().replace("/", " ").split())
    if word in NOT_LABELS:
        return None
    return normalize_label(value, dataset)


def _media_path(row: dict[str, Any], key: str, *, base: Path, fail: Any) -> Path | None:
    value = row.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise fail(f"{key} must be a path string, found {type(value).__name__}")
    media = Path(value).expanduser()
    return media if media.is_absolute() else base / media


def _reasoning(value: Any, *, fail: Any) -> Reasoning | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail(
            f"reasoning must be an object with keys {', '.join(REASONING_KEYS)}, found {type(value).__name__}"
        )
    unknown = sorted(set(value) - set(REASONING_KEYS))
    if unknown:
        raise fail(f"unknown reasoning key(s) {', '.join(unknown)}; allowed: {', '.join(REASONING_KEYS)}")
    parts = {}
    for key in REASONING_KEYS:
        text = value.get(key)
        if text is not None and not isinstance(text, str):
            raise fail(f"reasoning.{key} must be a string or null, found {type(text).__name__}")
        parts[key] = text if text and text.strip() else None
    return Reasoning(**parts)


def _relative(media: Path, bases: tuple[Path, ...]) -> str:
    """``media`` relative to the manifest folder when inside it (symlinked or not), else absolute."""
    for candidate in dict.fromkeys((media.absolute(), media.resolve())):
        for base in bases:
            try:
                return candidate.relative_to(base).as_posix()
            except ValueError:
                continue
    return str(media.absolute())


def _sample_to_row(sample: Sample, *, bases: tuple[Path, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": sample.id,
        "label": sample.label,
        "dataset": sample.dataset,
        "split": sample.split,
    }
    if sample.video is not None:
        row["video"] = _relative(sample.video, bases)
    if sample.audio is not None:
        row["audio"] = _relative(sample.audio, bases)
    if sample.reasoning is not None:
        row["reasoning"] = {key: getattr(sample.reasoning, key) for key in REASONING_KEYS}
    if sample.secondary_labels:
        row["secondary_labels"] = list(sample.secondary_labels)
    if sample.dominant is not None:
        row["dominant"] = sample.dominant
    if sample.au_csv is not None:
        row["au_csv"] = _relative(sample.au_csv, bases)
    clashes = sorted(set(sample.extra) & _KNOWN_KEYS)
    if clashes:
        raise ValueError(f"sample {sample.id!r}: extra keys {', '.join(clashes)} shadow manifest fields")
    row.update(sample.extra)
    return row
