"""One emotion per explanation: what the judge reads, the two explanation modes, and judging that fails half-way."""

from __future__ import annotations

import doctest
from collections.abc import Sequence

import pytest

import src.evaluation.judging
from src.data.labels import labels_for
from src.evaluation.judging import judge_fingerprint, judge_records
from src.evaluation.predictions import EvaluationError
from src.judges.keywords import KeywordJudge
from tests.evaluation.conftest import record

LABELS = labels_for("dfew")


class RecordingJudge:
    """A single-label judge that answers from a table and records what it was asked (a stand-in backend)."""

    name = "recording"

    def __init__(self, answers: dict[str, str | None], fail_after_calls: int | None = None) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []
        self.fail_after_calls = fail_after_calls

    def __repr__(self) -> str:
        return "RecordingJudge()"

    def classify(self, sentences: Sequence[str], labels: Sequence[str]) -> list[str | None]:
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise RuntimeError("endpoint http://127.0.0.1:9/v1 is down")
        self.calls.append(list(sentences))
        return [self.answers.get(sentence) for sentence in sentences]


def test_doctests() -> None:
    assert doctest.testmod(src.evaluation.judging).failed == 0


COMPLETIONS = [
    # the judge reads the description and think segments, in generated order, never the answer
    "<aud_desc>Her voice trembles.</aud_desc>\n<vis_desc>She smiles.</vis_desc>\n<think>She is scared.</think>\n<answer>happy</answer>",
    "<answer>fear</answer>",  # no explanation at all: judged None without asking
    "no tags here",
]


def test_explanation_mode_judges_the_whole_reasoning_once() -> None:
    judge = RecordingJudge({"Her voice trembles. She smiles. She is scared.": "fear"})
    records = [record(str(i), "fear", None, completion=text, judge=None) for i, text in enumerate(COMPLETIONS)]
    judged, stats = judge_records(records, judge, LABELS)
    assert judge.calls == [["Her voice trembles. She smiles. She is scared."]]
    assert [r.judged for r in judged] == ["fear", None, None]
    assert [r.judged_set for r in judged] == [None, None, None]  # a single-label judge gives no sets
    assert {r.judge for r in judged} == {"RecordingJudge()|explanation"}
    assert (stats.judged, stats.reused, stats.empty) == (3, 0, 2)


def test_keyword_judge_gives_the_label_and_its_top_two() -> None:
    text = "<vis_desc>Wide eyes, a startled look.</vis_desc><think>She is afraid, clearly afraid.</think><answer>fear</answer>"
    judged, _ = judge_records(
        [record("a", "surprise", "fear", completion=text, judge=None)], KeywordJudge(), LABELS
    )
    assert judged[0].judged == "fear"  # "afraid" twice outweighs "startled" once
    assert judged[0].judged_set == ["fear", "surprise"]


def test_sentences_mode_votes_with_think_as_tie_breaker() -> None:
    completion = (
        "<vis_desc>The face beams. A wide smile.</vis_desc><aud_desc>The voice breaks. Sobbing.</aud_desc>"
        "<think>Grief shows. It is sad.</think><answer>sad</answer>"
    )
    answers = {
        "The face beams.": "happy",
        "A wide smile.": "happy",
        "The voice breaks.": "sad",
        "Sobbing.": None,
        "Grief shows.": None,
        "It is sad.": "sad",
    }
    judge = RecordingJudge(answers)
    judged, _ = judge_records(
        [record("a", "sad", "sad", completion=completion, judge=None)], judge, LABELS, mode="sentences"
    )
    assert judge.calls == [list(answers)]  # every sentence of the chunk in one call
    assert judged[0].judged == "sad"  # 2-2 tie between happy and sad; the think segment votes sad
    assert judged[0].judged_set == ["happy", "sad"]
    assert judged[0].judge == "RecordingJudge()|sentences"


def test_judged_records_are_not_asked_again_but_another_judge_rejudges() -> None:
    judge = RecordingJudge({"She smiles.": "happy"})
    done = record(
        "a",
        "happy",
        "happy",
        completion="<vis_desc>She smiles.</vis_desc>",
        judge=judge_fingerprint(judge, "explanation"),
    )
    fresh = record("b", "happy", "happy", completion="<vis_desc>She smiles.</vis_desc>", judge=None)
    _, stats = judge_records([done, fresh], judge, LABELS)
    assert (stats.judged, stats.reused) == (1, 1)
    _, stats = judge_records([done, fresh], judge, LABELS, mode="sentences")  # another mode is another judgement
    assert (stats.judged, stats.reused) == (2, 0)


def test_a_failing_judge_keeps_finished_chunks() -> None:
    judge = RecordingJudge({f"Sentence {i}.": "happy" for i in range(5)}, fail_after_calls=2)
    records = [
        record(str(i), "happy", "happy", completion=f"<think>Sentence {i}.</think>", judge=None) for i in range(5)
    ]
    saved: list[list] = []
    with pytest.raises(
        EvaluationError,
        match=r"the recording judge failed after 4 of 5 explanations .* endpoint http://127.0.0.1:9/v1 is down.*rerun the same command",
    ) as error:
        judge_records(records, judge, LABELS, chunk_size=2, on_chunk=lambda current: saved.append(list(current)))
    assert isinstance(error.value.__cause__, RuntimeError)
    assert len(saved) == 2  # two chunks were finished and handed over before the failure
    assert [r.judged for r in saved[-1]] == ["happy"] * 4 + [None]
    judge.fail_after_calls = None
    resumed, stats = judge_records(saved[-1], judge, LABELS, chunk_size=2)
    assert (stats.judged, stats.reused) == (1, 4)
    assert judge.calls[-1] == ["Sentence 4."]
    assert [r.judged for r in resumed] == ["happy"] * 5


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="explanation_mode='whole' must be one of explanation, sentences"):
        judge_records([], KeywordJudge(), LABELS, mode="whole")
    with pytest.raises(ValueError, match="judge_batch_size=0"):
        judge_records([], KeywordJudge(), LABELS, chunk_size=0)
