"""The MIGR data construction (paper section 3.1, Figure 2) as one command.

    python -m src.migr.build                                  # embedded default: runs/base/export, synthetic corpus
    python -m src.migr.build model_path=/ckpt/HumanOmni-7B data=dfew data.root=/data/DFEW
    python -m src.migr.build model_path=/ckpt/HumanOmni-7B data=emer data.root=/data/EMER/emer.csv \
        fau.mode=new_clips +data@recipe.candidates.dfew=dfew recipe.candidates.dfew.root=/data/DFEW \
        recipe.candidates.dfew.au_dir=/data/DFEW/openface recipe.source=model recipe.model_path=/ckpt/ERV-7B

Steps, each reported:

1. **FAU-based emotion-consistent augmentation** (``fau.enabled``), one of two modes:

   * ``fau.mode=augment`` (the synthetic corpus, default): training clips whose OpenFace AUs show exactly their
     label are added again with FAU-consistent reasoning (ids suffixed ``#fau``);
   * ``fau.mode=new_clips`` (the paper, real data): *new* clips of the candidate datasets
     (``recipe.candidates``, e.g. ``+data@recipe.candidates.dfew=dfew``) whose AUs at the peak frame match
     their label get reasoning from ``recipe.source`` (template | model | endpoint), are kept when the judge
     (``recipe.judge``) reads their label from it, and are merged with the data's (EMER) rows
     (:mod:`src.migr.recipe`; ids ``<dataset>_<clip>``).
2. **Modality Importance** of every clip (audio-only / visual-only / audio-visual predictions, batched
   ``score`` mode by default): ``importance_<dataset>.csv`` and the manifest annotated with
   ``extra["mi_dominant"]``, ``extra["mi"]`` (the manifest's own ``dominant`` field, the ground truth on the
   synthetic corpus, is left as it is).
3. **Reordering** of the training explanations by MI (dominant description first; both orders for ``both``), or
   by the manifest's own ``dominant`` with ``reorder.order_source=manifest`` (an oracle: the synthetic truth):
   ``sft_manifest.jsonl`` (MIGR arm) and, with the same samples in the fixed visual-first order of the source
   corpora, ``baseline_manifest.jsonl`` (baseline arm). Val/test rows are copied with their MI annotations.
4. **MI vs ground truth** where the manifest knows the truly dominant modality (the synthetic corpus): the
   confusion table and agreement, in ``report.md`` and ``build.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from src import atomic
from src.config_check import check_numbers
from src.data.inputs import load_inputs
from src.data.labels import labels_for
from src.data.manifest import Sample, read_manifest, write_manifest
from src.data.media import MediaLoader
from src.data.sources import prepare_manifest
from src.folder_lock import FolderLock
from src.migr.importance import CONDITIONS, ClipImportance, ImportanceEstimator
from src.paths import printable

log = logging.getLogger(__name__)

DOMINANT_VALUES = ("audio", "visual", "both", "none")
FAU_MODES = ("augment", "new_clips")
OUTPUTS = ("sft_manifest.jsonl", "baseline_manifest.jsonl", "annotated_manifest.jsonl", "build.json", "report.md")


def mi_annotations(clip: ClipImportance) -> dict[str, Any]:
    return {
        "audio_only_correct": clip.correct("audio"),
        "visual_only_correct": clip.correct("visual"),
        "audio_visual_correct": clip.correct("audio_visual"),
        "predictions": clip.predictions,
        "score": round(clip.score, 6),
    }


def write_importance_csv(results: list[ClipImportance], path: Path, labels: tuple[str, ...]) -> None:
    """One row per clip: the issue's columns, then the per-label log-probabilities of each condition."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        logprob_columns = [f"logp_{c}_{label}" for c in CONDITIONS for label in labels]
        writer.writerow(
            ["sample_id", "audio_only_correct", "visual_only_correct", "audio_visual_correct", "dominant", "score"]
            + [f"pred_{c}" for c in CONDITIONS]
            + logprob_columns
        )
        for r in results:
            writer.writerow(
                [
                    r.sample_id,
                    int(r.correct("audio")),
                    int(r.correct("visual")),
                    int(r.correct("audio_visual")),
                    r.dominant,
                    f"{r.score:.6f}",
                ]
                + [r.predictions[c] for c in CONDITIONS]
                + [f"{r.logprobs[c][label]:.6f}" if r.logprobs else "" for c in CONDITIONS for label in labels]
            )


