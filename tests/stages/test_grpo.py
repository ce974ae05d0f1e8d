"""The GRPO stage: one step trains what it should, shares encoder passes, logs per reward.

DDP and FSDP2 runs: tests/stages/test_distributed.py.
"""

from __future__ import annotations

import csv
import json

import lightning as L
import pytest
import torch

from src.models.checkpoint import load_model
from src.models.factory import ModelSpec, describe
from src.reward_set import RewardFailedWarning
from src.stages.runner import build_datamodule, build_module, build_trainer, to_dict
from tests.helpers import compose_train, corpus_overrides

GRPO = [
    "stage=grpo",
    "stage.max_steps=1",
    "stage.batch_size=2",
    "stage.num_generations=4",
    "stage.max_new_tokens=12",
    "stage.optim.lr=1e-2",  # a visible step on a random model
    "logger=csv",
    "trainer.limit_val_batches=0",
    "model.freeze.vision_tower=true",
    "model.freeze.audio_tower=true",
]


class LengthReward:
    """A reward with spread on a random model's completions (the real ones are all 0 there): length / 100."""

    name = "length"

    def __call__(self, *, completions, **batch):
        return [len(text) / 100 for text in completions]


class FlakyReward:
    """Raises on its first call (step 0), then scores 1.0 for every completion."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *, completions, **batch):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("flaky reward failed")
        return [1.0 for _ in completions]


def _with_length_reward(module, *, flaky: bool = False):
    from src.reward_set import RewardSet, RewardSpec

    classes = {"length": LengthReward, "flaky": FlakyReward}

    class Registry:  # the reward set looks names up here; only the rewards above exist
        def load(self, name):
            return classes[name]

        def create(self, name, **kwargs):
            return classes[name]()

        def provenance(self, name):
            return {"package": "tests", "version": "0", "object": classes[name].__name__}

    specs = [RewardSpec("length"), *([RewardSpec("flaky")] if flaky else [])]
    module.reward_set = RewardSet(specs, registry=Registry(), on_error="skip")
    return module


def _fit(cfg):
    L.seed_everything(0)
    init_from = cfg.stage.init_from
    datamodule = build_datamodule(cfg, describe(ModelSpec(**to_dict(cfg.model)), init_from))
    module = build_module(cfg, init_from)
    trainer = build_trainer(cfg)
    return module, trainer, datamodule


def test_two_steps_change_trained_parameters_only_share_one_encoder_pass_and_log_every_reward(
    stage_corpus, tiny_export, tmp_path
):
    cfg = compose_train(
        *GRPO,
        *corpus_overrides(stage_corpus),
        f"stage.init_from={tiny_export}",
        f"runs_dir={tmp_path}",
        "stage.max_steps=2",
    )
    module, trainer, datamodule = _fit(cfg)
    _with_length_reward(module, flaky=True)
    module.configure_model()
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    frozen = {n for n, p in module.model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("vision_tower.") for n in frozen) and any(n.startswith("audio_tower.") for n in frozen)
    tower_calls: list[int] = []
    module.model.vision_tower.embeddings.register_forward_hook(lambda m, i, o: tower_calls.append(o.shape[0]))
    module.model.audio_tower.register_forward_hook(lambda m, i, o: tower_calls.append(-i[0].shape[0]))
    with pytest.warns(RewardFailedWarning, match="flaky reward failed"):
        trainer.fit(module, datamodule=datamodule)
    after = dict(module.model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert changed and not (changed & frozen)
    assert any(n.startswith("llm.") for n in changed) and any(n.startswith("mm_projector.") for n in changed)
    # 2 prompts x 4 completions, two steps: in each, each tower ran ONCE, on the 2 clips (8 frames each), for the
    # rollout, the policy forward and the reference forward together
    assert sorted(tower_calls) == [-2, -2, 16, 16]
    # every reward's statistics logged per step; the reward skipped after an error is missing at step 0, not 0.0
    with (tmp_path / "grpo/logs/metrics.csv").open() as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    assert len(logged) == 2
    first, second = logged
    for name in ("length", "flaky"):
        assert {f"train/rewards/{name}/{stat}" for stat in ("mean", "std", "applicable", "errors")} <= set(first)
    assert {"train/kl", "train/clip_ratio/region_mean", "train/entropy", "train/rows_without_reward"} <= set(first)
    assert first["train/rewards/flaky/mean"] == "" and float(first["train/rewards/flaky/errors"]) == 1.0
    assert (
        float(first["train/rewards/flaky/applicable"]) == 0.0
        and float(first["train/rewards/length/applicable"]) == 8
    )
    assert float(second["train/rewards/flaky/mean"]) == 1.0 and float(second["train/rewards/flaky/errors"]) == 0.0
    assert float(first["train/rows_without_reward"]) == 0.0  # length applied everywhere
    rows = [json.loads(line) for line in (tmp_path / "grpo/completions.jsonl").read_text().splitlines()]
    assert rows and {"completion", "length", "flaky", "total"} <= set(rows[0])
    by_step = {row["step"]: row for row in rows}
    assert by_step[1]["flaky"] is None and by_step[1]["total"] == pytest.approx(by_step[1]["length"])
    assert by_step[2]["total"] == pytest.approx(by_step[2]["length"] + 1.0)  # the same total as training's
    assert load_model(tmp_path / "grpo/export").model.config.preset == "tiny"


def test_the_run_records_which_package_provided_each_reward(stage_corpus, tiny_export, tmp_path):
    cfg = compose_train(
        *GRPO, *corpus_overrides(stage_corpus), f"stage.init_from={tiny_export}", f"runs_dir={tmp_path}"
    )
    module = build_module(cfg, cfg.stage.init_from)
    provenance = module.hparams["reward_provenance"]
    assert set(provenance) == {"modality_order", "modality_grounding", "answer"}
    assert (
        provenance["answer"]["package"] == "migr"
        and provenance["answer"]["object"] == "rewards.answer:AnswerReward"
    )
    assert provenance["answer"]["weight"] == 1.0


def test_lora_policy_uses_the_disabled_adapter_as_reference(stage_corpus, tiny_export, tmp_path):
    cfg = compose_train(
        *GRPO,
        *corpus_overrides(stage_corpus),
        f"stage.init_from={tiny_export}",
        f"runs_dir={tmp_path}",
        "model.lora.enabled=true",
        "model.lora.r=4",
        "model.freeze.vision_tower=true",
    )
    module, trainer, datamodule = _fit(cfg)
    _with_length_reward(module)
    module.configure_model()
    assert module._reference == []  # no second copy in memory
    trainer.fit(module, datamodule=datamodule)
    exported = load_model(tmp_path / "grpo/export")  # merged weights, plain names
    assert not any("lora" in n for n in exported.model.state_dict())


def test_no_reference_is_built_when_beta_is_zero(stage_corpus, tiny_export, tmp_path):
    cfg = compose_train(
        *GRPO,
        *corpus_overrides(stage_corpus),
        f"stage.init_from={tiny_export}",
        f"runs_dir={tmp_path}",
        "stage.beta=0",
    )
    module, _, _ = _fit(cfg)
    module.configure_model()
    assert module._reference == []


def test_misspelled_reward_fails_fast_with_a_suggestion(stage_corpus, tiny_export, tmp_path):
    cfg = compose_train(
        *GRPO,
        *corpus_overrides(stage_corpus),
        f"stage.init_from={tiny_export}",
        f"runs_dir={tmp_path}",
        "rewards=r1omni",
        "~rewards.functions.answer",
        "+rewards.functions.anwser.weight=1.0",
    )
    with pytest.raises(Exception, match="Did you mean 'answer'"):
        build_module(cfg, cfg.stage.init_from)


def test_the_cli_rejects_a_misspelled_reward_within_seconds(run_train):
    import time

    started = time.perf_counter()
    result = run_train(
        "stage=grpo",
        "rewards=r1omni",
        "~rewards.functions.answer",
        "+rewards.functions.anwser.weight=1",
        check=False,
        fresh=True,  # the time of a fresh process: the check runs before torch is imported
    )
    elapsed = time.perf_counter() - started
    assert result.returncode != 0
    assert "Unknown reward 'anwser'. Did you mean 'answer'?" in result.stderr
    assert elapsed < 5.0, f"took {elapsed:.1f} s"


class DominantRecorder:
    """Scores 0.0 and records the dominant modality each completion was scored with."""

    name = "recorder"
    seen: list = []

    def __call__(self, *, completions, dominant, **batch):
        DominantRecorder.seen = list(dominant)
        return [0.0 for _ in completions]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # MI estimate first (the paper's m); "none" = MI found no dominant modality; absent -> the manifest's
        ("mi", ["audio", None, "visual"]),
        ("manifest", ["visual", "audio", "visual"]),
    ],
)
def test_rewards_read_the_dominant_modality_the_config_names(stage_corpus, tmp_path, source, expected):
    from types import SimpleNamespace

    from src.models.tokenizer import build_tiny_tokenizer
    from src.reward_set import RewardSet, RewardSpec
    from src.rl.rollout import Rollout

    cfg = compose_train(
        *GRPO, *corpus_overrides(stage_corpus), f"runs_dir={tmp_path}", f"stage.dominant_source={source}"
    )
    module = build_module(cfg, None)
    module.tokenizer = build_tiny_tokenizer()

    class Registry:
        def load(self, name):
            return DominantRecorder

        def create(self, name, **kwargs):
            return DominantRecorder()

        def provenance(self, name):
            return {"package": "tests", "version": "0", "object": "DominantRecorder"}

    module.reward_set = RewardSet([RewardSpec("recorder")], registry=Registry())
    meta = [
        {"id": "a", "label": "happy", "dataset": "synth", "dominant": "visual", "mi_dominant": "audio"},
        {"id": "b", "label": "sad", "dataset": "synth", "dominant": "audio", "mi_dominant": "none"},
        {"id": "c", "label": "angry", "dataset": "synth", "dominant": "visual"},
    ]
    group = module.cfg.num_generations
    rows = len(meta) * group
    batch = SimpleNamespace(input_ids=torch.ones(len(meta), 3, dtype=torch.long), meta=meta)
    rollout = Rollout(
        prompt_ids=batch.input_ids,
        prompt_mask=torch.ones(len(meta), 3, dtype=torch.long),
        completion_ids=torch.ones(rows, 2, dtype=torch.long),
        completion_mask=torch.ones(rows, 2, dtype=torch.long),
        texts=["x"] * rows,
        num_generations=group,
        media=None,
        towers=None,
        truncated=torch.zeros(rows, dtype=torch.bool),
    )
    module.score(rollout, batch)
    assert DominantRecorder.seen == [value for value in expected for _ in range(group)]
