"""Every config the README names composes and instantiates (big presets on the meta device)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from src.data.datamodule import DataConfig
from src.models.factory import ModelSpec
from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.stages.runner import build_loggers, build_strategy, data_config, to_dict
from tests.helpers import REPO

CONFIGS = REPO / "configs"
GROUPS = {
    "stage": ["base", "sft", "grpo"],
    "model": ["tiny", "humanomni_0.5b", "humanomni_7b"],
    "data": ["synth", "synth_conflict", "dfew", "mafw", "emer"],
    "trainer": ["cpu", "gpu", "ddp", "fsdp", "fsdp2"],
    "logger": ["csv", "wandb", "none"],
    "rewards": ["migr", "migr_consistency", "r1omni"],
    "judge": ["keywords", "embedding", "hf", "openai"],
}
ROOTS = ["data.root=/data/X"]  # the real-data groups need their folder


def test_every_group_option_is_listed_here():
    for group, options in GROUPS.items():
        assert sorted(p.stem for p in (CONFIGS / group).glob("*.yaml")) == sorted(options), group


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_yaml_opens_with_what_it_is_and_the_command(path: Path):
    text = path.read_text()
    assert text.startswith("#"), "first line must be a comment saying what this config is"
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "python -m src." in header, "the header comment must show the command that uses this config"


# The config each Hydra entry point composes; the other modules a header may cite take plain arguments.
HYDRA_COMMANDS = {
    "src.train": "train",
    "src.evaluate": "evaluate",
    "src.pipeline": "pipeline",
    "src.study": "study",
    "src.explain": "explain",
    "src.migr.build": "build",
}
ARGPARSE_COMMANDS = {"src.data.synth", "src.analysis.synth_check", "src.registry", "src.judges.head_training"}


def header_commands(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, overrides)`` of every ``python -m src.X ...`` in the header comment of a YAML file.

    A line ending in ``\\`` continues on the next comment line; several commands may share a line
    (``... | python -m ...``). Tokens with ``=`` (or starting with ``~``) are overrides; brackets mark optional
    ones, which are composed too; positional arguments and ``--flags`` are not overrides; a ``#``, a ``|`` or a
    parenthesised remark ends the command.
    """
    import re
    import shlex

    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + text
        else:
            lines.append(text)
    commands = []
    for line in lines:
        for match in re.finditer(r"python -m (src[\w.]*)(.*?)(?=python -m |$)", line):
            module, overrides = match.group(1), []
            command = re.split(r"\s[#|]", match.group(2))[0]  # a comment or the next command ends it
            for token in shlex.split(command):
                if token.startswith("(") and not token.startswith("(["):  # a remark, not optional overrides
                    break
                if token.startswith(("[", "([")):  # an optional override: composed too, without its brackets
                    token = token.lstrip("([")
                while token.endswith(("]", ")")) and token.count("]") + token.count(")") > token.count("["):
                    token = token[:-1]  # the optional bracket's end; a list value keeps its own
                if token.startswith("~") or ("=" in token and not token.startswith("-")):
                    overrides.append(token)
            commands.append((module, overrides))
    return commands


HEADER_COMMANDS = [
    (path, module, overrides)
    for path in sorted(CONFIGS.rglob("*.yaml"))
    for module, overrides in header_commands(path)
]


def test_header_commands_are_parsed_as_written():
    """The parser on headers of each shape (continued line, optional brackets, two commands, remarks)."""
    assert header_commands(CONFIGS / "experiment/paper_sft.yaml")[0][1][:2] == [
        "experiment=paper_sft",
        "model=humanomni_7b",
    ]
    assert "trainer=fsdp" in header_commands(CONFIGS / "experiment/paper_sft.yaml")[0][1]  # the continued line
    assert header_commands(CONFIGS / "rewards/r1omni.yaml") == [
        (
            "src.train",
            [
                "stage=grpo",
                "rewards=r1omni",
                "~rewards.functions.format",
                "+rewards.functions.format_r1omni.weight=1",
            ],
        )
    ]
    assert header_commands(CONFIGS / "judge/keywords.yaml") == [
        ("src.train", ["stage=grpo", "judge=keywords"]),
        ("src.evaluate", ["judge=keywords"]),
    ]
    assert ("src.pipeline", []) in header_commands(CONFIGS / "pipeline.yaml")  # "(= make demo; ...)" is a remark
    assert len(HEADER_COMMANDS) > 50


