"""The demo pipeline: the stage list of both arms and the final result table.

Folder layout under ``out_dir`` (``runs/demo`` by default)::

    base/            label-only warm-up (modality dropout)            -> base/export
    migr/            MIGR build: importance_synth.csv, sft_manifest.jsonl, baseline_manifest.jsonl, report.md
    migr_sft/  migr_grpo/              the MIGR arm                  -> */export
    baseline_sft/  baseline_grpo/      the visual-first baseline arm -> */export
    eval_migr/  eval_baseline/         evaluations on the test split (metrics.json, report.md, plots)
    timings.json  results.md
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.demo.stages import Stage, as_list, build_stage, evaluate_stage, resumed_path, run_all, train_stage

log = logging.getLogger(__name__)

ARMS = ("migr", "baseline")


def plan(cfg: DictConfig) -> list[Stage]:
    """Every stage of the demo in order (see the module docstring for the folders)."""
    out = Path(cfg.out_dir)
    shrink = bool(cfg.shrink)
    n = int(cfg.shrunk.corpus_n) if shrink else int(cfg.corpus.n)
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
    common = [*as_list(cfg.train), *data, f"seed={int(cfg.seed)}", f"runs_dir={out}"]
    if shrink:
        common += as_list(cfg.shrunk.train)
    grpo_extra = as_list(cfg.shrunk.grpo) if shrink else []

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
            ),
            f"{n} clips",
        ),
        train_stage("base", out / "base", [*as_list(cfg.base), *common]),
        build_stage(out / "migr", [*data, f"model_path={out / 'base' / 'export'}", *as_list(cfg.build)]),
    ]
    for arm in ARMS:
        settings = cfg.arms[arm]
        arm_manifest = out / "migr" / settings.manifest
        sft_dir, grpo_dir = out / f"{arm}_sft", out / f"{arm}_grpo"
        stages.append(
            train_stage(
                f"{arm}_sft",
                sft_dir,
                [
                    *as_list(cfg.sft),
                    *common,
                    f"stage.init_from={out / 'base' / 'export'}",
                    f"stage.train_manifest={arm_manifest}",
                ],
            )
        )
        stages.append(
            train_stage(
                f"{arm}_grpo",
                grpo_dir,
                [
                    *as_list(cfg.grpo),
                    *common,
                    *grpo_extra,
                    f"rewards={settings.rewards}",
                    f"stage.init_from={sft_dir / 'export'}",
                    f"stage.train_manifest={arm_manifest}",
                ],
            )
        )
    evaluate = [
        f"data.manifest={out / 'migr' / 'annotated_manifest.jsonl'}",  # test split with truth + MI annotations
        "data.synth=null",
        f"data.cache_dir={corpus_root / '.cache'}",
        f"seed={int(cfg.seed)}",
        *as_list(cfg.evaluate),
        *(as_list(cfg.shrunk.evaluate) if shrink else []),
    ]
    for arm in ARMS:
        stages.append(
            evaluate_stage(
                f"eval_{arm}", out / f"eval_{arm}", [*evaluate, f"model_path={out / f'{arm}_grpo' / 'export'}"]
            )
        )
    return stages


def _corpus(root: Path, **options) -> None:
    from src.data.synth import ensure_corpus

    ensure_corpus(root, **options)


def run_pipeline(cfg: DictConfig) -> str:
    """Run (or finish) the demo and write ``results.md``; returns the table text."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings = run_all(plan(cfg), out / "timings.json")
    resumed = resumed_path(out / "timings.json")
    table = result_table(out, timings, json.loads(resumed.read_text()) if resumed.exists() else ())
    (out / "results.md").write_text(table)
    return table


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


def result_table(out: Path, timings: dict[str, float], resumed: Sequence[str] = ()) -> str:
    """The markdown result table of both arms, the MI agreement and the time per stage (``*``: resumed)."""
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
        f"Total: {sum(timings.values()) / 60:.1f} min",
    ]
    if resumed:
        lines.append(
            "* resumed after an interruption: the time shown is the resumed part only (the killed attempt's is "
            "not counted)"
        )
    return "\n".join(lines) + "\n"
