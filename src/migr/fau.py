"""FAU-based emotion-consistent filtering (paper section 3.1.1): keep clips whose face shows exactly the label.

OpenFace 2 (``FeatureExtraction``) writes one csv row per frame: ``AUxx_r`` intensities (0..5) for 17 action
units, ``AUxx_c`` presences (0/1) for those and AU28, and ``success == 0`` for frames without a face. The
filter runs in four steps, each a function of its own (the first two live in :mod:`src.data.openface` and are
re-exported here):

1. :func:`read_openface_csv` -> :class:`AUFrames`: the valid frames (``success == 0`` rows excluded and
   counted); clear errors naming the file and line for missing columns, bad numbers or no valid frame.
2. :func:`aggregate` -> :class:`AUSummary`: one presence and one intensity per AU. ``method="mean"``
   (default): an AU is present when ``AUxx_c == 1`` in at least ``presence_rate`` (0.5) of the valid frames,
   and its intensity is the mean ``AUxx_r`` over them. ``method="peak"``: Emotion-LLaMA's "emotional peak
   frame" (the frame with the largest summed intensity of the frequently present AUs) alone decides.
3. :func:`au_emotions` -> the emotions the face shows, by the Emotion-AU table below: an emotion counts when at
   least ``min_present`` (half) of its AUs are present and the mean intensity of its ``_r`` columns reaches
   ``intensity`` (0.8); AU28 has no ``_r`` column and counts through its presence only.
4. :func:`match_label` -> the verdict for the clip's label. ``rule="exact"`` (default, the paper's "exactly
   match"): the emotions shown, as the dataset names them, are exactly ``{label}`` (none at all for
   ``neutral``). Because the table's prototypes overlap (surprise's AUs are a subset of fear's; a smile also
   half-fills contempt), ``rule="strongest"`` is the documented looser variant: the strongest shown emotion
   (most prototype AUs present, then highest mean intensity) is the label and no other shown emotion ties it.

The Emotion-AU table is Emotion-LLaMA's (Cheng et al., NeurIPS 2024, the table the MIGR paper cites): the MERR
construction pipeline in https://github.com/ZebangCheng/Emotion-LLaMA (``MERR/README.md``,
``docs/dataset/construction.md``) as implemented by its authors in https://github.com/Lum1104/MER-Factory
(``tools/emotion_analyzer.py``, ``EMOTION_TO_AU_MAP``, with the same half-present / mean-intensity >= 0.8
rule). Disgust is not in it: we add the FACS prototype AU09 + AU15 + AU16 (Ekman & Friesen), with AU17 in place
of AU16, which OpenFace does not estimate, and AU09 (nose wrinkler, the defining action) required, so a pout
(AU15 + AU17, common in sadness) does not read as disgust.

Label mapping: table emotions are named through :func:`src.data.labels.normalize_label` (DFEW/synth ``happy``;
MAFW ``happiness``, ``anger``...), except MAFW names ``worried`` ``anxiety``. An emotion the dataset has no label
for (contempt and worried for DFEW; fear, disgust and contempt for EMER) is reported but neither confirms nor
contradicts the label: the annotators could not have chosen it. A label with no table prototype (MAFW
helplessness, disappointment) is rejected as ``no_prototype``.

Example:
    >>> result = fau_filter(samples, rule="exact")  # doctest: +SKIP
    >>> print(result.format_table())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

import numpy as np

from src.data.labels import normalize_label
from src.data.manifest import Reasoning, Sample
from src.data.openface import (
    AU_PHRASES,
    AUFrames,
    AUSummary,
    Method,
    NoFaceError,
    OpenFaceError,
    aggregate,
    read_openface_columns,
    read_openface_csv,
)

__all__ = [
    "AU_PHRASES",
    "EMOTION_AU_TABLE",
    "REASONS",
    "AUFrames",
    "AUSummary",
    "AUVerdict",
    "EmotionEvidence",
    "EmotionPrototype",
    "FilterResult",
    "NoFaceError",
    "OpenFaceError",
    "Rejection",
    "aggregate",
    "au_emotions",
    "fau_filter",
    "fau_reasoning",
    "label_prototype",
    "match_label",
    "read_openface_columns",
    "read_openface_csv",
    "table_label",
]

log = logging.getLogger(__name__)

Rule = Literal["exact", "strongest"]
Credit = Literal["face", "dominant"]  # what the think line of a kept clip credits (see fau_filter)
CREDITS: tuple[str, ...] = ("face", "dominant")
REASONS: tuple[str, ...] = ("no_au_file", "unreadable", "no_face", "no_prototype", "mismatch", "ambiguous")


@dataclass(frozen=True)
class EmotionPrototype:
    """The AUs of one emotion's prototype face; ``required`` AUs must be present for it to count."""

    aus: tuple[str, ...]
    required: tuple[str, ...] = ()


