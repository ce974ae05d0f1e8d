"""The study's analysis: ``study.md``, ``study.json`` and ``forest.png`` from every regime x seed x arm evaluation.

Every figure is recomputed from the evaluations' ``predictions.jsonl`` with the evaluation's own code
(:func:`src.evaluation.figures.compute_figures`) on subsets of the test clips, so that every endpoint exists
for every scope:

- ``all``: every test clip; ``conflict``: clips whose non-dominant cue conflicts (``extra.synth.cue`` of the
  build's annotated manifest); ``<dominant>/<cue>``: each (dominant modality, non-dominant cue) cell;
- each of them over all explanations and over the well-formed ones only (``... | well-formed``);
- for both judges: the evaluation's keyword judge and the embedding judge that re-judged the same predictions.

Paired over seeds: an arm's figure minus the baseline's of the same regime and seed (both share the seed's base
model, build and corpus), its mean and 95% t-interval (:func:`src.demo.seeds.t_interval`) over the seeds where
both are defined (a cell with no clip, or no correct answer, has no figure; ``n`` says how many seeds count).
An arm whose mean well-formed share on the test split is below ``format_threshold`` is flagged as failed on
format (docs/study_protocol.md). The anchoring probe's figures are read from each evaluation's ``metrics.json``
(key ``anchoring``) when present and reported as missing otherwise.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from src.demo.seeds import t_interval

JUDGES = ("keywords", "embedding")
PRIMARY = (("r_wrong_a_right_among_correct", "R-wrong/A-right among correct"), ("epc", "EPC"))
SECONDARY = (
    ("war", "WAR"),
    ("uar", "UAR"),
    ("eea", "EEA"),
    ("fcr", "FCR"),
    ("r_wrong_a_right", "R-wrong/A-right (all)"),
    ("dominant_first", "opens with the truly dominant modality"),
    ("mi_dominant_first", "opens with the MI-dominant modality"),
    ("format/well_formed", "well-formed explanations"),
)
ENDPOINTS = (*PRIMARY, *SECONDARY)
WELL_FORMED = " | well-formed"
FOREST_ENDPOINTS = ("r_wrong_a_right_among_correct", "epc", "war", "format/well_formed")

# per regime -> arm -> seed -> judge -> scope -> flat figures
Figures = dict[str, dict[str, dict[int, dict[str, dict[str, dict[str, float]]]]]]


def scoped_figures(records: Sequence[Any], labels: Sequence[str], cue_of: Mapping[str, str | None]) -> dict:
    """The flat figures of every scope (see the module docstring) of one evaluation's records."""
    from src.evaluation.figures import compute_figures, flat_figures

    scopes: dict[str, list[Any]] = {"all": list(records)}
    scopes["conflict"] = [r for r in records if cue_of.get(r.id) == "conflict"]
    for record in records:
        scopes.setdefault(f"{record.dominant}/{cue_of.get(record.id) or 'cue n/a'}", []).append(record)
    result = {}
    for scope, members in scopes.items():
        for suffix, subset in (("", members), (WELL_FORMED, [r for r in members if r.well_formed])):
            if subset:
                result[scope + suffix] = flat_figures(compute_figures(subset, labels))
    return result


