"""Weighted sets of named rewards, built from config: what a GRPO step calls to score its completions.

A reward set scores a batch with each of its rewards and returns every reward's column with its metrics.
The weighted total that advantages are computed from (paper Eq. 3: R_MAO + R_MGR + R_answer) is made by one
function, :func:`src.rl.advantages.combine_rewards`, which training, ``completions.jsonl`` and the logs all
use: ``None`` (not applicable) contributes nothing to the total, as TRL's ``nansum`` does, and a row where no
reward applies has no total (NaN in training, ``None`` here and in ``completions.jsonl``); it gets a zero
advantage and is counted under ``rows_without_reward``.

Config (``configs/rewards/*.yaml``)::

    on_error: raise          # or "skip": a reward that raises is reported and scores None for that batch
    functions:
      modality_order: {weight: 1.0}
      modality_grounding: {weight: 1.0, kwargs: {multi_label: false}}
      answer: {weight: 1.0}

Shared resources: ``judge`` is passed to every reward whose constructor has a ``judge`` parameter.

Errors: a reward that raises is reported with its name and provider. With ``on_error: raise`` (default) the
step fails, because a silently zeroed reward trains the wrong objective; with ``skip`` the reward's column is
None for that batch, a :class:`RewardFailedWarning` carries the traceback, and ``<name>/errors`` counts it.
A reward that breaks the contract (wrong length, a value that is not a finite number or None) always raises.

Example:
    >>> from src.judges.keywords import KeywordJudge
    >>> rewards = RewardSet.from_config({"functions": {"answer": {"weight": 1.0}, "format_r1omni": {"weight": 0.5}}})
    >>> result = rewards(completions=["<think>joy</think><answer>happy</answer>", "happy"],
    ...                  completion_ids=[[], []], prompts=["p", "p"], labels=["happy", "happy"],
    ...                  dominant=["visual", "visual"], sample_ids=["a", "b"], dataset=["dfew", "dfew"])
    >>> result.total
    [1.5, 0.0]
    >>> result.columns["format_r1omni"]
    [1.0, 0.0]
    >>> result.metrics["rewards/answer/malformed"]
    1.0
"""

from __future__ import annotations

import inspect
import math
import numbers
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from rewards.base import Reward
from src.judges.base import Judge
from src.registry import RewardRegistry, default_registry
from src.rl.advantages import combine_rewards, reward_stats

OnError = Literal["raise", "skip"]


class RewardFailedWarning(UserWarning):
    """A reward raised and ``on_error="skip"`` turned its column to None for that batch."""


class RewardError(RuntimeError):
    """A reward raised or broke the contract; the message names it and its provider."""


@dataclass(frozen=True)
class RewardSpec:
    """One reward of a set: registry name, weight in the total, constructor keyword arguments."""

    name: str
    weight: float = 1.0
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RewardResult:
    """What one call of a :class:`RewardSet` produced.

    Attributes:
        columns: per-reward scores, one per completion (None = not applicable or skipped after an error).
        weights: per-reward weight in the total.
        metrics: flat scalars, named as the trainer logs them under ``train/``: ``rewards/<name>/mean`` and
            ``rewards/<name>/std`` (over the rows it applied to; NaN when undefined, e.g. a skipped reward),
            ``rewards/<name>/applicable``, ``rewards/<name>/errors``, ``rewards/<name>/<metric>`` for what the
            reward reports (``malformed``), and ``rows_without_reward``.
    """

    columns: dict[str, list[float | None]]
    weights: dict[str, float]
    metrics: dict[str, float]

    @property
    def total(self) -> list[float | None]:
        """Weighted sum per completion (:func:`~src.rl.advantages.combine_rewards`); None where no reward applied."""
        totals = combine_rewards(self.columns, self.weights).tolist()
        return [None if math.isnan(value) else value for value in totals]


