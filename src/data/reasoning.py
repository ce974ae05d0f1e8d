"""The structured explanation format: building targets and parsing completions.

A MIGR explanation is four tagged segments, the dominant modality's description first::

    <aud_desc>The voice trembles and rises.</aud_desc>
    <vis_desc>The brows are raised.</vis_desc>
    <think>The trembling voice shows fear.</think>
    <answer>fear</answer>

:func:`build_target` writes that text (SFT targets, reordering); :func:`parse_completion` reads any model
output back (rewards, metrics, evaluation). Parsing never raises: malformed text yields a
:class:`ParsedCompletion` with ``well_formed=False`` and whatever segments could be recovered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from src.data.labels import normalize_label

Modality = Literal["audio", "visual"]
Dominant = Literal["audio", "visual", "both"]

SEGMENT_TAGS: dict[str, tuple[str, str]] = {
    "visual": ("<vis_desc>", "</vis_desc>"),
    "audio": ("<aud_desc>", "</aud_desc>"),
    "think": ("<think>", "</think>"),
    "answer": ("<answer>", "</answer>"),
}
# Registered as single tokens in every tokenizer we build or load.
REASONING_TOKENS: tuple[str, ...] = tuple(tag for pair in SEGMENT_TAGS.values() for tag in pair)

_SEGMENT_RE = re.compile(r"<(vis_desc|aud_desc|think|answer)>(.*?)</\1>", re.DOTALL)
_TAG_NAME = {"vis_desc": "visual", "aud_desc": "audio", "think": "think", "answer": "answer"}
_ANY_TAG_RE = re.compile(r"</?(?:vis_desc|aud_desc|think|answer)>")
_SENTENCE_RE = re.compile(r"[^.!?;\n]+[.!?;]?")


def build_target(
    *,
    visual: str | None,
    audio: str | None,
    think: str | None,
    answer: str,
    first: Modality = "visual",
) -> str:
    """The training target text: description segments (``first`` modality first), think, answer.

    A missing ``visual``/``audio``/``think`` part is left out (no empty tags). With only ``answer`` the
    target is ``<answer>label</answer>``.
    """
    order: tuple[Modality, Modality] = ("visual", "audio") if first == "visual" else ("audio", "visual")
    parts = {"visual": visual, "audio": audio}
    lines = []
    for modality in order:
        text = parts[modality]
        if text is not None and text.strip():
            open_tag, close_tag = SEGMENT_TAGS[modality]
            lines.append(f"{open_tag}{text.strip()}{close_tag}")
    if think is not None and think.strip():
        lines.append(f"<think>{think.strip()}</think>")
    lines.append(f"<answer>{answer.strip()}</answer>")
    return "\n".join(lines)


@dataclass(frozen=True)
class ParsedCompletion:
    """What a completion contains.

    Attributes:
        segments: text inside each tag pair, by segment name (first occurrence only).
        order: segment names in the order they appear (``("audio", "visual", "think", "answer")``).
        answer: text inside ``<answer>`` (stripped), or None when absent.
        first_segment: name of the segment the completion opens with, or None when it opens with untagged
            text or nothing.
        well_formed: exactly one ``<answer>`` and ``<think>``, at most one of each description, every tag
            closed, answer last, nothing but whitespace outside the segments.
    """

    text: str
    segments: dict[str, str] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    answer: str | None = None
    first_segment: str | None = None
    well_formed: bool = False

    def explanation(self) -> str:
        """The reasoning text a judge reads: the description and think segments in generated order."""
        return " ".join(self.segments[name] for name in self.order if name != "answer")


def parse_completion(text: str) -> ParsedCompletion:
    """Parse a model output into its tagged segments; never raises."""
    text = text or ""
    segments: dict[str, str] = {}
    order: list[str] = []
    counts: dict[str, int] = {}
    outside: list[str] = []
    cursor = 0
    for match in _SEGMENT_RE.finditer(text):
        name = _TAG_NAME[match.group(1)]
        counts[name] = counts.get(name, 0) + 1
        outside.append(text[cursor : match.start()])
        cursor = match.end()
        if name not in segments:
            segments[name] = match.group(2).strip()
            order.append(name)
    outside.append(text[cursor:])
    stray_text = any(part.strip() for part in outside)
    stray_tags = bool(_ANY_TAG_RE.search("".join(outside)))
    first_segment = None
    stripped = text.lstrip()
    for name, (open_tag, _) in SEGMENT_TAGS.items():
        if stripped.startswith(open_tag) and order and order[0] == name:
            first_segment = name
    well_formed = (
        counts.get("answer", 0) == 1
        and counts.get("think", 0) == 1
        and counts.get("visual", 0) <= 1
        and counts.get("audio", 0) <= 1
        and bool(order)
        and order[-1] == "answer"
        and not stray_text
        and not stray_tags
    )
    answer = segments.get("answer")
    return ParsedCompletion(
        text=text,
        segments=segments,
        order=tuple(order),
        answer=answer if answer is None else answer.strip(),
        first_segment=first_segment,
        well_formed=well_formed,
    )


def split_sentences(text: str) -> list[str]:
    """Split reasoning text into sentences (on . ! ? ; and newlines), dropping empty pieces."""
    return [s.strip() for s in _SENTENCE_RE.findall(text or "") if s.strip(" .!?;\n\t")]


def predicted_label(text: str, dataset: str, task: str) -> str | None:
    """The label a generated text names: the ``<answer>`` content (reasoning) or the whole text (label task)."""
    answer = parse_completion(text).answer if task != "label" else text
    return normalize_label(answer, dataset)
