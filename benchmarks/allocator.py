"""The workers' allocator, measured: one training stage fitted in subprocesses on the system allocator and on
the preloaded one (src/demo/allocator.py; tcmalloc by default), interleaved in one run; the ratio of their
wall-clock and CPU time, and whether the exported weights are bit-identical.

Each repeat runs both sides, in alternating order (a drift in the host's load hits both alike), each a fresh
``python -m src.train`` on one thread with the demo's overrides for the stage (configs/pipeline.yaml), a step
cap, and validation off. A process's time includes its start-up (imports), which the allocator barely changes,
so the ratio of a whole study's stages (minutes each) is a little larger than this one's.

    python benchmarks/allocator.py [--stage base|sft] [--steps 100] [--repeats 3] [--corpus 140]
    python benchmarks/allocator.py --library /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from src.demo.allocator import preload_library, with_preload  # noqa: E402


def demo_overrides() -> dict[str, list[str]]:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "configs" / "pipeline.yaml")
    return {
        key: [str(v) for v in OmegaConf.to_container(cfg, resolve=True)[key]] for key in ("train", "base", "sft")
    }


def fit(overrides: list[str], runs: Path, library: str | None) -> tuple[float, float, Path]:
    """(wall seconds, CPU seconds, export folder) of one ``python -m src.train`` run."""
    env = with_preload({**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, library)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "src.train", *overrides, f"runs_dir={runs}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"python -m src.train failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stage = next(o.split("=", 1)[1] for o in overrides if o.startswith("stage="))
    return wall, cpu, runs / stage / "export"


def exported_bytes(export: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(export.glob("*.safetensors"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=("base", "sft"), default="base")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=int, default=140)
    parser.add_argument("--library", default="auto", help="worker_allocator's setting for the preloaded side")
    args = parser.parse_args()
    library = preload_library(args.library)
    if library is None:
        raise SystemExit(f"--library {args.library}: no library to preload on this machine (make allocator)")

    from src.data.synth import ensure_corpus

    demo = demo_overrides()
    with tempfile.TemporaryDirectory(prefix="migr_allocator_") as tmp:
        work = Path(tmp)
        ensure_corpus(work / "synth", n=args.corpus, seed=0, variation=0.3, phrasings=None, regime="conflict")
        data = [
            f"data.root={work / 'synth'}",
            f"data.synth.n={args.corpus}",
            "data.synth.phrasings=null",
            "++data.synth.regime=conflict",
            "trainer.limit_val_batches=0",
        ]
        start: list[str] = []
        base = [*demo["train"], *demo["base"], *data]
        if args.stage == "sft":  # SFT starts from a short base run, as in the demo (and warms the media cache)
            _, _, export = fit([*base, f"stage.max_steps={args.steps}"], work / "start", None)
            start = [*demo["train"], *demo["sft"], *data, f"stage.init_from={export}"]
        else:
            fit([*base, "stage.max_steps=2"], work / "warm", None)  # untimed: fills the media cache
        overrides = [*(start or base), f"stage.max_steps={args.steps}"]
        times: dict[str, list[tuple[float, float]]] = {"system": [], "preloaded": []}
        reference: dict[str, bytes] | None = None
        identical = True
        for repeat in range(args.repeats):
            order = [("system", None), ("preloaded", library)]
            for side, lib in order if repeat % 2 == 0 else order[::-1]:
                wall, cpu, export = fit(overrides, work / f"{side}_{repeat}", lib)
                times[side].append((wall, cpu))
                weights = exported_bytes(export)
                reference = reference if reference is not None else weights
                identical &= weights == reference
                print(f"repeat {repeat} {side:9s} wall {wall:6.1f} s  CPU {cpu:6.1f} s", flush=True)
    wall = {side: statistics.median(w for w, _ in t) for side, t in times.items()}
    cpu = {side: statistics.median(c for _, c in t) for side, t in times.items()}
    print(
        f"\n{args.stage}, {args.steps} steps, {args.corpus}-clip corpus, 1 thread, {args.repeats} repeats; "
        f"preloaded: {library}\n"
        f"median wall: system {wall['system']:.1f} s, preloaded {wall['preloaded']:.1f} s -> "
        f"{wall['system'] / wall['preloaded']:.2f}x\n"
        f"median CPU:  system {cpu['system']:.1f} s, preloaded {cpu['preloaded']:.1f} s -> "
        f"{cpu['system'] / cpu['preloaded']:.2f}x\n"
        f"exported weights bit-identical across all fits: {identical}"
    )


if __name__ == "__main__":
    main()
