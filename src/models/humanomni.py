"""Loading released HumanOmni-family checkpoints (HumanOmni, R1-Omni, ERV, EMER-SFT, ...) from a local folder.

A released folder has ``config.json`` with ``"model_type": "HumanOmni_qwen2"`` (Qwen2 fields plus ``mm_*``
fields), safetensors shards with the key layout below, and the Qwen2.5 tokenizer files::

    model.embed_tokens.* model.layers.{i}.* model.norm.* lm_head.*     -> llm.model.* / llm.lm_head.*
    model.mm_projector.{s1_video, sampler_video, ..., mlp_2xgelu_face}.*  -> mm_projector.*
    model.audio_projector.{0,2}.*                                       -> audio_projector.*
    model.bert_model.* / model.bert_gate.{0,2}.*                        -> bert_model.* / bert_gate.*
    model.feature_compressor.{vlm_query,vlm_key}_projector.*            -> feature_compressor.*
    model.vision_tower.vision_tower.vision_model.*                      -> vision_tower.*
    model.audio_tower.audio_tower.[encoder.]*                           -> audio_tower.*

The original code ignores the stored tower weights and re-reads SigLIP/Whisper from ``mm_vision_tower`` /
``mm_audio_tower`` (often absolute paths of the authors' machines). Here the stored weights are used when
present; otherwise the tower is read from the folder given by argument (or the config's path when it exists
locally), and the loader says which source it used. Every tensor is accounted for: unknown keys are an error,
known-unused ones (Whisper's classification head, position-id buffers, SigLIP's last block) are logged as
expected, with the reason.

What the checkpoint says, it decides:

* tower shapes: from the ``config.json`` of the SigLIP / Whisper / BERT folders when those exist (the
  ``mm_*_tower`` paths, the ``*_path`` arguments, the ``bert/`` folder), else the released shapes matching
  ``mm_hidden_size``; either way checked against the stored tower weights (layer count, widths);
* the slow-fast compressor (HumanOmni's current code): on when the checkpoint stores
  ``model.feature_compressor.*``, unless ``video_compressor`` says otherwise;
* preprocessing: ``upstream_train`` (frames padded) when ``image_aspect_ratio`` is ``pad``, else
  ``upstream_inference`` (squashed); prompt wrapping from ``mm_use_x_start_end``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from torch import Tensor
from transformers import AutoTokenizer, BertConfig, PreTrainedTokenizerBase, SiglipVisionConfig, WhisperConfig
from transformers.utils import logging as hf_logging

from src.data.prompts import media_token_ids
from src.models.omni import OmniModel
from src.models.presets import OmniConfig, get_preset
from src.models.tokenizer import prepare_tokenizer
from src.models.weights import (
    CheckpointError,
    LoadedModel,
    load_state_strict,
    read_config,
    read_safetensors,
    stored_keys,
)

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
    ("model.feature_compressor.", "feature_compressor."),
    ("model.", "llm.model."),
    ("lm_head.", "llm.lm_head."),
)
# Stored but unused by the model as HumanOmni runs it, with the reason the load log gives.
_UNUSED_SUFFIXES = ("position_ids", "token_type_ids")
_UNUSED_AUDIO = ("projector.", "classifier.", "decoder.", "layer_weights", "proj_out.")
UNUSED_REASONS = {
    "buffer": "position/token-type id buffers (rebuilt by the model)",
    "audio_head": "Whisper heads and decoder (HumanOmni runs the encoder only)",
    "vision_tail": "SigLIP blocks after the selected layer and its head (features come from layer -2)",
    "tower_folder": "tower-folder tensors the model does not use",
}


def map_humanomni_key(key: str) -> str | None:
    """Our parameter name for a released key, or None when the key has no place in our model."""
    for source, target in _PREFIXES:
        if key.startswith(source):
            return target + key[len(source) :]
    return None


def _folder_config(folder: str | os.PathLike | None) -> dict[str, Any] | None:
    """The ``config.json`` of a tower folder, or None when there is no such folder or file."""
    if not folder or not (Path(folder) / "config.json").is_file():
        return None
    return json.loads((Path(folder) / "config.json").read_text())


_TOWER_CONFIGS = {"vision": SiglipVisionConfig, "audio": WhisperConfig, "bert": BertConfig}


def _tower_fields(raw: dict[str, Any], kind: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """The shape fields of a tower config, fields it leaves out at their transformers defaults (the hub's SigLIP
    base config nests an almost empty ``vision_config``: every shape is a default)."""
    if kind == "vision" and "vision_config" in raw:
        raw = raw["vision_config"]
    full = _TOWER_CONFIGS[kind](**{k: v for k, v in raw.items() if k in fields}).to_dict()
    return {k: full[k] for k in fields if k in full}


_VISION_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "image_size",
    "patch_size",
    "layer_norm_eps",
    "hidden_act",
)
_AUDIO_FIELDS = (
    "num_mel_bins",
    "d_model",
    "encoder_layers",
    "encoder_attention_heads",
    "encoder_ffn_dim",
    "max_source_positions",
    "activation_function",
)
_BERT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "hidden_act",
)


def omni_config_from_humanomni(
    config: dict[str, Any],
    source: str,
    *,
    vision_tower_path: str | os.PathLike | None = None,
    audio_tower_path: str | os.PathLike | None = None,
    bert_path: str | os.PathLike | None = None,
    video_compressor: str | None = None,
    preprocess: str | None = None,
) -> OmniConfig:
    """Our :class:`OmniConfig` for a released ``config.json``.

    Tower shapes come from the tower folders' own ``config.json`` when present (the explicit paths first, then
    the config's ``mm_*_tower`` paths), else from the released shapes matching ``mm_hidden_size``.
    ``video_compressor`` / ``preprocess`` override what the checkpoint implies (None: the checkpoint's own).
    """
    projector = config.get("mm_projector_type")
    presets = {"all_in_one_small": "humanomni-0.5b", "all_in_one": "humanomni-7b"}
    if projector not in presets:
        raise CheckpointError(
            f"{source}/config.json: mm_projector_type={projector!r} is not supported; expected one of {sorted(presets)}"
        )
    base = get_preset(presets[projector])
    vision_raw = _folder_config(vision_tower_path) or _folder_config(config.get("mm_vision_tower"))
    audio_raw = _folder_config(audio_tower_path) or _folder_config(config.get("mm_audio_tower"))
    bert_raw = _folder_config(bert_path)
    mm_hidden = config.get("mm_hidden_size", base.vision["hidden_size"])
    if vision_raw is not None:
        base.vision = _tower_fields(vision_raw, "vision", _VISION_FIELDS)
    elif mm_hidden != base.vision["hidden_size"]:
        known = {768: "humanomni-0.5b", 1152: "humanomni-7b"}
        if mm_hidden not in known:
            raise CheckpointError(
                f"{source}/config.json: mm_hidden_size={mm_hidden} matches no known SigLIP tower; pass "
                "vision_tower_path=/path/to/siglip (its config.json gives the shapes)"
            )
        base.vision = get_preset(known[mm_hidden]).vision
    if base.vision.get("hidden_size") != mm_hidden:
        raise CheckpointError(
            f"{source}/config.json: mm_hidden_size={mm_hidden} but the vision tower config says hidden_size="
            f"{base.vision.get('hidden_size')}"
        )
    if audio_raw is not None:
        base.audio = {**base.audio, **_tower_fields(audio_raw, "audio", _AUDIO_FIELDS)}
        base.audio_seconds = int(base.audio["max_source_positions"]) * 2 * 160 // base.sample_rate
    if bert_raw is not None:
        base.text_encoder = _tower_fields(bert_raw, "bert", _BERT_FIELDS)
    base.llm = {k: config[k] for k in _QWEN2_FIELDS if k in config}
    base.vision_select_layer = int(config.get("mm_vision_select_layer", -2))
    base.num_frames = int(config.get("num_frames", 8))
    base.wrap_media_tokens = bool(config.get("mm_use_x_start_end", False))
    base.preprocess = preprocess or (
        "upstream_train" if config.get("image_aspect_ratio") == "pad" else "upstream_inference"
    )
    if video_compressor is not None:
        base.video_compressor = video_compressor
    base.preset = f"released:{Path(source).name}"
    base.__post_init__()
    return base


def compressor_in_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether a released folder stores HumanOmni's slow-fast compressor (``model.feature_compressor.*``)."""
    return any(key.startswith("model.feature_compressor.") for key in stored_keys(Path(folder)))


def released_tokenizer(folder: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The LLM tokenizer of a released folder, prepared for migr.

    transformers reads ``config.json`` on the way and warns that it does not know ``HumanOmni_qwen2``: expected
    here (the model is ours, only the tokenizer is transformers'), so that warning is silenced.
    """
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    finally:
        hf_logging.set_verbosity(level)


def humanomni_config(
    folder: str | os.PathLike,
    *,
    vision_tower_path: str | os.PathLike | None = None,
    audio_tower_path: str | os.PathLike | None = None,
    bert_tokenizer_path: str | os.PathLike | None = None,
    video_compressor: str | None = None,
    preprocess: str | None = None,
) -> OmniConfig:
    """The :class:`OmniConfig` :func:`load_humanomni` builds for ``folder`` (no weights read; arguments alike)."""
    folder = Path(folder)
    if video_compressor is None:
        video_compressor = "slow_fast" if compressor_in_checkpoint(folder) else "none"
    return omni_config_from_humanomni(
        read_config(folder),
        str(folder),
        vision_tower_path=vision_tower_path,
        audio_tower_path=audio_tower_path,
        bert_path=Path(bert_tokenizer_path) if bert_tokenizer_path else folder / "bert",
        video_compressor=video_compressor,
        preprocess=preprocess,
    )


def _check_tower_shapes(state: dict[str, Tensor], omni: OmniConfig, folder: Path) -> None:
    """Stored tower weights must have the configured layer count and width (else the wrong layer is read)."""
    for tower, layers_key, width_key, width_tensor, cfg in (
        (
            "vision_tower",
            "num_hidden_layers",
            "hidden_size",
            "vision_tower.embeddings.patch_embedding.weight",
            omni.vision,
        ),
        ("audio_tower", "encoder_layers", "d_model", "audio_tower.conv1.weight", omni.audio),
    ):
        indices = {int(k.split(".")[3]) for k in state if k.startswith(f"{tower}.encoder.layers.")}
        indices |= {int(k.split(".")[2]) for k in state if k.startswith(f"{tower}.layers.")}
        width = state[width_tensor].shape[0] if width_tensor in state else None
        problems = []
        if indices and len(indices) != cfg.get(layers_key):
            problems.append(f"{len(indices)} stored layers vs {layers_key}={cfg.get(layers_key)}")
        if width is not None and width != cfg.get(width_key):
            problems.append(f"stored width {width} vs {width_key}={cfg.get(width_key)}")
        if problems:
            raise CheckpointError(
                f"{folder}: the stored {tower} does not match its configured shapes ({'; '.join(problems)}); "
                f"pass the tower folder (its config.json gives the shapes)"
            )


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
    video_compressor: str | None = None,
    preprocess: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load a released HumanOmni-layout checkpoint into an :class:`OmniModel` (strict, every key checked).

    Args:
        vision_tower_path / audio_tower_path: SigLIP / Whisper folders, read when the checkpoint does not store
            that tower (safetensors with ``vision_model.*`` / ``model.encoder.*`` or bare keys); their
            ``config.json`` gives the tower shapes either way.
        bert_tokenizer_path: the bert-base-uncased folder (the checkpoint's ``bert/`` subfolder by default);
            HumanOmni hard-codes a hub download here. Its ``config.json``, when present, gives BERT's shapes.
        video_compressor: "none" | "slow_fast" | None (None: on exactly when the checkpoint stores
            ``model.feature_compressor.*``). Forced on without stored keys, its two never-run Linear layers are
            zero-filled (HumanOmni initialises them randomly then, with the same outputs).
        preprocess: a :mod:`src.data.preprocess` setting; None = the checkpoint's own.
    """
    folder = Path(folder)
    config = read_config(folder)
    bert_dir = Path(bert_tokenizer_path) if bert_tokenizer_path else folder / "bert"
    has_compressor = compressor_in_checkpoint(folder)
    omni = humanomni_config(
        folder,
        vision_tower_path=vision_tower_path,
        audio_tower_path=audio_tower_path,
        bert_tokenizer_path=bert_tokenizer_path,
        video_compressor=video_compressor,
        preprocess=preprocess,
    )
    tokenizer = released_tokenizer(folder)
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
    _check_tower_shapes({map_humanomni_key(k) or k: v for k, v in stored.items()}, omni, folder)

    state: dict[str, Tensor] = {}
    unused: dict[str, list[str]] = {reason: [] for reason in UNUSED_REASONS}
    unknown: list[str] = []
    for key, tensor in stored.items():
        target = map_humanomni_key(key)
        if target in expected:
            state[target] = tensor
        elif key.endswith(_UNUSED_SUFFIXES):
            unused["buffer"].append(key)
        elif key.startswith("model.audio_tower.audio_tower.") and key.split("audio_tower.audio_tower.")[
            1
        ].startswith(_UNUSED_AUDIO):
            unused["audio_head"].append(key)
        elif target is not None and target.startswith("vision_tower."):
            unused["vision_tail"].append(key)  # SigLIP blocks/heads after the selected layer: stored, never run
        elif target is not None and target.startswith("feature_compressor.") and omni.video_compressor == "none":
            unused.setdefault("compressor_off", []).append(key)
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{folder}: {len(unknown)} keys match no part of the model: {sorted(unknown)[:20]}")
    if omni.video_compressor == "slow_fast" and not has_compressor:
        for name in (k for k in expected if k.startswith("feature_compressor.")):
            shape = model.get_parameter(name).shape
            state[name] = torch.zeros(shape)
        log.info(
            "video_compressor=slow_fast: the checkpoint stores no feature_compressor keys; its two never-run "
            "Linear layers are zero-filled (the outputs do not depend on them)"
        )

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
        _check_tower_shapes(picked, omni, tower_dir)
        state.update({k: v for k, v in picked.items() if k in wanted})
        unused["tower_folder"].extend(k for k in picked if k not in wanted)
        sources[tower] = str(tower_dir)
    for tower, source in sources.items():
        log.info("%s weights loaded from %s", tower, source)
    reasons = {**UNUSED_REASONS, "compressor_off": "slow-fast compressor switched off by video_compressor=none"}
    for reason, keys in unused.items():
        if keys:
            log.info("expected, not used: %d tensors, %s: %s", len(keys), reasons[reason], _short_list(keys))
    log.info(
        "video tokens per clip: %d (video_compressor=%s%s); preprocess=%s; media tokens wrapped: %s",
        omni.num_video_tokens,
        omni.video_compressor,
        "" if video_compressor is None else " as asked",
        omni.preprocess,
        omni.wrap_media_tokens,
    )
    load_state_strict(model, state, str(folder))
    model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
    model.eval()
    loaded = LoadedModel(model=model, tokenizer=tokenizer, gate_tokenizer=gate_tokenizer, folder=folder)
    loaded.model.load_report = {  # type: ignore[attr-defined]
        "tower_sources": sources,
        "unused_keys": sorted(k for keys in unused.values() for k in keys),
        "unused_by_reason": {reason: sorted(keys) for reason, keys in unused.items() if keys},
    }
    return loaded


def _short_list(keys: list[str], limit: int = 4) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
