"""Numeric settings: one table (src/config_check.py) covers every numeric key of the stage, data and trainer
groups, every shipped config passes it, and each key's out-of-range values fail naming key, value and range."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from omegaconf import OmegaConf

from src.config_check import RULES, ConfigError, Range, check_numbers, typed_fields
from tests.helpers import REPO, compose, compose_train

GROUPS = {
    group: sorted(p.stem for p in (REPO / "configs" / group).glob("*.yaml"))
    for group in ("stage", "data", "trainer")
}


def _plain(node: Any) -> Any:
    """A group file's values with its interpolations (``${...}``, checked once composed) left out."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items() if not str(value).startswith("${")}
    return node


@pytest.fixture(scope="module")
def shipped() -> list[dict[str, Any]]:
    """Every stage, data and trainer group file as written, the experiment overlays (their stage, data and
    trainer settings), then train.yaml and evaluate.yaml composed."""
    files = [
        {group: _plain(OmegaConf.to_container(OmegaConf.load(REPO / "configs" / group / f"{name}.yaml")))}
        for group, names in GROUPS.items()
        for name in names
    ]
    for path in sorted((REPO / "configs" / "experiment").glob("*.yaml")):
        overlay = _plain(OmegaConf.to_container(OmegaConf.load(path)))
        files.append({group: overlay[group] for group in GROUPS if group in overlay})
    composed = [compose_train("runs_dir=/runs", "stage=grpo"), compose("evaluate", "runs_dir=/runs")]
    return [*files, *(OmegaConf.to_container(cfg, resolve=True) for cfg in composed)]


def _numeric_leaves(node: Any, prefix: str = "", *, nulls: bool = False) -> list[str]:
    """Dotted keys whose value is a number (and, with ``nulls``, null: a number left unset, or a path/name)."""
    if isinstance(node, dict):
        return [
            key for name, value in node.items() for key in _numeric_leaves(value, f"{prefix}{name}.", nulls=nulls)
        ]
    is_number = isinstance(node, (int, float)) and not isinstance(node, bool)
    return [prefix[:-1]] if is_number or (nulls and node is None) else []


def _covered(key: str) -> bool:
    parts = key.split(".")
    return any(
        len(rule.split(".")) == len(parts)
        and all(r in ("*", p) for r, p in zip(rule.split("."), parts, strict=True))
        for rule in RULES
    )


NO_RANGE = {"seed"}  # any integer is a seed
# Keys of the groups that are null as shipped and are not numbers when set (paths, names, mappings): every other
# null key must have a rule, so a new numeric setting left at null is not missed either.
NOT_NUMERIC = {
    "stage.init_from",  # a model folder
    "stage.train_manifest",  # a manifest path
    "stage.modality_dropout",  # a mapping of probabilities (checked by stage.modality_dropout.*)
    "data.synth",  # the synthetic corpus' settings (checked by data.synth.*)
    "data.cache_dir",  # a folder
    "data.au_dir",  # a folder of OpenFace csvs
    "trainer.fsdp",  # FSDP settings (names)
}


def test_every_numeric_key_of_stage_data_and_trainer_has_a_rule(shipped) -> None:
    keys = {key for config in shipped for key in _numeric_leaves(config) if key.split(".")[0] in GROUPS}
    assert keys and sorted(key for key in keys if not _covered(key)) == []
    assert {key for key in _numeric_leaves(shipped[-1]) if "." not in key} - NO_RANGE <= set(RULES)
    unset = {
        key for config in shipped for key in _numeric_leaves(config, nulls=True) if key.split(".")[0] in GROUPS
    }
    assert sorted(key for key in unset - keys if not _covered(key)) == sorted(NOT_NUMERIC)


def test_every_shipped_config_passes(shipped) -> None:
    for config in shipped:
        check_numbers(config)


def _bad_values(rule: Range | tuple[Range, ...]) -> list[Any]:
    ranges = rule if isinstance(rule, tuple) else (rule,)
    lows = [r.low for r in ranges if r.low is not None]
    highs = [r.high for r in ranges if r.high is not None]
    candidates: list[Any] = ["abc", True, float("nan")]
    if lows:
        candidates += [min(lows) - 1, min(lows) - 0.5]
    if highs and all(r.high is not None for r in ranges):
        candidates += [max(highs) + 1, max(highs) + 0.5]
    if not any(r.null for r in ranges):
        candidates.append(None)
    if all(r.kind is int for r in ranges):
        candidates.append(2.5)
    return [value for value in candidates if not any(r.accepts(value) for r in ranges)]


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    config: Any = value
    for part in reversed(dotted.replace("*", "a").split(".")):
        config = {part: config}
    return config


