"""How long the commands take to start: ``import torch``, torch + transformers, and each CLI up to its first step.

Every figure is the median of ``--repeats`` fresh processes (launched from here, timed from the launch; the
commands take turns, so a change of the host's load reaches them alike): the wall-clock, and the process's CPU
time (user + system), which a host loaded by other work inflates much less. The overhead of our own imports and
setup is the difference between a CLI's row and the torch + transformers row; the torch + transformers +
Lightning row shows how much of it Lightning's own import is (it imports torchmetrics whole, see
docs/performance.md "Start-up"):

* ``import torch``; ``import torch`` + ``transformers``' Qwen2, SigLIP, Whisper and BERT models (what the
  model needs whatever else is imported); the same + ``import lightning``;
* ``python -m src.train stage=sft``: until the first training step starts (a Lightning callback given on the
  command line, ``+callbacks.first_step._target_=benchmarks.startup.first_step_callback``, prints a marker and
  ends the process), on a 14-clip synthetic corpus, tiny model, CSV logger;
* ``python -m src.evaluate``: until the first prediction is written (one clip, one new token) with a random tiny
  model exported beside the corpus;
* ``python -m src.train --help``, a config error (a misspelled key), ``python -m src.evaluate --help``, an
  evaluation's bad value (``batch_size=0``, refused before the evaluation stack is imported) and
  ``python -m src.registry --check``.

``--importtime`` also runs ``python -X importtime`` on the torch + transformers import and on the training
command up to its first step, and lists the top-level packages only the training command imports, with the
import time spent in their own modules (a loaded host inflates these; read them as shares).

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
        f"runs_dir={work / 'runs'}",  # its feature cache too, not ./runs in the repository
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
        "the same + import lightning": {
            "command": [python, "-c", f"import torch; {TRANSFORMERS_MODELS}; import lightning"]
        },
        "python -m src.train stage=sft: first step": {"command": train, "marker": MARKER},
        "python -m src.evaluate: first prediction": {"command": evaluate, "file": predictions},
        "python -m src.train --help": {"command": [python, "-m", "src.train", "--help"]},
        "python -m src.train stage.lrr=1 (config error)": {"command": [python, "-m", "src.train", "stage.lrr=1"]},
        "python -m src.evaluate --help": {"command": [python, "-m", "src.evaluate", "--help"]},
        "python -m src.evaluate batch_size=0 (config error)": {
            "command": [python, "-m", "src.evaluate", "batch_size=0"]
        },
        "python -m src.registry --check": {"command": [python, "-m", "src.registry", "--check"]},
    }


def _import_seconds(stderr: str) -> dict[str, float]:
    """``python -X importtime``'s report: module -> seconds spent in its own body (imports inside it excluded)."""
    seconds = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        if own.strip().isdigit():
            seconds[name.strip()] = int(own) / 1e6
    return seconds


def import_breakdown(command: list[str], baseline: list[str], top: int = 15) -> list[tuple[str, float]]:
    """The top-level packages ``command`` imports and ``baseline`` does not, with the seconds of their modules
    (``python -X importtime``; a command that prints :data:`MARKER` is ended there)."""

    def imported(cmd: list[str]) -> dict[str, float]:
        process = subprocess.run(
            [cmd[0], "-X", "importtime", *cmd[1:]], cwd=ROOT, env=_env(), capture_output=True, text=True
        )
        return _import_seconds(process.stderr)

    base, found = imported(baseline), imported(command)
    totals: dict[str, float] = {}
    for module, seconds in found.items():
        if module not in base:
            package = module.split(".")[0]
            totals[package] = totals.get(package, 0.0) + seconds
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command (median reported)")
    parser.add_argument(
        "--importtime",
        action="store_true",
        help="also list what the training command imports beyond torch + transformers",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup_") as tmp:
        work = Path(tmp)
        manifest, export = prepare(work)
        specs = commands(work, manifest, export)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in specs}
        for _ in range(args.repeats):  # the commands take turns
            for name, spec in specs.items():
                options = {k: v for k, v in spec.items() if k != "command"}
                runs[name].append(time_until(spec["command"], **options))
        rows = []
        for name, times in runs.items():
            wall = statistics.median(w for w, _ in times)
            cpu = statistics.median(c for _, c in times)
            rows.append((name, wall, cpu, min(w for w, _ in times), max(w for w, _ in times)))
        if args.importtime:
            breakdown = import_breakdown(
                specs["python -m src.train stage=sft: first step"]["command"],
                specs["import torch + transformers' Qwen2/SigLIP/Whisper/BERT"]["command"],
            )
    load = os.getloadavg()[0]
    print(f"\nmedians of {args.repeats} runs; load average at the end {load:.1f} on {os.cpu_count()} cores\n")
    print("| command | wall (s) | CPU (s) | wall min-max (s) |\n|---|---:|---:|---:|")
    for name, wall, cpu, low, high in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {low:.2f}-{high:.2f} |")
    _, base_wall, base_cpu, _, _ = rows[1]
    _, lightning_wall, lightning_cpu, _, _ = rows[2]
    print(
        f"\nlightning's import: {lightning_wall - base_wall:+.2f} s wall, {lightning_cpu - base_cpu:+.2f} s CPU "
        "over torch + transformers"
    )
    for name, wall, cpu, _, _ in rows[3:5]:
        print(
            f"{name}: {wall - base_wall:+.2f} s wall, {cpu - base_cpu:+.2f} s CPU over torch + transformers "
            f"({wall - lightning_wall:+.2f} s wall, {cpu - lightning_cpu:+.2f} s CPU over torch + transformers + "
            "lightning)"
        )
    if args.importtime:
        print("\n`python -X importtime`: packages the training command imports beyond torch + transformers (s):")
        for name, seconds in breakdown:
            print(f"  {seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
