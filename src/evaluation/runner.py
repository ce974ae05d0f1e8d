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
:mod:`src.evaluation.folders`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src import atomic
from src.analysis.attention import resolve_layer
from src.analysis.plots import plot_attention, plot_confusion, plot_recall, save_figure
from src.config_check import check_numbers
from src.data.inputs import Inputs, load_inputs
from src.data.labels import labels_for
from src.data.manifest import Sample
from src.data.media import MediaLoader
from src.data.media_report import ShortClip
from src.evaluation.breakdowns import breakdowns, cell_of
from src.evaluation.concurrent import reference_correct_ids
from src.evaluation.figures import ATTENTION_GROUPS, attention_summary, compute_figures, flat_figures
from src.evaluation.folders import (
    check_run_settings,
    find_model,
    model_name,
    output_folder,
    weight_files,
)
from src.evaluation.judging import EXPLANATION_MODES, judge_fingerprint, judge_records
from src.evaluation.predict import GenerationSettings, PredictStats, predict
from src.evaluation.predictions import PREDICTIONS_NAME, EvaluationError, PredictionRecord, PredictionStore
from src.evaluation.report import render_report
from src.evaluation.tracking import log_to_wandb
from src.folder_lock import FolderLock
from src.judges.base import Judge
from src.judges.factory import build_judge
from src.models.checkpoint import LoadedModel, load_model, model_kind, read_config
from src.models.feature_cache import attach_feature_cache
from src.paths import printable

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OUTPUT_FILES = ("metrics.json", "attention.json", "report.md", "confusion.png", "recall.png", "attention.png")
ModelLoader = Callable[[], tuple[LoadedModel, MediaLoader]]  # loads the evaluated model (once)
FIRST_TAG_NAME = "first_tag.json"  # the first-tag margins and the weights/samples they came from
ANCHORING_NAME = "anchoring.json"  # the anchoring probe's continuations and the weights/samples they came from
JUDGES_NAME = "judges.json"  # the extra judges' readings of each explanation, by judge fingerprint
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class EvaluationResult:
    """Where an evaluation wrote its outputs, its figures, and what this run did."""

    output_dir: Path
    figures: dict[str, Any]
    generated: int
    resumed: int
    judged: int
    skipped: int


def run_evaluation(cfg: DictConfig) -> EvaluationResult:
    """Run the evaluation ``cfg`` describes (see the module docstring); returns where the outputs are."""
    check_config(cfg)
    manifest = prepare_manifest(cfg)
    inputs = load_inputs(  # the manifest's checks; a missing clip file is skipped under on_error=skip
        manifest,
        on_error=cfg.on_error,
        select=lambda rows: select_samples(rows, manifest=manifest, split=cfg.split, limit=cfg.limit),
    )
    samples = inputs.samples
    model_dir = find_model(cfg.model_path, runs_dir=cfg.runs_dir, search=list(cfg.model_search))
    settings = generation_settings(cfg, model_dir)
    searched = f" (model_path=auto: first of {', '.join(cfg.model_search)} under {cfg.runs_dir})"
    log.info(
        "evaluating %s%s on %s split %s (%d samples)",
        printable(model_dir),
        searched if cfg.model_path == "auto" else "",
        printable(manifest),
        cfg.split,
        len(samples),
    )
    out = output_folder(
        cfg.output_dir, runs_dir=cfg.runs_dir, model_dir=model_dir, dataset=samples[0].dataset, split=cfg.split
    )
    with FolderLock(out):  # one evaluation per folder at a time; a second one fails naming the holder
        return evaluate_into(
            cfg, out, manifest=manifest, samples=samples, model_dir=model_dir, settings=settings, inputs=inputs
        )


