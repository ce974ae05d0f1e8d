"""The consistency reward: 1 when the judged emotion of the explanation equals the completion's own answer."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from rewards.consistency import ConsistencyReward
from src.reward_set import RewardSet
from tests.rewards.conftest import TableJudge, make_batch

# The judge reads whole explanations (description and think texts joined by one space, in generated order).
JUDGE = TableJudge(
    {
        "The voice trembles. It is fear.": ["fear"],
        "A smile. It is fear.": ["fear"],
        "It is fear. A smile.": ["happy"],
        "A smile.": ["happy"],
        "Nothing to see.": [],
    }
)
AUD, THINK = "<aud_desc>The voice trembles.</aud_desc>", "<think>It is fear.</think>"


def test_case_by_case():
    reward = ConsistencyReward(judge=JUDGE)
    logged: dict[str, float] = {}
    completions = [
        f"{AUD}{THINK}<answer>fear</answer>",  # judged fear, answered fear                         -> 1
        f"{AUD}{THINK}<answer>Fear</answer>",  # the answer is normalised like the answer reward's  -> 1
        f"{AUD}{THINK}<answer>happy</answer>",  # judged fear, answered happy                       -> 0
        "<vis_desc>A smile.</vis_desc><think>It is fear.</think><answer>fear</answer>",  # judged fear  -> 1
        "<think>It is fear.</think><vis_desc>A smile.</vis_desc><answer>fear</answer>",  # order matters: happy -> 0
        "<think>Nothing to see.</think><answer>fear</answer>",  # the judge finds nothing: 0, not malformed
        f"{AUD}{THINK}",  # no answer: 0, malformed
        f"{AUD}{THINK}<answer>maybe</answer>",  # no emotion word: 0, malformed
        f"{AUD}{THINK}<answer>fear</answer><answer>fear</answer>",  # two answers: 0, malformed
        "<answer>fear</answer>",  # no explanation: 0, malformed
        "",  # nothing: 0, malformed
    ]
    scores = reward(**make_batch(completions, labels="sad"), log_metric=logged.__setitem__)
    assert scores == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert logged == {"malformed": 5.0}


def test_pays_consistency_not_correctness():
    # the label is never read: a wrong answer explained consistently earns it, a right one explained otherwise not
    reward = ConsistencyReward(judge=JUDGE)
    text = f"{AUD}{THINK}<answer>fear</answer>"
    assert reward(**make_batch([text, text], labels=["fear", "happy"], dominant=[None, "visual"])) == [1.0, 1.0]


def test_judge_reads_each_explanation_once_per_dataset():
    judge = TableJudge(dict(JUDGE.table))
    reward = ConsistencyReward(judge=judge)
    text = f"{AUD}{THINK}<answer>fear</answer>"
    reward(**make_batch([text, text, text], dataset=["dfew", "mafw", "dfew"]))
    assert [sentences for sentences, _ in judge.calls] == [
        ["The voice trembles. It is fear.", "The voice trembles. It is fear."],
        ["The voice trembles. It is fear."],
    ]


def test_migr_consistency_set_adds_it_to_migrs_three():
    config = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs" / "rewards" / "migr_consistency.yaml")
    rewards = RewardSet.from_config(config, judge=JUDGE)
    text = "<aud_desc>The voice trembles.</aud_desc><vis_desc>A smile.</vis_desc><think>It is fear.</think>"
    result = rewards(**make_batch([f"{text}<answer>happy</answer>"], labels="fear", dominant="audio"))
    assert list(result.columns) == ["modality_order", "modality_grounding", "answer", "consistency"]
    # the judge reads "The voice trembles. A smile. It is fear." as nothing it knows: inconsistent with "happy"
    assert result.columns["consistency"] == [0.0]
    assert result.columns["answer"] == [0.0]
