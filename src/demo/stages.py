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

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """One step of the pipeline: ``run()`` writes ``done_marker`` when (and only when) it finished."""

    name: str
    done_marker: Path
    run: Callable[[], None]
    description: str = ""

    @property
    def done(self) -> bool:
        return self.done_marker.exists()


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
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
        from src.stages.runner import run_stage

        resume = ["ckpt_path=last"] if (run_dir / "checkpoints" / "last.ckpt").exists() else []
        if resume:
            log.info("%s: resuming from %s", name, run_dir / "checkpoints" / "last.ckpt")
        cfg = _compose("train", [*overrides, f"run_dir={run_dir}", f"export_dir={run_dir / 'export'}", *resume])
        run_stage(cfg)

    return Stage(name, run_dir / "export" / "config.json", run, description=" ".join(overrides))


def build_stage(out_dir: Path, overrides: list[str]) -> Stage:
    def run() -> None:
        from src.migr.build import build

        build(_compose("build", [*overrides, f"out_dir={out_dir}"]))

    return Stage("migr_build", out_dir / "build.json", run, description="FAU + Modality Importance + reordering")


def evaluate_stage(name: str, out_dir: Path, overrides: list[str]) -> Stage:
    def run() -> None:
        from src.evaluation.runner import run_evaluation

        run_evaluation(_compose("evaluate", [*overrides, f"output_dir={out_dir}"]))

    return Stage(name, out_dir / "metrics.json", run, description=" ".join(overrides))


def resumed_path(timings_path: Path) -> Path:
    """Where ``run_all`` lists the stages that finished in a later invocation than the one that started them."""
    return timings_path.with_name("resumed.json")


def run_all(stages: list[Stage], timings_path: Path) -> dict[str, float]:
    """Run every stage not yet done, in order; returns (and saves) the seconds each finished stage took.

    A stage's time is that of the invocation that finished it. A stage started by an earlier, interrupted
    invocation is listed in ``resumed.json`` (its killed attempt could not record its own time), so that the
    result table can say which times are partial.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    timings: dict[str, float] = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    started_path = timings_path.with_name("started.json")
    started: list[str] = json.loads(started_path.read_text()) if started_path.exists() else []
    resumed: list[str] = (
        json.loads(resumed_path(timings_path).read_text()) if resumed_path(timings_path).exists() else []
    )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("demo", total=len(stages))
        for stage in stages:
            if stage.done:
                log.info("stage %s: already done (%s), skipped", stage.name, stage.done_marker)
                bar.update(task, advance=1, description=f"{stage.name} (done)")
                continue
            bar.update(task, description=stage.name)
            log.info("stage %s: %s", stage.name, stage.description)
            timings_path.parent.mkdir(parents=True, exist_ok=True)
            if stage.name in started and stage.name not in resumed:
                resumed.append(stage.name)
                resumed_path(timings_path).write_text(json.dumps(resumed))
            elif stage.name not in started:
                started.append(stage.name)
                started_path.write_text(json.dumps(started))
            began = time.perf_counter()
            stage.run()
            if not stage.done:
                raise RuntimeError(f"stage {stage.name} finished without writing {stage.done_marker}")
            timings[stage.name] = round(time.perf_counter() - began, 1)
            timings_path.write_text(json.dumps(timings, indent=1))
            bar.update(task, advance=1)
    return timings


def as_list(node) -> list[str]:
    return [str(x) for x in OmegaConf.to_container(node, resolve=True)] if node is not None else []
