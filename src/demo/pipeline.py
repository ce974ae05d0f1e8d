"""The demo pipeline: the stage list of both arms and the final result table.

Folder layout under ``out_dir`` (``runs/demo`` by default)::

    base/            label-only warm-up (modality dropout)            -> base/export
    migr/            MIGR build: importance_synth.csv, sft_manifest.jsonl, baseline_manifest.jsonl, report.md
    migr_sft/  migr_grpo/              the MIGR arm                  -> */export
    baseline_sft/  baseline_grpo/      the visual-first baseline arm -> */export
    eval_migr/  eval_baseline/         evaluations on the test split (metrics.json, report.md, plots)
    timings.json  started.json  resumed.json  results.md       the ledger (src.demo.stages.Ledger), the table
    timings_<arm>.json  started_<arm>.json  resumed_<arm>.json   each arm's own ledger (merged into the above)
    pipeline.yaml  migr.log  baseline.log                        when the arms run side by side (src.demo.arms)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.demo.allocator import preload_library
from src.demo.arms import Task, log_path, run_arms_side_by_side, threads_per_arm
from src.demo.stages import Ledger, Stage, as_list, build_stage, evaluate_stage, run_all, train_stage

log = logging.getLogger(__name__)

ARMS = ("migr", "baseline")


def plan(cfg: DictConfig, *, corpus_root: Path | None = None) -> list[Stage]:
    """Every stage of the demo in order (see the module docstring for the folders).

    The arms are ``cfg.arms`` (each: the build folder and manifest it trains on, its GRPO reward set, optionally
    extra GRPO overrides ``grpo`` and ``sft_of``: another, earlier arm whose SFT export its GRPO starts from, so
    that it has no SFT stage of its own); the builds are ``cfg.builds`` (folder -> extra build overrides; by
    default the one ``migr`` build). ``corpus_root``: a corpus folder shared with other runs (the study's one
    corpus per regime); by default ``corpus.root``, or ``<out_dir>/corpus`` when shrunk.
    """
    out = Path(cfg.out_dir)
    shrink = bool(cfg.shrink)
    n = int(cfg.shrunk.corpus_n) if shrink else int(cfg.corpus.n)
    if corpus_root is None:
        corpus_root = Path(cfg.corpus.root) if not shrink else out / "corpus"
    manifest = corpus_root / "manifest.jsonl"
    data = [
        f"data.manifest={manifest}",
        f"data.synth.n={n}",
        f"data.synth.seed={int(cfg.corpus.seed)}",
        f"data.synth.variation={float(cfg.corpus.variation)}",
        f"data.synth.phrasings={cfg.corpus.phrasings if cfg.corpus.phrasings is not None else 'null'}",
        f"data.cache_dir={corpus_root / '.cache'}",
    ]
    regime = str(cfg.corpus.get("regime", "faint"))
    if regime != "faint":  # the default regime's commands (and so its stage fingerprints) stay as they were
        data.append(f"++data.synth.regime={regime}")
    # Every stage (both arms too) shares one frozen-tower feature cache, ${out_dir}/feature_cache (run_pipeline
    # exports MIGR_FEATURE_CACHE_DIR); only turning it off changes the stages' commands (and so their fingerprints).
    features = [] if bool(cfg.cache_tower_features) else ["feature_cache.enabled=false"]
    media = [] if bool(cfg.get("cache_media", True)) else ["++data.media_memory_mb=0"]  # likewise
    common = [*as_list(cfg.train), *data, *features, *media, f"seed={int(cfg.seed)}", f"runs_dir={out}"]
    if shrink:
        common += as_list(cfg.shrunk.train)
    grpo_extra = as_list(cfg.shrunk.grpo) if shrink else []

    builds = cfg.get("builds") or {"migr": []}
    if "migr" not in builds:
        raise ValueError(f"builds: {sorted(builds)} has no `migr` (the evaluations read its annotated test split)")
    stages = [
        Stage(
            "corpus",
            corpus_root / "corpus.json",
            lambda: _corpus(
                corpus_root,
                n=n,
                seed=int(cfg.corpus.seed),
                variation=float(cfg.corpus.variation),
                phrasings=cfg.corpus.phrasings,
                regime=regime,
            ),
            f"{n} clips",
        ),
        train_stage("base", out / "base", [*as_list(cfg.base), *common]),
    ]
    # no FAU copy credits a face that is not the dominant modality (kept as it was for faint)
    fau_think = ["fau.think=dominant"] if regime == "conflict" else []
    stages += [
        build_stage(
            out / name,
            [
                *data,
                *features,
                f"model_path={out / 'base' / 'export'}",
                *as_list(cfg.build),
                *fau_think,
                *as_list(extra),
            ],
            name=f"{name}_build",
        )
        for name, extra in builds.items()
    ]
    evaluate = [
        f"data.manifest={out / 'migr' / 'annotated_manifest.jsonl'}",  # test split with truth + MI annotations
        "data.synth=null",
        f"data.cache_dir={corpus_root / '.cache'}",
        f"seed={int(cfg.seed)}",
        *features,
        *as_list(cfg.evaluate),
        *(as_list(cfg.shrunk.evaluate) if shrink else []),
    ]
    for arm, settings in cfg.arms.items():
        build = settings.get("build") or "migr"
        if build not in builds:
            raise ValueError(f"arms.{arm}.build={build!r}: no such build (builds: {sorted(builds)})")
        arm_manifest = out / build / settings.manifest
        sft_of = settings.get("sft_of")
        if sft_of is not None and (
            sft_of not in cfg.arms or list(cfg.arms).index(sft_of) > list(cfg.arms).index(arm)
        ):
            raise ValueError(f"arms.{arm}.sft_of={sft_of!r}: expected an arm listed before {arm!r}")
        sft_dir, grpo_dir = out / f"{sft_of or arm}_sft", out / f"{arm}_grpo"
        sft = [
            *as_list(cfg.sft),
            *common,
            f"stage.init_from={out / 'base' / 'export'}",
            f"stage.train_manifest={arm_manifest}",
        ]
        grpo = [
            *as_list(cfg.grpo),
            *common,
            *grpo_extra,
            f"rewards={settings.rewards}",
            *as_list(settings.get("grpo")),
            f"stage.init_from={sft_dir / 'export'}",
            f"stage.train_manifest={arm_manifest}",
        ]
        if sft_of is None:
            stages.append(replace(train_stage(f"{arm}_sft", sft_dir, sft), arm=arm))
        stages += [
            replace(train_stage(f"{arm}_grpo", grpo_dir, grpo), arm=arm),
            replace(
                evaluate_stage(
                    f"eval_{arm}", out / f"eval_{arm}", [*evaluate, f"model_path={grpo_dir / 'export'}"]
                ),
                arm=arm,
            ),
        ]
    return stages


def _corpus(root: Path, **options) -> None:
    from src.data.synth import ensure_corpus

    ensure_corpus(root, **options)


def run_pipeline(cfg: DictConfig) -> str:
    """Run (or finish) the demo and write ``results.md``; returns the table text.

    The shared stages run here; the arms then run side by side in worker processes (``arms_in_parallel``,
    :mod:`src.demo.arms`) or one after the other in this process. With ``seeds`` (a list) the whole pipeline runs
    once per seed and the table gives the spread over the seeds (:mod:`src.demo.seeds`).
    """
    if cfg.get("seeds"):
        from src.demo.seeds import run_sweep

        return run_sweep(cfg, run_pipeline, _arm_figures, ROWS, ARMS)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # every stage, workers too, share the run's cache; the caller's environment is restored afterwards (a caller
    # running stages of its own later must not find this run's cache)
    with _environment(MIGR_FEATURE_CACHE_DIR=str((out / "feature_cache").resolve())):
        return _run_one(cfg, out)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore what was there (or its absence)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_one(cfg: DictConfig, out: Path) -> str:
    stages = plan(cfg)
    tasks = arm_tasks(cfg, stages)
    ledger = Ledger(out)
    threads = threads_per_arm(cfg.arms_in_parallel, len(tasks))
    # read only when there are workers to give it to; a bad setting fails here, before any stage
    preload = None if threads is None else preload_library(cfg.worker_allocator)
    began = time.perf_counter()
    run_all([s for s in stages if s.arm is None], ledger)
    if threads is None:  # each arm keeps its own ledger either way, so either way can finish the other's run
        for task in tasks.values():
            run_all(list(task.stages), task.ledger)
    elif not all(s.done for s in stages):
        config_file = out / "pipeline.yaml"
        OmegaConf.save(cfg, config_file, resolve=True)
        run_arms_side_by_side(config_file, list(tasks.values()), threads=threads, preload=preload)
    arm_stages = {arm: list(task.stages) for arm, task in tasks.items()}
    _merge_arm_ledgers(ledger, arm_stages)
    log.info("pipeline finished in %.1f min (this invocation)", (time.perf_counter() - began) / 60)
    recorded = ledger.read("timings")  # a stage done by other means (outputs copied in) has no time
    timings = {s.name: recorded[s.name] for s in stages if s.name in recorded}
    side_by_side = {arm: [s.name for s in arm_stages[arm]] for arm in ARMS} if threads else None
    table = result_table(out, timings, ledger.read("resumed"), side_by_side)
    (out / "results.md").write_text(table)
    return table


def arm_tasks(cfg: DictConfig, stages: list[Stage] | None = None) -> dict[str, Task]:
    """Each arm's stages as a worker task (its own ledger and log), after the shared stages and, for an arm with
    ``sft_of``, that arm's SFT."""
    out = Path(cfg.out_dir)
    stages = plan(cfg) if stages is None else stages
    shared = [s for s in stages if s.arm is None]
    by_name = {s.name: s for s in stages}
    tasks = {}
    for arm in dict.fromkeys(s.arm for s in stages if s.arm is not None):
        sft_of = cfg.arms[arm].get("sft_of") if "arms" in cfg else None
        needs = [*shared, *([by_name[f"{sft_of}_sft"]] if sft_of else [])]
        own = [s for s in stages if s.arm == arm]
        tasks[arm] = Task(arm, own, Ledger(out, f"_{arm}"), log_path(out, arm), needs)
    return tasks


