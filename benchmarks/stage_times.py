"""The demo's time per stage with its caches (frozen-tower features, decoded media) off and on, in one run, and
the ratio.

Runs the whole demo (``python -m src.pipeline``) twice, each from scratch in its own folder (its own corpus,
decoded-media cache and feature cache, so neither run inherits anything from the other): first with both caches
off (``cache_tower_features=false``: every forward recomputes the towers; ``cache_media=false``: every epoch
reads each clip back from the on-disk media cache), then with both on (the demo's defaults). It prints each
stage's seconds in both runs and their ratio, the demo's wall-clock (shared stages + the slower arm when the arms
run side by side), and whether the results tables agree: the table rows compared as text, and the largest
absolute difference of any figure in the evaluations' ``metrics.json`` and the build's ``build.json``.

    python benchmarks/stage_times.py            # the full demo twice (~2 x 10 min of the whole machine)
    python benchmarks/stage_times.py --shrink   # the CI-sized demo twice (a few minutes)
    python benchmarks/stage_times.py --out /tmp/stage_times -- corpus.n=300   # extra pipeline overrides

Writes ``<out>/stage_times.md`` with the same report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IGNORED = ("seconds", "mi_seconds", "model", "manifest", "weights", "output_dir")  # paths and times differ


def run_demo(out: Path, *, cache: bool, shrink: bool, extra: list[str]) -> float:
    """One demo from scratch into ``out``; returns its wall-clock seconds (process start to exit)."""
    command = [
        sys.executable,
        "-m",
        "src.pipeline",
        f"out_dir={out}",
        f"corpus.root={out / 'corpus'}",
        f"cache_tower_features={str(cache).lower()}",
        f"cache_media={str(cache).lower()}",
        f"shrink={str(shrink).lower()}",
        *extra,
    ]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - started


def numeric_leaves(value: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON document by its path (times and paths left out)."""
    if isinstance(value, dict):
        leaves: dict[str, float] = {}
        for key, item in value.items():
            if key not in IGNORED:
                leaves.update(numeric_leaves(item, f"{prefix}/{key}"))
        return leaves
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in numeric_leaves(item, f"{prefix}[{i}]").items()}
    if isinstance(value, bool) or not isinstance(value, int | float):
        return {}
    return {prefix: float(value)}


def figures(out: Path) -> dict[str, float]:
    files = [
        out / "migr" / "build.json",
        out / "eval_migr" / "metrics.json",
        out / "eval_baseline" / "metrics.json",
    ]
    return {k: v for f in files for k, v in numeric_leaves(json.loads(f.read_text()), f.parent.name).items()}


def table_rows(out: Path) -> list[str]:
    """The results table without its time lines."""
    lines = (out / "results.md").read_text().splitlines()
    return [line for line in lines if not line.startswith(("Time per stage", "Total:", "Stages marked"))]


def wall_clock(out: Path) -> tuple[dict[str, float], float]:
    """Seconds per stage (the demo's ledger) and the demo's wall-clock: shared stages + the slower arm."""
    timings = json.loads((out / "timings.json").read_text())
    arms = {
        arm: sum(v for k, v in timings.items() if k.startswith(f"{arm}_") or k == f"eval_{arm}")
        for arm in ("migr", "baseline")
    }
    shared = sum(v for k, v in timings.items() if not any(k.startswith(f"{a}_") or k == f"eval_{a}" for a in arms))
    side_by_side = (out / "pipeline.yaml").exists()  # written only when the arms ran in worker processes
    return timings, shared + (max(arms.values()) if side_by_side else sum(arms.values()))


def report(off: Path, on: Path, seconds: dict[str, float]) -> str:
    times_off, wall_off = wall_clock(off)
    times_on, wall_on = wall_clock(on)
    lines = ["| stage | cache off (s) | cache on (s) | off / on |", "|---|---:|---:|---:|"]
    for stage in times_off:
        a, b = times_off[stage], times_on.get(stage, math.nan)
        lines.append(f"| {stage} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    lines.append(f"| **demo wall-clock (stages)** | {wall_off:.1f} | {wall_on:.1f} | {wall_off / wall_on:.2f}x |")
    lines.append(
        f"| demo process (start to exit) | {seconds['off']:.1f} | {seconds['on']:.1f} | "
        f"{seconds['off'] / seconds['on']:.2f}x |"
    )
    figures_off, figures_on = figures(off), figures(on)
    differences = {k: abs(figures_off[k] - figures_on.get(k, math.nan)) for k in figures_off}
    missing = sorted(set(figures_off) ^ set(figures_on))
    worst = max(differences, key=lambda k: differences[k] if differences[k] == differences[k] else math.inf)
    same_table = table_rows(off) == table_rows(on)
    lines += [
        "",
        f"Results table rows identical: {'yes' if same_table else 'NO'}; {len(differences)} figures compared "
        f"(build.json, both metrics.json), largest absolute difference {differences[worst]:.3g}"
        + (f" ({worst})" if differences[worst] else " (none differs)")
        + (f"; figures in one run only: {missing}" if missing else "")
        + ".",
    ]
    if not same_table:
        lines += ["", "Cache off:", *table_rows(off), "", "Cache on:", *table_rows(on)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shrink", action="store_true", help="the CI-sized demo (shrink=true)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "stage_times", help="where both demos go")
    parser.add_argument("overrides", nargs="*", help="extra overrides of python -m src.pipeline (after --)")
    args = parser.parse_args()
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(
            f"--out {out} is not empty: both demos must start from scratch (remove it or pick another)"
        )
    seconds = {}
    for name, cache in (("off", False), ("on", True)):
        print(f"== demo with cache_tower_features={str(cache).lower()} -> {out / name}", flush=True)
        seconds[name] = run_demo(out / name, cache=cache, shrink=args.shrink, extra=args.overrides)
    text = report(out / "off", out / "on", seconds)
    (out / "stage_times.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
