"""The evaluation's settings, typed: :class:`EvalConfig` is ``configs/evaluate.yaml`` composed (with its groups),
as :class:`src.stages.sft.SFTConfig` and :class:`src.rl.step.GRPOConfig` are the training stages'.

:meth:`EvalConfig.from_config` checks the whole config when the command starts, before any data or model is read:
an unknown key, a value of the wrong type, a number out of its range (:data:`src.config_check.RULES`) or a name
that is not one of the known ones (split, task, judge backend, ...) raises one :class:`EvalConfigError` listing
each ``key=value`` with what is allowed. The runner (:mod:`src.evaluation.runner`) and the explainer
(:mod:`src.evaluation.explain`, whose ``configs/explain.yaml`` shares these keys) read their settings from it.

Example:
    >>> EvalConfig.from_config({"split": "dev"})
    Traceback (most recent call last):
    ...
    src.evaluation.config.EvalConfigError: invalid setting: split='dev': expected one of train, val, test
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from src.config_check import ConfigError, number_problems, refuse, typed_fields
from src.data.manifest import SPLITS
from src.data.preprocess import PREPROCESS
from src.data.prompts import INSTRUCTIONS
from src.evaluation.predictions import EvaluationError
from src.evaluation.settings import ATTENTION_GROUPS, EXPLANATION_MODES, Decoding
from src.judges.factory import check_backend

__all__ = ["DTYPE_NAMES", "AttentionConfig", "ConcurrentConfig", "EvalConfig", "EvalConfigError"]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DTYPE_NAMES: tuple[str, ...] = ("float32", "bfloat16", "float16")  # dtype=<name>: the torch dtype of that name
ON_ERROR: tuple[str, ...] = ("raise", "skip")


class EvalConfigError(ConfigError, EvaluationError):
    """A setting of the evaluation that cannot work: a :class:`~src.config_check.ConfigError` (a bad setting,
    like training's) and an :class:`~src.evaluation.predictions.EvaluationError` (what the evaluation and the
    explainer report as such)."""


@dataclass(frozen=True)
class AttentionConfig:
    """``attention``: the attention shares on visual / audio / generated text during generation (paper Fig. 5)."""

    enabled: bool = True
    """Record the shares while generating (attention.json, attention.png)."""
    layer: int | None = None
    """0-based LLM layer (negative: from the end); None: the paper's depth (the 21st of 28), resolved per model."""
    bins: int = 100
    """Generation steps resampled to this many bins."""
    group_by: str = "dominant"
    """Curves per ground-truth dominant modality (else the MI estimate): ``dominant``; per MI estimate: ``mi``."""


@dataclass(frozen=True)
class ConcurrentConfig:
    """``concurrent``: the misses against concurrent labels (paper Tables 4 and 6)."""

    focus: tuple[str, ...] = ("surprise", "fear")
    """Classes the report details."""
    reference_predictions: str | None = None
    """``predictions.jsonl`` of a reference model: only the misses it got right are analysed (paper: ERV)."""


