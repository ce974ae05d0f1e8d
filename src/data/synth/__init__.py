"""A synthetic audio-visual emotion corpus with known modality importance (the embedded default data set).

Each clip is a real mp4 (h264 + aac) of a drawn face whose action units follow an emotion prototype and a
procedurally voiced track whose prosody follows an emotion, with a ground-truth dominant modality. In the
default ``faint`` regime the non-dominant one shows nothing, a weak version of the emotion, or weakly another
emotion; in the ``conflict`` regime it shows nothing or, briefly and at full intensity, another emotion
(:mod:`src.data.synth.plan`). Every clip comes with EMER-style reasoning parts and an OpenFace-format AU csv.
See :mod:`src.data.synth.corpus` for the layout.

    python -m src.data.synth --out data/synth --n 200 --seed 0 [--regime conflict]

Example:
    >>> from src.data.synth import ensure_corpus  # doctest: +SKIP
    >>> manifest = ensure_corpus("data/synth", n=200, seed=0)  # generated once, then reused  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from src.data.synth.corpus import MANIFEST_NAME, ensure_corpus, generate_corpus, is_current, render_clip
    from src.data.synth.plan import ClipPlan, SynthConfig, plan_corpus

DEFAULT_CORPUS_DIR = "data/synth"

# Imported on first use (PEP 562): the tiny tokenizer reads src.data.synth.text's vocabulary in every training
# and evaluation process, and importing the generator (PyAV, the face and voice renderers) there cost ~0.1 s.
_LAZY = {
    "MANIFEST_NAME": "src.data.synth.corpus",
    "ensure_corpus": "src.data.synth.corpus",
    "generate_corpus": "src.data.synth.corpus",
    "is_current": "src.data.synth.corpus",
    "render_clip": "src.data.synth.corpus",
    "ClipPlan": "src.data.synth.plan",
    "SynthConfig": "src.data.synth.plan",
    "plan_corpus": "src.data.synth.plan",
}

__all__ = [
    "DEFAULT_CORPUS_DIR",
    "MANIFEST_NAME",
    "ClipPlan",
    "SynthConfig",
    "ensure_corpus",
    "generate_corpus",
    "is_current",
    "plan_corpus",
    "render_clip",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
