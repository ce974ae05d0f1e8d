"""MI-based reasoning reordering (paper section 3.1.3): the dominant modality's description comes first.

Each sample's reasoning is split into its audio part and its visual part (EMER's acoustic and visual clue
fields; the synthetic corpus's parts: :class:`src.data.manifest.Reasoning`), each wrapped in its tags, the
emotion-dominant modality first, then ``<think>`` and ``<answer>`` (:func:`src.data.reasoning.build_target`)::

    <aud_desc>The voice trembles and rises.</aud_desc>
    <vis_desc>The brows are raised.</vis_desc>
    <think>The trembling voice shows fear.</think>
    <answer>fear</answer>

The text goes to ``extra["target"]`` (what SFT trains on) and the opening modality to
``extra["first_modality"]``; ``extra["source_id"]`` names the source clip and ``extra["mi_dominant"]`` the
dominant modality the order follows. Other fields, the ground-truth ``dominant`` included, are unchanged.

Dominant ``both`` (audio and video equally informative), by the ``both`` policy:
``both_orders`` (default, the paper's "we include both orderings"): two samples, ids suffixed ``#a``
(audio first) and ``#v`` (visual first); ``visual_first`` / ``audio_first``: one sample in that order.

A sample whose reasoning cannot be split is never dropped silently. Reasons (:data:`SPLIT_PROBLEMS`):
``no_reasoning``; ``no_modality_parts`` (a single reasoning text, ``think`` only); ``missing_audio`` /
``missing_visual`` (one part only). With ``partial="exclude"`` (default) it is left out; with ``"keep"`` it is
kept with the parts it has; either way :class:`ReorderResult` lists it with the reason and the action. A missing
``think`` alone does not prevent reordering: such samples are kept and listed as ``missing_think``.
:func:`reorder_all` also excludes and lists clips without a dominant modality: ``no_dominant`` (not estimated)
and ``no_reliable_modality`` (MI's ``none``: neither modality alone nor both together predicted the label).

Example:
    >>> from pathlib import Path
    >>> from src.data.manifest import Reasoning, Sample
    >>> parts = Reasoning(visual="The brows rise.", audio="The voice trembles.", think="So, fear.")
    >>> sample = Sample("c1", "fear", "synth", "train", video=Path("c1.mp4"), audio=None, reasoning=parts)
    >>> [(s.id, s.extra["first_modality"]) for s in reorder(sample, "both")]
    [('c1#a', 'audio'), ('c1#v', 'visual')]
    >>> print(reorder(sample, "audio")[0].extra["target"])
    <aud_desc>The voice trembles.</aud_desc>
    <vis_desc>The brows rise.</vis_desc>
    <think>So, fear.</think>
    <answer>fear</answer>
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from src.data.manifest import Sample
from src.data.reasoning import Modality, build_target

BothPolicy = Literal["both_orders", "visual_first", "audio_first"]
PartialPolicy = Literal["exclude", "keep"]
SPLIT_PROBLEMS: tuple[str, ...] = ("no_reasoning", "no_modality_parts", "missing_audio", "missing_visual")
ISSUES: tuple[str, ...] = (*SPLIT_PROBLEMS, "missing_think", "no_dominant", "no_reliable_modality")
ID_SUFFIX: dict[Modality, str] = {"audio": "#a", "visual": "#v"}
_BOTH_POLICIES = ("both_orders", "visual_first", "audio_first")


class ExcludedSample(ValueError):
    """A sample left out of the reordered set; ``reason`` is one of :data:`ISSUES`."""

    def __init__(self, sample_id: str, reason: str, message: str) -> None:
        self.sample_id, self.reason = sample_id, reason
        super().__init__(f"sample {sample_id!r}: {message} ({reason})")


class UnsplittableError(ExcludedSample):
    """A sample's reasoning has not both modality parts and the policy excludes it."""

    def __init__(self, sample_id: str, reason: str) -> None:
        super().__init__(sample_id, reason, "reasoning cannot be split into audio and visual parts")