def anchoring_figures(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric leaves of ``metrics["anchoring"]`` (the anchoring probe) as ``anchoring/<path>``; {} when absent."""
    flat: dict[str, float] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            flat[path] = float(node)

    walk(metrics.get("anchoring") or {}, "anchoring")
    return flat


def collect(units: Sequence[Any]) -> Figures:
    """Every finished evaluation's scoped figures per regime, arm, seed and judge (see :data:`Figures`)."""
    from src.data.labels import labels_for
    from src.data.manifest import read_manifest
    from src.evaluation.predictions import PredictionStore

    figures: Figures = {}
    for unit in units:
        annotated = unit.out / "migr" / "annotated_manifest.jsonl"
        cue_of = (
            {s.id: ((s.extra.get("synth") or {}).get("cue")) for s in read_manifest(annotated)}
            if annotated.exists()
            else {}
        )
        for arm in unit.cfg.arms:
            for judge, folder in (("keywords", f"eval_{arm}"), ("embedding", f"eval_{arm}_embedding")):
                if not (unit.out / folder / "metrics.json").exists():
                    continue
                records = PredictionStore(unit.out / folder / "predictions.jsonl").load().records
                if not records:
                    continue
                scoped = scoped_figures(records, labels_for(records[0].dataset), cue_of)
                metrics = json.loads((unit.out / folder / "metrics.json").read_text())
                scoped["all"].update(anchoring_figures(metrics))
                seeds = figures.setdefault(unit.regime, {}).setdefault(arm, {})
                seeds.setdefault(unit.seed, {})[judge] = scoped
    return figures


def paired_summary(arm: Mapping[int, float | None], baseline: Mapping[int, float | None]) -> dict[str, Any]:
    """Mean ± sd of ``arm`` over its seeds, and the paired difference from ``baseline`` (mean, 95% t-interval)
    over the seeds where both are defined."""
    values = [v for v in arm.values() if _defined(v)]
    pairs = [(arm[s], baseline[s]) for s in arm if s in baseline and _defined(arm[s]) and _defined(baseline[s])]
    summary: dict[str, Any] = {
        "n": len(values),
        "mean": statistics.fmean(values) if values else None,
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "n_paired": len(pairs),
        "difference": None,
        "low": None,
        "high": None,
    }
    if pairs:
        mean, half = t_interval([a - b for a, b in pairs])
        summary["difference"] = mean
        if half == half:
            summary["low"], summary["high"] = mean - half, mean + half
    return summary


def _defined(value: Any) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def series(figures: Figures, regime: str, arm: str, judge: str, scope: str, key: str) -> dict[int, float | None]:
    """The figure ``key`` of ``arm`` per seed (None where the seed has no such figure)."""
    return {
        seed: per_judge.get(judge, {}).get(scope, {}).get(key)
        for seed, per_judge in figures.get(regime, {}).get(arm, {}).items()
    }


def summarize(figures: Figures) -> dict[str, Any]:
    """Every (regime, judge, scope, endpoint, arm) summary, as study.json stores it."""
    result: dict[str, Any] = {}
    for regime, arms in figures.items():
        scopes = sorted({scope for a in arms.values() for j in a.values() for f in j.values() for scope in f})
        keys = list(dict.fromkeys([k for k, _ in ENDPOINTS] + sorted(_anchoring_keys(arms))))
        for judge in JUDGES:
            for scope in scopes:
                for key in keys:
                    base = series(figures, regime, "baseline", judge, scope, key)
                    for arm in arms:
                        values = series(figures, regime, arm, judge, scope, key)
                        if any(_defined(v) for v in values.values()):
                            summary = paired_summary(values, base)
                            result.setdefault(regime, {}).setdefault(judge, {}).setdefault(scope, {}).setdefault(
                                key, {}
                            )[arm] = summary
    return result


def _anchoring_keys(arms: Mapping[str, Any]) -> set[str]:
    return {
        key
        for seeds in arms.values()
        for judges in seeds.values()
        for scoped in judges.values()
        for key in scoped.get("all", {})
        if key.startswith("anchoring/")
    }


def format_failures(summary: Mapping[str, Any], threshold: float) -> dict[str, dict[str, float]]:
    """Per regime, the arms whose mean well-formed share (all test clips) is below ``threshold``."""
    failed: dict[str, dict[str, float]] = {}
    for regime, judges in summary.items():
        arms = judges.get("keywords", {}).get("all", {}).get("format/well_formed", {})
        for arm, value in arms.items():
            if value["mean"] is not None and value["mean"] < threshold:
                failed.setdefault(regime, {})[arm] = value["mean"]
    return failed


# docs/study_protocol.md, "What counts as a result": the primary comparison and the smallest effect that matters
PRIMARY_COMPARISON = ("conflict", "migr")
MATTERS = 0.05  # 5 points, in the rates' own units (0-1)


def decision(
    summary: Mapping[str, Any], failed: Mapping[str, Mapping[str, float]], regime: str, arm: str
) -> tuple[str, list[str]]:
    """The protocol's verdict for ``arm`` vs the baseline on the conflict clips of ``regime``, and why.

    ``positive``: P1's (R-wrong/A-right among correct) 95% interval entirely below 0 and P2's (EPC) entirely above
    0, and the arm did not fail on format; ``negative``: both intervals exclude an improvement of 5 points (P1's
    lower bound above -5, P2's upper bound below +5); ``inconclusive``: anything else; ``undecided``: an interval is
    missing (fewer than two paired seeds). Notes: an interval that excludes 0 in the unfavourable direction (the
    arm makes it worse), and for a positive verdict whether it holds under the embedding judge too.
    """

    def interval(judge: str, key: str) -> tuple[float | None, float | None]:
        value = summary.get(regime, {}).get(judge, {}).get("conflict", {}).get(key, {}).get(arm, {})
        return value.get("low"), value.get("high")

    def positive(judge: str) -> bool | None:
        p1_high, p2_low = interval(judge, PRIMARY[0][0])[1], interval(judge, PRIMARY[1][0])[0]
        if None in (p1_high, p2_low):
            return None
        return p1_high < 0 and p2_low > 0

    (p1_low, p1_high), (p2_low, p2_high) = interval("keywords", PRIMARY[0][0]), interval("keywords", PRIMARY[1][0])
    notes: list[str] = []
    if None in (p1_low, p1_high, p2_low, p2_high):
        return "undecided", ["a primary interval is missing (fewer than two paired seeds)"]
    if p1_low > 0:
        notes.append("R-wrong/A-right among correct is higher than the baseline's (interval above 0): worse")
    if p2_high < 0:
        notes.append("EPC is lower than the baseline's (interval below 0): worse")
    if positive("keywords") and arm not in failed.get(regime, {}):
        under_embedding = positive("embedding")
        if under_embedding is None:
            notes.append("the embedding judge's intervals are missing: judge dependence unknown")
        elif not under_embedding:
            notes.append("judge-dependent: under the embedding judge an interval includes 0 or flips")
        return "positive", notes
    if positive("keywords"):
        notes.append(
            f"the intervals favour {arm}, but it failed on format, so it cannot support a positive result"
        )
    if p1_low > -MATTERS and p2_high < MATTERS:
        return "negative", notes
    return "inconclusive", notes


def decision_lines(summary: Mapping[str, Any], failed: Mapping[str, Mapping[str, float]]) -> list[str]:
    """study.md's verdict section: the preregistered comparison first, then every other arm by the same rule."""
    lines = ['## Verdict (docs/study_protocol.md, "What counts as a result")', ""]
    others = sorted(
        (regime, arm)
        for regime, judges in summary.items()
        for arm in judges.get("keywords", {}).get("conflict", {}).get(PRIMARY[1][0], {})
        if arm != "baseline" and (regime, arm) != PRIMARY_COMPARISON
    )
    pairs = [PRIMARY_COMPARISON, *others]
    for regime, arm in pairs:
        if regime not in summary:
            continue
        verdict, notes = decision(summary, failed, regime, arm)
        role = "preregistered" if (regime, arm) == PRIMARY_COMPARISON else "descriptive, same rule"
        lines.append(
            f"- `{arm}` vs `baseline`, {regime} regime ({role}): **{verdict}**" + "".join(f"; {n}" for n in notes)
        )
    return [*lines, ""]


def _percent_key(key: str) -> bool:
    return not key.startswith("anchoring/") or "rate" in key or "follow" in key or "share" in key


def _number(value: float | None, scale: float, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * scale:+.1f}" if sign else f"{value * scale:.1f}"


def _row(title: str, arm: str, value: Mapping[str, Any], failed: Mapping[str, float], scale: float) -> str:
    spread = _number(value["mean"], scale) + (f" ± {value['sd'] * scale:.1f}" if value["sd"] is not None else "")
    if arm == "baseline":
        difference = "(reference)"
    elif value["difference"] is None:
        difference = "n/a"
    else:
        difference = _number(value["difference"], scale, sign=True)
        if value["low"] is not None:
            difference += f" ({_number(value['low'], scale, True)}, {_number(value['high'], scale, True)})"
    flag = " (failed on format)" if arm in failed else ""
    return f"| {title} | {arm}{flag} | {value['n']} | {spread} | {difference} | {value['n_paired']} |"


def endpoint_table(
    block: Mapping[str, Mapping[str, Any]], endpoints: Sequence[tuple[str, str]], failed: Mapping[str, float]
) -> list[str]:
    lines = [
        "| endpoint | arm | seeds | mean ± sd | arm - baseline (95% CI) | paired seeds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, title in endpoints:
        arms = block.get(key)
        scale = 100.0 if _percent_key(key) else 1.0
        if not arms:
            lines.append(f"| {title} | all arms | 0 | n/a (no value in any seed) | n/a | 0 |")
            continue
        for arm, value in arms.items():
            lines.append(_row(title + (" (%)" if scale == 100.0 else ""), arm, value, failed, scale))
    return lines


def study_markdown(
    summary: Mapping[str, Any],
    *,
    seeds: Sequence[int],
    arms: Mapping[str, Sequence[str]],
    threshold: float,
    timings: Mapping[str, Any],
    provenance: str = "",
) -> str:
    """The study's report (see the module docstring; docs/study_protocol.md fixes what it must contain)."""
    failed = format_failures(summary, threshold)
    lines = [
        "# The study (docs/study_protocol.md)",
        "",
        *([provenance, ""] if provenance else []),
        f"Training seeds {', '.join(map(str, seeds))}. Every figure is a percentage of the test clips of its scope "
        "unless it says otherwise; mean ± sd over the seeds, and the paired difference from the visual-first "
        "baseline of the same regime and seed with its 95% t-interval over the seeds where both are defined. "
        f"An arm whose mean well-formed share is below {threshold:.0%} is flagged as failed on format.",
        "",
    ]
    lines += decision_lines(summary, failed)
    for regime, judges in summary.items():
        lines += [f"## Regime `{regime}`: arms {', '.join(arms.get(regime, []))}", ""]
        if failed.get(regime):
            lines += [
                "**Failed on format:** "
                + ", ".join(f"{arm} ({share:.1%} well-formed)" for arm, share in failed[regime].items()),
                "",
            ]
        else:
            lines += [f"Every arm keeps at least {threshold:.0%} well-formed explanations (mean over seeds).", ""]
        keywords = judges.get("keywords", {})
        lines += ["### Primary endpoints: conflict test clips, keyword judge", ""]
        lines += endpoint_table(keywords.get("conflict", {}), PRIMARY, failed.get(regime, {}))
        lines += ["", "... over well-formed explanations only:", ""]
        lines += endpoint_table(keywords.get("conflict" + WELL_FORMED, {}), PRIMARY, failed.get(regime, {}))
        for judge in JUDGES:
            block = judges.get(judge, {})
            # the probe is the evaluation's own (the re-judging copies it): reported once, with the keyword judge
            anchoring = tuple(
                (k, k) for k in block.get("all", {}) if k.startswith("anchoring/") and judge == "keywords"
            )
            for scope in ("all", "all" + WELL_FORMED, "conflict", "conflict" + WELL_FORMED):
                lines += ["", f"### All endpoints: {scope.replace('all', 'all test clips')}, {judge} judge", ""]
                if not block:
                    lines.append(f"missing: no evaluation judged by the {judge} judge")
                    continue
                endpoints = (*ENDPOINTS, *(anchoring if scope == "all" else ()))
                lines += endpoint_table(block.get(scope, {}), endpoints, failed.get(regime, {}))
            if judge == "keywords" and not anchoring:
                lines += ["", "Anchoring probe: missing (no `anchoring` figures in the evaluations' metrics.json)"]
        cells = sorted(
            scope
            for scope in keywords
            if "/" in scope and not scope.endswith(WELL_FORMED) and not scope.startswith("anchoring")
        )
        for scope in cells:
            for suffix in ("", WELL_FORMED):
                lines += ["", f"### Cell {scope} (dominant / non-dominant cue){suffix}, keyword judge", ""]
                lines += endpoint_table(keywords.get(scope + suffix, {}), ENDPOINTS, failed.get(regime, {}))
        lines.append("")
    lines += ["## Time per stage", "", *timing_lines(timings), ""]
    return "\n".join(lines)


def timing_lines(timings: Mapping[str, Any]) -> list[str]:
    """Mean seconds per stage kind over the units that recorded it, and the totals."""
    per_kind: dict[str, list[float]] = {}
    for stages in timings.get("stages", {}).values():
        for name, seconds in stages.items():
            per_kind.setdefault(stage_kind(name), []).append(seconds)
    lines = ["| stage | runs timed | mean s | total s |", "|---|---:|---:|---:|"]
    for kind, values in per_kind.items():
        lines.append(f"| {kind} | {len(values)} | {statistics.fmean(values):.1f} | {sum(values):.1f} |")
    total = sum(sum(v) for v in per_kind.values())
    lines += [
        "",
        f"Stage time in all {total / 60:.1f} min; wall-clock of the invocation that finished the study "
        f"{timings.get('wall_seconds', 0.0) / 60:.1f} min with {timings.get('workers')} worker(s) of "
        f"{timings.get('threads')} thread(s), allocator {timings.get('allocator', 'system')} "
        f"(resumed stages count only their last attempt).",
    ]
    return lines


def stage_kind(name: str) -> str:
    """``migr_sft`` -> ``sft``, ``judge_migr_embedding`` -> ``re-judge``, ``migr_oracle_build`` -> ``build``."""
    if name.startswith("judge_"):
        return "re-judge (embedding)"
    if name.startswith("eval_"):
        return "evaluation"
    for suffix in ("_sft", "_grpo", "_build"):
        if name.endswith(suffix):
            return suffix[1:]
    return name


def forest_plot(summary: Mapping[str, Any], path: Path, *, judge: str = "keywords") -> Path | None:
    """Each arm's paired difference from the baseline with its 95% interval, per endpoint (columns) and scope
    (rows: all clips, conflict clips, each cell), one row of panels per regime. None when there is nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = [r for r in summary if summary[r].get(judge)]
    if not regimes:
        return None
    rows_per_regime = {}
    for regime in regimes:
        block = summary[regime][judge]
        scopes = [s for s in ("all", "conflict") if s in block] + sorted(
            s for s in block if "/" in s and not s.endswith(WELL_FORMED)
        )
        arms = [a for a in next(iter(block.values()), {}).get("epc", {}) if a != "baseline"]
        rows_per_regime[regime] = [(scope, arm) for scope in scopes for arm in arms]
    height = sum(max(3, 0.22 * len(rows)) for rows in rows_per_regime.values())
    fig, axes = plt.subplots(
        len(regimes),
        len(FOREST_ENDPOINTS),
        figsize=(4 * len(FOREST_ENDPOINTS), height),
        squeeze=False,
        gridspec_kw={"height_ratios": [max(1, len(r)) for r in rows_per_regime.values()]},
    )
    titles = dict(ENDPOINTS)
    for i, regime in enumerate(regimes):
        rows = rows_per_regime[regime]
        for j, key in enumerate(FOREST_ENDPOINTS):
            ax = axes[i][j]
            for y, (scope, arm) in enumerate(rows):
                value = summary[regime][judge].get(scope, {}).get(key, {}).get(arm)
                if not value or value["difference"] is None:
                    continue
                x = 100 * value["difference"]
                ax.plot([x], [y], "o", color="C0" if scope in ("all", "conflict") else "C1", markersize=3)
                if value["low"] is not None:
                    ax.plot([100 * value["low"], 100 * value["high"]], [y, y], "-", color="0.4", linewidth=1)
            ax.axvline(0.0, color="0.6", linewidth=0.8, linestyle="--")
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels([f"{scope}: {arm}" for scope, arm in rows] if j == 0 else [], fontsize=6)
            ax.set_ylim(len(rows) - 0.5, -0.5)
            ax.set_title(f"{regime}: {titles[key]}", fontsize=8)
            ax.set_xlabel("arm - baseline (points, 95% CI)", fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_to_wandb(logger: Mapping[str, Any], out: Path, summary_rows: list[list[Any]], forest: Path | None) -> None:
    """With ``logger=wandb``: the forest plot and the summary table as one ``study`` run (offline by default)."""
    if logger.get("kind", "none") != "wandb":
        return
    import os

    import wandb

    mode = "offline" if logger.get("offline", True) else os.environ.get("WANDB_MODE", "online")
    run = wandb.init(
        project=logger.get("project", "migr"),
        entity=logger.get("entity"),
        name="study",
        job_type="study",
        dir=str(out),
        tags=list(logger.get("tags") or []),
        mode=mode,
        reinit="finish_previous",
    )
    try:
        columns = [
            "regime",
            "judge",
            "scope",
            "endpoint",
            "arm",
            "seeds",
            "mean",
            "sd",
            "difference",
            "low",
            "high",
        ]
        payload: dict[str, Any] = {"study/summary": wandb.Table(columns=columns, data=summary_rows)}
        if forest is not None:
            payload["study/forest"] = wandb.Image(str(forest))
        run.log(payload)
    finally:
        run.finish()


def summary_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    return [
        [regime, judge, scope, key, arm, v["n"], v["mean"], v["sd"], v["difference"], v["low"], v["high"]]
        for regime, judges in summary.items()
        for judge, scopes in judges.items()
        for scope, keys in scopes.items()
        for key, arms in keys.items()
        for arm, v in arms.items()
    ]
