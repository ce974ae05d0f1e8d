"""The judge contract: read an emotion out of text, one label per sentence.

Judges serve two callers: the modality rewards (which judge the sentences of one segment) and the consistency
metrics EEA/EPC/FCR (which judge a whole explanation). Both hand over the label set of the sample's dataset, so
one judge serves DFEW, MAFW, EMER or a user's own labels.

A judge returns a label drawn from ``labels``, or :data:`UNKNOWN` (None) when the text expresses none of them
(no emotion word, only negated ones, a reply outside the label set). None never equals a label, so an unknown
explanation counts as wrong in every metric, as ERV counts it.

Example:
    >>> from src.judges.keywords import KeywordJudge
    >>> judge = KeywordJudge()
    >>> judge.classify(["She beams with joy.", "The room is dark.", "There is no sign of anger."],
    ...                ["happy", "sad", "angry"])
    ['happy', None, None]
    >>> [sorted(found) for found in judge.classify_sets(["A smile, then a furious shout."], ["happy", "angry"])]
    [['angry', 'happy']]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from src.data.labels import emotion_forms

UNKNOWN: None = None
"""What a judge returns for a sentence that expresses none of the labels."""

# Concepts that are one state under two names: always bridged (labels.py spells MAFW's anxiety as EMER's worried).
_SAME_CONCEPT: dict[str, tuple[str, ...]] = {"anxiety": ("worried",), "worried": ("anxiety",)}
# Nearby concepts, used only when a label set lacks the concept itself and the judge allows it (``related=True``):
# a DFEW judge then reads "nervous" as fear and "grief" as sad instead of finding nothing.
RELATED_CONCEPTS: dict[str, tuple[str, ...]] = {
    "anxiety": ("worried", "fear"),
    "worried": ("anxiety", "fear"),
    "helplessness": ("sad",),
    "disappointment": ("sad",),
    "contempt": ("disgust",),
}


@runtime_checkable
class Judge(Protocol):
    """Classifies sentences into one of the given labels.

    ``classify(sentences, labels)`` returns one entry per sentence: a member of ``labels`` or None. It is batched
    (one call for a whole reward batch or evaluation shard) and deterministic for a fixed backend.
    """

    name: str

    def classify(self, sentences: Sequence[str], labels: Sequence[str]) -> list[str | None]: ...


@runtime_checkable
class MultiLabelJudge(Judge, Protocol):
    """A judge that can also name several emotions per sentence (ERV's classifier keeps the top 2 over 0.1)."""

    def classify_sets(self, sentences: Sequence[str], labels: Sequence[str]) -> list[set[str]]: ...


def label_sets(judge: Judge, sentences: Sequence[str], labels: Sequence[str]) -> list[set[str]]:
    """Per-sentence label sets: ``classify_sets`` for multi-label judges, else ``{classify(s)}`` (empty for None)."""
    if isinstance(judge, MultiLabelJudge):
        return judge.classify_sets(sentences, labels)
    return [set() if label is None else {label} for label in judge.classify(sentences, labels)]


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """``labels`` as a tuple; an empty or duplicated label set is a caller error."""
    result = tuple(labels)
    if not result:
        raise ValueError("a judge needs at least one label to choose from; got an empty label list")
    if len(set(result)) != len(result):
        raise ValueError(f"judge labels must be distinct; got {list(result)}")
    return result


def concept_to_label(labels: Sequence[str], *, related: bool = True) -> dict[str, str]:
    """Map emotion concepts (``happy``, ``anxiety``, ...) onto the label of ``labels`` that names them.

    A label names its own concept and every concept whose surface forms it shares (MAFW's ``happiness`` names
    ``happy``). Anxiety and worry are bridged always; with ``related=True`` a concept missing from the label
    set falls back to a nearby one (:data:`RELATED_CONCEPTS`).

    Example:
        >>> concept_to_label(["happiness", "sadness", "fear"], related=True)["anxiety"]
        'fear'
        >>> "anxiety" in concept_to_label(["happiness", "sadness", "fear"], related=False)
        False
    """
    mapping: dict[str, str] = {}
    for label in labels:
        for form in emotion_forms(label):
            mapping.setdefault(form, label)
        mapping.setdefault(label.lower(), label)
    for concept, same in _SAME_CONCEPT.items():
        if concept not in mapping:
            for other in same:
                if other in mapping:
                    mapping[concept] = mapping[other]
                    break
    if related:
        for concept, nearby in RELATED_CONCEPTS.items():
            if concept not in mapping:
                for other in nearby:
                    if other in mapping:
                        mapping[concept] = mapping[other]
                        break
    return mapping