EMOTION_AU_TABLE: Mapping[str, EmotionPrototype] = MappingProxyType(
    {
        # Emotion-LLaMA / MER-Factory EMOTION_TO_AU_MAP (see the module docstring for the source).
        "happy": EmotionPrototype(("AU06", "AU12", "AU14")),
        "sad": EmotionPrototype(("AU01", "AU04", "AU15", "AU14")),
        "surprise": EmotionPrototype(("AU01", "AU02", "AU05", "AU26")),
        "fear": EmotionPrototype(("AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26")),
        "angry": EmotionPrototype(("AU04", "AU05", "AU07", "AU23", "AU10", "AU17")),
        "contempt": EmotionPrototype(("AU12", "AU10", "AU14", "AU17")),
        "worried": EmotionPrototype(("AU28", "AU20")),
        # FACS disgust 9+15+16, AU17 standing in for AU16 (not estimated by OpenFace); the nose wrinkle required.
        "disgust": EmotionPrototype(("AU09", "AU15", "AU17"), required=("AU09",)),
    }
)
# Where a dataset names a table emotion differently from normalize_label.
_LABEL_OVERRIDES: dict[str, dict[str, str]] = {"mafw": {"worried": "anxiety"}}


@dataclass(frozen=True)
class EmotionEvidence:
    """Why an emotion counts as shown: its present prototype AUs and the mean intensity of its rated AUs."""

    emotion: str
    present: tuple[str, ...]
    size: int
    intensity: float

    @property
    def strength(self) -> tuple[int, float]:
        """Ranking key: more prototype AUs present first, then higher mean intensity."""
        return len(self.present), self.intensity


def au_emotions(
    summary: AUSummary,
    table: Mapping[str, EmotionPrototype] = EMOTION_AU_TABLE,
    *,
    min_present: float = 0.5,
    intensity: float = 0.8,
) -> dict[str, EmotionEvidence]:
    """The table emotions ``summary`` shows, strongest first (see :attr:`EmotionEvidence.strength`).

    An emotion is shown when its required AUs are present, at least ``min_present`` of its AUs are present and
    the mean intensity (0..5) of its AUs that have an ``_r`` column reaches ``intensity``. An empty result is a
    neutral face.

    Raises:
        ValueError: a table AU that the csv has no ``_c`` column for.
    """
    shown: list[EmotionEvidence] = []
    for emotion, prototype in table.items():
        unknown = [au for au in prototype.aus if au not in summary.presence]
        if unknown:
            raise ValueError(
                f"emotion {emotion!r} of the AU table needs {', '.join(unknown)}, which the AU csv has no _c column "
                f"for; available: {', '.join(sorted(summary.presence))}"
            )
        present = tuple(au for au in prototype.aus if au in summary.present)
        if not set(prototype.required) <= set(present) or len(present) < min_present * len(prototype.aus):
            continue
        rated = [summary.intensity[au] for au in prototype.aus if au in summary.intensity]
        mean = float(np.mean(rated)) if rated else math.inf  # presence-only prototypes pass on presence
        if mean >= intensity:
            shown.append(EmotionEvidence(emotion, present, len(prototype.aus), mean))
    shown.sort(key=lambda item: (-item.strength[0], -item.strength[1], item.emotion))
    return {item.emotion: item for item in shown}