@pytest.mark.parametrize("key", sorted(RULES))
def test_each_key_refuses_values_out_of_range_naming_key_value_and_range(key: str) -> None:
    rule = RULES[key]
    bad = _bad_values(rule)
    assert len(bad) >= 2  # at least a string and one number out of range (or a non-integer)
    described = " or ".join(r.describe() for r in (rule if isinstance(rule, tuple) else (rule,)))
    for value in bad:
        with pytest.raises(ConfigError) as error:
            check_numbers(_nested(key, value))
        assert f"{key.replace('*', 'a')}={value!r}: expected {described}" in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.batch_size=0"], "data.batch_size=0: expected an integer >= 1"),
        (["data.batch_size=abc"], "data.batch_size='abc': expected an integer >= 1"),
        (["stage=grpo", "stage.batch_size=0"], "stage.batch_size=0: expected an integer >= 1"),
        (["stage.max_epochs=0"], "stage.max_epochs=0: expected an integer >= 1"),
        (["stage=grpo", "stage.top_p=1.5"], "stage.top_p=1.5: expected a number in (0, 1]"),
        (
            ["stage=base", "stage.modality_dropout.av=1.2"],
            "stage.modality_dropout.av=1.2: expected a number in [0, 1]",
        ),
        (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0: expected an integer >= 1"),
        # a stage key nobody reads (a custom stage file's typo, or ++) is refused, not dropped
        (["stage=sft", "++stage.max_step=10"], "stage.max_step=10: not a setting (did you mean stage.max_steps?)"),
        (
            ["stage=grpo", "++stage.tempreature=0.5"],
            "stage.tempreature=0.5: not a setting (did you mean stage.temperature?)",
        ),
        (["stage=grpo", "stage.beta=abc"], "stage.beta='abc': expected a number"),
        (["stage=base", "stage.aux_unimodal_weight=[1]"], "stage.aux_unimodal_weight=[1]: expected a number"),
    ],
)
def test_training_refuses_them_before_building_anything(tmp_path, overrides: list[str], message: str) -> None:
    from src.stages.runner import run_stage

    cfg = compose_train(*overrides, f"runs_dir={tmp_path}")
    with pytest.raises(ConfigError) as error:
        run_stage(cfg)
    assert message in str(error.value)
    assert not (tmp_path / cfg.run_name).exists()


def test_evaluation_and_the_build_refuse_them_too(tmp_path) -> None:
    from src.evaluation.runner import run_evaluation
    from src.migr.build import build

    with pytest.raises(ConfigError, match=r"batch_size=0: expected an integer >= 1; max_new_tokens=-1"):
        run_evaluation(compose("evaluate", "batch_size=0", "max_new_tokens=-1", f"runs_dir={tmp_path}"))
    with pytest.raises(ConfigError, match=r"data.batch_size=0: expected an integer >= 1"):
        build(compose("build", "data.batch_size=0", f"runs_dir={tmp_path}"))


@dataclass(frozen=True)
class _Inner:
    bins: int = 1
    name: str | None = None


@dataclass(frozen=True)
class _Outer:
    rate: float = 0.5
    flag: bool = False
    names: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    inner: _Inner = field(default_factory=_Inner)


def test_typed_fields_checks_keys_and_types_against_a_dataclass() -> None:
    values = {"rate": 2, "names": ["a"], "inner": {"bins": 3}, "x": 1}
    built = _Outer(**typed_fields(_Outer, values, ignore={"x"}))
    assert built == _Outer(rate=2.0, names=("a",), inner=_Inner(bins=3))  # int -> float, list -> tuple, nested
    assert type(built.rate) is float
    with pytest.raises(ConfigError) as error:
        typed_fields(
            _Outer, {"rate": True, "flag": 1, "names": "a", "options": [], "inner": {"bins": 2.0, "nme": 1}}
        )
    assert str(error.value) == (
        "invalid settings: rate=True: expected a number; flag=1: expected true or false; "
        "names='a': expected a list (each a string); options=[]: expected a mapping; inner.bins=2.0: expected an "
        "integer; inner.nme=1: not a setting (did you mean inner.name?); known: bins, name"
    )
    # an ignored key is read elsewhere: known, so a misspelling of it is suggested and listed
    with pytest.raises(ConfigError) as error:
        typed_fields(_Outer, {"max_step": 1}, prefix="s.", ignore={"max_steps"})
    assert str(error.value) == (
        "invalid setting: s.max_step=1: not a setting (did you mean s.max_steps?); "
        "known: rate, flag, names, options, inner, max_steps"
    )
