"""The corpus plan: which emotion each clip shows, in which modality, how strongly, and in which split.

Planning is separate from rendering so the whole design of a corpus is decided up front from ``(n, seed)``:
labels are balanced over the 7 emotions; the dominant modality follows ``dominant_mix`` within each label.
What the non-dominant modality of an audio- or visual-dominant clip shows depends on the *regime*
(:data:`REGIMES`):

``faint`` (the default; every corpus made before regimes existed)
    ``neutral`` (shows nothing), ``misleading`` (weakly shows another emotion) or ``weak`` (weakly shows the
    same emotion) by ``cue_mix``; the splits are stratified by (label, dominant). Which modality carries the
    label is a matter of intensity, and the descriptions word a weak display as weak ("a hint of").
``conflict``
    ``neutral`` (shows nothing) or ``conflict`` (shows *another* emotion at full intensity, e.g. a smile over an
    angry voice) by ``cue_mix``. Which modality carries the label is decided by how long it shows it: the
    dominant display is sustained over the whole clip, a non-dominant display is brief (``brief`` seconds, at a
    random moment; :attr:`ClipPlan.span`). The descriptions carry no mark of strength or duration, so the text
    leaves the label open between the two emotions it names. The splits are stratified by (label, dominant,
    cue), so the test split holds its share of conflict clips exactly.

Each clip also gets its own seed, so rendering does not depend on the order of clips or the number of worker
processes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from src.data.splits import stratified_split
from src.data.synth.spec import EMOTIONS

GENERATOR_VERSION = 1  # bump when rendering changes, so ensure_corpus regenerates old corpora
REGIMES: tuple[str, ...] = ("faint", "conflict")
CUES: dict[str, frozenset[str]] = {  # the non-dominant cues of each regime (cue_mix keys)
    "faint": frozenset({"neutral", "misleading", "weak"}),
    "conflict": frozenset({"neutral", "conflict"}),
}
# Per-regime defaults of the mixes left None. The conflict regime puts 80% of the single-modality clips (all of
# the neutral-label ones) in conflict and a quarter of the corpus in test, so a 700-clip corpus has 116 conflict
# test clips (a 15% test split would leave ~70) while training keeps 455 clips: the same cost per epoch as
# 490 and a test split of 175 to generate for.
REGIME_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "faint": {
        "cue_mix": {"neutral": 0.4, "misleading": 0.4, "weak": 0.2},
        "splits": {"train": 0.7, "val": 0.15, "test": 0.15},
    },
    "conflict": {
        "cue_mix": {"neutral": 0.2, "conflict": 0.8},
        "splits": {"train": 0.65, "val": 0.1, "test": 0.25},
    },
}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic corpus (recorded in its ``corpus.json``).

    ``regime`` picks what the non-dominant modality shows (see the module docstring): ``"faint"`` (default,
    byte-for-byte the corpus of every release before regimes) or ``"conflict"`` (a full-intensity display of
    another emotion, told apart from the dominant one by being brief; ``configs/data/synth_conflict.yaml``).
    ``cue_mix`` and ``splits`` left None take the regime's defaults (:data:`REGIME_DEFAULTS`): for
    ``conflict`` 80% conflict cues and a 65/10/25 split, so 700 clips give at least 100 conflict test clips.
    """

    n: int = 200
    seed: int = 0
    size: int = 112  # frame side in pixels
    fps: int = 8
    seconds: float = 3.0
    sample_rate: int = 16000
    dominant_mix: dict[str, float] = field(default_factory=lambda: {"audio": 0.4, "visual": 0.4, "both": 0.2})
    cue_mix: dict[str, float] | None = None  # None: the regime's default (REGIME_DEFAULTS)
    splits: dict[str, float] | None = None  # None: the regime's default (REGIME_DEFAULTS)
    strong: tuple[float, float] = (0.8, 1.0)  # intensity range of an emotion's full display
    faint: tuple[float, float] = (0.25, 0.4)  # intensity range of a weak or misleading display
    variation: float = 0.3  # spread of skin tone and background colours (identity nuisance), 0..1; 0.3 keeps
    # the expression the strongest visual signal, so a tiny vision tower trained from scratch can learn it
    phrasings: int | None = None  # template variants per cue drawn from (None: all); 1 = one wording per cue
    regime: str = "faint"  # "faint" | "conflict" (REGIMES)
    brief: tuple[float, float] = (0.6, 0.9)  # conflict regime: seconds a non-dominant display lasts

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {', '.join(REGIMES)}; got {self.regime!r}")
        for name in ("cue_mix", "splits"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, dict(REGIME_DEFAULTS[self.regime][name]))
        if self.regime == "conflict" and not 0.0 < self.brief[0] <= self.brief[1] < self.seconds / 2:
            raise ValueError(
                f"brief must be (low, high) seconds with 0 < low <= high < seconds / 2 = {self.seconds / 2}; "
                f"got {tuple(self.brief)}"
            )
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
            ("cue_mix", self.cue_mix, CUES[self.regime]),
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
            "brief": list(self.brief),
            "version": GENERATOR_VERSION,
        }