def table_label(emotion: str, dataset: str) -> str | None:
    """How ``dataset`` names the table emotion ``emotion`` (None: the dataset has no such label)."""
    override = _LABEL_OVERRIDES.get(dataset, {}).get(emotion)
    return override if override is not None else normalize_label(emotion, dataset)


def label_prototype(
    label: str, dataset: str, table: Mapping[str, EmotionPrototype] = EMOTION_AU_TABLE
) -> str | None:
    """The table emotion that ``dataset``'s ``label`` corresponds to (None: no prototype)."""
    return next((emotion for emotion in table if table_label(emotion, dataset) == label), None)


@dataclass(frozen=True)
class AUVerdict:
    """How a clip's face relates to its label.

    Attributes:
        status: "match", "mismatch" (the label is not what the face shows) or "ambiguous" (the label is shown
            but so is another named emotion (``exact``), or another one ties it (``strongest``)).
        shown: the dataset labels the face shows, strongest first (empty: neutral face).
        unnamed: table emotions shown that the dataset has no label for (ignored).
        evidence: table emotion -> evidence, for every shown emotion.
    """

    status: Literal["match", "mismatch", "ambiguous"]
    shown: tuple[str, ...]
    unnamed: tuple[str, ...]
    evidence: Mapping[str, EmotionEvidence]


def match_label(
    evidence: Mapping[str, EmotionEvidence],
    label: str,
    dataset: str,
    *,
    rule: Rule = "exact",
    tie_margin: float = 0.25,
) -> AUVerdict:
    """Compare the emotions a face shows (:func:`au_emotions`) with the clip's ``label`` under ``rule``.

    ``strongest``: emotions tie with the strongest one when they have as many present AUs and a mean intensity
    at most ``tie_margin`` lower.
    """
    if rule not in ("exact", "strongest"):
        raise ValueError(f"rule must be 'exact' or 'strongest'; got {rule!r}")
    ranked = sorted(evidence.values(), key=lambda item: (-item.strength[0], -item.strength[1], item.emotion))
    named = [(name, item) for item in ranked if (name := table_label(item.emotion, dataset)) is not None]
    shown = tuple(dict.fromkeys(name for name, _ in named))
    unnamed = tuple(item.emotion for item in ranked if table_label(item.emotion, dataset) is None)
    verdict = AUVerdict("mismatch", shown, unnamed, MappingProxyType({item.emotion: item for item in ranked}))
    if not shown:  # a neutral face; a "neutral" label with something shown falls through to "mismatch" below
        return replace(verdict, status="match" if label == "neutral" else "mismatch")
    if rule == "exact":
        return replace(
            verdict, status="match" if shown == (label,) else "ambiguous" if label in shown else "mismatch"
        )
    count, top = named[0][1].strength
    tied = {name for name, item in named if item.strength[0] == count and top - item.strength[1] <= tie_margin}
    if label not in tied:
        return verdict
    return replace(verdict, status="match" if tied == {label} else "ambiguous")


def _noun(label: str) -> str:
    return {"happy": "happiness", "sad": "sadness", "angry": "anger", "worried": "worry"}.get(label, label)


