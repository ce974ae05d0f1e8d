"""The anchoring probe (issue 16 item 3): does the first description a model writes decide its verdict?

MIGR's claim is a mechanism: an explanation that opens with the wrong modality anchors the reasoning on it, and
the answer follows. The probe measures that directly. For every clip whose dominant modality is audio or visual
and whose gold description of each modality and the emotion each shows are known (the synthetic corpus:
``reasoning.visual``/``reasoning.audio`` and ``extra.synth.<modality>.emotion``), the first description segment
is teacher-forced after the reasoning prompt with

- ``non_dominant``: the non-dominant modality's true description (e.g. "a broad smile" over an angry voice),
- ``dominant``: the dominant modality's true description,

and the model continues greedily. From the forced text plus the continuation, the probe reads the ``<think>``
segment's emotion (the evaluation's judge, one text per think) and the ``<answer>``, and reports how often each
follows the forced text's emotion and how often the clip's label, per condition, overall and per
``<dominant>/<cue>`` cell (:func:`src.evaluation.breakdowns.cell_of`). A model that anchors follows the forced
emotion under ``non_dominant``; one that reads the media answers the label under both. Clips without the needed
data are skipped and counted.

Generation is :func:`src.evaluation.predict.predict` with the forced text as a prompt prefix (the same batched
KV-cache decoding as the evaluation, greedy, no attention probe); the continuations are cached in
``anchoring.json`` by the evaluation runner, keyed by the weights, samples and generation length.

    >>> rows = [{"cell": "audio/conflict", "condition": "non_dominant", "label": "angry", "forced": "happy",
    ...          "think": "happy", "answer": "angry"}]
    >>> summarize_anchoring(rows)["non_dominant"]["all"]["answer_follows_forced"]
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from src.data.labels import normalize_label
from src.data.manifest import Sample
from src.data.media import MediaLoader
from src.data.reasoning import SEGMENT_TAGS, parse_completion
from src.evaluation.breakdowns import cell_of
from src.evaluation.predict import GenerationSettings, predict
from src.evaluation.predictions import PredictionRecord
from src.judges.base import Judge
from src.models.checkpoint import LoadedModel

CONDITIONS: tuple[str, ...] = ("non_dominant", "dominant")
RATES: tuple[str, ...] = (
    "think_follows_forced",
    "think_follows_label",
    "answer_follows_forced",
    "answer_follows_label",
)
_OTHER = {"audio": "visual", "visual": "audio"}


def forced_openings(sample: Sample) -> dict[str, dict[str, str]] | None:
    """``{condition: {"modality", "emotion", "prefix"}}`` for a clip the probe can use, else None."""
    synth = sample.extra.get("synth")
    reasoning = sample.reasoning
    if sample.dominant not in _OTHER or reasoning is None or not isinstance(synth, Mapping):
        return None
    if sample.video is None or sample.audio_source is None:
        return None
    openings: dict[str, dict[str, str]] = {}
    for condition, modality in (("non_dominant", _OTHER[sample.dominant]), ("dominant", sample.dominant)):
        text = getattr(reasoning, modality, None)
        shows = synth.get(modality)
        emotion = shows.get("emotion") if isinstance(shows, Mapping) else None
        if not text or not emotion:
            return None
        open_tag, close_tag = SEGMENT_TAGS[modality]
        openings[condition] = {
            "modality": modality,
            "emotion": emotion,
            "prefix": f"{open_tag}{text}{close_tag}\n",
        }
    return openings


def probe_continuations(
    loaded: LoadedModel,
    samples: Sequence[Sample],
    loader: MediaLoader,
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, dict[str, str]]:
    """``{sample id: {condition: continuation}}``: greedy text after each forced opening (usable samples only)."""
    plans = {s.id: forced_openings(s) for s in samples}
    chosen = [s for s in samples if plans[s.id] is not None]
    settings = GenerationSettings(
        task="reasoning", max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size, attention=False
    )
    result: dict[str, dict[str, str]] = {s.id: {} for s in chosen}
    for condition in CONDITIONS:
        prefixes = {s.id: plans[s.id][condition]["prefix"] for s in chosen}

        def keep(records: list[PredictionRecord], condition: str = condition) -> None:
            for record in records:
                result[record.id][condition] = record.completion

        predict(loaded, chosen, loader, settings, on_batch=keep, progress=progress, prefixes=prefixes)
    return {sample_id: rows for sample_id, rows in result.items() if len(rows) == len(CONDITIONS)}


def probe_rows(
    samples: Sequence[Sample],
    continuations: Mapping[str, Mapping[str, str]],
    judge: Judge,
    labels: Sequence[str],
) -> list[dict[str, Any]]:
    """One row per (clip, condition): cell, label, forced emotion, the think's judged emotion, the answer.

    The think is judged as one text (all think texts in one call); a missing think or answer is None.
    """
    rows: list[dict[str, Any]] = []
    thinks: list[str] = []
    for sample in samples:
        plan = forced_openings(sample)
        if plan is None or sample.id not in continuations:
            continue
        for condition in CONDITIONS:
            parsed = parse_completion(plan[condition]["prefix"] + continuations[sample.id][condition])
            think = parsed.segments.get("think") or ""
            rows.append(
                {
                    "id": sample.id,
                    "cell": cell_of(sample),
                    "condition": condition,
                    "label": sample.label,
                    "forced": normalize_label(plan[condition]["emotion"], sample.dataset),
                    "answer": normalize_label(parsed.answer, sample.dataset),
                    "think": None,
                    "_think_text": think,
                }
            )
            thinks.append(think)
    asked = [i for i, text in enumerate(thinks) if text]
    judged = judge.classify([thinks[i] for i in asked], labels) if asked else []
    for i, emotion in zip(asked, judged):
        rows[i]["think"] = emotion
    for row in rows:
        row.pop("_think_text")
    return rows


def summarize_anchoring(rows: Sequence[Mapping[str, Any]], *, skipped: int = 0) -> dict[str, Any]:
    """Per condition: the four rates (:data:`RATES`) over all rows and per cell, with counts.

    ``*_follows_forced``: the think's judged emotion / the answer equals the forced description's emotion;
    ``*_follows_label``: equals the clip's label (both hold when the forced emotion is the label, counted in
    ``forced_is_label``). ``skipped``: clips the probe could not use.
    """

    def rates(group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        n = len(group)
        figures: dict[str, Any] = {"n": n, "forced_is_label": sum(r["forced"] == r["label"] for r in group)}
        for part in ("think", "answer"):
            for target, key in (("forced", "forced"), ("label", "label")):
                hits = sum(r[part] is not None and r[part] == r[key] for r in group)
                figures[f"{part}_follows_{target}"] = hits / n if n else None
        return figures

    summary: dict[str, Any] = {"skipped": skipped}
    for condition in CONDITIONS:
        group = [r for r in rows if r["condition"] == condition]
        cells = sorted({r["cell"] for r in group if r["cell"] is not None})
        summary[condition] = {
            "all": rates(group),
            "by_cell": {cell: rates([r for r in group if r["cell"] == cell]) for cell in cells},
        }
    return summary


def flat_anchoring(summary: Mapping[str, Any]) -> dict[str, float]:
    """Flat keys ``anchoring/<condition>/<rate>`` and ``anchoring/<condition>/cell/<cell>/<rate>`` (+ ``/n``)."""
    flat: dict[str, float] = {}
    for condition in CONDITIONS:
        block = summary.get(condition)
        if block is None:
            continue
        groups = [("", block["all"]), *[(f"cell/{cell}/", rates) for cell, rates in block["by_cell"].items()]]
        for name, rates in groups:
            for key in ("n", *RATES):
                if rates[key] is not None:
                    flat[f"anchoring/{condition}/{name}{key}"] = rates[key]
    return flat