@dataclass(frozen=True)
class ClipPlan:
    """One clip's design. ``visual``/``audio`` are (emotion shown, intensity 0..1, "strong"|"faint"|"neutral").

    ``span`` (conflict regime): the (start, end) seconds of the non-dominant modality's brief display; None
    when every display lasts the whole clip.
    """

    index: int
    id: str
    label: str
    dominant: str
    cue: str  # non-dominant cue: "neutral" | "misleading" | "weak" | "conflict" | "none" (dominant "both")
    visual: tuple[str, float, str]
    audio: tuple[str, float, str]
    split: str
    seed: int
    span: tuple[float, float] | None = None

    @property
    def misleading_emotion(self) -> str | None:
        """The emotion the non-dominant modality wrongly suggests, if any (a misleading or conflicting cue)."""
        if self.cue not in ("misleading", "conflict"):
            return None
        return (self.audio if self.dominant == "visual" else self.visual)[0]


def plan_corpus(config: SynthConfig) -> list[ClipPlan]:
    """The design of every clip of ``config`` (deterministic)."""
    if config.regime == "conflict":
        return _plan_conflict(config)
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
        plans.append(_clip(index, label, dominant, cue, strong, other, split, int(clip_seeds[index])))
    return plans


def _clip(
    index: int,
    label: str,
    dominant: str,
    cue: str,
    strong: tuple[str, float, str],
    other: tuple[str, float, str],
    split: str,
    seed: int,
    span: tuple[float, float] | None = None,
) -> ClipPlan:
    """The plan of one clip whose ``dominant`` modality shows ``strong`` and the other one ``other``."""
    visual, audio = (strong, other) if dominant in ("visual", "both") else (other, strong)
    return ClipPlan(index, f"synth_{index:05d}", label, dominant, cue, visual, audio, split, seed, span)


def _plan_conflict(config: SynthConfig) -> list[ClipPlan]:
    """The conflict regime's plan (see the module docstring): full-intensity cues, the non-dominant one brief."""
    assert config.cue_mix is not None and config.splits is not None  # filled in by SynthConfig
    rng = np.random.default_rng([config.seed, 1])  # its own streams: the faint regime's plans stay as they were
    labels = [EMOTIONS[index % len(EMOTIONS)] for index in range(config.n)]
    labels = [labels[index] for index in rng.permutation(config.n)]
    dominants = stratified_split(labels, config.dominant_mix, seed=config.seed + 1)
    cues = stratified_split(list(zip(labels, dominants)), config.cue_mix, seed=config.seed + 2)
    cues = [
        "none" if dominant == "both" else "conflict" if label == "neutral" else cue
        for label, dominant, cue in zip(labels, dominants, cues)
    ]  # a neutral clip is only "dominant" in one modality if the other shows something
    splits = stratified_split(list(zip(labels, dominants, cues)), config.splits, seed=config.seed + 3)
    clip_seeds = np.random.SeedSequence([config.seed, 1]).generate_state(config.n)
    plans = []
    for index, (label, dominant, cue, split) in enumerate(zip(labels, dominants, cues, splits)):
        shown = "neutral" if label == "neutral" else "strong"
        strong = (label, float(rng.uniform(*config.strong)), shown)
        span = None
        if dominant == "both":
            other = (label, float(rng.uniform(*config.strong)), shown)
        elif cue == "neutral":
            other = ("neutral", 0.0, "neutral")
        else:
            choices = [emotion for emotion in EMOTIONS if emotion not in (label, "neutral")]
            other = (choices[int(rng.integers(len(choices)))], float(rng.uniform(*config.strong)), "strong")
            length = float(rng.uniform(*config.brief))
            start = float(rng.uniform(0.2, config.seconds - 0.2 - length))
            span = (round(start, 3), round(start + length, 3))
        plans.append(_clip(index, label, dominant, cue, strong, other, split, int(clip_seeds[index]), span))
    return plans
