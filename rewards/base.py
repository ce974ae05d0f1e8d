"""The reward contract every GRPO reward follows, built-in or plug-in.

A reward is an object with a ``name`` and a call that scores a batch of completions. It receives everything the
batch knows as keyword arguments (TRL style) and returns one float per completion, or ``None`` where the reward
does not apply (e.g. the modality rewards on a sample without a known dominant modality). ``None`` contributes
nothing to the weighted total, as TRL's ``nansum`` does.

Example: a reward that pays 1.0 for completions shorter than ``max_chars`` characters::

    >>> class ShortReward:
    ...     name = "short"
    ...
    ...     def __init__(self, max_chars: int = 20) -> None:
    ...         self.max_chars = max_chars
    ...
    ...     def __call__(self, *, completions, completion_ids, prompts, labels, dominant, sample_ids, dataset,
    ...                  **batch):
    ...         return [1.0 if len(text) < self.max_chars else 0.0 for text in completions]
    >>> reward = ShortReward()
    >>> isinstance(reward, Reward)
    True
    >>> reward(completions=["<answer>happy</answer>", "ok"], completion_ids=[[1, 2], [3]], prompts=["p", "p"],
    ...        labels=["happy", "happy"], dominant=["audio", None], sample_ids=["a", "b"],
    ...        dataset=["dfew", "dfew"])
    [0.0, 1.0]

To make it available by name, declare it in the ``migr.rewards`` entry-point group (README, "Adding a reward").

Besides the contract, this module holds the few steps every built-in reward shares (target label lookup,
reading segment sentences, reporting counts), so each reward file reads as its equation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from src.data.labels import labels_for, normalize_label
from src.data.reasoning import REASONING_TOKENS, ParsedCompletion, split_sentences

# Dominant-modality values a manifest may carry; None means "unknown" (the modality rewards return None).
DOMINANT_VALUES: tuple[str, ...] = ("audio", "visual", "both")

T = TypeVar("T")

_TAG_RE = re.compile("|".join(re.escape(tag) for tag in REASONING_TOKENS))


@runtime_checkable
class Reward(Protocol):
    """Scores a batch of completions: one float per completion, or None where the reward does not apply.

    Keyword arguments (all lists have one entry per completion; a prompt's G completions are contiguous):
        completions: generated text, special tokens removed.
        completion_ids: generated token ids (without padding).
        prompts: the prompt text each completion answers.
        labels: target emotion label of the sample, in its dataset's label set.
        dominant: emotion-dominant modality (``"audio"``, ``"visual"``, ``"both"``) or None when unknown.
        sample_ids: manifest ``id`` of the sample.
        dataset: manifest ``dataset`` name (selects the label set and its normalisation).
        **batch: every other manifest field, plus ``log_metric(name, value)`` when the caller collects
            per-reward scalars (:class:`src.reward_set.RewardSet` does; see :func:`log_metric`).

    A reward must not raise on malformed completions (missing tags, empty text, unknown emotion words): it scores
    them (usually 0.0) and reports how many it saw with ``log_metric(batch, "malformed", count)``. It may raise
    on malformed *data* (a label outside the dataset's label set), naming the sample.
    """

    name: str

    def __call__(
        self,
        *,
        completions: list[str],
        completion_ids: list[list[int]],
        prompts: list[str],
        labels: list[str],
        dominant: list[str | None],
        sample_ids: list[str],
        dataset: list[str],
        **batch: Any,
    ) -> list[float | None]: ...


def log_metric(batch: Mapping[str, Any], name: str, value: float) -> None:
    """Report a scalar through the ``log_metric`` callable of ``batch`` when the caller passed one.

    Callers that do not collect metrics (a unit test calling the reward directly) simply pass none.
    """
    sink: Callable[[str, float], None] | None = batch.get("log_metric")
    if sink is not None:
        sink(name, float(value))


def target_label(label: str, dataset: str, sample_id: str) -> str:
    """``label`` in ``dataset``'s spelling; a label outside the label set is a data error naming the sample."""
    target = normalize_label(label, dataset)
    if target is None:
        raise ValueError(
            f"sample {sample_id!r}: label {label!r} is not an emotion of dataset {dataset!r}; "
            "fix the manifest's `label` field (see src.data.labels.DATASET_LABELS)"
        )
    return target


def check_dominant(value: str | None, sample_id: str) -> None:
    """Fail on a ``dominant`` value that is neither None nor one of :data:`DOMINANT_VALUES`."""
    if value is not None and value not in DOMINANT_VALUES:
        raise ValueError(
            f"sample {sample_id!r}: `dominant` is {value!r}; expected one of {', '.join(DOMINANT_VALUES)} or null"
        )


def segment_sentences(parsed: ParsedCompletion, names: Sequence[str]) -> list[str]:
    """Sentences of the named segments, in the order given; a missing segment contributes no sentence.

    Tags nested inside a segment (``<vis_desc><aud_desc>x</aud_desc></vis_desc>``) are removed first, so the
    judge reads words, never tag names.
    """
    sentences: list[str] = []
    for name in names:
        text = parsed.segments.get(name)
        if text:
            sentences.extend(split_sentences(_TAG_RE.sub(" ", text)))
    return sentences


def check_lengths(name: str, columns: Mapping[str, Sequence[Any]]) -> int:
    """The common length of the batch columns; unequal lengths fail naming each column's length."""
    lengths = {key: len(values) for key, values in columns.items()}
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{key}={length}" for key, length in lengths.items())
        raise ValueError(f"reward {name!r}: batch columns must have one entry per completion; found {found}")
    return next(iter(lengths.values()), 0)


def judge_per_dataset(
    classify: Callable[[list[str], tuple[str, ...]], list[T]],
    sentences: Sequence[Sequence[str]],
    datasets: Sequence[str],
) -> list[list[T]]:
    """Run a judge once per dataset of the batch and hand each completion its sentences' results back.

    ``classify(sentences, labels)`` is a judge method (``classify`` or ``classify_sets``); ``sentences[i]`` are
    completion i's sentences. Batching every completion of a dataset into one call is what makes model judges
    affordable inside a GRPO step.
    """
    results: list[list[T]] = [[] for _ in sentences]
    for name in dict.fromkeys(datasets):
        rows = [i for i, ds in enumerate(datasets) if ds == name and sentences[i]]
        flat = [sentence for i in rows for sentence in sentences[i]]
        if not flat:
            continue
        judged = classify(flat, labels_for(name))
        if len(judged) != len(flat):
            raise ValueError(
                f"the judge returned {len(judged)} results for {len(flat)} sentences; expected one each"
            )
        cursor = 0
        for i in rows:
            results[i] = list(judged[cursor : cursor + len(sentences[i])])
            cursor += len(sentences[i])
    return results
