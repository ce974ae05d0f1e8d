"""Reading one emotion out of each explanation with the configured judge (``e_i`` of the paper's eq. 6-8).

The judge reads the *explanation*: the description and ``<think>`` segments in generated order, never the
``<answer>`` (ERV and the paper do the same; judging the answer would make EPC trivially 1). How a
multi-sentence explanation becomes ONE emotion is the ``explanation_mode`` setting:

``explanation`` (default, the paper's protocol)
    The whole explanation is one input to the judge, as the paper asks GPT-4.1-mini for one emotion word for
    the whole reasoning. With the keyword judge this sums the lexicon evidence of every sentence (an emotion
    named twice outweighs one named once). The label *set* (for the top-2 analysis) is the judge's
    ``classify_sets`` of the same text.
``sentences``
    Every sentence is judged on its own (suits sentence classifiers such as the ``hf`` GoEmotions model, whose
    128-token window would cut a whole explanation) and the explanation's emotion is the majority label over
    the sentences that name one. Ties go to the label the ``<think>`` sentences vote for most; if still tied,
    to the tied label named last (the conclusion of the reasoning). The set is the two most-voted labels.

An empty explanation (no tagged reasoning) is judged None without asking the judge. Records are judged in
chunks; after each chunk the caller persists the results, so a judge that fails half-way (an endpoint that goes
down) loses nothing already judged, and a rerun asks only for the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from src.data.reasoning import parse_completion, split_sentences
from src.evaluation.predictions import EvaluationError, PredictionRecord
from src.evaluation.settings import EXPLANATION_MODES
from src.judges.base import Judge, MultiLabelJudge

ExplanationMode = Literal["explanation", "sentences"]
SET_SIZE = 2  # the paper's "Top-2 reasoning-level predictions"


def judge_fingerprint(judge: Judge, mode: str) -> str:
    """What identifies a judgement: the judge (its repr carries its settings) and the explanation mode."""
    return f"{judge!r}|{mode}"


@dataclass
class JudgeStats:
    """What :func:`judge_records` did: records judged now, reused from earlier runs, and empty explanations."""

    judged: int = 0
    reused: int = 0
    empty: int = 0


def judge_records(
    records: Sequence[PredictionRecord],
    judge: Judge,
    labels: Sequence[str],
    *,
    mode: str = "explanation",
    chunk_size: int = 256,
    on_chunk: Callable[[list[PredictionRecord]], None] | None = None,
) -> tuple[list[PredictionRecord], JudgeStats]:
    """Fill ``judge``/``judged``/``judged_set`` of every record not yet judged by this judge and mode.

    ``on_chunk(all_records)`` is called after each chunk with the full, partly updated list (the caller
    rewrites ``predictions.jsonl``). If the judge raises, the chunks finished so far have been handed to
    ``on_chunk`` and an :class:`EvaluationError` says how far judging got.
    """
    if mode not in EXPLANATION_MODES:
        raise ValueError(f"explanation_mode={mode!r} must be one of {', '.join(EXPLANATION_MODES)}")
    if chunk_size < 1:
        raise ValueError(f"judge_batch_size={chunk_size} must be at least 1")
    fingerprint = judge_fingerprint(judge, mode)
    current = list(records)
    todo = [i for i, record in enumerate(current) if record.judge != fingerprint]
    stats = JudgeStats(reused=len(current) - len(todo))
    for start in range(0, len(todo), chunk_size):
        positions = todo[start : start + chunk_size]
        explanations = [_segments(current[i].completion) for i in positions]
        try:
            results = _judge_chunk(explanations, judge, labels, mode)
        except Exception as error:
            raise EvaluationError(
                f"the {judge.name} judge failed after {stats.judged} of {len(todo)} explanations were judged in "
                f"this run: {error}. Every generated prediction and every finished judgement is kept in "
                "predictions.jsonl; rerun the same command to continue from there"
            ) from error
        for i, (judged, judged_set) in zip(positions, results):
            current[i] = replace(current[i], judge=fingerprint, judged=judged, judged_set=judged_set)
        stats.judged += len(positions)
        stats.empty += sum(1 for segments in explanations if not segments)
        if on_chunk is not None:
            on_chunk(current)
    return current, stats


def _segments(completion: str) -> list[tuple[str, str]]:
    """``(segment name, text)`` of the explanation segments in generated order (answer excluded)."""
    parsed = parse_completion(completion)
    return [(name, parsed.segments[name]) for name in parsed.order if name != "answer" and parsed.segments[name]]


def _judge_chunk(
    explanations: list[list[tuple[str, str]]], judge: Judge, labels: Sequence[str], mode: str
) -> list[tuple[str | None, list[str] | None]]:
    multi = isinstance(judge, MultiLabelJudge)
    if mode == "explanation":
        texts = [" ".join(text for _, text in segments) for segments in explanations]
        asked = [i for i, text in enumerate(texts) if text]
        answers = judge.classify([texts[i] for i in asked], labels) if asked else []
        sets = judge.classify_sets([texts[i] for i in asked], labels) if asked and multi else []
        judged: list[str | None] = [None] * len(texts)
        judged_sets: list[list[str] | None] = [[] if multi else None for _ in texts]
        for k, i in enumerate(asked):
            judged[i] = answers[k]
            if multi:
                judged_sets[i] = sorted(sets[k])
        return list(zip(judged, judged_sets))
    # sentences: one call for every sentence of the chunk, then a vote per explanation
    sentences = [
        [(name, sentence) for name, text in segments for sentence in split_sentences(text)]
        for segments in explanations
    ]
    flat = [sentence for group in sentences for _, sentence in group]
    answers = judge.classify(flat, labels) if flat else []
    results = []
    cursor = 0
    for group in sentences:
        votes = answers[cursor : cursor + len(group)]
        cursor += len(group)
        results.append(vote([name for name, _ in group], votes))
    return results


def vote(segment_names: Sequence[str], labels: Sequence[str | None]) -> tuple[str | None, list[str]]:
    """Majority label of an explanation's sentences (see the module docstring) and its two most-voted labels.

    Example:
        >>> vote(["visual", "audio", "think"], ["happy", "sad", "sad"])
        ('sad', ['happy', 'sad'])
        >>> vote(["visual", "audio", "think"], ["happy", "sad", "happy"])[0]  # 2 votes beat 1
        'happy'
        >>> vote(["visual", "audio", "think", "think"], ["happy", "sad", "sad", None])[0]
        'sad'
        >>> vote(["visual", "think"], ["happy", "sad"])[0]  # 1-1 tie: the think segment decides
        'sad'
        >>> vote(["visual", "audio"], ["happy", "sad"])[0]  # tie, no think vote: named last wins
        'sad'
        >>> vote(["visual"], [None])
        (None, [])
    """
    counts = Counter(label for label in labels if label is not None)
    if not counts:
        return None, []
    think = Counter(label for name, label in zip(segment_names, labels) if name == "think" and label is not None)
    last_seen = {label: position for position, label in enumerate(labels) if label is not None}

    def rank(label: str) -> tuple[int, int, int]:
        return counts[label], think[label], last_seen[label]

    ordered = sorted(counts, key=rank, reverse=True)
    return ordered[0], sorted(ordered[:SET_SIZE])