def accepts(factory: Callable[..., Any], parameter: str) -> bool:
    """Whether ``factory`` (a class or function) takes a keyword argument named ``parameter``."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return parameter in parameters


def build_reward(
    name: str, *, judge: Judge | None = None, registry: RewardRegistry | None = None, **kwargs: Any
) -> Reward:
    """Build reward ``name`` from the registry, handing it ``judge`` when its constructor asks for one."""
    registry = registry or default_registry()
    if judge is not None and accepts(registry.load(name), "judge"):
        kwargs["judge"] = judge
    return registry.create(name, **kwargs)


class RewardSet:
    """Named rewards with weights; call it like a reward, get columns, the weighted total and metrics.

    Args:
        specs: the rewards, in logging order.
        judge: shared emotion judge for the rewards that take one.
        on_error: ``"raise"`` (default) or ``"skip"``; see the module docstring.
        registry: where names are looked up (the installed rewards by default).
    """

    def __init__(
        self,
        specs: list[RewardSpec],
        *,
        judge: Judge | None = None,
        on_error: OnError = "raise",
        registry: RewardRegistry | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"rewards.on_error must be 'raise' or 'skip'; got {on_error!r}")
        if not specs:
            raise ValueError("a reward set needs at least one reward (rewards.functions is empty)")
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"rewards.functions lists a reward twice: {names}")
        for spec in specs:
            if not math.isfinite(spec.weight):
                raise ValueError(
                    f"rewards.functions.{spec.name}.weight must be a finite number; got {spec.weight}"
                )
        self.registry = registry or default_registry()
        self.specs = list(specs)
        self.on_error = on_error
        self.rewards: dict[str, Reward] = {
            spec.name: build_reward(spec.name, judge=judge, registry=self.registry, **dict(spec.kwargs))
            for spec in specs
        }
        self.weights = {spec.name: float(spec.weight) for spec in specs}

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, judge: Judge | None = None, registry: RewardRegistry | None = None
    ) -> RewardSet:
        """Build from a ``configs/rewards/*.yaml`` mapping (plain dict or OmegaConf ``DictConfig``)."""
        functions = config.get("functions")
        if not isinstance(functions, Mapping) or not functions:
            raise ValueError(
                "rewards.functions must map reward names to {weight, kwargs}; "
                f"got {functions!r} (see configs/rewards/migr.yaml)"
            )
        specs = []
        for name, options in functions.items():
            options = options if options is not None else {}
            unknown = set(options) - {"weight", "kwargs"}
            if unknown:
                raise ValueError(
                    f"rewards.functions.{name} has unknown keys {sorted(unknown)}; expected weight, kwargs"
                )
            specs.append(
                RewardSpec(
                    name=str(name), weight=float(options.get("weight", 1.0)), kwargs=options.get("kwargs") or {}
                )
            )
        return cls(specs, judge=judge, on_error=config.get("on_error", "raise"), registry=registry)

    @property
    def provenance(self) -> dict[str, dict[str, Any]]:
        """Per reward: package, version, object and weight, for the run config."""
        return {name: {**self.registry.provenance(name), "weight": self.weights[name]} for name in self.rewards}

    def __call__(
        self,
        *,
        completions: list[str],
        completion_ids: list[list[int]],
        prompts: list[str],
        labels: list[str],
        dominant: list[str | None],
        sample_ids: list[str],
        dataset: list[str],
        **batch: Any,
    ) -> RewardResult:
        """Score the batch with every reward (same keyword arguments as a :class:`~rewards.base.Reward`)."""
        size = len(completions)
        columns: dict[str, list[float | None]] = {}
        errors: dict[str, float] = {}
        reported_by: dict[str, dict[str, float]] = {}
        for name, reward in self.rewards.items():
            reported: dict[str, float] = {}

            def sink(key: str, value: float, _reported: dict[str, float] = reported) -> None:
                _reported[key] = _reported.get(key, 0.0) + value

            try:
                scores = reward(
                    completions=completions,
                    completion_ids=completion_ids,
                    prompts=prompts,
                    labels=labels,
                    dominant=dominant,
                    sample_ids=sample_ids,
                    dataset=dataset,
                    **{**batch, "log_metric": sink},
                )
            except Exception as error:
                where = self.registry.provenance(name)["object"]
                if self.on_error == "raise":
                    raise RewardError(
                        f"reward {name!r} ({where}) raised {type(error).__name__}: {error} "
                        f"(batch of {size}, first sample ids {list(sample_ids[:4])}). "
                        "Set rewards.on_error=skip to score it None and continue."
                    ) from error
                warnings.warn(
                    f"reward {name!r} ({where}) raised and scores None for this batch:\n{traceback.format_exc()}",
                    RewardFailedWarning,
                    stacklevel=2,
                )
                scores = [None] * size
                errors[name] = 1.0
                reported = {}  # counts of a call that did not finish describe no completion
            columns[name] = self._validated(name, scores, size)
            reported_by[name] = reported
        return RewardResult(
            columns=columns,
            weights=dict(self.weights),
            metrics=reward_metrics(columns, self.weights, errors, reported_by),
        )

    def _validated(self, name: str, scores: Any, size: int) -> list[float | None]:
        where = self.registry.provenance(name)["object"]
        if not isinstance(scores, (list, tuple)) or len(scores) != size:
            found = f"{len(scores)} values" if isinstance(scores, (list, tuple)) else type(scores).__name__
            raise RewardError(
                f"reward {name!r} ({where}) must return a list of {size} values (one per completion); got {found}"
            )
        result: list[float | None] = []
        for i, value in enumerate(scores):
            if value is None:
                result.append(None)
            elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
                result.append(float(value))
            else:
                raise RewardError(
                    f"reward {name!r} ({where}) returned {value!r} for completion {i}; "
                    "expected a finite float, or None for 'not applicable'"
                )
        return result


def reward_metrics(
    columns: Mapping[str, list[float | None]],
    weights: Mapping[str, float],
    errors: Mapping[str, float],
    reported: Mapping[str, Mapping[str, float]],
) -> dict[str, float]:
    """The per-reward metrics of a scored batch (see :class:`RewardResult`); mean/std as TRL computes them."""
    metrics: dict[str, float] = {key: float(value) for key, value in reward_stats(columns).items()}
    for name, column in columns.items():
        metrics[f"rewards/{name}/applicable"] = float(sum(value is not None for value in column))
        metrics[f"rewards/{name}/errors"] = float(errors.get(name, 0.0))
        for key, value in reported.get(name, {}).items():
            metrics[f"rewards/{name}/{key}"] = float(value)
    metrics["rows_without_reward"] = float(torch.isnan(combine_rewards(columns, weights)).sum())
    return metrics
