"""The corpus plan: which emotion each clip shows, in which modality, how strongly, and in which split.

Planning is separate from rendering so the whole design of a corpus is decided up front from ``(n, seed)``:
labels are balanced over the 7 emotions; the dominant modality follows ``dominant_mix`` within each label; the
non-dominant modality of an audio- or visual-dominant clip is ``neutral`` (shows nothing), ``misleading``
(weakly shows another emotion) or ``weak`` (weakly shows the same emotion) by ``cue_mix``; the splits are
stratified by (label, dominant). Each clip also gets its own seed, so rendering does not depend on the order
of clips or the number of worker processes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from src.data.splits import stratified_split
from src.data.synth.spec import EMOTIONS

GENERATOR_VERSION = 1  # bump when rendering changes, so ensure_corpus regenerates old corpora


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic corpus (recorded in its ``corpus.json``)."""

    n: int = 200
    seed: int = 0
    size: int = 112  # frame side in pixels
    fps: int = 8
    seconds: float = 3.0
    sample_rate: int = 16000
    dominant_mix: dict[str, float] = field(default_factory=lambda: {"audio": 0.4, "visual": 0.4, "both": 0.2})
    cue_mix: dict[str, float] = field(default_factory=lambda: {"neutral": 0.4, "misleading": 0.4, "weak": 0.2})
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    strong: tuple[float, float] = (0.8, 1.0)  # intensity range of an emotion's full display
    faint: tuple[float, float] = (0.25, 0.4)  # intensity range of a weak or misleading display
    variation: float = 0.3  # spread of skin tone and background colours (identity nuisance), 0..1; 0.3 keeps
    # the expression the strongest visual signal, so a tiny vision tower trained from scratch can learn it
    phrasings: int | None = None  # template variants per cue drawn from (None: all); 1 = one wording per cue

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be at least 1; got {self.n}")
        if self.phrasings is not None and self.phrasings < 1:
            raise ValueError(f"phrasings must be >= 1 or None; got {self.phrasings}")
        if not 0.0 <= self.variation <= 1.0:
            raise ValueError(f"variation must be within [0, 1]; got {self.variation}")
        if self.size % 2:
            raise ValueError(f"size must be even (h264 yuv420p); got {self.size}")
        for name, mix, keys in (
            ("dominant_mix", self.dominant_mix, {"audio", "visual", "both"}),
            ("cue_mix", self.cue_mix, {"neutral", "misleading", "weak"}),
            ("splits", self.splits, {"train", "val", "test"}),
        ):
            if set(mix) - keys:
                raise ValueError(f"{name} keys must be among {sorted(keys)}; got {sorted(mix)}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready parameters, including the generator version."""
        return {
            **asdict(self),
            "strong": list(self.strong),
            "faint": list(self.faint),
            "version": GENERATOR_VERSION,
        }


@dataclass(frozen=True)
class ClipPlan:
    """One clip's design. ``visual``/``audio`` are (emotion shown, intensity 0..1, "strong"|"faint"|"neutral")."""

    index: int
    id: str
    label: str
    dominant: str
    cue: str  # non-dominant cue: "neutral" | "misleading" | "weak" | "none" (dominant "both")
    visual: tuple[str, float, str]
    audio: tuple[str, float, str]
    split: str
    seed: int

    @property
    def misleading_emotion(self) -> str | None:
        """The emotion the non-dominant modality wrongly suggests, if any."""
        return (self.audio if self.dominant == "visual" else self.visual)[0] if self.cue == "misleading" else None


def plan_corpus(config: SynthConfig) -> list[ClipPlan]:
    """The design of every clip of ``config`` (deterministic)."""
    rng = np.random.default_rng(config.seed)
    labels = [EMOTIONS[index % len(EMOTIONS)] for index in range(config.n)]
    labels = [labels[index] for index in rng.permutation(config.n)]
    dominants = stratified_split(labels, config.dominant_mix, seed=config.seed + 1)
    cues = stratified_split(list(zip(labels, dominants)), config.cue_mix, seed=config.seed + 2)
    splits = stratified_split(list(zip(labels, dominants)), config.splits, seed=config.seed + 3)
    clip_seeds = np.random.SeedSequence(config.seed).generate_state(config.n)
    plans = []
    for index, (label, dominant, cue, split) in enumerate(zip(labels, dominants, cues, splits)):
        strong = (label, float(rng.uniform(*config.strong)), "neutral" if label == "neutral" else "strong")
        if dominant == "both":
            cue, other = "none", (label, float(rng.uniform(*config.strong)), strong[2])
        else:
            if label == "neutral":
                cue = "misleading"  # a neutral clip is only "dominant" in one modality if the other says more
            if cue == "neutral":
                other = ("neutral", 0.0, "neutral")
            elif cue == "weak":
                other = (label, float(rng.uniform(*config.faint)), "faint")
            else:
                choices = [emotion for emotion in EMOTIONS if emotion not in (label, "neutral")]
                other = (choices[int(rng.integers(len(choices)))], float(rng.uniform(*config.faint)), "faint")
        visual, audio = (strong, other) if dominant in ("visual", "both") else (other, strong)
        plans.append(
            ClipPlan(
                index=index,
                id=f"synth_{index:05d}",
                label=label,
                dominant=dominant,
                cue=cue,
                visual=visual,
                audio=audio,
                split=split,
                seed=int(clip_seeds[index]),
            )
        )
    return plans
