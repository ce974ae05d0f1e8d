"""Numeric settings checked once, where a config is composed, against one table of allowed ranges.

``data.batch_size=0`` would otherwise surface as a ``ZeroDivisionError`` deep in the sampler, ``abc`` as a
``TypeError``, GRPO's ``stage.batch_size=0`` would quietly fall back to ``data.batch_size`` and
``stage.max_epochs=0`` would export an untrained model with exit code 0. :func:`check_numbers` reads every key of
:data:`RULES` present in a composed config and raises one :class:`ConfigError` listing each bad value with its
key, the value and what is allowed. Keys absent from a config (``stage.batch_size`` outside GRPO) are not
checked; ``*`` matches every key of a mapping (``stage.modality_dropout.*``).

Example:
    >>> check_numbers({"data": {"batch_size": 0, "num_workers": 2}})
    Traceback (most recent call last):
    ...
    src.config_check.ConfigError: invalid setting: data.batch_size=0: expected an integer >= 1
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RULES",
    "ConfigError",
    "Range",
    "check_combinations",
    "check_numbers",
    "number_problems",
    "refuse",
    "typed_fields",
]


class ConfigError(ValueError):
    """Composed settings out of their allowed range; the message lists each key, value and what is allowed."""


@dataclass(frozen=True)
class Range:
    """Allowed values of one numeric setting.

    Attributes:
        kind: ``int`` (bools and floats refused) or ``float`` (ints accepted too).
        low, high: bounds (None: unbounded); ``low_open``/``high_open`` exclude the bound itself.
        null: whether None (``null``) is allowed.
        also: further values allowed as they are (``-1`` for "no limit", ``"auto"``).
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    null: bool = False
    also: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""
        if value is None:
            return self.null
        if any(value == extra and type(value) is type(extra) for extra in self.also):
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        """What is allowed, in words: ``an integer >= 1``, ``a number in (0, 1]``, ... ``or null``."""
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            text = f"{noun} in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{noun} {'>' if self.low_open else '>='} {_num(self.low)}"
        elif self.high is not None:
            text = f"{noun} {'<' if self.high_open else '<='} {_num(self.high)}"
        else:
            text = noun
        extras = [repr(extra) for extra in self.also] + (["null"] if self.null else [])
        return text + "".join(f" or {extra}" for extra in extras)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _either(*ranges: Range) -> tuple[Range, ...]:
    return ranges


POSITIVE = Range(int, 1)
COUNT = Range(int, 0)  # zero allowed
PROBABILITY = Range(float, 0, 1)
NON_NEGATIVE = Range(float, 0)
RATIO = Range(float, 0, 1, high_open=True)
# Lightning's limit_*_batches / val_check_interval: a fraction of the epoch or a number of batches
FRACTION_OR_BATCHES = _either(Range(float, 0, 1, low_open=True), Range(int, 1))

# The table: every numeric setting of the stage, data and trainer groups (and evaluate.yaml's own) with a range.
RULES: dict[str, Range | tuple[Range, ...]] = {
    # stage (base / sft / grpo)
    "stage.max_epochs": POSITIVE,
    "stage.max_steps": Range(int, 1, also=(-1,)),  # -1: no step limit (max_epochs decides)
    "stage.batch_size": POSITIVE,  # GRPO: prompts per step
    "stage.num_generations": Range(int, 2),  # a group advantage needs two completions at least
    "stage.max_new_tokens": POSITIVE,
    "stage.temperature": Range(float, 0, low_open=True),
    "stage.top_p": Range(float, 0, 1, low_open=True),
    "stage.top_k": COUNT,  # 0: no top-k filter
    "stage.num_iterations": POSITIVE,
    "stage.beta": NON_NEGATIVE,
    "stage.epsilon_low": NON_NEGATIVE,
    "stage.epsilon_high": NON_NEGATIVE,
    "stage.gradient_clip_val": Range(float, 0, null=True),
    "stage.log_completions": COUNT,
    "stage.log_every_n_steps": POSITIVE,
    "stage.aux_unimodal_weight": NON_NEGATIVE,
    "stage.val_generate_batches": COUNT,
    "stage.val_max_new_tokens": POSITIVE,
    "stage.modality_dropout.*": PROBABILITY,
    "stage.optim.lr": Range(float, 0, low_open=True),
    "stage.optim.weight_decay": NON_NEGATIVE,
    "stage.optim.warmup_ratio": RATIO,
    "stage.optim.min_lr_ratio": PROBABILITY,
    # data
    "data.batch_size": POSITIVE,
    "data.eval_batch_size": POSITIVE,
    "data.num_workers": COUNT,
    "data.max_length": Range(int, 1, null=True),
    "data.limit_val_samples": Range(int, 1, null=True),
    "data.fold": Range(int, 1, 5),  # DFEW's five folds
    "data.synth.n": POSITIVE,
    "data.synth.seed": COUNT,
    "data.synth.variation": NON_NEGATIVE,
    "data.synth.phrasings": Range(int, 1, null=True),  # null: every wording
    "data.adapter.options.fold": Range(int, 1, 5),
    "data.adapter.options.val_fraction": RATIO,
    # trainer
    "trainer.devices": Range(int, 1, also=(-1, "auto")),
    "trainer.num_nodes": POSITIVE,
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.val_check_interval": FRACTION_OR_BATCHES,
    "trainer.check_val_every_n_epoch": Range(int, 1, null=True),
    "trainer.num_sanity_val_steps": Range(int, 0, also=(-1,)),
    "trainer.limit_train_batches": (*FRACTION_OR_BATCHES, Range(int, 1, null=True)),
    "trainer.limit_val_batches": (Range(float, 0, 1), Range(int, 0, null=True)),
    # evaluate.yaml
    "batch_size": POSITIVE,
    "max_new_tokens": POSITIVE,
    "temperature": NON_NEGATIVE,  # 0: greedy
    "top_p": Range(float, 0, 1, low_open=True),
    "top_k": COUNT,
    "judge_batch_size": POSITIVE,
    "limit": Range(int, 1, null=True),
    "attention.bins": POSITIVE,
}


