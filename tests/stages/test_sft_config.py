"""SFTConfig: the typed ``stage`` config of ``stage=sft`` / ``stage=base``, built from Hydra, validated, used."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from src.config_check import ConfigError
from src.stages.sft import SFTConfig
from tests.helpers import REPO, compose_train


@pytest.mark.parametrize("stage", ["sft", "base"])
def test_built_from_the_composed_stage_as_its_yaml_says(stage):
    raw = OmegaConf.to_container(OmegaConf.load(REPO / f"configs/stage/{stage}.yaml"))  # the file, read as text
    cfg = compose_train(f"stage={stage}")
    config = SFTConfig.from_config(cfg)
    assert config.task == raw["task"]
    assert config.optim == raw["optim"]
    assert config.aux_unimodal_weight == raw["aux_unimodal_weight"]
    assert (config.val_generate_batches, config.val_max_new_tokens) == (
        raw["val_generate_batches"],
        raw["val_max_new_tokens"],
    )
    assert config.aux_dataset == cfg.data.dataset


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("stage.task=labels", ValueError, "stage.task='labels' must be one of label, reasoning"),
        ("stage.optim.lr=0", ConfigError, "stage.optim.lr=0: expected a number > 0"),
        ("stage.val_max_new_tokens=0", ConfigError, "stage.val_max_new_tokens=0: expected an integer >= 1"),
        ("stage.aux_unimodal_weight=-1", ConfigError, "stage.aux_unimodal_weight=-1"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(override, error, message):
    cfg = compose_train("stage=sft", override)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        SFTConfig.from_config(cfg)


def test_the_probes_need_a_label_set():
    with pytest.raises(
        ValueError, match=r"aux_unimodal_weight > 0 needs the data set's label set \(data.dataset\)"
    ):
        SFTConfig(task="label", aux_unimodal_weight=1.0)


def test_the_module_runs_on_the_typed_config():
    from src.stages.runner import build_module

    module = build_module(compose_train("stage=base", "stage.val_max_new_tokens=7"), init_from=None)
    assert isinstance(module.cfg, SFTConfig)
    weight = OmegaConf.load(REPO / "configs/stage/base.yaml").aux_unimodal_weight
    assert (module.cfg.task, module.cfg.val_max_new_tokens, module.cfg.aux_unimodal_weight) == ("label", 7, weight)
