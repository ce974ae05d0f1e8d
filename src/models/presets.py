"""Model shapes: the :class:`OmniConfig` of the HumanOmni architecture and its named presets.

``tiny`` trains on a laptop CPU in minutes; ``humanomni-0.5b`` and ``humanomni-7b`` are the released shapes
(SigLIP base-16-224 / so400m-14-384, Whisper-large-v3 encoder, BERT-base, Qwen2.5-0.5B / 7B). The big presets
are only ever instantiated on the ``meta`` device here (tests check parameter counts); real weights come from
a checkpoint folder (:mod:`src.models.checkpoint`, :mod:`src.models.humanomni`).

Token counts per sample follow from the shapes. ``video_compressor="slow_fast"`` (HumanOmni's current code:
:class:`~src.models.projectors.SlowFastCompressor`) keeps every frame's grid 2x2-pooled (floored) plus the full
grids of frames 1 and 5, so 8 frames give ``8 * (S // 2)**2 + 2 * S**2`` tokens:

=================  ======  =====  ==========  ========  =================  ===============  =============
preset             image   patch  patches/fr  tok/frame  8 frames ("none")  8 frames (s-f)   audio tokens
=================  ======  =====  ==========  ========  =================  ===============  =============
tiny               64      16     4 x 4       2 x 2     32                 8 + 8 = 16       50  (3 s)
humanomni-0.5b     224     16     14 x 14     7 x 7     392                72 + 98 = 170    500 (30 s)
humanomni-7b       384     14     27 x 27     14 x 14   1568               392 + 392 = 784  500 (30 s)
=================  ======  =====  ==========  ========  =================  ===============  =============

Besides shapes, a config says how the model reads its inputs: ``preprocess`` (frame sampling, squaring,
resizing: :mod:`src.data.preprocess`) and ``wrap_media_tokens`` (HumanOmni's ``mm_use_x_start_end``: the
prompt shows ``<vi_start><video><vi_end>`` / ``<au_start><audio><au_end>``). Exports store both, so a model is
always fed as it was trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from transformers import BertConfig, Qwen2Config, SiglipVisionConfig, WhisperConfig

from src.data.preprocess import get_preprocess

PROJECTOR_DEPTH = {"all_in_one_small": 2, "all_in_one": 4}
# Conv3d sampler padding (t, h, w) of each projector type, as HumanOmni builds them.
SAMPLER_PADDING = {"all_in_one_small": (1, 0, 0), "all_in_one": (1, 1, 1)}
VIDEO_COMPRESSORS = ("none", "slow_fast")


def slow_frames(num_frames: int) -> list[int]:
    """Frames the slow-fast compressor keeps at full resolution: 1, 5, 9, ... (frame 0 alone for one frame)."""
    return list(range(1, num_frames, 4)) or [0]


@dataclass
class OmniConfig:
    """Everything needed to build an :class:`~src.models.omni.OmniModel` (architecture only, no training state).

    The four sub-configs are plain dicts of HF config kwargs so the whole thing round-trips through JSON.
    """

    llm: dict[str, Any]
    vision: dict[str, Any]
    audio: dict[str, Any]
    text_encoder: dict[str, Any]
    preset: str = "custom"
    projector_type: str = "all_in_one_small"
    gate_hidden_size: int = 3584  # hard-coded in HumanOmni even for the 0.5B model
    vision_select_layer: int = -2
    num_frames: int = 8
    audio_seconds: int = 30
    audio_pool: int = 3
    n_mels: int = 128
    sample_rate: int = 16000
    video_compressor: str = "none"  # "slow_fast": HumanOmni's slow-fast compressor after the gated mix
    preprocess: str = "migr"  # src.data.preprocess setting the model is fed with
    wrap_media_tokens: bool = False  # HumanOmni's mm_use_x_start_end
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.projector_type not in PROJECTOR_DEPTH:
            raise ValueError(
                f"model.projector_type={self.projector_type!r} is not supported; expected one of "
                f"{sorted(PROJECTOR_DEPTH)}"
            )
        expected_positions = self.audio_seconds * self.sample_rate // 160 // 2
        if self.audio.get("max_source_positions") != expected_positions:
            raise ValueError(
                f"model.audio.max_source_positions={self.audio.get('max_source_positions')} does not match "
                f"model.audio_seconds={self.audio_seconds}: Whisper needs {expected_positions} positions "
                f"({self.audio_seconds} s of 10 ms mel frames, halved by its stride-2 conv)"
            )
        if self.video_compressor not in VIDEO_COMPRESSORS:
            raise ValueError(
                f"model.video_compressor={self.video_compressor!r} is not supported; expected one of "
                f"{list(VIDEO_COMPRESSORS)}"
            )
        get_preprocess(self.preprocess)  # fails naming the known settings
        if self.num_frames < 2:
            raise ValueError(f"model.num_frames={self.num_frames} must be >= 2 (the temporal sampler needs 2)")

    # ---- derived shapes -------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.llm["hidden_size"])

    @property
    def image_size(self) -> int:
        return int(self.vision["image_size"])

    @property
    def patches_per_side(self) -> int:
        return self.image_size // int(self.vision["patch_size"])

    @property
    def tokens_per_side(self) -> int:
        """Spatial side of the projected grid: the sampler's stride-2 conv (and the face branch's pooling)."""
        pad = SAMPLER_PADDING[self.projector_type][1]
        side = (self.patches_per_side + 2 * pad - 2) // 2 + 1
        face_side = math.ceil(self.patches_per_side / 2)
        if side != face_side:
            raise ValueError(
                f"{self.patches_per_side} patches per side give {side} video-branch tokens but {face_side} "
                f"face-branch tokens per side with projector {self.projector_type!r}; pick an image/patch size "
                "where they agree"
            )
        return side

    @property
    def num_video_tokens(self) -> int:
        """LLM positions one clip's ``<video>`` expands to (after the slow-fast compressor when enabled)."""
        side = self.tokens_per_side
        if self.video_compressor == "slow_fast":
            return self.num_frames * (side // 2) ** 2 + len(slow_frames(self.num_frames)) * side**2
        return self.num_frames * side**2

    @property
    def num_mel_frames(self) -> int:
        return self.audio_seconds * self.sample_rate // 160

    @property
    def num_audio_tokens(self) -> int:
        """LLM positions one clip's ``<audio>`` expands to."""
        return int(self.audio["max_source_positions"]) // self.audio_pool

    # ---- HF configs -----------------------------------------------------------------------------------
    def llm_config(self) -> Qwen2Config:
        return Qwen2Config(**self.llm)

    def vision_config(self) -> SiglipVisionConfig:
        return SiglipVisionConfig(**self.vision)

    def audio_config(self) -> WhisperConfig:
        return WhisperConfig(**self.audio)

    def text_encoder_config(self) -> BertConfig:
        return BertConfig(**self.text_encoder)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OmniConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown OmniConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


def _whisper(d_model: int, layers: int, heads: int, ffn: int, positions: int) -> dict[str, Any]:
    # Decoder fields are irrelevant (only the encoder is built) but WhisperConfig validates token ids.
    return {
        "num_mel_bins": 128,
        "d_model": d_model,
        "encoder_layers": layers,
        "encoder_attention_heads": heads,
        "encoder_ffn_dim": ffn,
        "decoder_layers": 1,
        "decoder_attention_heads": heads,
        "decoder_ffn_dim": ffn,
        "max_source_positions": positions,
        "vocab_size": 51866,
        "pad_token_id": 50256,
        "bos_token_id": 50257,
        "eos_token_id": 50257,
        "decoder_start_token_id": 50258,
    }


def _tiny() -> OmniConfig:
    return OmniConfig(
        preset="tiny",
        llm={
            "vocab_size": 2048,  # replaced by the built tokenizer's size (src.models.tokenizer)
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": True,
            "rope_theta": 10000.0,
        },
        vision={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 16,
        },
        audio={
            **_whisper(d_model=64, layers=2, heads=4, ffn=128, positions=150),
            "vocab_size": 64,
            "pad_token_id": 60,
            "bos_token_id": 61,
            "eos_token_id": 61,
            "decoder_start_token_id": 62,
        },
        text_encoder={
            "vocab_size": 2048,  # replaced by the gate tokenizer's size
            "hidden_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 256,
        },
        projector_type="all_in_one_small",
        gate_hidden_size=64,
        audio_seconds=3,
    )


def _humanomni_05b() -> OmniConfig:
    return OmniConfig(
        preset="humanomni-0.5b",
        llm={  # Qwen2.5-0.5B
            "vocab_size": 151936,
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True,
        },
        vision={  # siglip-base-patch16-224
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 16,
        },
        audio=_whisper(d_model=1280, layers=32, heads=20, ffn=5120, positions=1500),  # whisper-large-v3
        text_encoder={"vocab_size": 30522},  # bert-base-uncased defaults
        projector_type="all_in_one_small",
        preprocess="upstream_train",
        wrap_media_tokens=True,
    )


def _humanomni_7b() -> OmniConfig:
    return OmniConfig(
        preset="humanomni-7b",
        llm={  # Qwen2.5-7B
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 32768,
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
        },
        vision={  # siglip-so400m-patch14-384
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "image_size": 384,
            "patch_size": 14,
        },
        audio=_whisper(d_model=1280, layers=32, heads=20, ffn=5120, positions=1500),
        text_encoder={"vocab_size": 30522},
        projector_type="all_in_one",
        preprocess="upstream_train",
        wrap_media_tokens=True,
    )


PRESETS = {"tiny": _tiny, "humanomni-0.5b": _humanomni_05b, "humanomni-7b": _humanomni_7b}


def get_preset(name: str, **overrides: Any) -> OmniConfig:
    """A fresh :class:`OmniConfig` of preset ``name`` with top-level fields or sub-config keys overridden.

    Example:
        >>> get_preset("tiny", llm={"num_hidden_layers": 3}).llm["num_hidden_layers"]
        3
    """
    try:
        config = PRESETS[name.replace("_", "-")]()
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; available: {', '.join(PRESETS)}") from None
    for key, value in overrides.items():
        current = getattr(config, key, None)
        if isinstance(current, dict) and isinstance(value, dict):
            current.update(value)
        elif hasattr(config, key):
            setattr(config, key, value)
        else:
            raise ValueError(f"unknown model override {key!r} for preset {name!r}")
    config.__post_init__()
    return config