def _lookup(config: Mapping[str, Any], dotted: str) -> list[tuple[str, Any]]:
    """``(key, value)`` pairs of ``dotted`` in ``config`` (several for a ``*``; none when absent)."""
    found: list[tuple[str, Any]] = [("", config)]
    for part in dotted.split("."):
        step: list[tuple[str, Any]] = []
        for prefix, node in found:
            if not isinstance(node, Mapping):
                continue
            keys = list(node) if part == "*" else [part] if part in node else []
            step += [(f"{prefix}.{key}" if prefix else str(key), node[key]) for key in keys]
        found = step
    return found


def check_numbers(config: Mapping[str, Any], rules: Mapping[str, Range | tuple[Range, ...]] | None = None) -> None:
    """Check every key of ``rules`` (default :data:`RULES`) present in ``config`` (a plain dict or a
    ``DictConfig``, resolved here).

    Raises:
        ConfigError: listing each ``key=value`` out of range with what is allowed.
    """
    problems = number_problems(config, rules)
    refuse(problems)


def refuse(problems: list[str], error: type[ConfigError] = ConfigError) -> None:
    """Raise ``error`` listing ``problems`` (``key=value: expected ...`` each), when there are any."""
    if problems:
        raise error("invalid setting" + ("s" if len(problems) > 1 else "") + ": " + "; ".join(problems))