def split_problem(sample: Sample) -> str | None:
    """Why ``sample``'s reasoning cannot be split into an audio and a visual part (None: it can)."""
    parts = sample.reasoning
    if parts is None or not any(_text(part) for part in (parts.visual, parts.audio, parts.think)):
        return "no_reasoning"
    if not _text(parts.visual) and not _text(parts.audio):
        return "no_modality_parts"
    if not _text(parts.audio):
        return "missing_audio"
    if not _text(parts.visual):
        return "missing_visual"
    return None


def _text(part: str | None) -> bool:
    return part is not None and bool(part.strip())


def _ordered(sample: Sample, first: Modality, *, suffix: str, dominant: str | None) -> Sample:
    """``sample`` with its target in the ``first``-modality order; records the segment the target opens with."""
    parts = sample.reasoning
    text = {"visual": parts.visual, "audio": parts.audio} if parts is not None else {"visual": None, "audio": None}
    target = build_target(
        visual=text["visual"],
        audio=text["audio"],
        think=parts.think if parts else None,
        answer=sample.label,
        first=first,
    )
    second: Modality = "audio" if first == "visual" else "visual"
    opens = next((modality for modality in (first, second) if _text(text[modality])), None)
    extra = {
        **sample.extra,
        "target": target,
        "first_modality": opens,
        "source_id": sample.extra.get("source_id", sample.id),
    }
    if dominant is not None:  # the fixed-order baseline leaves any MI annotation as it is
        extra["mi_dominant"] = dominant
    return replace(sample, id=sample.id + suffix, extra=extra)


def _check_partial(sample: Sample, partial: PartialPolicy) -> str | None:
    if partial not in ("exclude", "keep"):
        raise ValueError(f"partial must be 'exclude' or 'keep'; got {partial!r}")
    problem = split_problem(sample)
    if problem is not None and partial == "exclude":
        raise UnsplittableError(sample.id, problem)
    return problem


def reorder(
    sample: Sample, dominant: str, *, both: BothPolicy = "both_orders", partial: PartialPolicy = "exclude"
) -> list[Sample]:
    """The reordered sample(s) of ``sample`` for its ``dominant`` modality ("audio" | "visual" | "both").

    Returns one sample (id unchanged), or two for ``both`` under ``both_orders`` (ids ``<id>#a``, ``<id>#v``;
    a sample kept with one part only gets one sample, as both orders would be the same text).

    Raises:
        UnsplittableError: the reasoning lacks a modality part and ``partial="exclude"``.
        ValueError: an unknown ``dominant`` or policy.
    """
    if dominant not in ("audio", "visual", "both"):
        raise ValueError(
            f"sample {sample.id!r}: dominant must be 'audio', 'visual' or 'both'; got {dominant!r} "
            "(reorder_all lists clips without a dominant modality)"
        )
    if both not in _BOTH_POLICIES:
        raise ValueError(f"both must be one of {', '.join(_BOTH_POLICIES)}; got {both!r}")
    problem = _check_partial(sample, partial)
    if dominant != "both":
        return [_ordered(sample, dominant, suffix="", dominant=dominant)]  # type: ignore[arg-type]
    if both != "both_orders":
        return [_ordered(sample, "visual" if both == "visual_first" else "audio", suffix="", dominant=dominant)]
    if problem is not None:  # one part or none: both orders are the same text
        return [_ordered(sample, "visual", suffix="", dominant=dominant)]
    return [_ordered(sample, first, suffix=ID_SUFFIX[first], dominant=dominant) for first in ("audio", "visual")]


def fixed_order(sample: Sample, first: Modality = "visual", *, partial: PartialPolicy = "exclude") -> Sample:
    """The baseline arm: ``sample`` with its target in one fixed order (R1-Omni/ERV data are visual first).

    Same split rules and policy as :func:`reorder`; an ``extra["mi_dominant"]`` annotation is left as it is.
    """
    if first not in ("audio", "visual"):
        raise ValueError(f"first must be 'audio' or 'visual'; got {first!r}")
    _check_partial(sample, partial)
    return _ordered(sample, first, suffix="", dominant=None)


@dataclass(frozen=True)
class ReorderIssue:
    """A sample that could not be reordered as asked: the reason (:data:`ISSUES`) and what was done."""

    sample_id: str
    reason: str
    action: Literal["excluded", "kept"]


