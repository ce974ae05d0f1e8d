"""Per-sample evaluation records and the resumable ``predictions.jsonl`` that holds them.

One line per evaluated sample, written as soon as its batch is generated (appended, flushed and fsynced), so a
killed evaluation loses at most the batch in flight: rerunning the same command reads the file, skips every
sample already there and generates only the rest. A line torn by the kill (the last one, without its
newline) is cut off and counted; anything else unreadable is an error naming the line.

Judging fills in ``judge``/``judged``/``judged_set`` afterwards; those updates rewrite the file atomically
(temporary file + rename), so the file is always either the old or the new version, never half of each.

Example line (attention curves shortened)::

    {"id": "synth_00000", "dataset": "synth", "label": "neutral", "prediction": "neutral", "answer": "neutral",
     "completion": "<aud_desc>An even tone ...</aud_desc>...", "first_segment": "audio", "well_formed": true,
     "num_tokens": 61, "truncated": false, "dominant": "audio", "mi_dominant": null,
     "secondary_labels": ["disgust"], "attention": {"visual": [...], "audio": [...], "text": [...]},
     "judge": "KeywordJudge(top_k=2, related=True)|explanation", "judged": "neutral",
     "judged_set": ["disgust", "neutral"]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from src import atomic

PREDICTIONS_NAME = "predictions.jsonl"


class EvaluationError(RuntimeError):
    """An evaluation cannot go on as configured; the message names the file, setting or sample concerned."""


@dataclass(frozen=True)
class PredictionRecord:
    """Everything recorded about one evaluated sample.

    Attributes:
        id, dataset, label: the manifest sample (``label`` canonical).
        completion: the generated text (special tokens removed; reasoning tags kept).
        answer: the raw text inside ``<answer>``, or None when the completion has no answer tag.
        prediction: ``answer`` normalised onto the dataset's labels, or None (unparseable: counted as wrong).
        first_segment: the segment the completion opens with (``visual``, ``audio``, ``think``, ``answer``) or None.
        well_formed: see :class:`src.data.reasoning.ParsedCompletion`.
        num_tokens: generated tokens before the end-of-turn token.
        truncated: no end-of-turn token within ``max_new_tokens``.
        dominant: the manifest's ground-truth dominant modality (``audio`` | ``visual`` | ``both``) or None.
        mi_dominant: a separately estimated dominant modality from ``Sample.extra`` (config ``mi_key``) or None.
        secondary_labels: concurrent / secondary emotions of the sample (DFEW annotator votes, ...).
        attention: the sample's resampled attention-share curves ``{"visual"|"audio"|"text": [bins]}`` or None.
        judge: fingerprint of the judge and explanation mode that produced ``judged``; None = not judged yet.
        judged: the emotion the judge reads in the explanation (None: no emotion found / no explanation).
        judged_set: the judge's label set for the explanation (top-k of multi-label judges), None when the
            judge gives single labels only.
    """

    id: str
    dataset: str
    label: str
    completion: str
    answer: str | None
    prediction: str | None
    first_segment: str | None
    well_formed: bool
    num_tokens: int
    truncated: bool
    dominant: str | None = None
    mi_dominant: str | None = None
    secondary_labels: list[str] = field(default_factory=list)
    attention: dict[str, list[float]] | None = None
    judge: str | None = None
    judged: str | None = None
    judged_set: list[str] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_row(cls, row: Any, *, where: str) -> PredictionRecord:
        """Build from a parsed JSON line; ``where`` (``path:line``) prefixes any error."""
        if not isinstance(row, dict):
            raise EvaluationError(f"{where}: expected a JSON object, found {type(row).__name__}")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(row) - known)
        required = [item.name for item in fields(cls) if item.name not in row and _required(item)]
        if unknown or required:
            problems = []
            if required:
                problems.append(f"missing {', '.join(required)}")
            if unknown:
                problems.append(f"unknown {', '.join(unknown)}")
            raise EvaluationError(f"{where}: not a prediction record ({'; '.join(problems)})")
        return cls(**row)


def _required(item: Any) -> bool:
    return item.default is MISSING and item.default_factory is MISSING


@dataclass
class LoadReport:
    """What :meth:`PredictionStore.load` found: the records and how many torn trailing lines it cut off."""

    records: list[PredictionRecord]
    torn_lines: int = 0


class PredictionStore:
    """The ``predictions.jsonl`` of one evaluation folder (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> LoadReport:
        """Read every record; a torn last line (killed mid-write) is removed from the file and counted."""
        if not self.path.exists():
            return LoadReport(records=[])
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        # A file written by us ends with "\n": the last piece is empty unless the last write was torn.
        complete, tail = lines[:-1], lines[-1]
        torn = 1 if tail.strip() else 0
        if torn:
            keep = b"".join(line + b"\n" for line in complete)
            with self.path.open("r+b") as handle:
                handle.truncate(len(keep))
        records: list[PredictionRecord] = []
        first_line: dict[str, int] = {}
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            where = f"{self.path}:{number}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as error:
                raise EvaluationError(
                    f"{where}: invalid JSON ({error.msg}); only the last line of a killed run can be torn, so this "
                    "file was edited or corrupted: repair or delete that line, or start over with overwrite=true"
                ) from None
            record = PredictionRecord.from_row(row, where=where)
            if record.id in first_line:
                raise EvaluationError(
                    f"{where}: sample {record.id!r} is already recorded on line {first_line[record.id]}; "
                    "remove one of the two lines or start over with overwrite=true"
                )
            first_line[record.id] = number
            records.append(record)
        return LoadReport(records=records, torn_lines=torn)

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Append records durably (one write, flushed and fsynced before returning)."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = "".join(record.to_json() + "\n" for record in records).encode("utf-8")
        with self.path.open("ab") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, records: Iterable[PredictionRecord]) -> None:
        """Replace the file's content atomically (used when judgements are filled in)."""
        atomic.write_text(self.path, "".join(record.to_json() + "\n" for record in records))
