"""The evaluation's settings that its config checks, in a module that imports no torch: ``python -m
src.evaluate`` refuses a bad setting (:class:`src.evaluation.config.EvalConfig`) before the evaluation stack loads.
"""

from __future__ import annotations

from dataclasses import dataclass

# How the judged explanation is cut (src.evaluation.judging): the whole explanation, or sentence by sentence
EXPLANATION_MODES: tuple[str, ...] = ("explanation", "sentences")
# How the attention curves are grouped (src.evaluation.figures): by the true dominant modality, or by MI's
ATTENTION_GROUPS: tuple[str, ...] = ("dominant", "mi")


@dataclass(frozen=True)
class Decoding:
    """What the decode loop is asked: the ``evaluate.yaml`` keys of the same names, shared by
    :class:`~src.evaluation.predict.GenerationSettings` and :class:`~src.evaluation.config.EvalConfig`."""

    task: str = "reasoning"
    """The prompt: ``reasoning`` (MIGR's tags), ``label`` or ``r1omni`` (released R1-Omni / ERV checkpoints)."""
    max_new_tokens: int = 384
    """Generation length; longer completions are cut and counted as truncated."""
    temperature: float = 0.0
    """0: greedy; > 0 samples (0.3: the paper's evaluation protocol)."""
    top_p: float = 1.0
    """Nucleus sampling mass (1: off)."""
    top_k: int = 0
    """Top-k sampling (0: off)."""
    seed: int = 0
    """Sampling seed (with ``temperature > 0``; see the module docstring)."""
    batch_size: int = 8
    """Clips generated (and probed) per batch."""