def evaluate_into(
    cfg: DictConfig,
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
    if cfg.overwrite:
        for name in (PREDICTIONS_NAME, FIRST_TAG_NAME, ANCHORING_NAME, JUDGES_NAME, *OUTPUT_FILES):
            (out / name).unlink(missing_ok=True)
    resuming = check_run_settings(out, run_settings(cfg, settings, model_dir, manifest), overwrite=cfg.overwrite)
    (out / "metrics.json").unlink(missing_ok=True)  # the done marker stands only for a run that finished
    judge = build_judge(cfg.judge)  # before generating: a judge misconfiguration fails in seconds
    extra = {name: build_judge(config) for name, config in extra_judge_configs(cfg).items()}
    store = PredictionStore(out / PREDICTIONS_NAME)

    # the model is loaded on first use (generating or first-tag margins) and at most once
    load = functools.cache(lambda: load_for_evaluation(cfg, model_dir))
    stats = generate_phase(cfg, store, samples, load, settings, resuming=resuming)
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
        selected, judge, labels, mode=cfg.explanation_mode, chunk_size=int(cfg.judge_batch_size), on_chunk=persist
    )
    scored = {record.id for record in selected}
    first_tag = first_tag_phase(cfg, out, [s for s in samples if s.id in scored], model_dir, load)
    scored_samples = [s for s in samples if s.id in scored]
    anchoring = anchoring_phase(cfg, out, scored_samples, model_dir, load, judge, labels)
    cells = {sample.id: cell_of(sample) for sample in samples}
    rejudged = extra_judges_phase(cfg, out, selected, extra, labels, cells)
    figures, attention, images = write_outputs(
        cfg,
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
        OmegaConf.to_container(cfg.logger, resolve=True) if "logger" in cfg else {},
        output_dir=out,
        run_name=f"eval-{model_name(model_dir)}-{cfg.split}",
        config=OmegaConf.to_container(cfg, resolve=True),
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
    cfg: DictConfig,
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
    stats = generate_missing(cfg, load, pending, settings, store)
    if stats.skipped:
        listed = ", ".join(record.sample_id for record in stats.skipped)
        log.warning("%d clips skipped (on_error=skip): %s", len(stats.skipped), listed)
    return stats


def check_config(cfg: DictConfig) -> None:
    """Settings that would otherwise only fail after generating (numbers out of range, judging, the policy)."""
    check_numbers(cfg)
    if cfg.explanation_mode not in EXPLANATION_MODES:
        raise EvaluationError(
            f"explanation_mode={cfg.explanation_mode!r} must be one of {', '.join(EXPLANATION_MODES)}"
        )
    if int(cfg.judge_batch_size) < 1:
        raise EvaluationError(f"judge_batch_size={cfg.judge_batch_size} must be at least 1")
    if cfg.on_error not in ("raise", "skip"):
        raise EvaluationError(f"on_error={cfg.on_error!r} must be 'raise' or 'skip'")
    if cfg.attention.get("group_by", "dominant") not in ATTENTION_GROUPS:
        raise EvaluationError(
            f"attention.group_by={cfg.attention.group_by!r} must be one of {', '.join(ATTENTION_GROUPS)}"
        )


def generation_settings(cfg: DictConfig, model_dir: Path) -> GenerationSettings:
    """The ``GenerationSettings`` of an evaluate config, with the attention layer resolved for the model
    (read from its ``config.json``, so resuming needs no model load)."""
    layer = resolve_layer(cfg.attention.layer, llm_layers(model_dir)) if cfg.attention.enabled else None
    return GenerationSettings(
        task=cfg.task,
        max_new_tokens=int(cfg.max_new_tokens),
        temperature=float(cfg.temperature),
        top_p=float(cfg.top_p),
        top_k=int(cfg.top_k),
        seed=int(cfg.seed),
        batch_size=int(cfg.batch_size),
        num_workers=int(cfg.data.get("num_workers", 0)),
        attention=bool(cfg.attention.enabled),
        attention_layer=layer,
        attention_bins=int(cfg.attention.bins),
        mi_key=cfg.mi_key,
    )


def llm_layers(model_dir: Path) -> int:
    """Number of LLM layers of a model folder, from its ``config.json`` (our exports or HumanOmni's)."""
    config = read_config(model_dir)
    llm = config if model_kind(model_dir, config) == "humanomni" else config["omni"]["llm"]
    if "num_hidden_layers" not in llm:
        raise EvaluationError(f"{model_dir}/config.json: no num_hidden_layers; cannot place attention.layer")
    return int(llm["num_hidden_layers"])


def prepare_manifest(cfg: DictConfig) -> Path:
    """The manifest path, building the synthetic corpus or running the dataset adapter on first use."""
    from src.data.sources import prepare_manifest as prepare

    return prepare(cfg.data)


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


def run_settings(cfg: DictConfig, settings: GenerationSettings, model_dir: Path, manifest: Path) -> dict[str, Any]:
    """What decides a completion (stored in ``run.json``; see :mod:`src.evaluation.folders`)."""
    decisive = asdict(settings)
    for key in ("batch_size", "num_workers"):  # prompts are padded alike: these change speed, not outputs
        decisive.pop(key)
    return {
        "model": str(model_dir.resolve()),
        "weights": weight_files(model_dir) if model_dir.is_dir() else {},
        "manifest": str(manifest.resolve()),
        "split": cfg.split,
        "dtype": cfg.dtype,
        **({"preprocess": cfg.preprocess} if cfg.get("preprocess") else {}),  # absent: the model's own
        **decisive,
    }


def load_for_evaluation(cfg: DictConfig, model_dir: Path) -> tuple[LoadedModel, MediaLoader]:
    """The model on ``cfg.device`` in ``cfg.dtype`` and a media loader of its shapes."""
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = None if cfg.dtype is None else DTYPES.get(cfg.dtype)
    if cfg.dtype is not None and dtype is None:
        raise EvaluationError(f"dtype={cfg.dtype!r} must be one of {', '.join(DTYPES)} or null (as stored)")
    loaded = load_model(model_dir, device=device, dtype=dtype)
    attach_feature_cache(
        loaded.model, OmegaConf.to_container(cfg.feature_cache, resolve=True) if "feature_cache" in cfg else None
    )
    loader = MediaLoader.for_model(
        loaded.model.config,
        preprocess=cfg.get("preprocess"),
        cache_dir=cfg.data.get("cache_dir"),
        on_error=cfg.on_error,
        short_clip=cfg.data.get("short_clip", "repeat"),
    )
    return loaded, loader


def generate_missing(
    cfg: DictConfig, load: ModelLoader, pending: list[Sample], settings: GenerationSettings, store: PredictionStore
) -> PredictStats:
    """Generate ``pending`` into ``store`` with the model ``load()`` gives."""
    loaded, loader = load()
    return predict(loaded, pending, loader, settings, on_batch=store.append, progress=bool(cfg.progress_bar))


def first_tag_phase(
    cfg: DictConfig, out: Path, samples: list[Sample], model_dir: Path, load: ModelLoader
) -> dict[str, Any] | None:
    """The first-tag margins of ``samples`` (:mod:`src.analysis.first_tag`), kept in ``first_tag.json`` with the
    weights and samples they came from (a resumed evaluation reuses them; the model is loaded only otherwise).
    None when ``cfg.first_tag`` is off, the prompt is not MIGR's (``task`` other than reasoning) or no sample has
    both modalities."""
    from src.analysis.first_tag import first_tag_margins, first_tag_summary, usable

    clips = usable(samples)
    if not cfg.first_tag or cfg.task != "reasoning" or not clips:
        return None
    key = {"weights": weight_files(model_dir), "samples": [s.id for s in clips]}

    def compute() -> dict[str, dict[str, float]]:
        loaded, loader = load()
        return first_tag_margins(
            loaded.model, loaded.tokenizer, loaded.gate_tokenizer, loader, clips, batch_size=int(cfg.batch_size)
        )

    margins = cached_json(out / FIRST_TAG_NAME, key, compute)
    return first_tag_summary(margins, clips, cfg.mi_key)


def write_outputs(
    cfg: DictConfig,
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
            group_by=cfg.attention.get("group_by", "dominant"),
        )
    attention = summary.to_dict() if summary is not None else None
    reference = reference_correct_ids(cfg.concurrent.reference_predictions)
    figures = compute_figures(
        records, labels, focus=list(cfg.concurrent.focus), reference_correct=reference, attention=summary
    )
    run = {
        "model": printable(model_dir),
        "manifest": printable(manifest),
        "split": cfg.split,
        "task": cfg.task,
        "temperature": cfg.temperature,
        "max_new_tokens": cfg.max_new_tokens,
        "judge": records[0].judge.split("|")[0] if records and records[0].judge else None,
        "explanation_mode": cfg.explanation_mode,
        "concurrent_focus": list(cfg.concurrent.focus),
        "reference_predictions": cfg.concurrent.reference_predictions,
        "generated_now": stats.generated,
        "skipped": [asdict(record) for record in stats.skipped],
        "short_clips": [asdict(clip) for clip in short_clips or []],
    }
    figures = {
        **figures,
        "breakdowns": breakdowns(records, labels, cells or {}, task=cfg.task),
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
    cfg: DictConfig,
    out: Path,
    samples: list[Sample],
    model_dir: Path,
    load: ModelLoader,
    judge: Judge,
    labels: tuple[str, ...],
) -> dict[str, Any] | None:
    """The anchoring probe's summary (:mod:`src.evaluation.anchoring`), its continuations cached in
    ``anchoring.json``; None when ``cfg.anchoring`` is off or the prompt is not MIGR's. Clips without gold
    descriptions are skipped and counted (all of them on a real dataset)."""
    from src.evaluation.anchoring import forced_openings, probe_continuations, probe_rows, summarize_anchoring

    if not cfg.get("anchoring", True) or cfg.task != "reasoning":
        return None
    clips = [s for s in samples if forced_openings(s) is not None]
    skipped = len(samples) - len(clips)
    if not clips:
        return summarize_anchoring([], skipped=skipped)
    key = {
        "weights": weight_files(model_dir),
        "samples": [s.id for s in clips],
        "max_new_tokens": cfg.max_new_tokens,
    }

    def compute() -> dict[str, dict[str, str]]:
        loaded, loader = load()
        return probe_continuations(
            loaded, clips, loader, max_new_tokens=int(cfg.max_new_tokens), batch_size=int(cfg.batch_size)
        )

    continuations = cached_json(out / ANCHORING_NAME, key, compute)
    return summarize_anchoring(probe_rows(clips, continuations, judge, labels), skipped=skipped)


def extra_judge_configs(cfg: DictConfig) -> dict[str, Any]:
    """``extra_judges``: each entry a judge name (``configs/judge/<name>.yaml``) or a full judge config."""
    configs: dict[str, Any] = {}
    for i, entry in enumerate(cfg.get("extra_judges") or []):
        if isinstance(entry, str):
            path = CONFIG_DIR / "judge" / f"{entry}.yaml"
            if not path.exists():
                known = sorted(p.stem for p in (CONFIG_DIR / "judge").glob("*.yaml"))
                raise EvaluationError(
                    f"extra_judges[{i}]={entry!r}: no configs/judge/{entry}.yaml; known: {known}"
                )
            configs[entry] = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        else:
            config = OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else dict(entry)
            if "name" not in config:
                raise EvaluationError(f"extra_judges[{i}]: a judge config needs a `name` (a judge backend)")
            configs[str(config["name"])] = config
    return configs


def extra_judges_phase(
    cfg: DictConfig,
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
        fingerprint = judge_fingerprint(judge, cfg.explanation_mode)
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
            mode=cfg.explanation_mode,
            chunk_size=int(cfg.judge_batch_size),
            on_chunk=persist,
        )
        log.info("extra judge %s: %d explanations judged now, %d reused", name, stats.judged, stats.reused)
        figures[name] = {"judge": fingerprint, "breakdowns": breakdowns(current, labels, cells, task=cfg.task)}
    return figures
