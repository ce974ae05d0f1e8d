"""The study's stages and worker tasks: one demo-layout folder per corpus regime x training seed, shared stages
built once, and every task run in a pool of worker processes.

Folder layout under ``out_dir`` (``runs/study`` by default)::

    study.yaml                       the resolved configuration the workers plan from
    <regime>/corpus/                 the regime's corpus when shrunk (else ``regimes.<regime>.corpus.root``)
    <regime>/seed_<s>/               a demo folder (src.demo.pipeline): base/, migr/ (+ migr_oracle/, migr_nofau/),
                                     <arm>_sft/, <arm>_grpo/, eval_<arm>/ (keyword judge), eval_<arm>_embedding/
                                     (the same predictions re-judged by the embedding judge), ledgers and logs
    study.md  study.json  forest.png the analysis (src.study.report)

Tasks (:class:`src.demo.arms.Task`, each a worker ``python -m src.study.plan STUDY_YAML TASK``):
``<regime>/corpus``; ``<regime>/seed_<s>/shared`` (``base`` warm-up and the MIGR builds the regime's arms read);
``<regime>/seed_<s>/<arm>`` (SFT unless the arm shares another arm's, GRPO, evaluation, embedding re-judge).
A task starts once the stages it needs are done, earlier seeds first; a finished stage is never run again, so a
study killed at any point and started again redoes no finished seed x arm.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.demo.arms import Task, log_path
from src.demo.stages import Ledger, Stage, compose_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EMBEDDING = "embedding"  # the second judge every arm is re-judged with (the first is the evaluation's own)


@dataclass(frozen=True)
class Unit:
    """One regime x seed: a demo folder and its configuration (``cfg`` as :func:`src.demo.pipeline.plan` reads)."""

    regime: str
    seed: int
    out: Path
    corpus_root: Path
    cfg: DictConfig


def regime_corpus_root(cfg: DictConfig, regime: str) -> Path:
    """The regime's corpus folder: ``<out_dir>/<regime>/corpus`` when shrunk, else ``regimes.<regime>.corpus.root``."""
    if bool(cfg.shrink):
        return Path(cfg.out_dir) / regime / "corpus"
    return Path(cfg.regimes[regime].corpus.root)


