"""The study's plan: one corpus per regime, shared stages once per seed x regime, arms that share an SFT wait for
it, and every arm's stages read the right build (no training here)."""

from __future__ import annotations

import pytest

from src.study.plan import study_tasks, workers_and_threads
from tests.helpers import compose

SHARING = "+arms.migr_again={manifest: sft_manifest.jsonl, rewards: migr, sft_of: migr}"  # GRPO only, MIGR's SFT


def _study(tmp_path, *overrides: str):
    return compose(
        "study",
        "shrink=true",
        f"out_dir={tmp_path}",
        "seeds=[0,1]",
        SHARING,
        "regimes.conflict.arms=[baseline,migr,migr_oracle,migr_nofau,migr_again]",
        *overrides,
    )


def test_the_tasks_share_what_the_arms_share(tmp_path):
    tasks = study_tasks(_study(tmp_path))
    arms = ["baseline", "migr", "migr_oracle", "migr_nofau", "migr_again"]
    assert list(tasks) == [
        "conflict/corpus",
        "faint/corpus",
        *(
            name
            for seed in (0, 1)
            for name in (
                f"conflict/seed_{seed}/shared",
                *(f"conflict/seed_{seed}/{arm}" for arm in arms),
                f"faint/seed_{seed}/shared",
                f"faint/seed_{seed}/baseline",
                f"faint/seed_{seed}/migr",
            )
        ),
    ]
    assert [s.done_marker for s in tasks["conflict/corpus"].stages] == [tmp_path / "conflict/corpus/corpus.json"]
    seed0 = tmp_path / "conflict" / "seed_0"
    shared = tasks["conflict/seed_0/shared"]
    assert [s.name for s in shared.stages] == ["base", "migr_build", "migr_oracle_build", "migr_nofau_build"]
    assert shared.needs == tasks["conflict/corpus"].stages
    assert [s.name for s in tasks["faint/seed_1/shared"].stages] == ["base", "migr_build"]  # only what it reads
    # the seed's corpus is the regime's one corpus, in the conflict regime with FAU copies crediting the dominant cue
    base = shared.stages[0]
    assert f"data.manifest={tmp_path / 'conflict/corpus/manifest.jsonl'}" in base.overrides
    assert "++data.synth.regime=conflict" in base.overrides and "seed=0" in base.overrides
    assert "fau.think=dominant" in shared.stages[1].overrides
    oracle = {s.name: s for s in shared.stages}["migr_oracle_build"]
    assert (
        "reorder.order_source=manifest" in oracle.overrides
        and f"out_dir={seed0 / 'migr_oracle'}" not in oracle.overrides
    )
    assert oracle.done_marker == seed0 / "migr_oracle" / "build.json"
    assert "fau.enabled=false" in {s.name: s for s in shared.stages}["migr_nofau_build"].overrides

    # an arm: SFT, GRPO, evaluation, the embedding judge's re-judging; each reads its own build
    names = lambda task: [s.name for s in task.stages]  # noqa: E731
    assert names(tasks["conflict/seed_0/migr_oracle"]) == [
        "migr_oracle_sft",
        "migr_oracle_grpo",
        "eval_migr_oracle",
        "judge_migr_oracle_embedding",
    ]
    oracle_grpo = tasks["conflict/seed_0/migr_oracle"].stages[1]
    assert "stage.dominant_source=manifest" in oracle_grpo.overrides
    assert f"stage.train_manifest={seed0 / 'migr_oracle' / 'sft_manifest.jsonl'}" in oracle_grpo.overrides
    baseline_grpo = tasks["conflict/seed_0/baseline"].stages[1]
    assert "rewards=r1omni" in baseline_grpo.overrides
    assert f"stage.train_manifest={seed0 / 'migr' / 'baseline_manifest.jsonl'}" in baseline_grpo.overrides
    rejudge = tasks["conflict/seed_0/migr"].stages[3]
    assert rejudge.done_marker == seed0 / "eval_migr_embedding" / "metrics.json"

    # an arm that differs only in GRPO has no SFT of its own and waits for MIGR's
    again = tasks["conflict/seed_0/migr_again"]
    assert names(again) == ["migr_again_grpo", "eval_migr_again", "judge_migr_again_embedding"]
    migr_sft = tasks["conflict/seed_0/migr"].stages[0]
    assert migr_sft.name == "migr_sft" and migr_sft in again.needs
    assert f"stage.init_from={seed0 / 'migr_sft' / 'export'}" in again.stages[0].overrides
    # each task keeps its own ledger and log in its seed folder
    assert again.ledger.path("timings") == seed0 / "timings_migr_again.json"
    assert again.log == seed0 / "migr_again.log"


