"""How clips become frames: which frames, how they are made square, how they are resized (one named setting).

A released checkpoint is best run as its own code ran it, and small differences here change its answers, so
every choice is explicit and named:

=====================  =================================  ==================  ==================================
setting                frame indices of an n-frame clip    square              resize to the tower's image size
=====================  =================================  ==================  ==================================
``migr``               floor(n / k * (i + 0.5))            pad (mean colour)   torch bicubic, antialiased
``upstream_train``     round((n - 1) / k * (i + 0.5))      pad (mean colour)   PIL bicubic (SigLIP's processor)
``upstream_inference`` round((n - 1) / k * (i + 0.5))      squash (no pad)     PIL bicubic (SigLIP's processor)
=====================  =================================  ==================  ==================================

``upstream_train`` is what HumanOmni's training and R1-Omni's GRPO trainer do (``image_aspect_ratio: pad`` in
the released configs), ``upstream_inference`` what their inference entry point does (it passes no aspect
ratio, so frames are squashed). ``migr`` is this project's own pipeline (the tiny preset and every export
trained before the setting existed). The default is the model's own (:attr:`src.models.presets.OmniConfig
.preprocess`; a released folder's from its ``image_aspect_ratio``).

:attr:`Preprocess.key` is a short stable string of the fields that change the pixels: caches of decoded
frames or tower outputs include it, so switching settings never returns stale entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

FrameSampling = Literal["midpoint", "upstream"]
Aspect = Literal["pad", "squash"]
Resize = Literal["torch_antialias", "pil_bicubic"]


@dataclass(frozen=True)
class Preprocess:
    """Frame sampling, squaring and resizing of one named setting (hashable; ``key`` for caches)."""

    name: str
    frame_sampling: FrameSampling
    aspect: Aspect
    resize: Resize

    @property
    def key(self) -> str:
        """Stable identity of the pixels this setting produces (the name is not part of it)."""
        return f"frames={self.frame_sampling},aspect={self.aspect},resize={self.resize}"


PREPROCESS: dict[str, Preprocess] = {
    p.name: p
    for p in (
        Preprocess("migr", "midpoint", "pad", "torch_antialias"),
        Preprocess("upstream_train", "upstream", "pad", "pil_bicubic"),
        Preprocess("upstream_inference", "upstream", "squash", "pil_bicubic"),
    )
}


def get_preprocess(setting: str | Preprocess) -> Preprocess:
    """The :class:`Preprocess` named ``setting`` (a :class:`Preprocess` passes through)."""
    if isinstance(setting, Preprocess):
        return setting
    try:
        return PREPROCESS[setting]
    except KeyError:
        raise ValueError(
            f"preprocess={setting!r} is not a known setting; known: {', '.join(PREPROCESS)}"
        ) from None


def segment_midpoints(total: int, num_frames: int) -> np.ndarray:
    """``migr`` sampling: midpoints of ``num_frames`` equal segments of ``total`` frames, floored."""
    positions = (np.arange(num_frames) + 0.5) * total / num_frames
    return np.minimum(positions.astype(np.int64), total - 1)


def upstream_frame_indices(total: int, num_frames: int) -> np.ndarray:
    """HumanOmni's uniform sampling: segments of ``(total - 1) / num_frames``, their midpoints rounded.

    Short clips repeat frames (HumanOmni's black-frame padding never triggers for video files).
    """
    segment = (total - 1) / num_frames
    starts = segment * np.arange(num_frames)
    return np.round((starts + (starts + segment)) / 2 + 1e-6).astype(np.int64)


def frame_indices(total: int, num_frames: int, sampling: FrameSampling) -> np.ndarray:
    """The ``num_frames`` frame indices of a ``total``-frame clip under ``sampling``."""
    if sampling == "midpoint":
        return segment_midpoints(total, num_frames)
    if sampling == "upstream":
        return upstream_frame_indices(total, num_frames)
    raise ValueError(f"frame sampling {sampling!r} is not 'midpoint' or 'upstream'")