def units(cfg: DictConfig) -> list[Unit]:
    """Every regime x seed of the study, seeds outermost (a study finishes whole seeds first)."""
    seeds = [int(s) for s in cfg.seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={list(cfg.seeds)}: expected distinct integers")
    plain = OmegaConf.to_container(cfg, resolve=True)
    result = []
    for seed in seeds:
        for regime, settings in cfg.regimes.items():
            arms = list(settings.arms)
            unknown = [arm for arm in arms if arm not in cfg.arms]
            if unknown or not arms or arms[0] != "baseline":
                raise ValueError(
                    f"regimes.{regime}.arms={arms}: expected `baseline` first, then arms defined under `arms` "
                    f"({sorted(cfg.arms)}); unknown: {unknown}"
                )
            _check_regime(cfg, regime, arms)
            builds = dict.fromkeys(["migr", *(cfg.arms[arm].get("build") or "migr" for arm in arms)])
            unit = {
                **{k: v for k, v in plain.items() if k not in ("regimes", "arms", "builds")},
                "seed": seed,
                "seeds": None,
                "out_dir": str(Path(cfg.out_dir) / regime / f"seed_{seed}"),
                "corpus": {**plain["corpus"], **plain["regimes"][regime].get("corpus", {})},
                "arms": {arm: plain["arms"][arm] for arm in arms},
                "builds": {build: plain["builds"][build] for build in builds},
            }
            result.append(
                Unit(regime, seed, Path(unit["out_dir"]), regime_corpus_root(cfg, regime), OmegaConf.create(unit))
            )
    return result


def _check_regime(cfg: DictConfig, regime: str, arms: list[str]) -> None:
    """Fail at once (not in a worker an hour later) on a corpus setting the demo does not pass on or a reward
    set that does not exist."""
    unknown = sorted(set(cfg.regimes[regime].get("corpus") or {}) - set(cfg.corpus))
    if unknown:
        raise ValueError(
            f"regimes.{regime}.corpus: {unknown} are not settings of configs/pipeline.yaml's `corpus` "
            f"({sorted(cfg.corpus)}), so the corpus would be made without them"
        )
    for arm in arms:
        rewards = cfg.arms[arm].rewards
        if not (CONFIGS / "rewards" / f"{rewards}.yaml").exists():
            raise ValueError(f"arms.{arm}.rewards={rewards!r}: no configs/rewards/{rewards}.yaml")


def rejudge_stage(name: str, source: Path, out: Path, overrides: list[str], arm: str) -> Stage:
    """The evaluation in ``source`` judged again by the embedding judge into ``out`` (no regeneration: its
    predictions, settings, first-tag margins and anchoring probe are copied, and the evaluation reuses them)."""

    def run() -> None:
        from src.evaluation.runner import run_evaluation

        out.mkdir(parents=True, exist_ok=True)
        for file in ("predictions.jsonl", "run.json", "first_tag.json", "anchoring.json"):  # probes: cached
            if (source / file).exists() and not (out / file).exists():
                shutil.copyfile(source / file, out / file)
        run_evaluation(compose_config("evaluate", [*overrides, f"judge={EMBEDDING}", f"output_dir={out}"]))

    return Stage(
        name, out / "metrics.json", run, description=f"{source.name} re-judged by the {EMBEDDING} judge", arm=arm
    )


def unit_stages(unit: Unit) -> list[Stage]:
    """The demo plan of ``unit`` plus, per arm, the embedding judge's re-judging of its evaluation."""
    from src.demo.pipeline import plan

    stages = plan(unit.cfg, corpus_root=unit.corpus_root)
    result = []
    for stage in stages:
        result.append(stage)
        if stage.arm is not None and stage.name == f"eval_{stage.arm}":
            result.append(
                rejudge_stage(
                    f"judge_{stage.arm}_{EMBEDDING}",
                    stage.done_marker.parent,
                    unit.out / f"eval_{stage.arm}_{EMBEDDING}",
                    list(stage.overrides),
                    stage.arm,
                )
            )
    return result


def study_tasks(cfg: DictConfig) -> dict[str, Task]:
    """Every worker task of the study, in the order they should start (see the module docstring)."""
    tasks: dict[str, Task] = {}
    corpus_tasks: dict[str, Task] = {}
    for unit in units(cfg):
        stages = unit_stages(unit)
        corpus, shared = stages[0], [s for s in stages[1:] if s.arm is None]
        if unit.regime not in corpus_tasks:
            name = f"{unit.regime}/corpus"
            folder = unit.corpus_root.parent if bool(cfg.shrink) else Path(cfg.out_dir) / unit.regime
            corpus_tasks[unit.regime] = tasks[name] = Task(
                name, [corpus], Ledger(folder, "_corpus"), folder / "corpus.log"
            )
        prefix = f"{unit.regime}/seed_{unit.seed}"
        tasks[f"{prefix}/shared"] = Task(
            f"{prefix}/shared", shared, Ledger(unit.out), log_path(unit.out, "shared"), [corpus]
        )
        by_name = {s.name: s for s in stages}
        for arm in unit.cfg.arms:
            sft_of = unit.cfg.arms[arm].get("sft_of")
            needs = [*shared, *([by_name[f"{sft_of}_sft"]] if sft_of else [])]
            own = [s for s in stages if s.arm == arm]
            tasks[f"{prefix}/{arm}"] = Task(
                f"{prefix}/{arm}", own, Ledger(unit.out, f"_{arm}"), log_path(unit.out, arm), needs
            )
    # corpora first, then each seed's shared stages and arms: a ready task earlier in the list starts first
    return {
        **{t.name: t for t in corpus_tasks.values()},
        **{k: v for k, v in tasks.items() if k not in corpus_tasks},
    }


def workers_and_threads(setting: int | str) -> tuple[int, int]:
    """(worker processes, torch threads each): ``auto`` = one single-threaded worker per torch thread on a CPU
    machine (the tiny model cannot keep two threads busy: src/demo/arms.py), one worker with all threads on a GPU."""
    import torch

    budget = torch.get_num_threads()
    if setting == "auto":
        return (1, budget) if torch.cuda.is_available() else (max(1, budget), 1)
    workers = int(setting)
    if workers < 1:
        raise ValueError(f"workers={setting!r}: expected auto or a positive integer")
    return workers, max(1, budget // workers)


def main(argv: Sequence[str] | None = None) -> None:
    from src.demo.arms import worker_main

    worker_main(argv if argv is not None else sys.argv[1:], study_tasks)


if __name__ == "__main__":
    main()