def fau_reasoning(
    summary: AUSummary,
    label: str,
    dataset: str,
    *,
    audio: str | None = None,
    table: Mapping[str, EmotionPrototype] = EMOTION_AU_TABLE,
    voice_dominant: bool = False,
) -> Reasoning:
    """FAU-consistent reasoning for a kept clip: the face described by its active label AUs, and a think line.

    The visual part names the present AUs of the label's prototype, most intense first (presence-only AUs
    last), in plain words; the audio part is ``audio`` (the clip's own description, if any) unchanged. The
    think line credits the facial actions, or with ``voice_dominant`` (a clip whose voice is known to carry the
    label) the voice, so a face that is not the dominant modality is never credited.

    Example:
        >>> summary = AUSummary(frozenset({"AU06", "AU12"}), {}, {"AU06": 2.0, "AU12": 3.5}, 10, "mean")
        >>> fau_reasoning(summary, "happy", "dfew").visual
        'The face shows lip corners pulled up and raised cheeks, which points to happiness.'
    """
    voice_think = f"The voice carries the clearest cue, so the emotion is {label}."
    if label == "neutral":
        return Reasoning(
            visual="The face stays relaxed, with no facial action unit clearly active, which looks neutral.",
            audio=audio,
            think=voice_think
            if voice_dominant
            else "No facial action pattern of an emotion appears, so the emotion is neutral.",
        )
    emotion = label_prototype(label, dataset, table)
    aus = [au for au in table[emotion].aus if au in summary.present] if emotion is not None else []
    if not aus:
        raise ValueError(
            f"label {label!r} of dataset {dataset!r}: no present AU of its Emotion-AU prototype to describe"
        )
    aus.sort(key=lambda au: (-summary.intensity.get(au, -1.0), au))
    phrases = [AU_PHRASES.get(au, au) for au in aus]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    noun = _noun(label)
    return Reasoning(
        visual=f"The face shows {listed}, which points to {noun}.",
        audio=audio,
        think=voice_think
        if voice_dominant
        else f"The facial actions match the typical pattern of {noun}, so the emotion is {label}.",
    )


