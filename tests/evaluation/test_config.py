"""configs/evaluate.yaml composes with every data, judge and logger group, maps key for key onto
:class:`EvalConfig`, and its settings are checked when the command starts, before any data or model is read."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from src.config_check import ConfigError
from src.evaluation.config import EvalConfig, EvalConfigError
from src.evaluation.explain import EXPLAIN_ONLY
from src.evaluation.predict import GenerationSettings
from src.evaluation.predictions import EvaluationError
from src.evaluation.runner import generation_settings, run_evaluation
from tests.evaluation.conftest import CONFIGS
from tests.helpers import REPO
from tests.helpers import compose as compose_config

GROUPS = ("data", "judge", "logger", "feature_cache")  # config groups: mappings their own code reads


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
    settings = generation_settings(EvalConfig.from_config(cfg), tiny_export)
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
        generation_settings(EvalConfig.from_config(bad), tiny_export)
    with pytest.raises(ValueError, match="unknown prompt task 'chat'"):
        GenerationSettings(task="chat")
    with pytest.raises(ValueError, match="temperature=-1"):
        GenerationSettings(temperature=-1)


def test_the_openai_judge_cache_lives_under_the_runs_folder() -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["judge=openai", "runs_dir=/shared/runs"])
    assert cfg.judge.cache_path == "/shared/runs/judge_cache/openai.sqlite"


def _keys(node: dict, prefix: str = "") -> set[str]:
    """Dotted keys of a resolved config: nested mappings opened, the groups' contents left closed."""
    return {
        key
        for name, value in node.items()
        for key in (
            _keys(value, f"{prefix}{name}.")
            if isinstance(value, dict) and prefix + name not in GROUPS
            else {prefix + name}
        )
    }


def _fields(cls: type, prefix: str = "") -> set[str]:
    """Dotted field names of a dataclass, nested dataclasses opened."""
    hints = typing.get_type_hints(cls)
    keys = set()
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        keys |= _fields(kind, f"{prefix}{item.name}.") if dataclasses.is_dataclass(kind) else {prefix + item.name}
    return keys


def test_every_key_of_evaluate_yaml_is_a_field_with_its_value(monkeypatch) -> None:
    monkeypatch.delenv("MIGR_RUNS", raising=False)
    resolved = OmegaConf.to_container(compose_config("evaluate"), resolve=True)
    assert _keys(resolved) == _fields(EvalConfig)  # a key without a field, or a field without a key, fails
    config = EvalConfig.from_config(compose_config("evaluate"))
    assert config.to_dict() == resolved  # every value carried over as composed
    # the dataclass's own defaults are evaluate.yaml's (the groups come from their own files)
    defaults = {key: value for key, value in EvalConfig().to_dict().items() if key not in GROUPS}
    assert defaults == {key: value for key, value in resolved.items() if key not in GROUPS}


def test_the_explainer_reads_the_same_keys(monkeypatch) -> None:
    monkeypatch.delenv("MIGR_RUNS", raising=False)
    resolved = OmegaConf.to_container(compose_config("explain"), resolve=True)
    config = EvalConfig.from_config(compose_config("explain"), ignore=EXPLAIN_ONLY).to_dict()
    shared = {key: value for key, value in resolved.items() if key not in EXPLAIN_ONLY}
    assert shared and _within(config, shared) == shared  # keys explain.yaml lacks take evaluate.yaml's defaults


def _within(full: dict, part: dict) -> dict:
    """``full`` restricted to the keys of ``part`` (nested mappings too)."""
    return {
        key: _within(full[key], value) if isinstance(value, dict) and isinstance(full[key], dict) else full[key]
        for key, value in part.items()
    }


BAD = [  # override, what the error says (key=found: expected ...)
    ("batch_size=0", "batch_size=0: expected an integer >= 1"),
    ("temperature=-0.5", "temperature=-0.5: expected a number >= 0"),
    ("attention.bins=0", "attention.bins=0: expected an integer >= 1"),
    ("split=dev", "split='dev': expected one of train, val, test"),
    ("task=chat", "task='chat': expected one of reasoning, label, r1omni"),
    ("on_error=ignore", "on_error='ignore': expected one of raise, skip"),
    ("attention.group_by=truth", "attention.group_by='truth': expected one of dominant, mi"),
    ("dtype=fp8", "dtype='fp8': expected one of float32, bfloat16, float16, null"),
    ("preprocess=crop", "preprocess='crop': expected one of migr, upstream_train, upstream_inference, null"),
    ("device=gpu", "device='gpu': expected auto or a torch device"),
    ("judge.name=keyword", "judge.name='keyword' is not a judge backend. Did you mean 'keywords'?"),
    ("extra_judges=[{top_k: 1, name: keyword}]", "extra_judges[0].name='keyword' is not a judge backend"),
    ("extra_judges=[nope]", "extra_judges[0]='nope': no configs/judge/nope.yaml"),
    ("progress_bar=maybe", "progress_bar='maybe': expected true or false"),
    ("limit=all", "limit='all': expected an integer or null"),
    ("batch_size=true", "batch_size=True: expected an integer"),
    ("model_search=grpo", "model_search='grpo': expected a list (each a string)"),
    ("concurrent.focus=[1]", "concurrent.focus=[1]: expected a list (each a string)"),
    ("attention=on", "attention='on': expected a mapping of enabled, layer, bins, group_by"),
    ("+temprature=0.3", "temprature=0.3: not a setting (did you mean temperature?)"),
    ("+attention.colour=red", "attention.colour='red': not a setting; known: enabled, layer, bins, group_by"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[override for override, _ in BAD])
def test_bad_settings_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(EvalConfigError) as error:
        EvalConfig.from_config(compose_config("evaluate", override))
    assert message in str(error.value)
    assert isinstance(error.value, ConfigError) and isinstance(error.value, EvaluationError)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(EvalConfigError) as error:
        EvalConfig.from_config(compose_config("evaluate", "batch_size=0", "split=dev", "device=gpu"))
    assert str(error.value).startswith("invalid settings: ")
    for part in ("batch_size=0", "split='dev'", "device='gpu'"):
        assert part in str(error.value)
    with pytest.raises(EvalConfigError, match="top_k=-1: expected an integer >= 0"):
        EvalConfig(top_k=-1)  # built by hand: checked the same


def test_refused_before_any_data_or_model_is_read(tmp_path: Path) -> None:
    cfg = compose_config(  # the synthetic corpus would be generated under data.root on first use
        "evaluate", "temperature=-1", f"data.root={tmp_path / 'synth'}", f"runs_dir={tmp_path / 'runs'}"
    )
    with pytest.raises(EvalConfigError, match=r"temperature=-1\.0: expected a number >= 0"):
        run_evaluation(cfg)
    assert not list(tmp_path.iterdir())  # no corpus, no run folder


def test_the_command_line_fails_early_naming_the_key(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MIGR_")}
    result = subprocess.run(
        [sys.executable, "-m", "src.evaluate", "split=dev", f"data.root={tmp_path / 'synth'}",
         f"runs_dir={tmp_path / 'runs'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,  # ~10 s on an idle host
    )  # fmt: skip
    assert result.returncode != 0
    assert "invalid setting: split='dev': expected one of train, val, test" in result.stderr
    assert not list(tmp_path.iterdir())
