"""Exporting the trained model at the end of a stage as a loadable folder (safetensors + config + tokenizers).

Works the same for a single process, DDP and FSDP2: the full state dict is gathered (LoRA merged into the base
weights) and rank 0 writes the folder atomically. A LoRA run on a 4/8-bit LLM exports its adapter plus a
reference to the base model instead (``model_type: migr_omni_adapter``). The next stage reads this folder, never a Lightning
checkpoint of another stage.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from typing_extensions import override

from src.models.checkpoint import save_adapter_model, save_model
from src.models.lora import has_lora, merged_state_dict
from src.models.omni import OmniModel
from src.models.quantize import is_quantized

log = logging.getLogger(__name__)


def full_state_dict(model: OmniModel) -> dict[str, Tensor]:
    """Unsharded, LoRA-merged weights under plain names (collective under FSDP2: call on every rank)."""
    is_sharded = any(type(p).__name__ == "DTensor" for p in model.parameters())
    if is_sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return dict(state)
    return merged_state_dict(model) if has_lora(model) else dict(model.state_dict())


def export_module(
    module: L.LightningModule, folder: str | Path, *, extra: dict[str, Any] | None = None
) -> Path | None:
    """Write ``module.model`` to ``folder``; returns the folder on rank 0, None elsewhere.

    A LoRA model on a quantized LLM is written as its adapter plus a reference to the base
    (:func:`src.models.checkpoint.save_adapter_model`), never as merged weights: its base weights exist only
    quantized, and merging into them would export another model than the one trained.
    """
    if is_quantized(module.model):
        if module.trainer is not None and module.trainer.global_rank != 0:
            return None
        path = save_adapter_model(module.model, module.tokenizer, module.gate_tokenizer, folder, extra=extra)
        log.info("exported the LoRA adapter and the reference to its base model to %s", path)
        return path
    state = full_state_dict(module.model)
    if module.trainer is not None and module.trainer.global_rank != 0:
        return None
    if has_lora(module.model) and any(type(p).__name__ == "DTensor" for p in module.model.parameters()):
        raise NotImplementedError("exporting LoRA under FSDP2: merge is not supported on sharded parameters")
    target = _plain_model(module.model)
    path = save_model(target, module.tokenizer, module.gate_tokenizer, folder, extra=extra, state=state)
    log.info("exported model to %s", path)
    return path


def _plain_model(model: OmniModel) -> OmniModel:
    """``model`` itself, or (LoRA) a shell whose config/ids describe the merged model; weights come from state."""
    if not has_lora(model):
        return model
    with torch.device("meta"):
        return OmniModel(model.config, video_token_id=model.video_token_id, audio_token_id=model.audio_token_id)


class ExportOnTrainEnd(L.Callback):
    """Export the model when ``fit`` ends, also after a resumed run.

    A run resumed from its final checkpoint (e.g. killed while exporting) has nothing left to train: Lightning
    then skips the fit loop and ``on_train_end`` with it, so the export is written at ``on_fit_end`` instead.
    The model is the checkpoint's, so that export equals the one the killed run was writing.
    """

    def __init__(self, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.extra = extra or {}
        self._exported = False

    def _export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        export_module(pl_module, self.folder, extra={**self.extra, "global_step": trainer.global_step})
        self._exported = True

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._exported = False

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._export(trainer, pl_module)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._exported:  # the fit loop was skipped: resumed at (or past) its last step
            log.info("nothing left to train at step %d; exporting the restored model", trainer.global_step)
            self._export(trainer, pl_module)


def exported_step(folder: str | Path) -> int | None:
    """The ``global_step`` an export folder records, None when there is no complete export."""
    config = Path(folder) / "config.json"
    if not config.exists():
        return None
    return json.loads(config.read_text()).get("global_step")