def confusion_vs_truth(samples: list[Sample], mi: dict[str, str]) -> dict[str, Any] | None:
    """Estimated vs ground-truth dominant modality (None when the manifest has no ground truth)."""
    pairs = [(s.dominant, mi[s.id]) for s in samples if s.dominant is not None and s.id in mi]
    if not pairs:
        return None
    truths = [t for t in ("audio", "visual", "both") if any(p[0] == t for p in pairs)]
    table = {t: {e: sum(1 for p in pairs if p == (t, e)) for e in DOMINANT_VALUES} for t in truths}
    agreement = sum(1 for t, e in pairs if t == e) / len(pairs)
    # chance: agreement of a guess drawn from the estimate's own distribution, independent of the truth
    truth_share = Counter(t for t, _ in pairs)
    estimate_share = Counter(e for _, e in pairs)
    chance = sum(truth_share[k] * estimate_share[k] for k in truth_share) / len(pairs) ** 2
    single = [(t, e) for t, e in pairs if t in ("audio", "visual")]
    single_agreement = sum(1 for t, e in single if t == e) / len(single) if single else float("nan")
    return {
        "table": table,
        "agreement": agreement,
        "chance": chance,
        "agreement_single_modality": single_agreement,
        "n": len(pairs),
    }


def _markdown_confusion(confusion: dict[str, Any]) -> str:
    lines = ["| truth \\ MI | " + " | ".join(DOMINANT_VALUES) + " |", "|---|" + "---:|" * len(DOMINANT_VALUES)]
    for truth, row in confusion["table"].items():
        lines.append(f"| {truth} | " + " | ".join(str(row[e]) for e in DOMINANT_VALUES) + " |")
    lines.append("")
    lines.append(
        f"Agreement {confusion['agreement']:.1%} (n={confusion['n']}; chance for this estimate's distribution "
        f"{confusion['chance']:.1%}); on audio- or visual-dominant clips {confusion['agreement_single_modality']:.1%}."
    )
    return "\n".join(lines)


def build(cfg: DictConfig) -> dict[str, Any]:
    """Run the whole construction as ``cfg`` (``configs/build.yaml``) says; returns the summary figures.

    The output folder is owned while the build runs: a second build into it fails at once naming the first.
    """
    check_numbers(cfg)  # data.* settings (batch sizes, ...) in range
    with FolderLock(cfg.out_dir):
        return _build(cfg)


