"""Supervised fine-tuning: causal-LM loss on the target tokens only.

Two tasks share this module: ``base`` (the label-only warm-up, target = the bare label, with random modality
dropout in the data so the model answers from audio-only, visual-only or both: Modality Importance needs
that) and ``sft`` (target = the tagged explanation, modality-aligned after the MIGR build).

Run it with ``python -m src.train stage=sft`` (or ``stage=base``); ``configs/stage/*.yaml`` hold the knobs.

``aux_unimodal_weight`` (the ``base`` warm-up, where the towers start from scratch): a linear probe per modality
on the mean of its projected features, trained with the label, is added to the loss. Multimodal networks learn
the easier modality first and leave the other under-trained (the "greedy learner" / modality competition
problem); on the synthetic corpus the visual path otherwise never leaves chance, and Modality Importance needs
both single-modality predictions. The probes live in this module, not in the exported model.
Validation reports the loss and, on a few batches, greedy generation + parsed-answer accuracy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import lightning as L
import torch
from typing_extensions import override

from src.config_check import ConfigError, check_numbers, typed_fields
from src.data.collate import Batch
from src.data.labels import labels_for
from src.data.reasoning import predicted_label
from src.models.factory import ModelSpec, instantiate
from src.models.feature_cache import attach_feature_cache
from src.models.generation import generate
from src.stages.common import (
    RUNNER_STAGE_KEYS,
    build_optimizer,
    planned_optimizer_steps,
    prompts_from_training_batch,
    shard_fsdp2,
    token_weighted_loss,
    trainable_parameters,
    warmup_cosine,
)

TASKS = ("label", "reasoning")


@dataclass
class SFTConfig:
    """The ``stage`` config of ``stage=sft`` and ``stage=base`` (``configs/stage/{sft,base}.yaml``), as
    :class:`src.rl.step.GRPOConfig` is GRPO's; validated on construction (numbers against
    :data:`src.config_check.RULES`, the same table the command checks when it starts).

    ``aux_dataset`` is not a stage key: the data set whose label set the probes of ``aux_unimodal_weight`` predict
    (``data.dataset``).
    """

    task: str = "reasoning"  # what the targets are (label | reasoning); also how generations are parsed
    optim: dict[str, Any] = field(default_factory=lambda: {"lr": 2e-5, "warmup_ratio": 0.03})
    aux_unimodal_weight: float = 0.0  # the base warm-up's linear probe per modality (module docstring)
    aux_dataset: str | None = None
    val_generate_batches: int = 1  # validation batches that also generate and score the parsed answer
    val_max_new_tokens: int = 96

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"stage.task={self.task!r} must be one of {', '.join(TASKS)}")
        if "lr" not in self.optim:
            raise ValueError(f"stage.optim has no lr (found {sorted(self.optim)})")
        check_numbers({"stage": {k: v for k, v in asdict(self).items() if k != "aux_dataset"}})
        if self.aux_unimodal_weight > 0 and not self.aux_dataset:
            raise ValueError("stage.aux_unimodal_weight > 0 needs the data set's label set (data.dataset)")

    @classmethod
    def from_config(cls, cfg: Any) -> SFTConfig:
        """From a composed ``train.yaml`` config: the ``stage`` keys this class has, and ``data.dataset``.

        Raises:
            ConfigError: a ``stage`` key that is neither a field nor one the runner reads
                (:data:`~src.stages.common.RUNNER_STAGE_KEYS`), or a value of the wrong type.
        """
        from omegaconf import OmegaConf

        stage = OmegaConf.to_container(cfg.stage, resolve=True)
        if "aux_dataset" in stage:
            raise ConfigError("stage.aux_dataset is not a stage setting: the probes' label set is data.dataset's")
        runner_only = RUNNER_STAGE_KEYS - {f.name for f in fields(cls)}
        kwargs = typed_fields(cls, stage, prefix="stage.", ignore=runner_only)
        return cls(**kwargs, aux_dataset=str(cfg.data.dataset))


class SFTModule(L.LightningModule):
    """LightningModule for the ``base`` and ``sft`` stages.

    Args:
        model: the ``model`` config (:class:`~src.models.factory.ModelSpec` fields).
        sft: :class:`SFTConfig` fields.
        init_from: export folder of the previous stage (None: ``model.pretrained`` or a fresh preset).
        seed: seeds a fresh model's init.
        feature_cache: the ``feature_cache`` config (frozen-tower outputs reused across steps and stages).
    """

    def __init__(
        self,
        model: dict[str, Any],
        sft: dict[str, Any],
        *,
        init_from: str | None = None,
        seed: int = 0,
        fsdp_mixed_precision: str | None = None,
        feature_cache: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = SFTConfig(**sft)
        self.model = None
        self.tokenizer = None
        self.gate_tokenizer = None
        self.aux_heads: torch.nn.ModuleDict | None = None
        self._batch_started: float | None = None

    @override
    def configure_model(self) -> None:
        if self.model is not None:
            return
        loaded = instantiate(ModelSpec(**self.hparams.model), self.hparams.init_from, seed=self.hparams.seed)
        self.model, self.tokenizer, self.gate_tokenizer = loaded.model, loaded.tokenizer, loaded.gate_tokenizer
        attach_feature_cache(self.model, self.hparams.feature_cache, sharded=self.device_mesh is not None)
        if self.cfg.aux_unimodal_weight > 0:
            hidden, classes = self.model.config.hidden_size, len(labels_for(self.cfg.aux_dataset))
            self.aux_heads = torch.nn.ModuleDict({m: torch.nn.Linear(hidden, classes) for m in ("video", "audio")})
        if self.device_mesh is not None:  # ModelParallelStrategy (FSDP2)
            heads = list(self.aux_heads.values()) if self.aux_heads is not None else []
            shard_fsdp2(
                self.model, self.device_mesh, mixed_precision=self.hparams.fsdp_mixed_precision, extra=heads
            )

    @override
    def configure_optimizers(self):
        params = trainable_parameters(self.model) + (list(self.aux_heads.parameters()) if self.aux_heads else [])
        optimizer = build_optimizer(params, self.cfg.optim)
        scheduler = warmup_cosine(
            optimizer,
            total_steps=planned_optimizer_steps(self.trainer),
            warmup_ratio=float(self.cfg.optim.get("warmup_ratio", 0.03)),
            min_lr_ratio=float(self.cfg.optim.get("min_lr_ratio", 0.0)),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @override
    def on_fit_end(self) -> None:
        if self.model is not None and self.model.feature_cache is not None:
            self.model.feature_cache.log_summary("end of training")

    @override
    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        self._batch_started = time.perf_counter()

    @override
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        out = self.model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)
        size = len(batch)
        loss, global_loss = token_weighted_loss(out.loss, out.num_target_tokens, self.trainer.world_size)
        self.log("train/loss", global_loss, prog_bar=True, batch_size=size)
        self.log("train/target_tokens", float(out.num_target_tokens), batch_size=size, reduce_fx="sum")
        if self.aux_heads is None:
            return loss
        aux = self.unimodal_probe_loss(batch, out)
        self.log("train/aux_unimodal_loss", aux, batch_size=size)
        return loss + self.cfg.aux_unimodal_weight * aux

    def unimodal_probe_loss(self, batch: Batch, out) -> torch.Tensor:
        """Cross-entropy of a linear probe per modality on its mean projected feature (see the docstring)."""
        labels = labels_for(self.cfg.aux_dataset)
        targets = torch.tensor([labels.index(m["label"]) for m in batch.meta], device=batch.input_ids.device)
        has = {
            "video": (batch.input_ids == self.model.video_token_id).any(dim=1),
            "audio": (batch.input_ids == self.model.audio_token_id).any(dim=1),
        }
        loss = out.loss.new_zeros(())
        for name, features in (("video", out.video_features), ("audio", out.audio_features)):
            if features is not None:
                logits = self.aux_heads[name](features.mean(dim=1).float())
                loss = loss + torch.nn.functional.cross_entropy(logits, targets[has[name]])
        return loss

    @override
    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self._batch_started is not None:
            seconds = time.perf_counter() - self._batch_started
            tokens = float(batch.attention_mask.sum()) * self.trainer.world_size
            self.log("train/tokens_per_s", tokens / max(seconds, 1e-9), batch_size=len(batch))
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(batch))

    @override
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm([g.detach().float() for g in grads])  # one foreach norm
            self.log("train/grad_norm", norm, batch_size=1)

    @override
    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self.model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)
        self.log("val/loss", out.loss, prog_bar=True, batch_size=len(batch), sync_dist=True)
        if batch_idx >= self.cfg.val_generate_batches:
            return
        prompt_ids, prompt_mask = prompts_from_training_batch(
            batch.input_ids, batch.labels, self.tokenizer.pad_token_id
        )
        generation = generate(
            self.model,
            prompt_ids,
            prompt_mask,
            batch.media,
            max_new_tokens=self.cfg.val_max_new_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        texts = self.tokenizer.batch_decode(generation.tokens, skip_special_tokens=True)
        correct = [
            predicted_label(text, meta["dataset"], self.cfg.task) == meta["label"]
            for text, meta in zip(texts, batch.meta)
        ]
        self.log(
            "val/answer_accuracy",
            sum(correct) / len(correct),
            prog_bar=True,
            batch_size=len(correct),
            sync_dist=True,
        )
