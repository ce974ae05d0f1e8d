"""configs/evaluate.yaml composes with every data, judge and logger group, and validates its settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from src.evaluation.predict import GenerationSettings
from src.evaluation.runner import generation_settings
from tests.evaluation.conftest import CONFIGS


def _groups(name: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / name).glob("*.yaml"))


@pytest.mark.parametrize("data", _groups("data"))
@pytest.mark.parametrize("judge", _groups("judge"))
def test_every_group_composes(data: str, judge: str) -> None:
    overrides = [f"data={data}", f"judge={judge}", "runs_dir=/runs"]
    if data != "synth":
        overrides.append("data.root=/datasets/x")
    if judge == "hf":
        overrides.append("judge.path=/models/goemotions")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["judge"]["name"] == judge
    assert resolved["on_error"] == resolved["data"]["on_error"]  # the data set's policy unless overridden
    assert resolved["model_path"] == "auto" and resolved["model_search"] == ["grpo", "sft", "base"]


@pytest.mark.parametrize("logger", _groups("logger"))
def test_logger_groups_compose(logger: str) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[f"logger={logger}"])
    assert cfg.logger.kind == logger


def test_defaults_are_the_documented_protocol(tiny_export: Path) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="evaluate")
    settings = generation_settings(cfg, tiny_export)
    assert settings == GenerationSettings(task="reasoning", attention_layer=1)  # greedy, 384 tokens, paper depth
    assert (cfg.split, cfg.explanation_mode, cfg.judge.name, cfg.logger.kind) == (
        "test",
        "explanation",
        "keywords",
        "none",
    )
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        bad = compose(config_name="evaluate", overrides=["attention.layer=5"])
    with pytest.raises(ValueError, match=r"attention.layer=5 is outside the LLM's 2 layers"):
        generation_settings(bad, tiny_export)
    with pytest.raises(ValueError, match="unknown prompt task 'chat'"):
        GenerationSettings(task="chat")
    with pytest.raises(ValueError, match="temperature=-1"):
        GenerationSettings(temperature=-1)


def test_the_openai_judge_cache_lives_under_the_runs_folder() -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["judge=openai", "runs_dir=/shared/runs"])
    assert cfg.judge.cache_path == "/shared/runs/judge_cache/openai.sqlite"