def _build(cfg: DictConfig) -> dict[str, Any]:
    from src.migr.fau import fau_filter
    from src.migr.reorder import fixed_order_all, reorder_all
    from src.models.checkpoint import load_model, resolve_model_folder
    from src.models.feature_cache import attach_feature_cache

    started = time.perf_counter()
    order_source = cfg.reorder.get("order_source", "mi")
    if order_source not in ("mi", "manifest"):
        raise ValueError(f"reorder.order_source={order_source!r}: expected mi or manifest")
    mode = cfg.fau.get("mode", "augment")
    if mode not in FAU_MODES:
        raise ValueError(f"fau.mode={mode!r}: expected one of {', '.join(FAU_MODES)}")
    if cfg.fau.enabled and mode == "new_clips" and not cfg.recipe.get("candidates"):
        raise ValueError(
            "fau.mode=new_clips needs candidate clips: recipe.candidates is empty; add a dataset, e.g. "
            "+data@recipe.candidates.dfew=dfew recipe.candidates.dfew.root=/data/DFEW "
            "recipe.candidates.dfew.au_dir=/data/DFEW/openface"
        )
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = prepare_manifest(cfg.data)
    read_manifest(manifest, check_media=False)  # the manifest's own errors before the model is loaded
    splits = set(cfg.splits)

    folder = resolve_model_folder(cfg.model_path, cfg.runs_dir, default_stage="base")
    loaded = load_model(folder)
    feature_cache = attach_feature_cache(
        loaded.model, OmegaConf.to_container(cfg.feature_cache, resolve=True) if "feature_cache" in cfg else None
    )
    on_error = cfg.data.get("on_error", "raise")
    loader = MediaLoader.for_model(
        loaded.model.config,
        preprocess=cfg.get("preprocess"),
        cache_dir=cfg.data.get("cache_dir"),
        on_error=on_error,
        short_clip=cfg.data.get("short_clip", "repeat"),
    )
    inputs = load_inputs(
        manifest, on_error=on_error, loader=loader, select=lambda rows: [s for s in rows if s.split in splits]
    )
    usable = inputs.samples
    if not usable:
        raise ValueError(f"{manifest}: no usable clip in splits {sorted(splits)} (cfg.splits)")
    dataset = usable[0].dataset

    # 1. FAU: copies of the training clips (augment) or new clips of the candidate datasets (new_clips)
    train = [s for s in usable if s.split == "train"]
    options = {
        k: v
        for k, v in OmegaConf.to_container(cfg.fau, resolve=True).items()
        if k not in ("enabled", "mode") and not (k == "method" and v is None)
    }
    fau_summary: dict[str, Any] = {"enabled": bool(cfg.fau.enabled), "mode": mode}
    augmented: list[Sample] = []
    new: list[Sample] = []
    recipe_summary: dict[str, Any] | None = None
    if cfg.fau.enabled and mode == "augment":
        result = fau_filter(train, dataset=dataset, **options)
        augmented = [replace(s, id=f"{s.id}#fau", extra={**s.extra, "source_id": s.id}) for s in result.kept]
        fau_summary.update(kept=len(result.kept), rejected=len(result.rejected), table=result.format_table())
        log.info(
            "FAU filter: %d of %d training clips kept\n%s", len(result.kept), len(train), result.format_table()
        )
    elif cfg.fau.enabled:
        options.pop("think", None)  # the generated reasoning is the think line
        new, recipe_summary = _new_clips(cfg, train, options, loaded, loader)
        fau_summary.update(
            kept=recipe_summary["counts"]["fau_kept"], rejected=recipe_summary["counts"]["fau_rejected"]
        )

    # 2. Modality Importance of every clip
    estimator = ImportanceEstimator(
        loaded.model,
        loaded.tokenizer,
        loaded.gate_tokenizer,
        loader,
        task=cfg.importance.task,
        batch_size=int(cfg.importance.batch_size),
        both_right=cfg.importance.both_right,
        both_wrong=cfg.importance.both_wrong,
        max_new_tokens=int(cfg.importance.max_new_tokens),
    )
    mi_started = time.perf_counter()
    results: list[ClipImportance] = []
    clips = [*usable, *new]
    for name in dict.fromkeys(s.dataset for s in clips):  # one label set per MI batch
        part = estimator.estimate([s for s in clips if s.dataset == name], mode=cfg.importance.mode)
        write_importance_csv(part, out / f"importance_{name}.csv", labels_for(name))
        results += part
    mi_seconds = time.perf_counter() - mi_started
    if feature_cache is not None:
        feature_cache.log_summary("end of Modality Importance")
    by_id = {r.sample_id: r for r in results}

    def annotate(sample: Sample) -> Sample:
        clip = by_id[sample.extra.get("source_id", sample.id)]
        return replace(sample, extra={**sample.extra, "mi_dominant": clip.dominant, "mi": mi_annotations(clip)})

    annotated = [annotate(s) for s in usable]
    write_manifest(annotated, out / "annotated_manifest.jsonl")

    # 3. Reordering (MIGR arm) and the fixed visual-first order (baseline arm) of the same training samples
    train_rows = [annotate(s) for s in (*train, *augmented, *new)]
    # the oracle order reads the manifest's ground truth; a row without one is excluded and listed (no_dominant)
    order_by_id = {s.id: s.extra["mi_dominant"] if order_source == "mi" else s.dominant for s in train_rows}
    migr = reorder_all(train_rows, order_by_id, both=cfg.reorder.both, partial=cfg.reorder.partial)
    baseline = fixed_order_all(train_rows, first=cfg.baseline_first, partial=cfg.reorder.partial)
    held_out = [s for s in annotated if s.split != "train"]
    write_manifest([*migr.samples, *held_out], out / "sft_manifest.jsonl")
    write_manifest([*baseline.samples, *held_out], out / "baseline_manifest.jsonl")

    # 4. MI against the ground truth, and the report
    confusion = confusion_vs_truth(usable, {r.sample_id: r.dominant for r in results})
    test_confusion = confusion_vs_truth(
        [s for s in usable if s.split == "test"], {r.sample_id: r.dominant for r in results}
    )
    accuracy = {c: sum(r.correct(c) for r in results) / max(1, len(results)) for c in CONDITIONS}
    summary = {
        "model": printable(folder),
        "manifest": printable(manifest),
        "clips": len(usable),
        "skipped": len(inputs.report),
        "skipped_by_reason": inputs.report.counts(),
        "media_report": inputs.report.summary(),
        "mode": cfg.importance.mode,
        "accuracy_by_condition": accuracy,
        "mi_distribution": dict(Counter(r.dominant for r in results)),
        "mi_vs_truth": confusion,
        "mi_vs_truth_test": test_confusion,
        "fau": {k: v for k, v in fau_summary.items() if k != "table"},
        "recipe": recipe_summary,
        "train_rows": len(train_rows),
        "order_source": order_source,
        "reorder": migr.counts,
        "reorder_issues": len(migr.issues),
        "baseline": baseline.counts,
        "mi_seconds": mi_seconds,
        "seconds": time.perf_counter() - started,
    }
    atomic.write_text(
        out / "report.md", _report(summary, fau_summary, migr, confusion, test_confusion, recipe_summary)
    )
    atomic.write_text(out / "build.json", json.dumps(summary, indent=1))
    log.info("MIGR build written to %s", out)
    return summary


