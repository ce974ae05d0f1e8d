"""GRPO: group-relative policy optimisation with MIGR's modality-aware rewards.

``python -m src.train stage=grpo`` (MIGR rewards: modality_order + modality_grounding + answer) or
``stage=grpo rewards=r1omni`` (the R1-Omni baseline: format + answer). One training step reads as the
algorithm::

    rollout  = G completions per prompt, one batched KV-cache decode, media encoded once
    rewards  = every configured reward on every completion (None = not applicable)
    advantages = (r - mean_group) / (std_group + 1e-4)
    repeat num_iterations times: loss = grpo_loss(policy logprobs, reference, advantages); step
    log      = rewards per function, KL, clip fractions, lengths, entropy, sample completions

Simplifications, on purpose: one optimiser step per rollout batch per iteration (no mini-batching inside a
rollout); old log-probabilities are computed only when ``num_iterations > 1`` (otherwise the ratio is 1 and
its gradient is the policy gradient); the reference is the initial policy (a frozen copy sharing the frozen
towers, or, with LoRA, the same weights with the adapter disabled; none when ``beta == 0``).
Generation under FSDP gathers the root parameters around the decode (see
:func:`src.models.generation.root_params_gathered`); blocks gather themselves.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from src.data.collate import Batch
from src.judges.factory import build_judge
from src.models.factory import ModelSpec, instantiate
from src.models.lora import adapter_disabled, has_lora
from src.reward_set import RewardSet
from src.rl.advantages import combine_rewards, group_advantages
from src.rl.loss import grpo_loss
from src.rl.rollout import Rollout, completion_logprobs, sample_completions
from src.stages.common import (
    build_optimizer,
    planned_optimizer_steps,
    shard_fsdp2,
    trainable_parameters,
    warmup_cosine,
)


@dataclass
class GRPOConfig:
    """The ``stage`` config of ``stage=grpo`` (``configs/stage/grpo.yaml``)."""

    num_generations: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_iterations: int = 1
    beta: float = 0.04
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    loss_type: str = "grpo"
    bias_corrected_kl: bool = False
    scale_rewards: str = "group"
    mask_truncated: bool = False
    gradient_clip_val: float | None = 1.0
    log_completions: int = 4
    dominant_source: str = "mi"  # mi: the MIGR build's estimate (extra["mi_dominant"]) when present | manifest
    optim: dict[str, Any] = field(default_factory=lambda: {"lr": 1e-6, "warmup_ratio": 0.0})

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(
                f"stage.num_generations={self.num_generations} must be >= 2 (advantages compare within a group)"
            )
        if self.num_iterations < 1:
            raise ValueError(f"stage.num_iterations={self.num_iterations} must be >= 1")
        if self.dominant_source not in ("mi", "manifest"):
            raise ValueError(f"stage.dominant_source={self.dominant_source!r} must be 'mi' or 'manifest'")
        if self.temperature <= 0:
            raise ValueError(f"stage.temperature={self.temperature} must be > 0: GRPO needs sampled completions")


class GRPOModule(L.LightningModule):
    """LightningModule (manual optimisation) for ``stage=grpo``.

    Args:
        model: the ``model`` config (towers are usually frozen here).
        grpo: :class:`GRPOConfig` fields.
        rewards: the ``rewards`` config (``functions`` with weights, ``on_error``).
        judge: the ``judge`` config used by rewards that read emotions.
        init_from: the SFT export to start from (also the reference policy).
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
        from src.stages.runner import fsdp2_mixed_precision

        stage = OmegaConf.to_container(cfg.stage, resolve=True)
        known = {f.name for f in fields(GRPOConfig)}
        return cls(
            OmegaConf.to_container(cfg.model, resolve=True),
            {k: v for k, v in stage.items() if k in known},
            OmegaConf.to_container(cfg.rewards, resolve=True),
            OmegaConf.to_container(cfg.judge, resolve=True),
            init_from=init_from,
            seed=int(cfg.seed),
            fsdp_mixed_precision=fsdp2_mixed_precision(cfg),
            samples_file=str(Path(cfg.run_dir) / "completions.jsonl"),
        )

    # ---- setup -------------------------------------------------------------------------------------------
    @override
    def configure_model(self) -> None:
        if self.model is not None:
            return
        loaded = instantiate(ModelSpec(**self.hparams.model), self.hparams.init_from, seed=self.hparams.seed)
        self.model, self.tokenizer, self.gate_tokenizer = loaded.model, loaded.tokenizer, loaded.gate_tokenizer
        if self.cfg.beta > 0 and not has_lora(self.model):
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
        rollout = self.rollout(batch)
        scores = self.score(rollout, batch)
        total = combine_rewards(scores.columns, self.reward_set.weights, device=self.device)  # [B*G]
        advantages, adv_stats = group_advantages(total, cfg.num_generations, scale=cfg.scale_rewards)
        mask = rollout.completion_mask.float()
        if cfg.mask_truncated:
            mask = mask * (~rollout.truncated).float()[:, None]
        with torch.no_grad():
            ref_logprobs = self.reference_logprobs(rollout) if cfg.beta > 0 else None
            old_logprobs = (
                completion_logprobs(self.model, rollout, temperature=cfg.temperature)[0]
                if cfg.num_iterations > 1
                else None
            )
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        for _ in range(cfg.num_iterations):
            logprobs, entropy = completion_logprobs(
                self.model, rollout, with_entropy=True, temperature=cfg.temperature
            )
            loss, loss_stats = grpo_loss(
                logprobs,
                ref_logprobs,
                advantages,
                mask,
                old_logprobs=old_logprobs,
                beta=cfg.beta,
                epsilon_low=cfg.epsilon_low,
                epsilon_high=cfg.epsilon_high,
                loss_type=cfg.loss_type,
                bias_corrected_kl=cfg.bias_corrected_kl,
                max_completion_length=cfg.max_new_tokens,
            )
            optimizer.zero_grad()
            self.manual_backward(loss)
            if cfg.gradient_clip_val:
                self.clip_gradients(
                    optimizer, gradient_clip_val=cfg.gradient_clip_val, gradient_clip_algorithm="norm"
                )
            optimizer.step()
            scheduler.step()
        self.log_step(rollout, scores, adv_stats, loss, loss_stats, entropy, batch)

    def rollout(self, batch: Batch) -> Rollout:
        was_training = self.model.training
        self.model.eval()  # no dropout while sampling
        try:
            return sample_completions(
                self.model,
                self.tokenizer,
                batch.input_ids,
                batch.attention_mask,
                batch.media,
                num_generations=self.cfg.num_generations,
                max_new_tokens=self.cfg.max_new_tokens,
                temperature=self.cfg.temperature,
                top_p=self.cfg.top_p,
                top_k=self.cfg.top_k,
            )
        finally:
            self.model.train(was_training)

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
        if has_lora(self.model):
            with adapter_disabled(self.model):
                return completion_logprobs(self.model, rollout, temperature=self.cfg.temperature)[0]
        reference = self._reference[0]
        return completion_logprobs(reference, rollout, temperature=self.cfg.temperature)[0]

    # ---- logging -----------------------------------------------------------------------------------------
    def log_step(self, rollout, scores, adv_stats, loss, loss_stats, entropy, batch: Batch) -> None:
        lengths = rollout.lengths.float()
        metrics = {
            "train/loss": loss.detach(),
            "train/reward": adv_stats["reward/mean"],
            "train/reward_std": adv_stats["reward/std"],
            "train/frac_reward_zero_std": adv_stats["frac_reward_zero_std"],
            "train/entropy": entropy if entropy is not None else torch.tensor(float("nan")),
            "train/completion_length": lengths.mean(),
            "train/completion_length_min": lengths.min(),
            "train/completion_length_max": lengths.max(),
            "train/truncated_fraction": rollout.truncated.float().mean(),
            "train/lr": torch.tensor(self.optimizers().param_groups[0]["lr"]),
        }
        metrics.update({f"train/{k}": v for k, v in loss_stats.items()})
        for name, column in scores.columns.items():
            applicable = [v for v in column if v is not None]
            if applicable:
                metrics[f"train/rewards/{name}"] = torch.tensor(sum(applicable) / len(applicable))
        self.log_dict(metrics, batch_size=len(batch), prog_bar=False)
        self.log("reward", adv_stats["reward/mean"], prog_bar=True, batch_size=len(batch), logger=False)
        self.log_completions(rollout, scores, batch)

    def log_completions(self, rollout: Rollout, scores, batch: Batch) -> None:
        count = min(self.cfg.log_completions, len(rollout.texts))
        if count == 0 or self.global_rank != 0:
            return
        group = self.cfg.num_generations
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
                    "total": scores.total[i],
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

    # ---- resume: RNG state (sampling must continue, not replay) -------------------------------------------
    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": json.dumps(_numpy_state()),
            "python": json.dumps(_python_state()),
            "grpo": asdict(self.cfg),
        }

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rng")
        if not state:
            return
        torch.set_rng_state(state["torch"])
        if torch.cuda.is_available() and state["cuda"]:
            torch.cuda.set_rng_state_all(state["cuda"])
        _set_numpy_state(json.loads(state["numpy"]))
        _set_python_state(json.loads(state["python"]))


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_numpy_state(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_python_state(state: list[Any]) -> None:
    version, internal, gauss = state
    random.setstate((version, tuple(internal), gauss))