@pytest.mark.parametrize(
    ("path", "module", "overrides"),
    HEADER_COMMANDS,
    ids=[f"{p.relative_to(CONFIGS)}:{' '.join([m, *o])}" for p, m, o in HEADER_COMMANDS],
)
def test_every_header_command_composes(path: Path, module: str, overrides: list[str]):
    """The command a YAML header shows composes with Hydra as the command line would compose it (not run)."""
    if module in ARGPARSE_COMMANDS:  # not a Hydra entry point: nothing to compose, but a real module
        import importlib.util

        assert importlib.util.find_spec(module) is not None, f"{path}: no module {module}"
        return
    assert module in HYDRA_COMMANDS, f"{path}: the header cites {module}, which is no entry point"
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        compose(config_name=HYDRA_COMMANDS[module], overrides=overrides)


def all_pairs(groups: dict[str, list[str]]) -> list[dict[str, str]]:
    """Rows of group choices that put every option of every group next to every option of every other group.

    Greedy (AETG-style) and deterministic: each row starts from the smallest pair not covered yet and fills the
    other groups with the option that covers the most new pairs. The full product of the seven groups has
    5,400 rows; this covers all of its pairs in a few dozen.
    """
    names = list(groups)

    def pairs(row: dict[str, str]) -> set[tuple[tuple[str, str], tuple[str, str]]]:
        chosen = [(n, row[n]) for n in names if n in row]
        return {(p, q) for i, p in enumerate(chosen) for q in chosen[i + 1 :]}

    uncovered = {  # every pair of options of two groups, the groups in `names` order
        ((a, x), (b, y)) for i, a in enumerate(names) for b in names[i + 1 :] for x in groups[a] for y in groups[b]
    }
    rows = []
    while uncovered:
        (a, x), (b, y) = min(uncovered)
        row = {a: x, b: y}
        for name in names:
            if name not in row:
                row[name] = max(groups[name], key=lambda v, n=name: len(pairs({**row, n: v}) & uncovered))
        rows.append({n: row[n] for n in names})
        uncovered -= pairs(row)
    return rows


def test_all_pairs_covers_every_pair_of_options():
    rows = all_pairs(GROUPS)
    for (a, options_a), (b, options_b) in itertools.combinations(GROUPS.items(), 2):
        seen = {(row[a], row[b]) for row in rows}
        assert seen == set(itertools.product(options_a, options_b)), (a, b)
    assert len(rows) < 40  # vs 5,400 for the full product


def test_every_pair_of_group_options_composes():
    # Group configs meet only through interpolations between two of them, so composing every pair of options
    # (all seven groups at once in each row) catches what the full product would, at 1/100 of its cost.
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        for row in all_pairs(GROUPS):
            overrides = [f"{k}={v}" for k, v in row.items()]
            if not row["data"].startswith("synth"):
                overrides += ROOTS
            cfg = compose(config_name="train", overrides=overrides)
            resolved = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
            assert resolved["stage"]["name"] == row["stage"], row


@pytest.mark.parametrize("model", GROUPS["model"])
def test_each_model_config_instantiates(model, tmp_path):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={model}"])
    spec = ModelSpec(**to_dict(cfg.model))
    with torch.device("meta"):
        built = OmniModel(get_preset(spec.preset, **spec.overrides), video_token_id=1, audio_token_id=2)
    total = sum(built.parameter_counts().values())
    expected = {"tiny": (1e6, 5e6), "humanomni_0.5b": (1.3e9, 1.45e9), "humanomni_7b": (9.4e9, 9.8e9)}[model]
    assert expected[0] < total < expected[1]