def _merge_arm_ledgers(ledger: Ledger, arm_stages: dict[str, list[Stage]]) -> None:
    """Copy what each arm's worker recorded into the pipeline's own ledger (timings in stage order)."""
    timings, resumed = ledger.read("timings"), ledger.read("resumed")
    for arm, stages in arm_stages.items():
        arm_ledger = Ledger(ledger.folder, f"_{arm}")
        arm_timings = arm_ledger.read("timings")
        timings.update({s.name: arm_timings[s.name] for s in stages if s.name in arm_timings})
        resumed += [name for name in arm_ledger.read("resumed") if name not in resumed]
    ledger.write("timings", timings)
    if resumed:
        ledger.write("resumed", resumed)


FIRST_TAG = "first_tag/audio_visual"  # flat figures of the first-tag margin under the audio-visual prompt
ROWS = (
    ("WAR", "war"),
    ("UAR", "uar"),
    ("EEA", "eea"),
    ("EPC", "epc"),
    ("FCR", "fcr"),
    ("R-wrong/A-right (all)", "r_wrong_a_right"),
    ("R-wrong/A-right (among correct)", "r_wrong_a_right_among_correct"),
    ("opens with the truly dominant modality", "dominant_first"),
    ("opens with the MI-dominant modality", "mi_dominant_first"),
    ("well-formed explanations", "format/well_formed"),
)


