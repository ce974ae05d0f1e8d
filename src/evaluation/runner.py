"""One evaluation, from a composed ``configs/evaluate.yaml`` to every artefact on disk (and W&B).

Phases, each resumable:

1. **select** the manifest split (``limit`` first samples), check it is not empty and holds one dataset;
2. **generate** the samples missing from ``predictions.jsonl`` (appended batch by batch; the model is only
   loaded when something is missing);
3. **judge** the explanations not yet judged by the configured judge (chunk by chunk, persisted after each);
4. **probe**: the first-tag margins (``first_tag.json``) and the anchoring probe (``anchoring.json``,
   :mod:`src.evaluation.anchoring`), each cached with the weights and samples it came from;
5. **re-judge** with each of ``extra_judges`` (``judges.json``, per judge and sample; the predictions' own
   judgement is left as it is);
6. **score and write**: ``metrics.json``, ``attention.json``, ``report.md``, ``confusion.png``, ``recall.png``,
   ``attention.png``; log to W&B when ``logger=wandb``.

A changed judge re-judges without regenerating; changed generation settings are refused (see
:mod:`src.evaluation.folders`). Every setting is read from :class:`~src.evaluation.config.EvalConfig`, checked
whole before any data or model is read.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from src import atomic
from src.analysis.attention import resolve_layer
from src.analysis.plots import plot_attention, plot_confusion, plot_recall, save_figure
from src.data.inputs import Inputs, load_inputs
from src.data.labels import labels_for
from src.data.manifest import Sample
from src.data.media import MediaLoader
from src.data.media_report import ShortClip
from src.evaluation.breakdowns import breakdowns, cell_of
from src.evaluation.concurrent import reference_correct_ids
from src.evaluation.config import DTYPE_NAMES, EvalConfig
from src.evaluation.figures import attention_summary, compute_figures, flat_figures
from src.evaluation.folders import (
    check_run_settings,
    find_model,
    model_name,
    output_folder,
    weight_files,
)
from src.evaluation.judging import judge_fingerprint, judge_records
from src.evaluation.predict import GenerationSettings, PredictStats, predict
from src.evaluation.predictions import PREDICTIONS_NAME, EvaluationError, PredictionRecord, PredictionStore
from src.evaluation.report import render_report
from src.evaluation.settings import Decoding
from src.evaluation.tracking import log_to_wandb
from src.folder_lock import FolderLock
from src.judges.base import Judge
from src.judges.factory import build_judge
from src.models.checkpoint import LoadedModel, load_model, model_kind, read_config
from src.models.feature_cache import attach_feature_cache
from src.paths import printable

log = logging.getLogger(__name__)

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}
OUTPUT_FILES = ("metrics.json", "attention.json", "report.md", "confusion.png", "recall.png", "attention.png")
ModelLoader = Callable[[], tuple[LoadedModel, MediaLoader]]  # loads the evaluated model (once)
FIRST_TAG_NAME = "first_tag.json"  # the first-tag margins and the weights/samples they came from
ANCHORING_NAME = "anchoring.json"  # the anchoring probe's continuations and the weights/samples they came from
JUDGES_NAME = "judges.json"  # the extra judges' readings of each explanation, by judge fingerprint


@dataclass
class EvaluationResult:
    """Where an evaluation wrote its outputs, its figures, and what this run did."""

    output_dir: Path
    figures: dict[str, Any]
    generated: int
    resumed: int
    judged: int
    skipped: int


def run_evaluation(cfg: DictConfig | EvalConfig) -> EvaluationResult:
    """Run the evaluation ``cfg`` describes (a composed ``evaluate.yaml``, checked whole here as an
    :class:`EvalConfig` before any data or model is read; see the module docstring); returns where the outputs
    are."""
    config = cfg if isinstance(cfg, EvalConfig) else EvalConfig.from_config(cfg)
    manifest = prepare_manifest(config)
    inputs = load_inputs(  # the manifest's checks; a missing clip file is skipped under on_error=skip
        manifest,
        on_error=config.on_error,
        select=lambda rows: select_samples(rows, manifest=manifest, split=config.split, limit=config.limit),
    )
    samples = inputs.samples
    model_dir = find_model(config.model_path, runs_dir=config.runs_dir, search=list(config.model_search))
    settings = generation_settings(config, model_dir)
    searched = f" (model_path=auto: first of {', '.join(config.model_search)} under {config.runs_dir})"
    log.info(
        "evaluating %s%s on %s split %s (%d samples)",
        printable(model_dir),
        searched if config.model_path == "auto" else "",
        printable(manifest),
        config.split,
        len(samples),
    )
    out = output_folder(
        config.output_dir,
        runs_dir=config.runs_dir,
        model_dir=model_dir,
        dataset=samples[0].dataset,
        split=config.split,
    )
    with FolderLock(out):  # one evaluation per folder at a time; a second one fails naming the holder
        return evaluate_into(
            config, out, manifest=manifest, samples=samples, model_dir=model_dir, settings=settings, inputs=inputs
        )


def evaluate_into(
    config: EvalConfig,
    out: Path,
    *,
    manifest: Path,
    samples: list[Sample],
    model_dir: Path,
    settings: GenerationSettings,
    inputs: Inputs | None = None,
) -> EvaluationResult:
    """Phases 2-4 of :func:`run_evaluation` in the output folder ``out`` (whose lock the caller holds);
    ``inputs``: what reading the manifest skipped, reported with the clips skipped while generating."""
    labels = labels_for(samples[0].dataset)
    if config.overwrite:
        for name in (PREDICTIONS_NAME, FIRST_TAG_NAME, ANCHORING_NAME, JUDGES_NAME, *OUTPUT_FILES):
            (out / name).unlink(missing_ok=True)
    resuming = check_run_settings(
        out, run_settings(config, settings, model_dir, manifest), overwrite=config.overwrite
    )
    (out / "metrics.json").unlink(missing_ok=True)  # the done marker stands only for a run that finished
    judge = build_judge(config.judge)  # before generating: a judge misconfiguration fails in seconds
    extra = {name: build_judge(options) for name, options in config.extra_judge_configs().items()}
    store = PredictionStore(out / PREDICTIONS_NAME)

    # the model is loaded on first use (generating or first-tag margins) and at most once
    load = functools.cache(lambda: load_for_evaluation(config, model_dir))
    stats = generate_phase(config, store, samples, load, settings, resuming=resuming)
    if inputs is not None:
        stats.skipped[:0] = inputs.report.skipped  # missing files, found while reading the manifest
    short = load()[1].report.short_clips if load.cache_info().currsize else []  # type: ignore[attr-defined]
    stored = {record.id: record for record in store.load().records}
    selected = [stored[sample.id] for sample in samples if sample.id in stored]
    if len(stored) > len(selected):
        log.info(
            "%d stored predictions lie outside this selection (split/limit): not scored",
            len(stored) - len(selected),
        )

    def persist(current: list[PredictionRecord]) -> None:  # every judged chunk reaches the disk at once
        stored.update({record.id: record for record in current})
        store.rewrite(stored.values())

    selected, judge_stats = judge_records(
        selected, judge, labels, mode=config.explanation_mode, chunk_size=config.judge_batch_size, on_chunk=persist
    )
    scored = {record.id for record in selected}
    first_tag = first_tag_phase(config, out, [s for s in samples if s.id in scored], model_dir, load)
    scored_samples = [s for s in samples if s.id in scored]
    anchoring = anchoring_phase(config, out, scored_samples, model_dir, load, judge, labels)
    cells = {sample.id: cell_of(sample) for sample in samples}
    rejudged = extra_judges_phase(config, out, selected, extra, labels, cells)
    figures, attention, images = write_outputs(
        config,
        out,
        selected,
        labels,
        model_dir,
        manifest,
        stats,
        settings,
        first_tag=first_tag,
        short_clips=short,
        cells=cells,
        anchoring=anchoring,
        judges=rejudged,
    )
    headline = flat_figures(figures)
    log.info(
        "wrote %s: %s (%d generated now, %d resumed, %d judged, %d skipped)",
        printable(out),
        ", ".join(f"{key.upper()} {100 * headline[key]:.2f}" for key in ("war", "uar", "epc") if key in headline),
        stats.generated,
        len(selected) - stats.generated,
        judge_stats.judged,
        len(stats.skipped),
    )
    log_to_wandb(
        config.logger,
        output_dir=out,
        run_name=f"eval-{model_name(model_dir)}-{config.split}",
        config=config.to_dict(),  # the resolved, checked settings
        flat=headline,
        figures=figures,
        attention=attention,
        records=selected,
        images=images,
    )
    if load.cache_info().currsize and load()[0].model.feature_cache is not None:
        load()[0].model.feature_cache.log_summary("end of evaluation")
    return EvaluationResult(
        output_dir=out,
        figures=figures,
        generated=stats.generated,
        resumed=len(selected) - stats.generated,
        judged=judge_stats.judged,
        skipped=len(stats.skipped),
    )


def generate_phase(
    config: EvalConfig,
    store: PredictionStore,
    samples: list[Sample],
    load: ModelLoader,
    settings: GenerationSettings,
    *,
    resuming: bool,
) -> PredictStats:
    """Generate the samples ``predictions.jsonl`` lacks (the model is loaded only if there are any)."""
    found = store.load()
    if found.torn_lines:
        log.warning("%s: cut off %d line torn by an interrupted run", printable(store.path), found.torn_lines)
    done = {record.id for record in found.records}
    pending = [sample for sample in samples if sample.id not in done]
    if resuming:
        log.info(
            "resuming %s: %d of %d samples already generated",
            printable(store.path.parent),
            len(samples) - len(pending),
            len(samples),
        )
    if not pending:
        return PredictStats()
    stats = generate_missing(config, load, pending, settings, store)
    if stats.skipped:
        listed = ", ".join(record.sample_id for record in stats.skipped)
        log.warning("%d clips skipped (on_error=skip): %s", len(stats.skipped), listed)
    return stats


def generation_settings(config: EvalConfig, model_dir: Path) -> GenerationSettings:
    """The ``GenerationSettings`` of an evaluation, with the attention layer resolved for the model (read from
    its ``config.json``, so resuming needs no model load)."""
    attention = config.attention
    layer = resolve_layer(attention.layer, llm_layers(model_dir)) if attention.enabled else None
    return GenerationSettings(
        **{item.name: getattr(config, item.name) for item in fields(Decoding)},
        num_workers=int(config.data.get("num_workers", 0)),
        attention=attention.enabled,
        attention_layer=layer,
        attention_bins=attention.bins,
        mi_key=config.mi_key,
    )


def llm_layers(model_dir: Path) -> int:
    """Number of LLM layers of a model folder, from its ``config.json`` (our exports or HumanOmni's)."""
    config = read_config(model_dir)
    llm = config if model_kind(model_dir, config) == "humanomni" else config["omni"]["llm"]
    if "num_hidden_layers" not in llm:
        raise EvaluationError(f"{model_dir}/config.json: no num_hidden_layers; cannot place attention.layer")
    return int(llm["num_hidden_layers"])


def prepare_manifest(config: EvalConfig) -> Path:
    """The manifest path, building the synthetic corpus or running the dataset adapter on first use."""
    from src.data.sources import prepare_manifest as prepare

    return prepare(config.data)


def select_samples(samples: list[Sample], *, manifest: Path, split: str, limit: int | None) -> list[Sample]:
    """The samples of ``split`` (the first ``limit`` of them); an empty selection or mixed datasets are errors."""
    chosen = [sample for sample in samples if sample.split == split]
    if not chosen:
        found = sorted({sample.split for sample in samples})
        raise EvaluationError(f"{manifest}: no samples with split {split!r} (split=...); splits present: {found}")
    if limit is not None:
        if int(limit) < 1:
            raise EvaluationError(f"limit={limit} must be a positive number of samples or null")
        chosen = chosen[: int(limit)]
    datasets = sorted({sample.dataset for sample in chosen})
    if len(datasets) > 1:
        raise EvaluationError(
            f"{manifest}: split {split!r} mixes datasets {datasets}; metrics need one label set, evaluate each "
            "dataset from its own manifest"
        )
    return chosen


def run_settings(
    config: EvalConfig, settings: GenerationSettings, model_dir: Path, manifest: Path
) -> dict[str, Any]:
    """What decides a completion (stored in ``run.json``; see :mod:`src.evaluation.folders`)."""
    decisive = asdict(settings)
    for key in ("batch_size", "num_workers"):  # prompts are padded alike: these change speed, not outputs
        decisive.pop(key)
    return {
        "model": str(model_dir.resolve()),
        "weights": weight_files(model_dir) if model_dir.is_dir() else {},
        "manifest": str(manifest.resolve()),
        "split": config.split,
        "dtype": config.dtype,
        **({"preprocess": config.preprocess} if config.preprocess else {}),  # absent: the model's own
        **decisive,
    }


def load_for_evaluation(config: EvalConfig, model_dir: Path) -> tuple[LoadedModel, MediaLoader]:
    """The model on ``config.device`` in ``config.dtype`` and a media loader of its shapes."""
    device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = None if config.dtype is None else DTYPES[config.dtype]
    loaded = load_model(model_dir, device=device, dtype=dtype)
    attach_feature_cache(loaded.model, config.feature_cache)
    loader = MediaLoader.for_model(
        loaded.model.config,
        preprocess=config.preprocess,
        cache_dir=config.data.get("cache_dir"),
        on_error=config.on_error,
        short_clip=config.data.get("short_clip", "repeat"),
    )
    return loaded, loader


def generate_missing(
    config: EvalConfig,
    load: ModelLoader,
    pending: list[Sample],
    settings: GenerationSettings,
    store: PredictionStore,
) -> PredictStats:
    """Generate ``pending`` into ``store`` with the model ``load()`` gives."""
    loaded, loader = load()
    return predict(loaded, pending, loader, settings, on_batch=store.append, progress=config.progress_bar)


def first_tag_phase(
    config: EvalConfig, out: Path, samples: list[Sample], model_dir: Path, load: ModelLoader
) -> dict[str, Any] | None:
    """The first-tag margins of ``samples`` (:mod:`src.analysis.first_tag`), kept in ``first_tag.json`` with the
    weights and samples they came from (a resumed evaluation reuses them; the model is loaded only otherwise).
    None when ``config.first_tag`` is off, the prompt is not MIGR's (``task`` other than reasoning) or no sample
    has both modalities."""
    from src.analysis.first_tag import first_tag_margins, first_tag_summary, usable

    clips = usable(samples)
    if not config.first_tag or config.task != "reasoning" or not clips:
        return None
    key = {"weights": weight_files(model_dir), "samples": [s.id for s in clips]}

    def compute() -> dict[str, dict[str, float]]:
        loaded, loader = load()
        return first_tag_margins(
            loaded.model, loaded.tokenizer, loaded.gate_tokenizer, loader, clips, batch_size=config.batch_size
        )

    margins = cached_json(out / FIRST_TAG_NAME, key, compute)
    return first_tag_summary(margins, clips, config.mi_key)


def write_outputs(
    config: EvalConfig,
    out: Path,
    records: list[PredictionRecord],
    labels: tuple[str, ...],
    model_dir: Path,
    manifest: Path,
    stats: PredictStats,
    settings: GenerationSettings,
    *,
    first_tag: dict[str, Any] | None = None,
    short_clips: list[ShortClip] | None = None,
    cells: dict[str, str | None] | None = None,
    anchoring: dict[str, Any] | None = None,
    judges: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Path]]:
    """``metrics.json``, ``attention.json``, plots and ``report.md`` (``first_tag``: the first-tag summary;
    ``short_clips``: clips decoded now that had fewer frames than the model's ``num_frames``; ``cells``: each
    sample's ``<dominant>/<cue>`` cell for the breakdowns, :mod:`src.evaluation.breakdowns`; ``anchoring``: the
    anchoring probe's summary; ``judges``: the extra judges' figures).

    Returns the figures, the attention summary (None without curves) and the plots by W&B key.
    """
    summary = None
    if settings.attention and settings.attention_layer is not None:
        summary = attention_summary(
            records,
            layer=settings.attention_layer,
            bins=settings.attention_bins,
            group_by=config.attention.group_by,
        )
    attention = summary.to_dict() if summary is not None else None
    reference = reference_correct_ids(config.concurrent.reference_predictions)
    figures = compute_figures(
        records, labels, focus=list(config.concurrent.focus), reference_correct=reference, attention=summary
    )
    run = {
        "model": printable(model_dir),
        "manifest": printable(manifest),
        "split": config.split,
        "task": config.task,
        "temperature": config.temperature,
        "max_new_tokens": config.max_new_tokens,
        "judge": records[0].judge.split("|")[0] if records and records[0].judge else None,
        "explanation_mode": config.explanation_mode,
        "concurrent_focus": list(config.concurrent.focus),
        "reference_predictions": config.concurrent.reference_predictions,
        "generated_now": stats.generated,
        "skipped": [asdict(record) for record in stats.skipped],
        "short_clips": [asdict(clip) for clip in short_clips or []],
    }
    figures = {
        **figures,
        "breakdowns": breakdowns(records, labels, cells or {}, task=config.task),
        "anchoring": anchoring,
        "judges": judges or {},
        "first_tag": first_tag,
        "num_skipped": len(stats.skipped),
        "run": run,
    }
    confusion, recognition = figures["confusion"], figures["recognition"]
    images = {
        "confusion": save_figure(
            plot_confusion(confusion["counts"], confusion["rows"], confusion["columns"]), out / "confusion.png"
        ),
        "recall_plot": save_figure(
            plot_recall(recognition["recall"], war=recognition["war"], uar=recognition["uar"]), out / "recall.png"
        ),
    }
    if attention is not None:
        atomic.write_text(out / "attention.json", json.dumps(attention, indent=1) + "\n")
        images["attention"] = save_figure(
            plot_attention({model_name(model_dir): attention}), out / "attention.png"
        )
    atomic.write_text(out / "report.md", render_report(figures, run, name=model_name(model_dir)))
    # the demo's done marker: written last, so a crash before it leaves a folder the next run resumes
    atomic.write_text(out / "metrics.json", json.dumps(figures, indent=1) + "\n")
    return figures, attention, images