def test_a_setting_the_demo_would_not_pass_on_fails_at_once(tmp_path):
    with pytest.raises(ValueError, match=r"regimes.faint.corpus: \['colour'\] are not settings"):
        study_tasks(_study(tmp_path, "+regimes.faint.corpus.colour=1"))
    with pytest.raises(ValueError, match=r"arms.migr_again.rewards='nope': no configs/rewards/nope.yaml"):
        study_tasks(_study(tmp_path, "arms.migr_again.rewards=nope"))
    with pytest.raises(ValueError, match="expected `baseline` first"):
        study_tasks(_study(tmp_path, "regimes.faint.arms=[migr,baseline]"))
    with pytest.raises(ValueError, match=r"arms.migr_again.sft_of='migr'"):
        study_tasks(_study(tmp_path, "regimes.conflict.arms=[baseline,migr_again,migr]"))


def test_workers_one_single_threaded_worker_per_core_on_a_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert workers_and_threads("auto") == (2, 1) and workers_and_threads(1) == (1, 2)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert workers_and_threads("auto") == (1, 2)
        with pytest.raises(ValueError, match="workers=0"):
            workers_and_threads(0)
    finally:
        torch.set_num_threads(threads)


def test_the_worker_pool_starts_a_task_once_its_needs_are_done_and_never_runs_more_than_its_workers(tmp_path):
    import json

    from src.demo.arms import Task, run_workers
    from src.demo.stages import Ledger, Stage

    needs = {"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}
    stages = {name: Stage(name, tmp_path / f"{name}.done", lambda: None) for name in needs}
    spec = {
        name: {
            "marker": str(stages[name].done_marker),
            "needs": [str(stages[n].done_marker) for n in deps],
            "seconds": 1.0,
        }
        for name, deps in needs.items()
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "b.done").write_text("done")  # finished before: never started again
    tasks = [
        Task(
            name, [stages[name]], Ledger(tmp_path, f"_{name}"), tmp_path / f"{name}.log", [stages[n] for n in deps]
        )
        for name, deps in needs.items()
    ]
    run_workers(
        "tests.study.fake_worker",
        tmp_path / "spec.json",
        tasks,
        workers=2,
        threads=1,
        progress=False,
        poll_seconds=0.05,
    )
    times = {name: json.loads((tmp_path / f"{name}.times").read_text()) for name in ("a", "c", "d")}
    assert not (tmp_path / "b.times").exists()
    assert times["d"][0] >= max(times["a"][1], times["c"][1])  # d waited for c (and b, done before)
    starts_and_ends = sorted([(t[0], 1) for t in times.values()] + [(t[1], -1) for t in times.values()])
    running = [sum(step for _, step in starts_and_ends[: i + 1]) for i in range(len(starts_and_ends))]
    assert max(running) == 2  # a and c side by side, never more than two

    (tmp_path / "d.done").unlink()
    spec["d"]["needs"].append(str(tmp_path / "never.done"))
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"task d needs \['never'\], which no task makes"):
        never = Stage("never", tmp_path / "never.done", lambda: None)
        run_workers(
            "tests.study.fake_worker",
            tmp_path / "spec.json",
            [*tasks[:3], Task("d", [stages["d"]], Ledger(tmp_path), tmp_path / "d.log", [never])],
            workers=2,
            threads=1,
            progress=False,
        )
