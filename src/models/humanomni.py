"""Loading released HumanOmni-family checkpoints (HumanOmni, R1-Omni, ERV, EMER-SFT, ...) from a local folder.

A released folder has ``config.json`` with ``"model_type": "HumanOmni_qwen2"`` (Qwen2 fields plus ``mm_*``
fields), safetensors shards with the key layout below, and the Qwen2.5 tokenizer files::

    model.embed_tokens.* model.layers.{i}.* model.norm.* lm_head.*     -> llm.model.* / llm.lm_head.*
    model.mm_projector.{s1_video, sampler_video, ..., mlp_2xgelu_face}.*  -> mm_projector.*
    model.audio_projector.{0,2}.*                                       -> audio_projector.*
    model.bert_model.* / model.bert_gate.{0,2}.*                        -> bert_model.* / bert_gate.*
    model.vision_tower.vision_tower.vision_model.*                      -> vision_tower.*
    model.audio_tower.audio_tower.[encoder.]*                           -> audio_tower.*

The original code ignores the stored tower weights and re-reads SigLIP/Whisper from ``mm_vision_tower`` /
``mm_audio_tower`` (often absolute paths of the authors' machines). Here the stored weights are used when
present; otherwise the tower is read from the folder given by argument (or the config's path when it exists
locally), and the loader says which source it used. Every tensor is accounted for: unknown keys are an error,
known-unused ones (Whisper's classification head, position-id buffers, SigLIP's last block) are listed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from torch import Tensor
from transformers import AutoTokenizer

from src.models.checkpoint import CheckpointError, LoadedModel, load_state_strict, read_config, read_safetensors
from src.models.omni import OmniModel
from src.models.presets import OmniConfig, get_preset
from src.models.tokenizer import media_token_ids, prepare_tokenizer

log = logging.getLogger(__name__)

_QWEN2_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rope_theta",
    "rms_norm_eps",
    "tie_word_embeddings",
    "hidden_act",
)
# Prefix in the released checkpoint -> prefix in OmniModel. Order matters (longest first).
_PREFIXES = (
    ("model.vision_tower.vision_tower.vision_model.", "vision_tower."),
    ("model.audio_tower.audio_tower.encoder.", "audio_tower."),
    ("model.audio_tower.audio_tower.", "audio_tower."),
    ("model.mm_projector.", "mm_projector."),
    ("model.audio_projector.", "audio_projector."),
    ("model.bert_model.", "bert_model."),
    ("model.bert_gate.", "bert_gate."),
    ("model.", "llm.model."),
    ("lm_head.", "llm.lm_head."),
)
# Stored but unused by the model as HumanOmni runs it.
_UNUSED_SUFFIXES = ("position_ids", "token_type_ids")
_UNUSED_AUDIO = ("projector.", "classifier.", "decoder.", "layer_weights", "proj_out.")


def map_humanomni_key(key: str) -> str | None:
    """Our parameter name for a released key, or None when the key has no place in our model."""
    for source, target in _PREFIXES:
        if key.startswith(source):
            return target + key[len(source) :]
    return None


def omni_config_from_humanomni(config: dict[str, Any], source: str) -> OmniConfig:
    """Our :class:`OmniConfig` for a released ``config.json`` (towers from the known released shapes)."""
    projector = config.get("mm_projector_type")
    presets = {"all_in_one_small": "humanomni-0.5b", "all_in_one": "humanomni-7b"}
    if projector not in presets:
        raise CheckpointError(
            f"{source}/config.json: mm_projector_type={projector!r} is not supported; expected one of {sorted(presets)}"
        )
    base = get_preset(presets[projector])
    mm_hidden = config.get("mm_hidden_size", base.vision["hidden_size"])
    if mm_hidden != base.vision["hidden_size"]:
        known = {768: "humanomni-0.5b", 1152: "humanomni-7b"}
        if mm_hidden not in known:
            raise CheckpointError(
                f"{source}/config.json: mm_hidden_size={mm_hidden} matches no known SigLIP tower"
            )
        base.vision = get_preset(known[mm_hidden]).vision
    base.llm = {k: config[k] for k in _QWEN2_FIELDS if k in config}
    base.vision_select_layer = int(config.get("mm_vision_select_layer", -2))
    base.num_frames = int(config.get("num_frames", 8))
    base.preset = f"released:{Path(source).name}"
    base.__post_init__()
    return base


def _tower_from_folder(folder: Path, prefixes: tuple[str, ...], target: str, what: str) -> dict[str, Tensor]:
    tensors = read_safetensors(folder)
    for prefix in prefixes:
        picked = {target + k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if picked:
            return picked
    raise CheckpointError(f"{folder}: no {what} weights under prefixes {list(prefixes)}")


def _resolve_tower(
    folder: Path, explicit: str | os.PathLike | None, configured: str | None, key: str, what: str
) -> Path:
    for candidate in (explicit, configured):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise CheckpointError(
        f"{folder}: the checkpoint stores no {what} weights and no local {what} folder was found (config {key}="
        f"{configured!r}); pass {key.replace('mm_', '')}_path=/path/to/{what} folder (safetensors)"
    )


def load_humanomni(
    folder: str | os.PathLike,
    *,
    vision_tower_path: str | os.PathLike | None = None,
    audio_tower_path: str | os.PathLike | None = None,
    bert_tokenizer_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load a released HumanOmni-layout checkpoint into an :class:`OmniModel` (strict, every key checked).

    Args:
        vision_tower_path / audio_tower_path: SigLIP / Whisper folders used only when the checkpoint does not
            store that tower (safetensors with ``vision_model.*`` / ``model.encoder.*`` or bare keys).
        bert_tokenizer_path: the bert-base-uncased tokenizer folder (the checkpoint's ``bert/`` subfolder by
            default); HumanOmni hard-codes a hub download here.
    """
    folder = Path(folder)
    config = read_config(folder)
    omni = omni_config_from_humanomni(config, str(folder))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    bert_dir = Path(bert_tokenizer_path) if bert_tokenizer_path else folder / "bert"
    if not bert_dir.is_dir():
        raise CheckpointError(
            f"{folder}: no BERT tokenizer for the branch gate; pass bert_tokenizer_path=/path/to/bert-base-uncased "
            f"(or put its tokenizer files in {bert_dir})"
        )
    gate_tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    if len(tokenizer) > omni.llm["vocab_size"]:
        raise CheckpointError(
            f"{folder}: tokenizer has {len(tokenizer)} tokens after adding migr's special tokens, more than the "
            f"checkpoint's vocab_size={omni.llm['vocab_size']}"
        )
    ids = media_token_ids(tokenizer)
    stored = read_safetensors(folder)
    bert_words = stored.get("model.bert_model.embeddings.word_embeddings.weight")
    omni.text_encoder["vocab_size"] = int(bert_words.shape[0]) if bert_words is not None else len(gate_tokenizer)
    with init_empty_weights():
        model = OmniModel(omni, video_token_id=ids["video"], audio_token_id=ids["audio"])
    expected = set(model.state_dict())

    state: dict[str, Tensor] = {}
    unused: list[str] = []
    unknown: list[str] = []
    for key, tensor in stored.items():
        target = map_humanomni_key(key)
        if target in expected:
            state[target] = tensor
        elif key.endswith(_UNUSED_SUFFIXES) or (
            key.startswith("model.audio_tower.audio_tower.")
            and key.split("audio_tower.audio_tower.")[1].startswith(_UNUSED_AUDIO)
        ):
            unused.append(key)
        elif target is not None and target.startswith("vision_tower."):
            unused.append(key)  # SigLIP blocks/heads after the selected layer are stored but never run
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{folder}: {len(unknown)} keys match no part of the model: {sorted(unknown)[:20]}")

    sources = {}
    for tower, prefixes, cfg_key, explicit in (
        ("vision_tower", ("vision_model.", ""), "mm_vision_tower", vision_tower_path),
        ("audio_tower", ("model.encoder.", "encoder.", ""), "mm_audio_tower", audio_tower_path),
    ):
        if any(k.startswith(tower + ".") for k in state):
            sources[tower] = "checkpoint"
            continue
        tower_dir = _resolve_tower(folder, explicit, config.get(cfg_key), cfg_key, tower)
        wanted = {k for k in expected if k.startswith(tower + ".")}
        picked = _tower_from_folder(tower_dir, prefixes, tower + ".", tower)
        state.update({k: v for k, v in picked.items() if k in wanted})
        unused.extend(k for k in picked if k not in wanted)
        sources[tower] = str(tower_dir)
    for tower, source in sources.items():
        log.info("%s weights loaded from %s", tower, source)
    if unused:
        log.info("%d stored tensors are not used by the model (e.g. %s)", len(unused), unused[:3])
    load_state_strict(model, state, str(folder))
    model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
    model.eval()
    loaded = LoadedModel(model=model, tokenizer=tokenizer, gate_tokenizer=gate_tokenizer, folder=folder)
    loaded.model.load_report = {"tower_sources": sources, "unused_keys": sorted(unused)}  # type: ignore[attr-defined]
    return loaded
