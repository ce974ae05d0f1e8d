"""GRPO: group-relative policy optimisation with MIGR's modality-aware rewards.

``python -m src.train stage=grpo`` (MIGR rewards: modality_order + modality_grounding + answer) or
``stage=grpo rewards=r1omni`` (the R1-Omni baseline: format + answer). A training step is
:func:`src.rl.step.grpo_step` (rollout -> rewards -> advantages -> loss -> update; its docstring holds the
algorithm and the rule for rows no reward applies to) with Lightning's backward and gradient clipping handed
in; this module adds what depends on Lightning or on the data: the model and the reference policy, the reward
set's inputs from the batch's metadata, logging, and the sample completions written to ``completions.jsonl``.

Each prompt's completions are drawn from a seed made of the run's seed, the step and the sample's id
(:meth:`GRPOModule.sample_seed`), and the step's other random draws (dropout) from the seed, the rank and the
step (:meth:`GRPOModule.step_seed`): a resumed run samples what the uninterrupted one sampled, and a run over
N ranks samples what one process over the same global batch samples.

Under data parallelism (DDP, FSDP) ``train/loss`` is the mean of the ranks' losses; the other step metrics are
rank 0's. With ``loss_type`` grpo or dr_grpo (a mean over the rank's completions, the same number on every
rank) that mean is the one-process loss of the global batch and the averaged gradient is its gradient; bnpo
and dapo divide by each rank's own token count, so there the two differ when ranks' completion lengths do.

The reference is the initial policy (a frozen copy sharing the frozen towers, or, with LoRA, the same weights
with the adapter disabled; none when ``beta == 0``). Generation under FSDP gathers the root parameters around
the decode (see :func:`src.models.generation.root_params_gathered`); blocks gather themselves.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from src.config_check import typed_fields
from src.data.collate import Batch
from src.judges.factory import build_judge
from src.models.factory import ModelSpec, instantiate
from src.models.feature_cache import attach_feature_cache
from src.models.lora import adapter_disabled, has_lora
from src.reward_set import RewardSet
from src.rl.rollout import Rollout, completion_logprobs
from src.rl.step import GRPOConfig, Prompts, StepResult, grpo_step, step_metrics
from src.stages.common import (
    RUNNER_STAGE_KEYS,
    build_optimizer,
    feature_cache_config,
    fsdp2_mixed_precision,
    planned_optimizer_steps,
    shard_fsdp2,
    trainable_parameters,
    warmup_cosine,
)


def grpo_settings(cfg: DictConfig) -> dict[str, Any]:
    """The :class:`GRPOConfig` fields of a composed ``train.yaml``'s ``stage``, checked by building one.

    Raises:
        ConfigError: a ``stage`` key that is neither a field nor one the runner reads
            (:data:`~src.stages.common.RUNNER_STAGE_KEYS`), or a value of the wrong type.
        ValueError: a value :class:`GRPOConfig` refuses.
    """
    stage = OmegaConf.to_container(cfg.stage, resolve=True)
    runner_only = RUNNER_STAGE_KEYS - {f.name for f in fields(GRPOConfig)}
    settings = typed_fields(GRPOConfig, stage, prefix="stage.", ignore=runner_only)
    GRPOConfig(**settings)
    return settings


class GRPOModule(L.LightningModule):
    """LightningModule (manual optimisation) for ``stage=grpo``.

    Args:
        model: the ``model`` config (towers are usually frozen here).
        grpo: :class:`GRPOConfig` fields.
        rewards: the ``rewards`` config (``functions`` with weights, ``on_error``).
        judge: the ``judge`` config used by rewards that read emotions.
        init_from: the SFT export to start from (also the reference policy).
        feature_cache: the ``feature_cache`` config (frozen-tower outputs reused across steps and stages).
    """

    def __init__(
        self,
        model: dict[str, Any],
        grpo: dict[str, Any],
        rewards: dict[str, Any],
        judge: dict[str, Any] | None = None,
        *,
        init_from: str | None = None,
        seed: int = 0,
        fsdp_mixed_precision: str | None = None,
        samples_file: str | None = None,
        feature_cache: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.cfg = GRPOConfig(**grpo)
        self.model = None
        self.tokenizer = None
        self.gate_tokenizer = None
        self._reference: list[torch.nn.Module] = []  # kept out of state_dict: rebuilt from init_from on resume
        self.reward_set = RewardSet.from_config(rewards, judge=build_judge(judge))
        # The run config records which package (and version) provided each reward: checkpoints and loggers'
        # hparams.yaml carry it.
        self.hparams["reward_provenance"] = self.reward_set.provenance
        self.samples_file = Path(samples_file) if samples_file else None

    @classmethod
    def from_config(cls, cfg: DictConfig, init_from: str | None) -> GRPOModule:
        return cls(
            OmegaConf.to_container(cfg.model, resolve=True),
            grpo_settings(cfg),
            OmegaConf.to_container(cfg.rewards, resolve=True),
            OmegaConf.to_container(cfg.judge, resolve=True),
            init_from=init_from,
            seed=int(cfg.seed),
            fsdp_mixed_precision=fsdp2_mixed_precision(cfg),
            samples_file=str(Path(cfg.run_dir) / "completions.jsonl"),
            feature_cache=feature_cache_config(cfg),
        )

    # ---- setup -------------------------------------------------------------------------------------------
    @override
    def configure_model(self) -> None:
        if self.model is not None:
            return
        loaded = instantiate(ModelSpec(**self.hparams.model), self.hparams.init_from, seed=self.hparams.seed)
        self.model, self.tokenizer, self.gate_tokenizer = loaded.model, loaded.tokenizer, loaded.gate_tokenizer
        attach_feature_cache(self.model, self.hparams.feature_cache, sharded=self.device_mesh is not None)
        # With a fresh LoRA adapter the reference is the same module with the adapter disabled; an adapter
        # continued from an adapter export (QLoRA SFT -> GRPO) starts away from its base, so it needs a copy.
        continued = getattr(getattr(self.model, "adapter_base", None), "adapter_from", None) is not None
        if self.cfg.beta > 0 and (not has_lora(self.model) or continued):
            # Under FSDP2 the reference is sharded on its own, so it cannot share the policy's tower modules.
            self._reference = [self._frozen_copy(self.model, share_towers=self.device_mesh is None)]
        if self.device_mesh is not None:
            shard_fsdp2(self.model, self.device_mesh, mixed_precision=self.hparams.fsdp_mixed_precision)
            for reference in self._reference:
                shard_fsdp2(reference, self.device_mesh, mixed_precision=self.hparams.fsdp_mixed_precision)

    @staticmethod
    def _frozen_copy(model: torch.nn.Module, *, share_towers: bool = True) -> torch.nn.Module:
        """A frozen copy of the policy that shares (does not copy) its frozen towers when ``share_towers``."""
        frozen_parts = model.frozen_parts().items() if share_towers else ()
        shared = {name: getattr(model, name) for name, frozen in frozen_parts if frozen}
        for name in shared:
            setattr(model, name, None)
        try:
            reference = copy.deepcopy(model)
        finally:
            for name, module in shared.items():
                setattr(model, name, module)
        for name, module in shared.items():
            setattr(reference, name, module)
        reference.requires_grad_(False)
        reference.eval()
        return reference

    @override
    def on_fit_start(self) -> None:
        for reference in self._reference:
            reference.to(self.device)

    @override
    def on_fit_end(self) -> None:
        if self.model is not None and self.model.feature_cache is not None:
            self.model.feature_cache.log_summary("end of training")

    @override
    def configure_optimizers(self):
        optimizer = build_optimizer(trainable_parameters(self.model), self.cfg.optim)
        steps = planned_optimizer_steps(self.trainer) * self.cfg.num_iterations
        scheduler = warmup_cosine(
            optimizer,
            total_steps=steps,
            warmup_ratio=float(self.cfg.optim.get("warmup_ratio", 0.0)),
            min_lr_ratio=float(self.cfg.optim.get("min_lr_ratio", 0.0)),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- the algorithm -----------------------------------------------------------------------------------
    @override
    def training_step(self, batch: Batch, batch_idx: int) -> None:
        cfg = self.cfg
        optimizer = self.optimizers()
        clip = None
        if cfg.gradient_clip_val:

            def clip() -> None:
                self.clip_gradients(
                    optimizer, gradient_clip_val=cfg.gradient_clip_val, gradient_clip_algorithm="norm"
                )

        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.step_seed())
            result = grpo_step(
                self.model,
                self.tokenizer,
                Prompts(
                    batch.input_ids,
                    batch.attention_mask,
                    batch.media,
                    seeds=[self.sample_seed(meta["id"]) for meta in batch.meta],
                ),
                cfg,
                score=lambda rollout: self.score(rollout, batch),
                reference_logprobs=self.reference_logprobs if cfg.beta > 0 else None,
                optimizer=optimizer,
                backward=self.manual_backward,
                clip=clip,
                scheduler=self.lr_schedulers(),
            )
        self.log_step(result, batch)

    def step_seed(self) -> int:
        """The seed of this step's other random draws (dropout): the run's seed, the rank and the step.

        Every random draw of a step comes from a seed, not from the global generator's running state, so a
        run resumed from a checkpoint draws exactly what the uninterrupted run drew (Lightning, the data
        loaders and the checkpointing draw from the global generator at moments that differ between the two).
        """
        return zlib.crc32(f"grpo/{self.hparams.seed}/{self.global_rank}/{self.global_step}".encode())

    def sample_seed(self, sample_id: str) -> int:
        """The seed of one prompt's G completions in this step: the run's seed, the step and the sample's id.

        Not the rank: a prompt draws the same completions on whichever rank reads it, so a run over N ranks
        samples what one process over the same global batch samples (``tests/stages/test_distributed.py``
        compares them), and a resumed run samples what the uninterrupted one sampled.
        """
        return zlib.crc32(f"grpo/{self.hparams.seed}/{self.global_step}/{sample_id}".encode())

    def score(self, rollout: Rollout, batch: Batch):
        group = self.cfg.num_generations
        meta = [m for m in batch.meta for _ in range(group)]  # completion i answers prompt i // G
        prompts = self.tokenizer.batch_decode(batch.input_ids, skip_special_tokens=False)
        ids = [row[mask.bool()].tolist() for row, mask in zip(rollout.completion_ids, rollout.completion_mask)]
        extra_keys = sorted(
            {k for m in batch.meta for k in m} - {"id", "label", "dataset", "dominant", "mi_dominant"}
        )
        return self.reward_set(
            completions=rollout.texts,
            completion_ids=ids,
            prompts=[p for p in prompts for _ in range(group)],
            labels=[m["label"] for m in meta],
            dominant=[self._dominant(m) for m in meta],
            sample_ids=[m["id"] for m in meta],
            dataset=[m["dataset"] for m in meta],
            **{key: [m.get(key) for m in meta] for key in extra_keys},
        )

    def _dominant(self, meta: dict[str, Any]) -> str | None:
        """The dominant modality the rewards use: the MI estimate (the paper's m) unless told otherwise."""
        if self.cfg.dominant_source == "mi" and meta.get("mi_dominant") is not None:
            return None if meta["mi_dominant"] == "none" else meta["mi_dominant"]
        return meta.get("dominant")

    def reference_logprobs(self, rollout: Rollout) -> torch.Tensor:
        if not self._reference:  # a fresh LoRA adapter: the reference is the policy without it
            with adapter_disabled(self.model):
                return completion_logprobs(self.model, rollout, temperature=self.cfg.temperature)[0]
        reference = self._reference[0]
        return completion_logprobs(reference, rollout, temperature=self.cfg.temperature)[0]

    # ---- logging -----------------------------------------------------------------------------------------
    def log_step(self, result: StepResult, batch: Batch) -> None:
        """Log every scalar of the step under ``train/`` (undefined ones left out) and the sample completions."""
        lr = self.optimizers().param_groups[0]["lr"]
        metrics = {f"train/{k}": v for k, v in step_metrics(result, lr).items()}
        loss = metrics.pop("train/loss")
        self.log("train/loss", loss, batch_size=len(batch), sync_dist=True)  # the ranks' mean (module docstring)
        self.log_dict(metrics, batch_size=len(batch), prog_bar=False)
        self.log(
            "reward", result.advantage_stats["reward/mean"], prog_bar=True, batch_size=len(batch), logger=False
        )
        self.log_completions(result, batch)

    def log_completions(self, result: StepResult, batch: Batch) -> None:
        rollout, scores = result.rollout, result.scores
        count = min(self.cfg.log_completions, len(rollout.texts))
        if count == 0 or self.global_rank != 0:
            return
        group = self.cfg.num_generations
        total = result.total.tolist()
        rows = []
        for i in range(count):
            meta = batch.meta[i // group]
            rows.append(
                {
                    "step": int(self.global_step),
                    "sample_id": meta["id"],
                    "label": meta["label"],
                    "dominant": meta.get("dominant"),
                    "completion": rollout.texts[i],
                    **{name: column[i] for name, column in scores.columns.items()},
                    "total": None if math.isnan(total[i]) else total[i],  # None: no reward applied
                }
            )
        if self.samples_file is not None:
            self.samples_file.parent.mkdir(parents=True, exist_ok=True)
            with self.samples_file.open("a") as handle:
                for row in rows:
                    handle.write(json.dumps(row) + "\n")
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                columns = list(rows[0])
                logger.log_table(
                    key="train/completions", columns=columns, data=[[r[c] for c in columns] for r in rows]
                )