@dataclass(frozen=True)
class EvalConfig(Decoding):
    """A composed ``configs/evaluate.yaml``: one field per key (its comment there says the same; the generation
    settings ``task``, ``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed`` and ``batch_size``
    are :class:`~src.evaluation.settings.Decoding`'s), the groups ``data``, ``judge``, ``logger`` and
    ``feature_cache`` as their plain mappings (each read by its own code:
    :func:`src.data.sources.prepare_manifest`, :func:`src.judges.factory.build_judge`, ...). The defaults are
    evaluate.yaml's (a test holds them equal). Checked on construction; see :meth:`from_config`.
    """

    runs_dir: str = "runs"
    """Where ``model_path=auto`` looks and ``output_dir=auto`` writes (evaluate.yaml: ``$MIGR_RUNS`` or runs)."""
    model_path: str = "auto"
    """A model folder, or ``auto``: the first ``<runs_dir>/<stage>/export`` of ``model_search``."""
    model_search: tuple[str, ...] = ("grpo", "sft", "base")
    """The stages ``model_path=auto`` tries, in this order."""
    split: str = "test"
    """The manifest split evaluated (one of :data:`src.data.manifest.SPLITS`)."""
    limit: int | None = None
    """Only the first N samples of the split; None: all."""
    output_dir: str = "auto"
    """The evaluation folder; ``auto``: ``<runs_dir>/eval/<model>-<dataset>-<split>``."""
    overwrite: bool = False
    """Discard what ``output_dir`` holds and start again (else the evaluation resumes)."""
    device: str = "auto"
    """``auto`` (cuda when available), or a torch device: ``cpu``, ``cuda``, ``cuda:1``, ..."""
    dtype: str | None = None
    """The model's dtype (one of :data:`DTYPE_NAMES`); None: as stored."""
    preprocess: str | None = None
    """Frame sampling / resize / padding (:data:`src.data.preprocess.PREPROCESS`); None: the model's own."""
    on_error: str = "raise"
    """Unreadable clips: ``raise`` or ``skip`` (listed in metrics.json, report.md); evaluate.yaml: the data's."""
    progress_bar: bool = True
    """Show a progress bar while generating."""
    explanation_mode: str = "explanation"
    """How the judge reads an explanation: ``explanation`` (the whole text, paper) or ``sentences`` (majority)."""
    judge_batch_size: int = 256
    """Explanations judged (and saved) per chunk."""
    mi_key: str = "mi_dominant"
    """``Sample.extra`` field of an estimated dominant modality, reported beside ``dominant``."""
    first_tag: bool = True
    """Compute the first-tag margins log p(<aud_desc>) - log p(<vis_desc>) (first_tag.json)."""
    anchoring: bool = True
    """Run the anchoring probe (anchoring.json; needs gold descriptions)."""
    extra_judges: tuple[str | dict[str, Any], ...] = ()
    """Further judges of the same predictions: a name (``configs/judge/<name>.yaml``) or a judge config each."""
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    """Attention shares during generation."""
    concurrent: ConcurrentConfig = field(default_factory=ConcurrentConfig)
    """Misses against concurrent labels."""
    data: dict[str, Any] = field(default_factory=dict)
    """The ``data`` group (configs/data/): the manifest, media cache, ``num_workers``, ``short_clip``."""
    judge: dict[str, Any] = field(default_factory=lambda: {"name": "keywords"})
    """The ``judge`` group (configs/judge/): reads one emotion out of each explanation."""
    logger: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    """The ``logger`` group (configs/logger/): ``kind: wandb`` also logs to W&B."""
    feature_cache: dict[str, Any] | None = None
    """The ``feature_cache`` group (frozen-tower outputs reused); None: no cache."""

    def __post_init__(self) -> None:
        problems = number_problems(self.to_dict())
        problems += [
            f"{key}={value!r}: expected one of {', '.join('null' if c is None else str(c) for c in choices)}"
            for key, value, choices in (
                ("split", self.split, SPLITS),
                ("task", self.task, tuple(INSTRUCTIONS)),
                ("explanation_mode", self.explanation_mode, EXPLANATION_MODES),
                ("on_error", self.on_error, ON_ERROR),
                ("attention.group_by", self.attention.group_by, ATTENTION_GROUPS),
                ("dtype", self.dtype, (*DTYPE_NAMES, None)),
                ("preprocess", self.preprocess, (*PREPROCESS, None)),
            )
            if value not in choices
        ]
        problems += self._device_problems()
        for key, name in [("judge.name", self.judge.get("name"))] + [
            (f"extra_judges[{i}].name", entry.get("name"))
            for i, entry in enumerate(self.extra_judges)
            if isinstance(entry, Mapping) and "name" in entry
        ]:
            try:
                check_backend(name, key)
            except ValueError as error:
                problems.append(str(error))
        refuse(problems, EvalConfigError)
        self.extra_judge_configs()  # a name without a configs/judge file fails now, not after generating

    def _device_problems(self) -> list[str]:
        if self.device == "auto":
            return []
        import torch

        try:
            torch.device(self.device)
        except RuntimeError:
            return [f"device={self.device!r}: expected auto or a torch device (cpu, cuda, cuda:1, ...)"]
        return []

    @classmethod
    def from_config(cls, cfg: Any, *, ignore: Collection[str] = ()) -> EvalConfig:
        """From a composed ``evaluate.yaml`` (a ``DictConfig``, resolved here, or a plain mapping): every key must
        be a field (``ignore``: keys another command's config adds, e.g. explain.yaml's ``label``); keys absent
        take the defaults.

        Raises:
            EvalConfigError: each unknown key, wrong type, number out of range or unknown name, with what is
                allowed.
        """
        from omegaconf import DictConfig, OmegaConf

        values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        try:
            return cls(**typed_fields(cls, values, ignore=ignore))
        except EvalConfigError:
            raise
        except ConfigError as error:
            raise EvalConfigError(str(error)) from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able values (lists for tuples): what a run records of its config."""
        return json.loads(json.dumps(asdict(self)))

    def extra_judge_configs(self) -> dict[str, dict[str, Any]]:
        """``extra_judges`` as judge configs by name (a name is read from ``configs/judge/<name>.yaml``).

        Raises:
            EvalConfigError: a name without a judge config file, a config without ``name``.
        """
        from omegaconf import OmegaConf

        configs: dict[str, dict[str, Any]] = {}
        for i, entry in enumerate(self.extra_judges):
            if isinstance(entry, str):
                path = CONFIG_DIR / "judge" / f"{entry}.yaml"
                if not path.exists():
                    known = sorted(p.stem for p in (CONFIG_DIR / "judge").glob("*.yaml"))
                    raise EvalConfigError(
                        f"extra_judges[{i}]={entry!r}: no configs/judge/{entry}.yaml; known: {known}"
                    )
                loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
                configs[entry] = dict(loaded)  # type: ignore[arg-type]
            else:
                if "name" not in entry:
                    raise EvalConfigError(f"extra_judges[{i}]: a judge config needs a `name` (a judge backend)")
                configs[str(entry["name"])] = dict(entry)
        return configs