@dataclass(frozen=True)
class ReorderResult:
    """The reordered samples, the samples with issues, and counts.

    ``counts``: ``clips`` (input), ``dominant_<value>`` per dominant modality of the clips reordered
    (``fixed_<modality>`` for the baseline arm), ``samples`` (output), ``first_<modality>`` per opening segment
    of the output (``first_None``: answer-only targets kept under ``partial="keep"``), ``excluded``, and
    ``<reason>`` per issue.
    """

    samples: list[Sample]
    issues: list[ReorderIssue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def excluded(self) -> list[ReorderIssue]:
        """The issues whose sample was left out."""
        return [issue for issue in self.issues if issue.action == "excluded"]

    def format_table(self) -> str:
        """The counts and the issues per reason and action as text lines."""
        lines = [f"{name:<22} {value}" for name, value in self.counts.items()]
        by_kind = Counter((issue.reason, issue.action) for issue in self.issues)
        lines += [f"  {reason} ({action}): {count}" for (reason, action), count in sorted(by_kind.items())]
        return "\n".join(lines)


def _apply(samples: Iterable[Sample], order: Callable[[Sample], tuple[str, list[Sample]]]) -> ReorderResult:
    """Run ``order`` (-> (count key, output samples), or :class:`ExcludedSample`) over every sample."""
    out: list[Sample] = []
    issues: list[ReorderIssue] = []
    counts: Counter[str] = Counter()
    for sample in samples:
        counts["clips"] += 1
        try:
            kind, produced = order(sample)
        except ExcludedSample as error:
            issues.append(ReorderIssue(sample.id, error.reason, "excluded"))
            continue
        counts[kind] += 1
        problem = split_problem(sample)
        if problem is not None:  # kept under partial="keep"
            issues.append(ReorderIssue(sample.id, problem, "kept"))
        elif sample.reasoning is not None and not _text(sample.reasoning.think):
            issues.append(ReorderIssue(sample.id, "missing_think", "kept"))
        out.extend(produced)
    seen: dict[str, str] = {}
    for sample in out:
        source = str(sample.extra.get("source_id"))
        if sample.id in seen:
            raise ValueError(
                f"reordered id {sample.id!r} (from {source!r}) collides with one from {seen[sample.id]!r}; "
                f"ids must not already end in {' or '.join(ID_SUFFIX.values())}"
            )
        seen[sample.id] = source
    counts["samples"] = len(out)
    counts.update(f"first_{sample.extra['first_modality']}" for sample in out)
    counts["excluded"] = sum(issue.action == "excluded" for issue in issues)
    counts.update(issue.reason for issue in issues)
    return ReorderResult(samples=out, issues=issues, counts=dict(counts))


def reorder_all(
    samples: Sequence[Sample],
    dominant_by_id: Mapping[str, str | None],
    *,
    both: BothPolicy = "both_orders",
    partial: PartialPolicy = "exclude",
) -> ReorderResult:
    """Reorder every sample by its dominant modality (``dominant_by_id[sample.id]``, e.g. from MI estimation).

    A sample absent from ``dominant_by_id`` or mapped to None is excluded as ``no_dominant``, one mapped to
    "none" as ``no_reliable_modality``; samples that cannot be split follow ``partial`` (see the module
    docstring). Nothing is dropped without an issue.

    Raises:
        ValueError: an unknown dominant value or policy, or two output samples with the same id.
    """

    def order(sample: Sample) -> tuple[str, list[Sample]]:
        dominant = dominant_by_id.get(sample.id)
        if dominant is None:
            raise ExcludedSample(sample.id, "no_dominant", "no dominant modality was estimated")
        if dominant == "none":
            raise ExcludedSample(sample.id, "no_reliable_modality", "no modality predicts the label")
        return f"dominant_{dominant}", reorder(sample, dominant, both=both, partial=partial)

    return _apply(samples, order)


def fixed_order_all(
    samples: Sequence[Sample], first: Modality = "visual", *, partial: PartialPolicy = "exclude"
) -> ReorderResult:
    """The baseline arm over every sample (:func:`fixed_order`), with the same issue reporting as :func:`reorder_all`."""
    return _apply(samples, lambda sample: (f"fixed_{first}", [fixed_order(sample, first, partial=partial)]))