@pytest.mark.parametrize("trainer", GROUPS["trainer"])
def test_each_trainer_config_builds_its_strategy(trainer):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"trainer={trainer}"])
    strategy = build_strategy(cfg)
    expected = {
        "cpu": "auto",
        "gpu": "auto",
        "ddp": "DDPStrategy",
        "fsdp": "FSDPStrategy",
        "fsdp2": "ModelParallelStrategy",
    }
    assert (strategy if isinstance(strategy, str) else type(strategy).__name__) == expected[trainer]
    if trainer == "fsdp":  # every decoder / tower block is its own FSDP unit, and is checkpointed
        wrapped = {c.__name__ for c in strategy.kwargs["auto_wrap_policy"]._module_classes}
        assert wrapped == {"Qwen2DecoderLayer", "SiglipEncoderLayer", "WhisperEncoderLayer", "BertLayer"}
        assert strategy._activation_checkpointing_kwargs


@pytest.mark.parametrize("logger", GROUPS["logger"])
def test_each_logger_config_builds(logger, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"logger={logger}", f"runs_dir={tmp_path}"])
    names = [type(x).__name__ for x in build_loggers(cfg)]
    # the CSV logger continues a resumed run's metrics.csv (src/stages/run_folder.py) and is still Lightning's
    csv = "ResumableCSVLogger"
    assert names == {"csv": [csv], "wandb": ["WandbLogger", csv], "none": []}[logger]
    assert all(isinstance(x, CSVLogger) for x in build_loggers(cfg) if type(x).__name__ == csv)


@pytest.mark.parametrize("data", GROUPS["data"])
def test_each_data_config_maps_onto_the_data_module(data):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[f"data={data}", *([] if data.startswith("synth") else ROOTS)]
        )
    options = data_config(cfg, str(cfg.data.manifest))
    assert isinstance(options, DataConfig) and options.dataset == data.removesuffix("_conflict")


def test_a_misspelled_override_fails_at_once_naming_the_key():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="lrr"):
            compose(config_name="train", overrides=["stage.optim.lrr=1e-3"])
        with pytest.raises(ConfigCompositionException, match="modle"):
            compose(config_name="train", overrides=["modle=tiny"])


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml")))
def test_each_experiment_overlay_composes_with_the_big_preset_and_fsdp(experiment):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[f"experiment={experiment}", "model=humanomni_7b", "trainer=fsdp", "data=emer", *ROOTS],
        )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["stage"]["name"] == experiment.removeprefix("paper_")
    assert resolved["trainer"]["devices"] == 8


# ---- which defaults a stage runs with (issue 18 item 8) ---------------------------------------------------------
# The paper's training details (section 4.3, /work/shared/paper/migr-paper.txt), pinned as data: "5 epochs with a
# cosine scheduler, a warmup ratio of 0.03, a learning rate of 2e-5, and a batch size of 32, using 8 x A100";
# GRPO: "gradient accumulation step 2, local batch size 1, G = 4, learning rate 1e-6, cosine decay, 1 epoch".
PAPER_SFT = {"lr": 2e-5, "warmup_ratio": 0.03, "min_lr_ratio": 0.0, "epochs": 5, "global_batch": 32}
PAPER_GRPO = {"lr": 1e-6, "num_generations": 4, "epochs": 1, "prompts_per_update": 8 * 1 * 2}


def _demo_training_commands() -> dict[str, list[str]]:
    """The overrides the demo (``python -m src.pipeline``) trains its base, MIGR SFT and MIGR GRPO stages with."""
    from src.demo.pipeline import plan
    from tests.helpers import compose

    stages = {s.name: list(s.overrides) for s in plan(compose("pipeline", "runs_dir=/runs"))}
    return {"base": stages["base"], "sft": stages["migr_sft"], "grpo": stages["migr_grpo"]}