def _new_clips(
    cfg: DictConfig, emer: list[Sample], fau: dict[str, Any], loaded, loader: MediaLoader
) -> tuple[list[Sample], dict[str, Any]]:
    """``fau.mode=new_clips``: the candidate datasets' new clips with checked reasoning (:mod:`src.migr.recipe`).

    Returns the new training rows (ids ``<dataset>_<clip>``, media checked with the build's loader) and the
    summary written to ``build.json`` (``recipe``: the count of each step, source, judge, table).
    """
    from src.judges.factory import build_judge
    from src.migr.recipe import select_new_clips

    recipe = cfg.recipe
    candidates: list[Sample] = []
    for name, data in recipe.candidates.items():
        manifest = prepare_manifest(data)
        rows = [s for s in read_manifest(manifest, check_media=False) if s.split == "train"]
        if not rows:
            raise ValueError(f"recipe.candidates.{name}: {manifest} has no train rows")
        candidates += rows
    source = _reasoning_source(cfg, loaded, loader)
    judge = build_judge(recipe.judge)
    selection = select_new_clips(emer, candidates, source=source, judge=judge, fau=fau)
    counts = dict(selection.counts)
    new: list[Sample] = []
    for sample in selection.new:
        if loader.load(sample).skip is not None:  # on_error=skip; "raise" has raised
            counts["media_skipped"] += 1
            continue
        extra = {**sample.extra, "clip_id": sample.id}
        new.append(replace(sample, id=f"{sample.dataset}_{sample.id}", split="train", extra=extra))
    counts["new"], counts["merged"] = len(new), len(emer) + len(new)
    table = "\n".join(f"{name:<17} {value}" for name, value in counts.items())
    summary = {"source": source.name, "judge": judge.name, "counts": counts, "table": table}
    summary["rejected"] = [list(item) for item in selection.rejected]
    return new, summary


