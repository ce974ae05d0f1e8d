"""The endpoints over subsets of an evaluation's records (issue 16): per (dominant, non-dominant cue) cell, by
whether the explanation opened with the dominant modality, and over well-formed explanations only.

Every figure is computed by the same metric code as the headline (:class:`src.metrics.RecognitionMetrics` for WAR,
:class:`src.metrics.ConsistencyMetrics` for EEA/EPC/FCR/R✗/A✓) on the subset's records; ``metrics.json`` holds them
under ``breakdowns``:

``well_formed``       share of explanations with MIGR's structure (:func:`rewards.format.migr_format_ok`: both
                      descriptions, think, answer, each once, nothing outside them) for the ``reasoning`` task, the
                      parser's ``well_formed`` for other prompts. Stricter than the parser's ``well_formed``
                      (:class:`src.data.reasoning.ParsedCompletion`: every tag closed, answer last; a description may be
                      missing), which is the one the study holds to >= 95% (``format/well_formed``,
                      docs/study_protocol.md) and uses for its ``| well-formed`` subsets (the README's study section
                      gives both).
``overall``           one :func:`group_figures` block over every record.
``by_cell``           one block per ``<dominant>/<cue>`` (``cue``: the manifest's ``extra.synth.cue``, e.g.
                      ``audio/conflict``); records with no cell are counted in ``no_cell``.
``by_opening``        ``dominant_first`` / ``other_first``: records whose dominant modality is audio or visual, by
                      whether the explanation opened with it (``first_segment``).
``by_cell_opening``   the same split inside each cell.

A block is ``{"n", "well_formed", <endpoints over all>, "well_formed_only": {"n", <endpoints>}}``; an endpoint
is None where it is undefined (no record, no correct answer, records not judged).

    >>> from src.evaluation.predictions import PredictionRecord
    >>> rec = PredictionRecord(id="a", dataset="synth", label="happy", completion="", answer="happy",
    ...                        prediction="happy", first_segment=None, well_formed=False, num_tokens=0,
    ...                        truncated=False, judge="j", judged="sad")
    >>> block = group_figures([rec], ["happy", "sad"], {"a": False})
    >>> block["war"], block["epc"], block["r_wrong_a_right_among_correct"], block["well_formed_only"]["n"]
    (1.0, 0.0, 1.0, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rewards.format import migr_format_ok
from src.data.manifest import Sample
from src.evaluation.predictions import PredictionRecord
from src.metrics import ConsistencyMetrics, RecognitionMetrics

ENDPOINTS: tuple[str, ...] = ("war", "eea", "epc", "fcr", "r_wrong_a_right", "r_wrong_a_right_among_correct")
OPENINGS: tuple[str, ...] = ("dominant_first", "other_first")


def cell_of(sample: Sample) -> str | None:
    """``<dominant>/<non-dominant cue>`` of a synthetic clip (``audio/conflict``), None without both."""
    synth = sample.extra.get("synth")
    cue = synth.get("cue") if isinstance(synth, Mapping) else None
    return f"{sample.dominant}/{cue}" if sample.dominant is not None and cue is not None else None


def is_well_formed(record: PredictionRecord, task: str) -> bool:
    """MIGR's structure for the reasoning prompt (what the modality rewards require), else the parser's flag."""
    return migr_format_ok(record.completion) if task == "reasoning" else record.well_formed


def endpoints(records: Sequence[PredictionRecord], labels: Sequence[str]) -> dict[str, Any]:
    """WAR and the consistency figures of ``records`` (consistency None unless every record is judged)."""
    figures: dict[str, Any] = {"n": len(records), **dict.fromkeys(ENDPOINTS)}
    if not records:
        return figures
    preds, targets = [r.prediction for r in records], [r.label for r in records]
    recognition = RecognitionMetrics(labels)
    recognition.update(preds, targets)
    figures["war"] = recognition.compute()["war"]
    if all(r.judge is not None for r in records):
        consistency = ConsistencyMetrics(labels)
        consistency.update(preds, targets, [r.judged for r in records])
        values = consistency.compute()
        figures.update({key: _defined(values[key]) for key in ENDPOINTS if key != "war"})
    return figures


def group_figures(
    records: Sequence[PredictionRecord], labels: Sequence[str], well_formed: Mapping[str, bool]
) -> dict[str, Any]:
    """One block: the endpoints over ``records`` and over their well-formed ones (``well_formed[id]``)."""
    formed = [r for r in records if well_formed[r.id]]
    return {
        **endpoints(records, labels),
        "well_formed": len(formed) / len(records) if records else None,
        "well_formed_only": endpoints(formed, labels),
    }


def opening_of(record: PredictionRecord) -> str | None:
    """``dominant_first`` / ``other_first`` for an audio- or visual-dominant record, else None."""
    if record.dominant not in ("audio", "visual"):
        return None
    return "dominant_first" if record.first_segment == record.dominant else "other_first"


def breakdowns(
    records: Sequence[PredictionRecord],
    labels: Sequence[str],
    cells: Mapping[str, str | None],
    *,
    task: str = "reasoning",
) -> dict[str, Any]:
    """The ``breakdowns`` section of ``metrics.json`` (see the module docstring); ``cells[id]`` from :func:`cell_of`."""
    well_formed = {r.id: is_well_formed(r, task) for r in records}

    def split(group: Sequence[PredictionRecord], key) -> dict[str, list[PredictionRecord]]:
        parts: dict[str, list[PredictionRecord]] = {}
        for record in group:
            name = key(record)
            if name is not None:
                parts.setdefault(name, []).append(record)
        return dict(sorted(parts.items()))

    by_cell = split(records, lambda r: cells.get(r.id))
    return {
        "well_formed": sum(well_formed.values()) / len(records) if records else None,
        "overall": group_figures(records, labels, well_formed),
        "by_cell": {cell: group_figures(group, labels, well_formed) for cell, group in by_cell.items()},
        "no_cell": sum(cells.get(r.id) is None for r in records),
        "by_opening": {
            name: group_figures(group, labels, well_formed) for name, group in split(records, opening_of).items()
        },
        "by_cell_opening": {
            cell: {
                name: group_figures(part, labels, well_formed) for name, part in split(group, opening_of).items()
            }
            for cell, group in by_cell.items()
        },
    }


def flat_breakdowns(section: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flat keys of a ``breakdowns`` section (documented in docs/dashboards.md): ``well_formed``,
    ``wf/<endpoint>``, ``cell/<cell>/<endpoint>`` (+ ``/n``, ``/well_formed``, ``/wf/<endpoint>``),
    ``opened/<opening>/...`` and ``cell/<cell>/opened/<opening>/...``; ``prefix`` goes in front of each."""
    flat: dict[str, float] = {f"{prefix}well_formed": section["well_formed"]}

    def block(name: str, figures: Mapping[str, Any]) -> None:
        for key in ("n", "well_formed", *ENDPOINTS):
            flat[f"{prefix}{name}{key}"] = figures[key]
        for key in ENDPOINTS:
            flat[f"{prefix}{name}wf/{key}"] = figures["well_formed_only"][key]

    for key in ENDPOINTS:
        flat[f"{prefix}wf/{key}"] = section["overall"]["well_formed_only"][key]
    for cell, figures in section["by_cell"].items():
        block(f"cell/{cell}/", figures)
    for opening, figures in section["by_opening"].items():
        block(f"opened/{opening}/", figures)
    for cell, groups in section["by_cell_opening"].items():
        for opening, figures in groups.items():
            block(f"cell/{cell}/opened/{opening}/", figures)
    return {key: value for key, value in flat.items() if value is not None}


def _defined(value: float) -> float | None:
    return None if value != value else value  # NaN (no denominator) -> None