def number_problems(
    config: Mapping[str, Any], rules: Mapping[str, Range | tuple[Range, ...]] | None = None
) -> list[str]:
    """What :func:`check_numbers` refuses, one ``key=value: expected ...`` line each (none: all allowed)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    problems = []
    for dotted, rule in (rules if rules is not None else RULES).items():
        ranges = rule if isinstance(rule, tuple) else (rule,)
        for key, value in _lookup(config, dotted):
            if not any(candidate.accepts(value) for candidate in ranges):
                allowed = " or ".join(candidate.describe() for candidate in ranges)
                problems.append(f"{key}={value!r}: expected {allowed}")
    return problems


def typed_fields(
    cls: type, values: Mapping[str, Any], *, prefix: str = "", ignore: Collection[str] = ()
) -> dict[str, Any]:
    """``values`` (a plain mapping, e.g. a resolved config) as keyword arguments of the dataclass ``cls``.

    Every key must name a field (``ignore``d keys are left out) and every value be of its field's type
    (``str``, ``int``, ``float``, ``bool``, ``None``, unions of them, ``tuple[X, ...]`` from a list,
    ``dict[str, X]``); a field whose type is itself a dataclass takes a mapping, checked the same way and
    built. Ints pass for floats (and become floats), bools never pass for numbers. Keys absent from ``values``
    are left to the fields' defaults. Ranges are :func:`check_numbers`'s business.

    ``ignore``d keys are settings read elsewhere (e.g. the runner's own ``stage`` keys): they are not passed
    on, but count as known, so a misspelling of one is refused with it as the suggestion.

    Raises:
        ConfigError: one ``key=value: expected ...`` entry per problem (dotted keys after ``prefix``), an unknown
            key with the closest known one and the list of known ones.
    """
    problems: list[str] = []
    kwargs = _typed(cls, values, prefix, set(ignore), problems)
    refuse(problems)
    return kwargs


def _typed(cls: type, values: Mapping[str, Any], prefix: str, ignore: set[str], problems: list[str]) -> dict:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    accepted = known + sorted(ignore - set(known))
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key in ignore:
            continue
        if key not in known:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            problems.append(f"{dotted}={value!r}: not a setting{hint}; known: {', '.join(accepted)}")
            continue
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if isinstance(value, Mapping):
                kwargs[key] = kind(**_typed(kind, value, f"{dotted}.", set(), problems))  # type: ignore[operator]
            else:
                problems.append(
                    f"{dotted}={value!r}: expected a mapping of "
                    + ", ".join(item.name for item in dataclasses.fields(kind))
                )
        elif not _accepts(value, kind):
            problems.append(f"{dotted}={value!r}: expected {_describe(kind)}")
        elif typing.get_origin(kind) is tuple:
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = float(value) if kind is float else value
    return kwargs


def _accepts(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of the annotated type ``kind`` (the subset :func:`typed_fields` supports)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, arg) for arg in args)
    if kind is type(None):
        return value is None
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind in (bool, int, str):
        return isinstance(value, kind)
    if kind is float:
        return isinstance(value, (int, float))
    if origin is tuple:  # tuple[X, ...]: a list (YAML) or a tuple
        return isinstance(value, (list, tuple)) and all(_accepts(item, args[0]) for item in value)
    if origin in (dict, Mapping):
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and _accepts(v, args[1]) for k, v in value.items()
        )
    raise TypeError(f"typed_fields: unsupported field type {kind!r}")


def _describe(kind: Any) -> str:
    """The annotated type ``kind`` in words: ``an integer or null``, ``a list of (a string)``, ..."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    words = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if kind in words:
        return words[kind]
    if origin is tuple:
        return f"a list (each {_describe(args[0])})"
    if kind is Any:
        return "any value"
    return "a mapping" if origin in (dict, Mapping) else repr(kind)


SHARDED_STRATEGIES = ("fsdp", "fsdp2")


def check_combinations(config: Mapping[str, Any]) -> None:
    """Refuse model/trainer options that cannot work together, when a training run starts (before its data or
    model is built), instead of failing after the whole run or exporting something false.

    * 4/8-bit quantization (bitsandbytes) under ``trainer.strategy=fsdp|fsdp2``: FSDP cannot shard quantized
      weights.
    * quantization without LoRA: the quantized LLM weights take no gradient, and the run would have no
      full-precision weights to export (a quantized run exports its LoRA adapter plus a reference to the base).
    * LoRA under ``fsdp|fsdp2``: the export merges the adapter into the weights, which sharded parameters do not
      support (the run used to fail only at export, after training).

    Raises:
        ConfigError: one line per combination, naming the keys, their values and what is allowed.
    """
    from omegaconf import DictConfig, OmegaConf

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    model = config.get("model") or {}
    strategy = (config.get("trainer") or {}).get("strategy")
    bits = model.get("quantization_bits")
    lora = bool((model.get("lora") or {}).get("enabled"))
    problems = []
    if bits is not None and (isinstance(bits, bool) or bits not in (4, 8)):
        problems.append(f"model.quantization_bits={bits!r}: expected 4, 8 or null")
    elif bits and strategy in SHARDED_STRATEGIES:
        problems.append(
            f"model.quantization_bits={bits} with trainer.strategy={strategy}: FSDP cannot shard bitsandbytes' "
            f"{bits}-bit weights; allowed: quantization with trainer=cpu|gpu|ddp, or trainer={strategy} with "
            "model.quantization_bits=null"
        )
    if bits in (4, 8) and not lora:
        problems.append(
            f"model.quantization_bits={bits} with model.lora.enabled=false: the {bits}-bit LLM weights take no "
            "gradient and a quantized model has no full-precision weights to export; allowed: "
            "model.lora.enabled=true (QLoRA: the export is the adapter plus a reference to the base model) or "
            "model.quantization_bits=null"
        )
    if lora and strategy in SHARDED_STRATEGIES:
        problems.append(
            f"model.lora.enabled=true with trainer.strategy={strategy}: the export merges the adapter into the "
            "weights, which sharded parameters do not support (the run would fail at export, after training); "
            f"allowed: LoRA with trainer=cpu|gpu|ddp, or trainer={strategy} with model.lora.enabled=false"
        )
    if problems:
        raise ConfigError("impossible combination of settings: " + "; ".join(problems))
