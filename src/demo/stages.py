"""The demo's stages: what each one runs, where it writes, how it knows it is done, and how it resumes.

A :class:`Stage` is a name, a folder and a function. :func:`run_all` runs the stages in order, skipping a
stage whose output already exists (so a killed demo, rerun, continues where it stopped: a training stage with
a checkpoint resumes from it), timing each one and showing a progress bar.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src import atomic

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """One step of the pipeline: ``run()`` writes ``done_marker`` when (and only when) it finished."""

    name: str
    done_marker: Path
    run: Callable[[], None]
    description: str = ""
    arm: str | None = None  # the arm it belongs to (None: shared by both, run before them)
    overrides: tuple[str, ...] = ()  # the command-line overrides it runs with (training, build, evaluation)

    @property
    def done(self) -> bool:
        return self.done_marker.exists()


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` as its own command would (inside or outside a Hydra app)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # running under `python -m src.pipeline`: same config dir
        return compose(config_name=config_name, overrides=overrides)
    configs = Path(__file__).resolve().parents[2] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def train_stage(name: str, run_dir: Path, overrides: list[str]) -> Stage:
    """A ``python -m src.train`` run into ``run_dir``; resumes from its last checkpoint when one exists."""

    def run() -> None:
        from src.stages.run_folder import resumable_checkpoint
        from src.stages.runner import run_stage

        checkpoint = resumable_checkpoint(run_dir)
        resume = ["ckpt_path=last"] if checkpoint is not None else []
        if resume:
            log.info("%s: resuming from %s", name, checkpoint)
        cfg = compose_config(
            "train", [*overrides, f"run_dir={run_dir}", f"export_dir={run_dir / 'export'}", *resume]
        )
        run_stage(cfg)

    return Stage(
        name, run_dir / "export" / "config.json", run, description=" ".join(overrides), overrides=tuple(overrides)
    )


def build_stage(out_dir: Path, overrides: list[str], name: str = "migr_build") -> Stage:
    def run() -> None:
        from src.migr.build import build

        build(compose_config("build", [*overrides, f"out_dir={out_dir}"]))

    return Stage(
        name,
        out_dir / "build.json",
        run,
        description="FAU + Modality Importance + reordering",
        overrides=tuple(overrides),
    )


def evaluate_stage(name: str, out_dir: Path, overrides: list[str]) -> Stage:
    def run() -> None:
        from src.evaluation.runner import run_evaluation

        run_evaluation(compose_config("evaluate", [*overrides, f"output_dir={out_dir}"]))

    return Stage(name, out_dir / "metrics.json", run, description=" ".join(overrides), overrides=tuple(overrides))


@dataclass(frozen=True)
class Ledger:
    """What a runner records about its stages: ``timings.json`` (seconds of each finished stage),
    ``started.json`` (stages ever started) and ``resumed.json`` (stages finished by a later invocation than the
    one that started them). An arm's worker process keeps its own (``suffix="_migr"``: ``timings_migr.json``...)
    so that two runners never write one file.
    """

    folder: Path
    suffix: str = ""

    def path(self, kind: str) -> Path:
        return self.folder / f"{kind}{self.suffix}.json"

    def read(self, kind: str) -> Any:
        path = self.path(kind)
        return json.loads(path.read_text()) if path.exists() else ({} if kind == "timings" else [])

    def write(self, kind: str, value: Any) -> None:
        atomic.write_text(self.path(kind), json.dumps(value, indent=1))


def progress_bar(*, enabled: bool = True):
    """The demo's rich progress display: one line per task, ``description [bar] done/total elapsed``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        disable=not enabled,
    )


def run_all(stages: list[Stage], ledger: Ledger, *, progress: bool = True) -> dict[str, float]:
    """Run every stage not yet done, in order; returns (and records) the seconds each finished stage took.

    A stage's time is that of the invocation that finished it. A stage started by an earlier, interrupted
    invocation is listed in the ledger's ``resumed`` (its killed attempt could not record its own time), so that
    the result table can say which times are partial.
    """
    timings: dict[str, float] = ledger.read("timings")
    started: list[str] = ledger.read("started")
    resumed: list[str] = ledger.read("resumed")
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("demo", total=len(stages))
        for stage in stages:
            if stage.done:
                log.info("stage %s: already done (%s), skipped", stage.name, stage.done_marker)
                bar.update(task, advance=1, description=f"{stage.name} (done)")
                continue
            bar.update(task, description=stage.name)
            log.info("stage %s: %s", stage.name, stage.description)
            if stage.name in started and stage.name not in resumed:
                resumed.append(stage.name)
                ledger.write("resumed", resumed)
            elif stage.name not in started:
                started.append(stage.name)
                ledger.write("started", started)
            began = time.perf_counter()
            stage.run()
            if not stage.done:
                raise RuntimeError(f"stage {stage.name} finished without writing {stage.done_marker}")
            timings[stage.name] = round(time.perf_counter() - began, 1)
            ledger.write("timings", timings)
            bar.update(task, advance=1)
    return timings


def as_list(node) -> list[str]:
    """A config list (or a plain list, or None) as a list of override strings."""
    if node is None:
        return []
    return [
        str(x) for x in (node if isinstance(node, (list, tuple)) else OmegaConf.to_container(node, resolve=True))
    ]
