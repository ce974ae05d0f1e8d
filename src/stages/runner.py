"""From a composed Hydra config to a running Lightning fit: resolution of ``auto`` inputs, data, module,
strategy, loggers, callbacks. ``src/train.py`` stays a short entry point; everything testable lives here.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from omegaconf import DictConfig, OmegaConf

from src import atomic
from src.config_check import ConfigError, check_combinations, check_numbers
from src.data.datamodule import DataConfig, EmotionDataModule
from src.data.manifest import read_manifest
from src.data.sources import prepare_manifest
from src.models.factory import ModelDescription, ModelSpec, check_weights_source, describe
from src.stages.checkpoint_io import SafeCheckpointIO
from src.stages.common import feature_cache_config, fsdp2_mixed_precision
from src.stages.export import ExportOnTrainEnd, exported_step
from src.stages.run_folder import ResumableCSVLogger, TrimHistoryOnResume, open_run_folder

log = logging.getLogger(__name__)

MIGR_MANIFEST = "migr/sft_manifest.jsonl"
# ``stage.settings``: which set of defaults a stage runs with (configs/stage/*.yaml vs configs/experiment/)
SETTINGS = {
    "demo": "the tiny model's defaults (configs/stage/{stage}.yaml, those the demo trains with)",
    "paper": "the paper's (configs/experiment/paper_{stage}.yaml)",
}


def to_dict(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def resolve_init_from(cfg: DictConfig) -> str | None:
    """``stage.init_from``: a path, null, or ``auto`` (the previous stage's export when it exists)."""
    value = cfg.stage.get("init_from")
    if value != "auto":
        return value
    previous = {"sft": "base", "grpo": "sft"}.get(cfg.stage.name)
    candidate = Path(cfg.runs_dir) / previous / "export" if previous else None
    if candidate is not None and (candidate / "config.json").exists():
        log.info("stage.init_from=auto -> %s", candidate)
        return str(candidate)
    log.info(
        "stage.init_from=auto: no %s export under %s; using model.pretrained or a fresh preset",
        previous,
        cfg.runs_dir,
    )
    return None


def resolve_manifest(cfg: DictConfig) -> str:
    """``stage.train_manifest``: a path, null (= ``data.manifest``), or ``auto`` (the MIGR build when present)."""
    value = cfg.stage.get("train_manifest")
    if value == "auto":
        built = Path(cfg.runs_dir) / MIGR_MANIFEST
        if built.exists():
            log.info("stage.train_manifest=auto -> %s (MIGR modality-aligned set)", built)
            return str(built)
        log.info("stage.train_manifest=auto: no MIGR build at %s; training on %s", built, cfg.data.manifest)
        return str(cfg.data.manifest)
    return str(value) if value else str(cfg.data.manifest)


def log_settings(cfg: DictConfig) -> str:
    """Say which set of stage defaults this run uses (``stage.settings``) and its main values; returns the line.

    The stage defaults are the tiny model's, which learn from scratch at lr 1e-3; a released checkpoint trained
    with them would be wrecked, so a non-tiny preset with the demo's settings gets a warning naming the overlay.
    """
    stage = cfg.stage
    name = str(stage.get("settings", "unnamed"))
    source = SETTINGS.get(name, "set by hand").format(stage=stage.name)
    batch = stage.get("batch_size") or cfg.data.batch_size
    line = (
        f"stage settings: {name}, {source}: lr {stage.optim.lr}, weight_decay {stage.optim.weight_decay}, "
        f"warmup_ratio {stage.optim.warmup_ratio}, max_epochs {stage.max_epochs}, max_steps {stage.max_steps}, "
        f"batch {batch} per device"
    )
    log.info(line)
    if name == "demo" and cfg.model.preset != "tiny":
        paper = f" (experiment=paper_{stage.name})" if stage.name in ("sft", "grpo") else ""
        log.warning(
            "stage.settings=demo are the tiny model's settings (trained from scratch) but model.preset=%s: "
            "a released checkpoint trains with the paper's settings%s",
            cfg.model.preset,
            paper,
        )
    return line


def data_config(cfg: DictConfig, manifest: str) -> DataConfig:
    raw = to_dict(cfg.data)
    known = {f.name for f in fields(DataConfig)}
    options = {k: v for k, v in raw.items() if k in known}
    options["manifest"] = manifest
    if cfg.stage.get("batch_size") is not None:
        options["batch_size"] = int(cfg.stage.batch_size)  # e.g. GRPO's prompts per step
    if manifest != str(cfg.data.manifest):
        options["synth"] = None  # a derived manifest: the corpus it came from already exists
    return DataConfig(**options)


def build_datamodule(
    cfg: DictConfig, description: ModelDescription, *, manifest: str | None = None
) -> EmotionDataModule:
    counts = description.token_counts
    model = description.config
    if cfg.data.get("adapter"):
        prepare_manifest(cfg.data)
    return EmotionDataModule(
        data_config(cfg, manifest or resolve_manifest(cfg)),
        tokenizer=description.tokenizer,
        gate_tokenizer=description.gate_tokenizer,
        num_video_tokens=counts["video"],
        num_audio_tokens=counts["audio"],
        image_size=model.image_size,
        num_frames=model.num_frames,
        audio_seconds=model.audio_seconds,
        task=cfg.stage.task,
        modality_dropout=to_dict(cfg.stage.get("modality_dropout")),
        seed=int(cfg.seed),
        with_targets=cfg.stage.module != "grpo",  # GRPO samples its own completions from prompts
        preprocess=model.preprocess,
        wrap_media=model.wrap_media_tokens,
    )


def check_stage_keys(cfg: DictConfig) -> None:
    """Refuse a ``stage`` key that neither the runner (:data:`~src.stages.common.RUNNER_STAGE_KEYS`) nor the
    stage module's config reads, or a value of the wrong type, before any data or weights are touched."""
    module = cfg.stage.get("module")
    if module == "sft":
        from src.stages.sft import SFTConfig

        SFTConfig.from_config(cfg)
    elif module == "grpo":
        from src.stages.grpo import grpo_settings

        grpo_settings(cfg)
    else:
        raise ConfigError(f"stage.module={module!r} is not a known stage module (sft, grpo)")


def build_module(cfg: DictConfig, init_from: str | None) -> L.LightningModule:
    module = cfg.stage.module
    if module == "sft":
        from dataclasses import asdict

        from src.stages.sft import SFTConfig, SFTModule

        return SFTModule(
            to_dict(cfg.model),
            asdict(SFTConfig.from_config(cfg)),  # validated here, before any weights are built
            init_from=init_from,
            seed=int(cfg.seed),
            fsdp_mixed_precision=fsdp2_mixed_precision(cfg),
            feature_cache=feature_cache_config(cfg),
        )
    if module == "grpo":
        from src.stages.grpo import GRPOModule

        return GRPOModule.from_config(cfg, init_from)
    raise ValueError(f"stage.module={module!r} is not a known stage module (sft, grpo)")


def build_strategy(cfg: DictConfig) -> Any:
    name = cfg.trainer.strategy
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        from src.stages.common import SHARDED_BLOCKS

        options = to_dict(cfg.trainer.fsdp) or {}
        policy = _block_classes_by_name(SHARDED_BLOCKS)
        return FSDPStrategy(
            auto_wrap_policy=policy,
            activation_checkpointing_policy=policy if options.get("activation_checkpointing", True) else None,
            sharding_strategy=options.get("sharding_strategy", "FULL_SHARD"),
            state_dict_type=options.get("state_dict_type", "sharded"),
            cpu_offload=bool(options.get("cpu_offload", False)),
            limit_all_gathers=bool(options.get("limit_all_gathers", True)),
        )
    if name == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy

        devices = cfg.trainer.devices
        if devices == "auto":
            import torch

            devices = torch.cuda.device_count() if cfg.trainer.accelerator in ("gpu", "cuda") else 1
        # Pure FSDP2: every rank is a data-parallel shard (no tensor parallelism).
        return ModelParallelStrategy(
            data_parallel_size=int(devices) * int(cfg.trainer.num_nodes),
            tensor_parallel_size=1,
            save_distributed_checkpoint=True,
        )
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        # Rows without video (or audio) leave that projector unused in a step: DDP must expect it.
        return DDPStrategy(
            find_unused_parameters=bool(cfg.trainer.get("find_unused_parameters", True)),
            process_group_backend="gloo" if cfg.trainer.accelerator == "cpu" else None,
        )
    return name


def _block_classes_by_name(names: tuple[str, ...]) -> set[type]:
    from transformers.models.bert.modeling_bert import BertLayer
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer
    from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer
    from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

    classes = {Qwen2DecoderLayer, SiglipEncoderLayer, WhisperEncoderLayer, BertLayer}
    assert {c.__name__ for c in classes} == set(names)
    return classes


def build_loggers(cfg: DictConfig) -> list[Any]:
    kind = cfg.logger.kind
    run_dir = Path(cfg.run_dir)
    if kind == "none":
        return []
    if kind == "csv":
        return [ResumableCSVLogger(save_dir=str(run_dir), name="logs", version="")]
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
        wandb = WandbLogger(
            project=cfg.logger.project,
            entity=cfg.logger.get("entity"),
            name=cfg.run_name,
            save_dir=str(run_dir),
            offline=bool(cfg.logger.offline),
            tags=list(cfg.logger.get("tags") or []),
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        return [wandb, ResumableCSVLogger(save_dir=str(run_dir), name="logs", version="")]
    raise ValueError(f"logger.kind={kind!r}; expected csv, wandb or none")


def build_trainer(cfg: DictConfig, *, extra_callbacks: list[L.Callback] | None = None) -> L.Trainer:
    t = cfg.trainer
    manual = cfg.stage.module == "grpo"  # manual optimisation clips gradients itself
    checkpoint = ModelCheckpoint(
        dirpath=str(Path(cfg.run_dir) / "checkpoints"),
        filename="step={step}",
        auto_insert_metric_name=False,
        every_n_train_steps=int(cfg.checkpoint.every_n_train_steps),
        save_last=True,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,  # one run per folder (src/stages/run_folder.py): never last-v1.ckpt
    )
    callbacks: list[L.Callback] = [
        checkpoint,
        TrimHistoryOnResume(cfg.run_dir),
        ExportOnTrainEnd(
            cfg.export_dir, extra={"stage": cfg.stage.name, "settings": cfg.stage.get("settings", "unnamed")}
        ),
        *(extra_callbacks or []),
        *(instantiate(spec) for spec in (cfg.get("callbacks") or {}).values()),
    ]
    if t.enable_progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    loggers = build_loggers(cfg)
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    strategy = build_strategy(cfg)
    plugins = [] if t.strategy in ("fsdp", "fsdp2") else [SafeCheckpointIO()]
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=t.precision,
        max_epochs=int(cfg.stage.max_epochs),
        max_steps=int(cfg.stage.get("max_steps", -1)),
        gradient_clip_val=None if manual else cfg.stage.get("gradient_clip_val"),
        accumulate_grad_batches=1 if manual else int(t.accumulate_grad_batches),
        log_every_n_steps=int(cfg.stage.get("log_every_n_steps") or t.log_every_n_steps),
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        num_sanity_val_steps=int(t.num_sanity_val_steps),
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=0 if manual else t.limit_val_batches,  # GRPO has no validation step
        enable_progress_bar=bool(t.enable_progress_bar),
        deterministic=bool(t.deterministic),
        use_distributed_sampler=False,  # our sampler shards per rank and resumes mid-epoch
        logger=loggers or False,
        callbacks=callbacks,
        plugins=plugins,
        default_root_dir=str(cfg.run_dir),
    )


def write_data_record(cfg: DictConfig, datamodule: EmotionDataModule) -> None:
    """``<run_dir>/data.json``: the manifest the run trained on and its usable rows per split (GRPO: prompts)."""
    record = {
        "stage": str(cfg.stage.name),
        "manifest": str(datamodule.cfg.manifest),
        "rows": {split: len(samples) for split, samples in datamodule.splits.items()},
        "skipped": len(datamodule.media.report),
    }
    atomic.write_text(Path(cfg.run_dir) / "data.json", json.dumps(record, indent=1))


def run_stage(cfg: DictConfig) -> Path:
    """Fit one stage as ``cfg`` says and return its export folder.

    The run folder is locked for the whole run and ``ckpt_path=last`` resumes only the folder's own run
    (:mod:`src.stages.run_folder`). The export folder returned was written by this run at its final step
    (checked: an export is never reported that was not written).
    """
    check_numbers(cfg)  # every numeric setting in range before anything is built
    check_combinations(cfg)  # options that cannot work together (quantization, LoRA, FSDP)
    check_stage_keys(cfg)  # every stage key known to the runner or the stage module, and of its type
    log_settings(cfg)
    init_from = resolve_init_from(cfg)
    spec = ModelSpec(**to_dict(cfg.model))
    check_weights_source(spec, init_from)  # a quantized run has a base; an adapter is continued as it is
    manifest = resolve_manifest(cfg)
    # the manifest's own errors before the model is built (one still to be generated or converted: once it is)
    if Path(manifest).is_file() and not cfg.data.get("adapter"):
        read_manifest(manifest, check_media=False)
    L.seed_everything(int(cfg.seed), workers=True)
    os.makedirs(cfg.run_dir, exist_ok=True)
    lock, ckpt_path = open_run_folder(cfg)
    try:
        description = describe(spec, init_from)
        datamodule = build_datamodule(cfg, description)
        module = build_module(cfg, init_from)
        trainer = build_trainer(cfg)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if datamodule.media.report:
            log.warning("media problems during this run:\n%s", datamodule.media.report.summary())
        if trainer.global_rank == 0:
            write_data_record(cfg, datamodule)
        if trainer.global_rank == 0 and exported_step(cfg.export_dir) != trainer.global_step:
            raise RuntimeError(
                f"the run ended at step {trainer.global_step} but {cfg.export_dir} holds no export of that step "
                f"(found: {exported_step(cfg.export_dir)}); rerun with ckpt_path=last to export it"
            )
    finally:
        if lock is not None:
            lock.release()
    return Path(cfg.export_dir)