def cached_json(path: Path, key: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """``path``'s ``value`` when its ``key`` equals ``key``; else ``compute()``, written there atomically."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except json.JSONDecodeError:
        log.warning("%s is unreadable; computing it again", path)
        stored = {}
    if stored.get("key") == key:
        return stored["value"]
    value = compute()
    atomic.write_text(path, json.dumps({"key": key, "value": value}, indent=1) + "\n")
    return value


def anchoring_phase(
    config: EvalConfig,
    out: Path,
    samples: list[Sample],
    model_dir: Path,
    load: ModelLoader,
    judge: Judge,
    labels: tuple[str, ...],
) -> dict[str, Any] | None:
    """The anchoring probe's summary (:mod:`src.evaluation.anchoring`), its continuations cached in
    ``anchoring.json``; None when ``config.anchoring`` is off or the prompt is not MIGR's. Clips without gold
    descriptions are skipped and counted (all of them on a real dataset)."""
    from src.evaluation.anchoring import forced_openings, probe_continuations, probe_rows, summarize_anchoring

    if not config.anchoring or config.task != "reasoning":
        return None
    clips = [s for s in samples if forced_openings(s) is not None]
    skipped = len(samples) - len(clips)
    if not clips:
        return summarize_anchoring([], skipped=skipped)
    key = {
        "weights": weight_files(model_dir),
        "samples": [s.id for s in clips],
        "max_new_tokens": config.max_new_tokens,
    }

    def compute() -> dict[str, dict[str, str]]:
        loaded, loader = load()
        return probe_continuations(
            loaded, clips, loader, max_new_tokens=config.max_new_tokens, batch_size=config.batch_size
        )

    continuations = cached_json(out / ANCHORING_NAME, key, compute)
    return summarize_anchoring(probe_rows(clips, continuations, judge, labels), skipped=skipped)


def extra_judges_phase(
    config: EvalConfig,
    out: Path,
    records: list[PredictionRecord],
    judges: Mapping[str, Judge],
    labels: tuple[str, ...],
    cells: Mapping[str, str | None],
) -> dict[str, Any]:
    """Each extra judge's figures: ``{name: {"judge": fingerprint, "breakdowns": ...}}`` (the endpoints overall,
    per cell, per opening, over well-formed explanations), computed on the same predictions read by that judge.
    Its readings are cached per sample in ``judges.json``; only explanations it has not read are judged."""
    if not judges:
        return {}
    path = out / JUDGES_NAME
    try:
        cache = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except json.JSONDecodeError:
        log.warning("%s is unreadable; judging again", path)
        cache = {}
    figures: dict[str, Any] = {}
    for name, judge in judges.items():
        fingerprint = judge_fingerprint(judge, config.explanation_mode)
        known = cache.setdefault(fingerprint, {})
        current = [
            replace(r, judge=fingerprint, judged=known[r.id][0], judged_set=known[r.id][1])
            if r.id in known
            else replace(r, judge=None, judged=None, judged_set=None)
            for r in records
        ]

        def persist(done: list[PredictionRecord], known: dict = known, fingerprint: str = fingerprint) -> None:
            known.update({r.id: [r.judged, r.judged_set] for r in done if r.judge == fingerprint})
            atomic.write_text(path, json.dumps(cache) + "\n")

        current, stats = judge_records(
            current,
            judge,
            labels,
            mode=config.explanation_mode,
            chunk_size=config.judge_batch_size,
            on_chunk=persist,
        )
        log.info("extra judge %s: %d explanations judged now, %d reused", name, stats.judged, stats.reused)
        figures[name] = {"judge": fingerprint, "breakdowns": breakdowns(current, labels, cells, task=config.task)}
    return figures