@dataclass(frozen=True)
class Rejection:
    """A sample the filter did not keep, why (one of :data:`REASONS`) and the details (error, emotions shown)."""

    sample: Sample
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class FilterResult:
    """Kept samples (with FAU-consistent reasoning), rejections, and counts per label and reason."""

    kept: list[Sample]
    rejected: list[Rejection]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> {"total", "kept", reason: n}
    frames_without_face: int = 0  # success == 0 rows excluded over every file read

    def format_table(self) -> str:
        """The counts as an aligned text table: one row per label, a total row, the excluded frames."""
        columns = ("total", "kept", *REASONS)
        totals: Counter[str] = Counter()
        for counts in self.counts.values():
            totals.update(counts)
        rows = [(label, *(str(counts.get(name, 0)) for name in columns)) for label, counts in self.counts.items()]
        rows = [("label", *columns), *rows, ("all", *(str(totals.get(name, 0)) for name in columns))]
        widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines.append(f"frames without a face (success == 0) excluded: {self.frames_without_face}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Judgement:
    reason: str | None  # None: kept
    detail: str = ""
    summary: AUSummary | None = None
    dropped: int = 0  # success == 0 rows of the file


def fau_filter(
    samples: Sequence[Sample],
    *,
    dataset: str | None = None,
    table: Mapping[str, EmotionPrototype] = EMOTION_AU_TABLE,
    method: Method = "mean",
    presence_rate: float = 0.5,
    min_present: float = 0.5,
    intensity: float = 0.8,
    rule: Rule = "exact",
    tie_margin: float = 0.25,
    think: Credit = "face",
) -> FilterResult:
    """Keep the samples whose AU emotion matches their label and give them FAU-consistent reasoning.

    Every sample is either kept or listed in ``rejected`` with a reason: ``no_au_file`` (no ``au_csv``),
    ``unreadable`` (missing file, bad csv), ``no_face`` (no valid frame), ``no_prototype`` (the label has no
    table prototype), ``mismatch`` or ``ambiguous`` (see :func:`match_label`). A kept sample's reasoning becomes
    :func:`fau_reasoning` (its audio description kept); ``extra["fau"]`` records the evidence and
    ``extra["reasoning_original"]`` the replaced reasoning. The counts table is logged (INFO) and available as
    :meth:`FilterResult.format_table`.

    Args:
        dataset: when given, every sample must belong to it (a guard for the build command); labels are always
            mapped with each sample's own dataset.
        method, presence_rate: see :func:`aggregate`; ``min_present``, ``intensity``: see :func:`au_emotions`;
            ``rule``, ``tie_margin``: see :func:`match_label`.
        think: what a kept clip's think line credits. ``face`` (the paper; the default): the facial actions,
            for every clip. ``dominant``: the voice for a clip whose ``dominant`` modality is audio (known on the
            synthetic corpus), the facial actions otherwise; so no FAU copy credits a face that does not carry
            the label. The demo uses ``dominant`` on the conflict corpus regime only, so the default regime's
            SFT rows stay as they were.
    """
    if rule not in ("exact", "strongest"):
        raise ValueError(f"rule must be 'exact' or 'strongest'; got {rule!r}")
    if think not in CREDITS:
        raise ValueError(f"fau.think must be one of {', '.join(CREDITS)}; got {think!r}")
    kept: list[Sample] = []
    rejected: list[Rejection] = []
    counts: dict[str, Counter[str]] = {}
    frames_without_face = 0
    for sample in samples:
        if dataset is not None and sample.dataset != dataset:
            raise ValueError(f"sample {sample.id!r} belongs to dataset {sample.dataset!r}, not {dataset!r}")
        judgement = _judge(
            sample, table, method=method, presence_rate=presence_rate, min_present=min_present,
            intensity=intensity, rule=rule, tie_margin=tie_margin,
        )  # fmt: skip
        frames_without_face += judgement.dropped
        tally = counts.setdefault(sample.label, Counter())
        tally["total"] += 1
        tally[judgement.reason or "kept"] += 1
        if judgement.reason is not None:
            rejected.append(Rejection(sample, judgement.reason, judgement.detail))
        else:
            assert judgement.summary is not None
            voice_dominant = think == "dominant" and sample.dominant == "audio"
            kept.append(_with_fau_reasoning(sample, judgement.summary, table, voice_dominant))
    result = FilterResult(
        kept=kept,
        rejected=rejected,
        counts={label: dict(tally) for label, tally in counts.items()},
        frames_without_face=frames_without_face,
    )
    log.info("FAU filter (%s rule, %s aggregation):\n%s", rule, method, result.format_table())
    return result


def _judge(
    sample: Sample,
    table: Mapping[str, EmotionPrototype],
    *,
    method: Method,
    presence_rate: float,
    min_present: float,
    intensity: float,
    rule: Rule,
    tie_margin: float,
) -> _Judgement:
    if sample.au_csv is None:
        return _Judgement("no_au_file", "the manifest row has no au_csv")
    if sample.label != "neutral" and label_prototype(sample.label, sample.dataset, table) is None:
        return _Judgement(
            "no_prototype", f"no Emotion-AU table entry is named {sample.label!r} in {sample.dataset}"
        )
    try:
        frames = read_openface_csv(sample.au_csv)
    except NoFaceError as error:
        return _Judgement("no_face", str(error), dropped=error.rows)
    except OpenFaceError as error:
        return _Judgement("unreadable", str(error))
    summary = aggregate(frames, method=method, presence_rate=presence_rate)
    evidence = au_emotions(summary, table, min_present=min_present, intensity=intensity)
    verdict = match_label(evidence, sample.label, sample.dataset, rule=rule, tie_margin=tie_margin)
    if verdict.status == "match":
        return _Judgement(None, summary=summary, dropped=frames.dropped)
    detail = f"face shows {', '.join(verdict.shown) or 'no emotion (neutral face)'}"
    if verdict.unnamed:
        detail += f" (and {', '.join(verdict.unnamed)}, not a {sample.dataset} label)"
    return _Judgement(verdict.status, detail, summary, frames.dropped)


def _with_fau_reasoning(
    sample: Sample, summary: AUSummary, table: Mapping[str, EmotionPrototype], voice_dominant: bool
) -> Sample:
    audio = sample.reasoning.audio if sample.reasoning is not None else None
    reasoning = fau_reasoning(
        summary, sample.label, sample.dataset, audio=audio, table=table, voice_dominant=voice_dominant
    )
    emotion = label_prototype(sample.label, sample.dataset, table)
    aus = [au for au in table[emotion].aus if au in summary.present] if emotion is not None else []
    extra = dict(sample.extra)
    extra["fau"] = {
        "method": summary.method,
        "frames": summary.frames,
        "aus": {au: round(summary.intensity[au], 3) if au in summary.intensity else None for au in aus},
    }
    if sample.reasoning is not None:
        extra["reasoning_original"] = {
            "visual": sample.reasoning.visual,
            "audio": sample.reasoning.audio,
            "think": sample.reasoning.think,
        }
    return replace(sample, reasoning=reasoning, extra=extra)
