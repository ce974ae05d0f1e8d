from __future__ import annotations

import pytest

from rewards.answer import AnswerReward


def test_answer_matches_label_after_dataset_normalisation(batch):
    reward = AnswerReward()
    completions = [
        "<think>x</think><answer>fear</answer>",  # exact label
        "<think>x</think><answer> Fearful. </answer>",  # surface form -> fear
        "<think>x</think><answer>sad</answer>",  # another emotion
        "<answer>fear</answer>",  # structure is not this reward's business
        "<think>fear</think>",  # no answer tag
        "",  # empty text
        "<answer>maybe</answer>",  # not an emotion word
        "<answer>contempt</answer>",  # an emotion, but not a DFEW label
        "<answer>fear</answer><answer>sad</answer>",  # hedged: two answers
        "<answer><answer>fear</answer></answer>",  # nested answer tags
    ]
    assert reward(**batch(completions)) == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_answer_uses_each_rows_dataset():
    reward = AnswerReward()
    scores = reward(
        completions=["<answer>happy</answer>", "<answer>happy</answer>", "<answer>anxious</answer>"],
        completion_ids=[[], [], []],
        prompts=["p"] * 3,
        labels=["happiness", "happy", "anxiety"],
        dominant=[None] * 3,
        sample_ids=["m1", "d1", "m2"],
        dataset=["mafw", "dfew", "mafw"],
    )
    assert scores == [1.0, 1.0, 1.0]  # happy -> MAFW's happiness; anxious -> MAFW's anxiety


def test_answer_counts_malformed_through_log_metric(batch):
    logged: dict[str, float] = {}
    completions = ["<answer>fear</answer>", "no tags", "<answer>maybe</answer>", "<answer>sad</answer>"]
    AnswerReward()(**batch(completions), log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged == {"malformed": 2.0}  # the wrong-but-valid "sad" is not malformed


def test_answer_rejects_a_label_outside_the_dataset(batch):
    with pytest.raises(ValueError, match=r"sample 's0': label 'bored' is not an emotion of dataset 'dfew'"):
        AnswerReward()(**batch(["<answer>fear</answer>"], labels="bored"))
