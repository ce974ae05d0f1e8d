"""The demo over several training seeds, with the spread of every figure: ``python -m src.pipeline seeds=[0,1,2]``.

One run of a 1.7 M-parameter model is a weak witness: a change of seed, thread count or host moves the
arm comparison by several points (README, "How fragile it is"). With ``seeds`` set, the pipeline runs once per
seed into ``<out_dir>/seed_<s>/`` (its own ``base`` warm-up, MIGR build and both arms, on the same corpus) and
writes ``<out_dir>/seeds.md``: for every row of the result table, each arm's mean and standard deviation over the
seeds, the mean paired difference MIGR - baseline (both arms of a seed share its base model and build) with a
95% t-interval, and in how many seeds MIGR's figure was the higher. Each seed's folder is a complete demo, so an
interrupted sweep continues where it stopped. The configured ``seed`` (0 by default) is the plain demo's run:
it lives in ``<out_dir>`` itself (unless an earlier sweep made ``<out_dir>/seed_<s>``), so a sweep after
``make demo`` reuses it instead of training that seed again.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# two-sided 95% quantiles of Student's t by degrees of freedom (beyond 30: the normal 1.96)
T_95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
T_95 += (2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


# rows that are not percentages: (title, key of the flat figures, scale, digits)
OTHER_ROWS = (
    ("attention drift", "attention_drift", 1.0, 3),
    ("first-tag margin, audio-dominant clips", "first_tag/audio_visual/audio", 1.0, 2),
    ("first-tag margin, visual-dominant clips", "first_tag/audio_visual/visual", 1.0, 2),
)


def seed_dir(out: Path, seed: int, home_seed: int | None = None) -> Path:
    """Where seed ``seed`` of a sweep into ``out`` runs: ``out/seed_<s>``, except the plain demo's own seed
    ``home_seed``, which is ``out`` itself unless an earlier sweep already made its ``seed_<s>`` folder."""
    folder = out / f"seed_{seed}"
    return out if seed == home_seed and not folder.exists() else folder


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The single-run configuration of one seed of the sweep ``cfg``."""
    folder = seed_dir(Path(cfg.out_dir), seed, _home_seed(cfg))
    return OmegaConf.merge(cfg, {"seed": seed, "seeds": None, "out_dir": str(folder)})


def _home_seed(cfg: DictConfig) -> int | None:
    return int(cfg.seed) if cfg.get("seed") is not None else None


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of its 95% t-interval); the half-width is nan for fewer than two values."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    quantile = T_95[len(values) - 2] if len(values) - 1 <= len(T_95) else 1.96
    return mean, quantile * statistics.stdev(values) / math.sqrt(len(values))


def _spread(values: Sequence[float], scale: float, digits: int) -> str:
    if any(v is None or v != v for v in values):
        return "n/a"
    mean = statistics.fmean(values) * scale
    sd = statistics.stdev(values) * scale if len(values) > 1 else math.nan
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if sd == sd else f"{mean:.{digits}f}"


def sweep_table(
    per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]],
    rows: Sequence[tuple[str, str]],
    arms: Sequence[str] = ("migr", "baseline"),
) -> str:
    """The markdown table of a sweep from each seed's flat figures per arm (``per_seed[seed][arm][key]``)."""
    seeds = sorted(per_seed)
    first, second = arms
    lines = [
        f"Seeds {', '.join(map(str, seeds))} ({len(seeds)} runs); mean ± sd over the seeds, and the paired difference "
        f"{first} - {second} with its 95% t-interval.",
        "",
        f"| metric | {first} | {second} | {first} - {second} (95% CI) | seeds {first} higher |",
        "|---|---:|---:|---:|---:|",
    ]
    for title, key, scale, digits in [*((t, k, 100.0, 1) for t, k in rows), *OTHER_ROWS]:
        values = {arm: [per_seed[s][arm].get(key) for s in seeds] for arm in arms}
        if any(v is None or v != v for arm in arms for v in values[arm]):
            lines.append(f"| {title} | n/a | n/a | n/a | n/a |")
            continue
        differences = [a - b for a, b in zip(values[first], values[second])]
        mean, half = t_interval(differences)
        interval = f"{mean * scale:+.{digits}f}" + (
            f" ({(mean - half) * scale:+.{digits}f}, {(mean + half) * scale:+.{digits}f})" if half == half else ""
        )
        higher = sum(d > 0 for d in differences)
        lines.append(
            f"| {title}{' (%)' if scale == 100.0 else ''} | {_spread(values[first], scale, digits)} | "
            f"{_spread(values[second], scale, digits)} | {interval} | {higher} of {len(seeds)} |"
        )
    return "\n".join(lines) + "\n"


def run_sweep(
    cfg: DictConfig,
    run_one: Callable[[DictConfig], str],
    figures: Callable[[Path, str], dict[str, Any]],
    rows: Sequence[tuple[str, str]],
    arms: Sequence[str],
) -> str:
    """Run the pipeline for every seed of ``cfg.seeds`` and write ``seeds.md``; returns its text."""
    out = Path(cfg.out_dir)
    seeds = [int(s) for s in cfg.seeds]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds={list(cfg.seeds)}: expected distinct integers")
    per_seed, folders = {}, {}
    for seed in seeds:
        seed_cfg = seed_config(cfg, seed)
        folders[seed] = Path(seed_cfg.out_dir)
        run_one(seed_cfg)
        per_seed[seed] = {arm: figures(folders[seed], arm) for arm in arms}
    mi = []
    for seed in seeds:
        build = json.loads((folders[seed] / "migr" / "build.json").read_text())
        confusion = build.get("mi_vs_truth_test") or build.get("mi_vs_truth") or {}
        mi.append(confusion.get("agreement"))
    text = sweep_table(per_seed, rows, arms)
    if all(v is not None for v in mi):
        text += (
            f"\nModality Importance agreement with the true dominant modality (test split): "
            f"{_spread(mi, 100.0, 1)}%; each seed's own table: "
            + ", ".join(f"{folders[s] / 'results.md'}" for s in seeds)
            + "\n"
        )
    (out / "seeds.md").write_text(text)
    return text
