"""How long the commands take to start: ``import torch``, torch + transformers, and each CLI up to its first step.

Every figure is the median of ``--repeats`` fresh processes (launched from here, timed from the launch): the
wall-clock, and the process's CPU time (user + system), which a host loaded by other work inflates much less.
The overhead of our own imports and setup is the difference between a CLI's row and the torch + transformers
row:

* ``import torch``; ``import torch`` + ``transformers``' Qwen2, SigLIP, Whisper and BERT models (what the
  model needs whatever else is imported);
* ``python -m src.train stage=sft``: until the first training step starts (a Lightning callback given on the
  command line, ``+callbacks.first_step._target_=benchmarks.startup.first_step_callback``, prints a marker and
  ends the process), on a 14-clip synthetic corpus, tiny model, CSV logger;
* ``python -m src.evaluate``: until the first prediction is written (one clip, one new token) with a random tiny
  model exported beside the corpus;
* ``python -m src.train --help``, a config error (a misspelled key), ``python -m src.evaluate --help`` and
  ``python -m src.registry --check``.

``--importtime`` also prints the largest packages under ``import src.stages.runner`` (``python -X importtime``,
cumulative time of each top-level package as first imported there).

    python benchmarks/startup.py [--repeats 5] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = "FIRST-STEP-STARTS"
TRANSFORMERS_MODELS = (
    "from transformers import BertModel, Qwen2ForCausalLM, SiglipVisionModel; "
    "from transformers.models.whisper.modeling_whisper import WhisperEncoder"
)


def first_step_callback() -> Any:
    """A Lightning callback that prints :data:`MARKER` when the first training step starts, then exits."""
    import lightning as L

    class FirstStep(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            print(MARKER, flush=True)
            os._exit(0)

    return FirstStep()


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}


def time_until(command: list[str], *, marker: str | None = None, file: Path | None = None) -> tuple[float, float]:
    """``(wall, cpu)`` seconds from launching ``command`` until it exits (no marker/file), prints ``marker`` or
    writes ``file`` (then it is killed). ``cpu`` is the process's user + system time, which a loaded host
    inflates far less than the wall-clock."""
    if file is not None and file.exists():
        file.unlink()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    wall, reaped = None, None  # reaped: (status, rusage) once the child has been waited for
    if marker is not None:
        for line in process.stdout:
            if marker in line:
                wall = time.perf_counter() - started
                break
    elif file is not None:
        while wall is None and reaped is None:
            if file.exists() and file.stat().st_size > 0:
                wall = time.perf_counter() - started
                break
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                reaped = (status, usage)
            time.sleep(0.01)
    else:
        process.stdout.read()
        wall = None  # measured when it exits, below
    if reaped is None:
        if marker is not None or file is not None:
            os.kill(process.pid, signal.SIGKILL)  # a zombie ignores it; not reaped yet, so the pid is still ours
        _, status, usage = os.wait4(process.pid, 0)
        reaped = (status, usage)
    process.returncode = os.waitstatus_to_exitcode(reaped[0])
    process.stdout.close()
    if wall is None:
        if marker is not None or file is not None:
            raise RuntimeError(f"{' '.join(command)} ended ({process.returncode}) without reaching its first step")
        wall = time.perf_counter() - started
    return wall, reaped[1].ru_utime + reaped[1].ru_stime


def prepare(work: Path) -> tuple[Path, Path]:
    """A 14-clip synthetic corpus and a random tiny model exported beside it (the evaluation's model)."""
    from src.data.synth import ensure_corpus
    from src.models.checkpoint import save_model
    from src.models.factory import ModelSpec, instantiate

    manifest = ensure_corpus(work / "corpus", n=14, seed=0, workers=1)
    loaded = instantiate(ModelSpec(preset="tiny"))
    export = save_model(loaded.model, loaded.tokenizer, loaded.gate_tokenizer, work / "model")
    return manifest, export


def commands(work: Path, manifest: Path, export: Path) -> dict[str, dict[str, Any]]:
    python = sys.executable
    data = [f"data.manifest={manifest}", "data.synth=null", f"data.cache_dir={manifest.parent / '.cache'}"]
    train = [
        python,
        "-m",
        "src.train",
        "stage=sft",
        *data,
        f"runs_dir={work / 'runs'}",
        "trainer.enable_progress_bar=false",
        "+callbacks.first_step._target_=benchmarks.startup.first_step_callback",
    ]
    predictions = work / "eval" / "predictions.jsonl"
    evaluate = [
        python,
        "-m",
        "src.evaluate",
        *data,
        f"model_path={export}",
        f"output_dir={predictions.parent}",
        "overwrite=true",
        "limit=1",
        "batch_size=1",
        "max_new_tokens=1",
        "progress_bar=false",
    ]
    return {
        "import torch": {"command": [python, "-c", "import torch"]},
        "import torch + transformers' Qwen2/SigLIP/Whisper/BERT": {
            "command": [python, "-c", f"import torch; {TRANSFORMERS_MODELS}"]
        },
        "python -m src.train stage=sft: first step": {"command": train, "marker": MARKER},
        "python -m src.evaluate: first prediction": {"command": evaluate, "file": predictions},
        "python -m src.train --help": {"command": [python, "-m", "src.train", "--help"]},
        "python -m src.train stage.lrr=1 (config error)": {"command": [python, "-m", "src.train", "stage.lrr=1"]},
        "python -m src.evaluate --help": {"command": [python, "-m", "src.evaluate", "--help"]},
        "python -m src.registry --check": {"command": [python, "-m", "src.registry", "--check"]},
    }


def import_breakdown(module: str, top: int = 15) -> list[tuple[str, float]]:
    """Cumulative import seconds of the top-level packages first imported under ``import module``."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not cumulative.strip().isdigit():
            continue
        depth = (len(name) - len(name.lstrip())) // 2
        if depth == 1:  # imported directly by `module`'s own import chain
            totals[name.strip()] = int(cumulative) / 1e6
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command (median reported)")
    parser.add_argument("--importtime", action="store_true", help="also break `import src.stages.runner` down")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup_") as tmp:
        work = Path(tmp)
        manifest, export = prepare(work)
        rows = []
        for name, spec in commands(work, manifest, export).items():
            command = spec.pop("command")
            runs = [time_until(command, **spec) for _ in range(args.repeats)]
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            rows.append((name, wall, cpu, min(w for w, _ in runs), max(w for w, _ in runs)))
            print(f"{name}: wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)
    load = os.getloadavg()[0]
    print(f"\nmedians of {args.repeats} runs; load average at the end {load:.1f} on {os.cpu_count()} cores\n")
    print("| command | wall (s) | CPU (s) | wall min-max (s) |\n|---|---:|---:|---:|")
    for name, wall, cpu, low, high in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {low:.2f}-{high:.2f} |")
    _, base_wall, base_cpu, _, _ = rows[1]
    for name, wall, cpu, _, _ in rows[2:4]:
        print(f"{name}: {wall - base_wall:+.2f} s wall, {cpu - base_cpu:+.2f} s CPU over torch + transformers")
    if args.importtime:
        print("\n`python -X importtime -c 'import src.stages.runner'`, top-level packages (cumulative s):")
        for name, seconds in import_breakdown("src.stages.runner"):
            print(f"  {seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