def _reasoning_source(cfg: DictConfig, loaded, loader: MediaLoader):
    """The ``recipe.source`` writer: template, a model folder (default: the build's model), an endpoint."""
    from src.migr.recipe import SOURCES, EndpointSource, ModelSource, TemplateSource

    recipe = cfg.recipe
    name = recipe.source
    if name not in SOURCES:
        raise ValueError(f"recipe.source={name!r}: expected one of {', '.join(SOURCES)}")
    if name == "template":
        return TemplateSource()
    if name == "endpoint":
        from src.judges.openai import OpenAIJudge

        options = OmegaConf.to_container(recipe.endpoint, resolve=True)
        prompt = options.pop("prompt", None)
        client = OpenAIJudge(**options)
        return EndpointSource(client, prompt) if prompt else EndpointSource(client)
    if recipe.get("model_path"):
        from src.models.checkpoint import load_model, resolve_model_folder

        loaded = load_model(resolve_model_folder(recipe.model_path, cfg.runs_dir, default_stage="sft"))
        loader = MediaLoader.for_model(
            loaded.model.config,
            cache_dir=cfg.data.get("cache_dir"),
            on_error=loader.on_error,
            short_clip=cfg.data.get("short_clip", "repeat"),
        )
    return ModelSource(
        loaded.model,
        loaded.tokenizer,
        loaded.gate_tokenizer,
        loader,
        batch_size=int(recipe.batch_size),
        max_new_tokens=int(recipe.max_new_tokens),
        temperature=float(recipe.temperature),
        seed=int(cfg.get("seed", 0)),
    )


def _report(summary, fau_summary, migr, confusion, test_confusion, recipe_summary) -> str:
    acc = summary["accuracy_by_condition"]
    lines = [
        "# MIGR data construction",
        "",
        f"Model `{summary['model']}` on `{summary['manifest']}`: {summary['clips']} clips "
        f"({summary['skipped']} skipped), MI mode `{summary['mode']}` ({summary['mi_seconds']:.1f} s).",
        "",
        "## Prediction accuracy per condition",
        "",
        "| audio only | visual only | audio-visual |",
        "|---:|---:|---:|",
        f"| {acc['audio']:.1%} | {acc['visual']:.1%} | {acc['audio_visual']:.1%} |",
        "",
        f"MI distribution: {summary['mi_distribution']}",
        "",
    ]
    if summary.get("media_report"):
        lines += ["## Media problems", "", "```", summary["media_report"], "```", ""]
    if fau_summary.get("enabled") and recipe_summary is None:
        lines += ["## FAU filter (training clips)", "", "```", fau_summary.get("table", ""), "```", ""]
    if recipe_summary is not None:
        lines += [
            f"## New training clips (FAU peak frame, {recipe_summary['source']} reasoning, "
            f"{recipe_summary['judge']} judge)",
            "",
            "```",
            recipe_summary["table"],
            "```",
            "",
        ]
    source = "the manifest's own dominant modality" if summary["order_source"] == "manifest" else "MI"
    lines += [f"## Reordering (training samples, order by {source})", "", "```", migr.format_table(), "```", ""]
    if confusion is not None:
        lines += ["## Modality Importance vs ground truth (all clips)", "", _markdown_confusion(confusion), ""]
    if test_confusion is not None:
        lines += ["## ... on the test split", "", _markdown_confusion(test_confusion), ""]
    return "\n".join(lines)


@hydra.main(config_path="../../configs", config_name="build", version_base="1.3")
def main(cfg: DictConfig) -> None:
    summary = build(cfg)
    confusion = summary.get("mi_vs_truth")
    if confusion is not None:
        print(f"MI vs truth: agreement {confusion['agreement']:.1%} (chance {confusion['chance']:.1%})")
    print(f"written: {cfg.out_dir}")


if __name__ == "__main__":
    main()