@pytest.mark.parametrize("stage", ["base", "sft", "grpo"])
def test_a_fresh_stage_run_on_the_tiny_preset_gets_the_demos_settings(stage):
    # What `python -m src.train stage=<stage>` composes on a fresh clone has the stage settings the demo trains
    # with (its commands are the reference: they produced the README's measured, learning demo).
    from tests.helpers import compose_train

    demo = compose_train(*_demo_training_commands()[stage])
    fresh = compose_train(f"stage={stage}")
    assert fresh.model.preset == "tiny"
    ignored = {"init_from", "train_manifest"}  # the demo points these at its own folders
    as_dict = {k: v for k, v in to_dict(fresh.stage).items() if k not in ignored}
    assert as_dict == {k: v for k, v in to_dict(demo.stage).items() if k not in ignored}
    assert fresh.stage.settings == "demo"
    if stage == "sft":  # not the paper's: those leave the tiny model from scratch at loss ~6.3
        assert fresh.stage.optim.lr == 1e-3 and fresh.stage.max_steps == 480


def test_the_paper_overlays_carry_the_papers_settings():
    from tests.helpers import compose_train

    sft = compose_train("experiment=paper_sft")
    assert sft.stage.name == "sft" and sft.stage.settings == "paper"
    assert sft.stage.optim.lr == PAPER_SFT["lr"]
    assert sft.stage.optim.warmup_ratio == PAPER_SFT["warmup_ratio"]
    assert sft.stage.optim.min_lr_ratio == PAPER_SFT["min_lr_ratio"]  # cosine down to 0
    assert (sft.stage.max_epochs, sft.stage.max_steps) == (PAPER_SFT["epochs"], -1)  # epochs, no step cap
    assert (
        sft.data.batch_size * sft.trainer.devices * sft.trainer.accumulate_grad_batches
        == PAPER_SFT["global_batch"]
    )
    grpo = compose_train("experiment=paper_grpo")
    assert grpo.stage.name == "grpo" and grpo.stage.settings == "paper"
    assert grpo.stage.optim.lr == PAPER_GRPO["lr"]
    assert grpo.stage.num_generations == PAPER_GRPO["num_generations"]
    assert (grpo.stage.max_epochs, grpo.stage.max_steps) == (PAPER_GRPO["epochs"], -1)
    # one update per rollout batch: batch 2 per GPU x 8 GPUs = the paper's 1 x 2 accumulation x 8
    assert grpo.stage.batch_size * grpo.trainer.devices == PAPER_GRPO["prompts_per_update"]


def test_the_run_log_says_which_settings_it_uses(caplog):
    import logging

    from src.stages.runner import log_settings
    from tests.helpers import compose_train

    with caplog.at_level(logging.INFO, logger="src.stages.runner"):
        line = log_settings(compose_train("stage=sft"))
    assert line.startswith("stage settings: demo, the tiny model's defaults (configs/stage/sft.yaml")
    assert "lr 0.001" in line and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="src.stages.runner"):
        line = log_settings(compose_train("experiment=paper_grpo", "model=humanomni_7b"))
    assert line.startswith("stage settings: paper, the paper's (configs/experiment/paper_grpo.yaml): lr 1e-06")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="src.stages.runner"):
        log_settings(compose_train("stage=sft", "model=humanomni_7b"))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "model.preset=humanomni-7b" in warning and "experiment=paper_sft" in warning


def _readme_commands(module: str) -> list[list[str]]:
    """Every ``python -m <module> ...`` command of the README's code blocks, continuation lines joined."""
    import re
    import shlex

    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words[:3] == ["python", "-m", module]:
                commands.append(words[3:])
    return commands


@pytest.mark.parametrize(
    ("module", "config"),
    [
        ("src.train", "train"),
        ("src.evaluate", "evaluate"),
        ("src.migr.build", "build"),
        ("src.pipeline", "pipeline"),
    ],
)
def test_every_readme_command_composes(module, config):
    from tests.helpers import compose

    commands = _readme_commands(module)
    assert commands, f"the README shows no {module} command"
    for words in commands:
        cfg = compose(config, *words)
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
        if module == "src.train" and any(w.startswith("experiment=paper_") for w in words):
            assert cfg.stage.settings == "paper", words  # the 8-GPU recipe runs the paper's settings
            assert cfg.stage.optim.lr == (PAPER_SFT if cfg.stage.name == "sft" else PAPER_GRPO)["lr"], words