def _arm_figures(out: Path, arm: str) -> dict[str, Any]:
    from src.evaluation.figures import flat_figures

    figures = json.loads((out / f"eval_{arm}" / "metrics.json").read_text())
    flat = flat_figures(figures)
    attention = figures.get("attention") or {}
    flat["attention_drift"] = attention.get("drift_all", attention.get("drift", {}).get("all"))
    return flat


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{100 * value:.1f}" if isinstance(value, float) else str(value)


def _total(timings: dict[str, float], arms_side_by_side: Mapping[str, Sequence[str]] | None) -> str:
    total = sum(timings.values()) / 60
    if not arms_side_by_side:
        return f"Total: {total:.1f} min"
    arm_minutes = {
        arm: sum(timings.get(name, 0.0) for name in names) / 60 for arm, names in arms_side_by_side.items()
    }
    in_arms = {name for names in arms_side_by_side.values() for name in names}
    shared = sum(seconds for name, seconds in timings.items() if name not in in_arms) / 60
    return (
        f"Total: {shared + max(arm_minutes.values()):.1f} min (shared stages {shared:.1f} min, then the arms side by "
        f"side: "
        + ", ".join(f"{arm} {minutes:.1f} min" for arm, minutes in arm_minutes.items())
        + f"; {total:.1f} min of stage time in all)"
    )


def result_table(
    out: Path,
    timings: dict[str, float],
    resumed: Sequence[str] = (),
    arms_side_by_side: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The markdown result table of both arms, the MI agreement and the time per stage (``*``: resumed).

    ``arms_side_by_side`` (arm -> its stage names) when the arms ran at once: the total is then the shared
    stages plus the longest arm.
    """
    arms = {arm: _arm_figures(out, arm) for arm in ARMS}
    lines = ["| metric (%) | MIGR | visual-first baseline |", "|---|---:|---:|"]
    for title, key in ROWS:
        lines.append(f"| {title} | {_cell(arms['migr'].get(key))} | {_cell(arms['baseline'].get(key))} |")
    drift = [arms[a].get("attention_drift") for a in ARMS]
    lines.append(
        "| attention drift (generated-text share slope) | "
        + " | ".join("n/a" if d is None else f"{d:+.3f}" for d in drift)
        + " |"
    )
    margins = [tuple(arms[a].get(f"{FIRST_TAG}/{group}") for group in ("audio", "visual")) for a in ARMS]
    lines.append(
        "| first-tag margin log p(aud) - log p(vis): audio- / visual-dominant clips | "
        + " | ".join("n/a" if None in pair else f"{pair[0]:+.2f} / {pair[1]:+.2f}" for pair in margins)
        + " |"
    )
    build = json.loads((out / "migr" / "build.json").read_text())
    confusion = build.get("mi_vs_truth_test") or build.get("mi_vs_truth") or {}
    accuracy = build["accuracy_by_condition"]
    lines += [
        "",
        "Modality Importance (base model, test split): agreement with the true dominant modality "
        f"{_cell(confusion.get('agreement'))}% (chance for its distribution {_cell(confusion.get('chance'))}%); "
        f"base-model accuracy audio-only {_cell(accuracy['audio'])}%, visual-only {_cell(accuracy['visual'])}%, "
        f"audio-visual {_cell(accuracy['audio_visual'])}% (all clips).",
        "",
        "Time per stage (s): "
        + ", ".join(f"{name} {seconds:.0f}{'*' if name in resumed else ''}" for name, seconds in timings.items()),
        _total(timings, arms_side_by_side),
    ]
    if resumed:
        lines.append(
            "* resumed after an interruption: the time shown is the resumed part only (the killed attempt's is "
            "not counted)"
        )
    return "\n".join(lines) + "\n"
