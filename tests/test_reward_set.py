"""RewardSet: weighted totals (paper Eq. 3), None handling, error policy, metrics, provenance, configs."""

from __future__ import annotations

import math
from importlib import metadata
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.judges.keywords import KeywordJudge
from src.registry import RewardRegistry
from src.reward_set import RewardError, RewardFailedWarning, RewardSet, RewardSpec, accepts
from tests.rewards.conftest import TableJudge, make_batch

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "rewards"

JUDGE = TableJudge({"The voice trembles.": ["fear"], "It is fear.": ["fear"], "The face is blank.": ["neutral"]})
GOOD = "<aud_desc>The voice trembles.</aud_desc><vis_desc>The face is blank.</vis_desc><think>It is fear.</think>"


def test_equation_3_total_is_the_sum_of_the_three_rewards():
    rewards = RewardSet.from_config(OmegaConf.load(CONFIGS / "migr.yaml"), judge=JUDGE)
    completions = [
        f"{GOOD}<answer>fear</answer>",  # MAO 1, MGR 2/2 (trembles, It is fear), answer 1   -> 3
        f"{GOOD}<answer>sad</answer>",  # MAO 1, MGR 1, answer 0                              -> 2
        "<vis_desc>The face is blank.</vis_desc><aud_desc>The voice trembles.</aud_desc><think>It is fear.</think>"
        "<answer>fear</answer>",
        # ^ visual first: MAO 0; MGR 2/2; answer 1                                             -> 2
        "<vis_desc>The face is blank.</vis_desc><think>It is fear.</think><answer>fear</answer>",
        # ^ the audio description missing: not MIGR's structure, MAO 0, MGR 0; answer 1        -> 1
        "",  # nothing                                                                          -> 0
    ]
    result = rewards(**make_batch(completions, dominant="audio"))
    assert result.columns == {
        "modality_order": [1.0, 1.0, 0.0, 0.0, 0.0],
        "modality_grounding": [1.0, 1.0, 1.0, 0.0, 0.0],
        "answer": [1.0, 0.0, 1.0, 1.0, 0.0],
    }
    assert result.total == [3.0, 2.0, 2.0, 1.0, 0.0]
    assert result.metrics["rewards/answer/mean"] == pytest.approx(0.6)
    assert result.metrics["rewards/answer/std"] == pytest.approx(math.sqrt(0.3))  # unbiased, as TRL


def test_under_migrs_set_a_malformed_completion_never_out_scores_a_well_formed_one():
    # Issue 16: R_MAO and R_MGR read part of the text, so what lay outside it was free. A well-formed audio-first
    # explanation whose think adds an unjudged sentence scores 1 + 2/3 + 1; the same without the visual
    # description, or with a shorter think outside the structure, scored 3.0 (the old rules). Now any malformed variant of an
    # explanation totals at most its answer reward (1.0), below every well-formed explanation that answers right.
    judge = TableJudge({**JUDGE.table, "The cue is the voice.": []})
    rewards = RewardSet.from_config(OmegaConf.load(CONFIGS / "migr.yaml"), judge=judge)
    aud, vis = "<aud_desc>The voice trembles.</aud_desc>", "<vis_desc>The face is blank.</vis_desc>"
    well_formed = [
        f"{aud}{vis}<think>It is fear. The cue is the voice.</think><answer>fear</answer>",
        f"{vis}{aud}<think>The cue is the voice.</think><answer>fear</answer>",  # wrong order, think unjudged
    ]
    malformed = [
        f"{aud}<think>It is fear.</think><answer>fear</answer>",  # the non-dominant description left out
        f"{aud}{vis}<think>It is fear.</think><answer>fear</answer> fear",  # stray text
        f"{aud}{vis}<think>It is fear.</think><answer>fear</answer><answer>fear</answer>",  # two answers
        f"{aud}{vis}<think>It is fear.</think>fear",  # no answer tag
        f"{aud}<vis_desc>The face is blank.<think>It is fear.</think><answer>fear</answer>",  # unclosed tag
    ]
    result = rewards(**make_batch(well_formed + malformed, dominant="audio"))
    good, bad = result.total[: len(well_formed)], result.total[len(well_formed) :]
    assert good == pytest.approx([1 + 2 / 3 + 1, 0 + 1 / 2 + 1])
    assert bad == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert max(bad) <= min(good)


def test_weights_scale_and_none_contributes_nothing():
    rewards = RewardSet([RewardSpec("modality_order", 2.0), RewardSpec("answer", 0.5)], judge=JUDGE)
    completions = [f"{GOOD}<answer>fear</answer>", f"{GOOD}<answer>fear</answer>"]
    result = rewards(**make_batch(completions, dominant=["audio", None]))
    assert result.columns["modality_order"] == [1.0, None]  # not applicable without a dominant modality
    assert result.total == [2.0 * 1.0 + 0.5 * 1.0, 0.5 * 1.0]
    assert result.metrics["rewards/modality_order/mean"] == 1.0  # mean over applicable rows only
    assert result.metrics["rewards/modality_order/applicable"] == 1.0
    assert math.isnan(result.metrics["rewards/modality_order/std"])  # one value: no spread
    assert result.metrics["rows_without_reward"] == 0.0


def test_rows_where_no_reward_applies_have_no_total_and_are_counted():
    rewards = RewardSet([RewardSpec("modality_order"), RewardSpec("answer")], judge=JUDGE)
    result = rewards(**make_batch([GOOD, GOOD], dominant=[None, None]))
    assert result.columns["modality_order"] == [None, None]
    assert result.total == [0.0, 0.0]  # answer applies (malformed: 0.0)
    result = RewardSet([RewardSpec("modality_order")], judge=JUDGE)(
        **make_batch([GOOD, GOOD], dominant=[None, None])
    )
    assert result.total == [None, None]  # nothing applies: no total (training gives it a zero advantage)
    assert result.metrics["rows_without_reward"] == 2.0
    assert math.isnan(result.metrics["rewards/modality_order/mean"])


def test_metrics_carry_what_rewards_report():
    rewards = RewardSet([RewardSpec("answer"), RewardSpec("format")])
    result = rewards(**make_batch(["<answer>fear</answer>", "junk", "<answer>xyz</answer>"]))
    assert result.metrics["rewards/answer/malformed"] == 2.0
    assert result.metrics["rewards/format/malformed"] == 3.0
    assert result.metrics["rewards/answer/errors"] == 0.0


def test_judge_goes_only_to_rewards_that_take_one():
    judge = KeywordJudge(top_k=1)
    rewards = RewardSet([RewardSpec("modality_grounding"), RewardSpec("answer")], judge=judge)
    assert rewards.rewards["modality_grounding"].judge is judge
    assert accepts(type(rewards.rewards["answer"]), "judge") is False


class Exploding:
    name = "exploding"

    def __call__(self, *, completions, **batch):
        raise ZeroDivisionError("bug in my reward")


class WrongLength:
    name = "wrong_length"

    def __call__(self, *, completions, **batch):
        return [1.0]


class NotFinite:
    name = "not_finite"

    def __call__(self, *, completions, **batch):
        return [math.nan for _ in completions]


def _registry(cls: type) -> RewardRegistry:
    """A registry whose only reward is ``cls`` from this test module."""
    ep = metadata.EntryPoint(name=cls.name, value=f"tests.test_reward_set:{cls.__name__}", group="migr.rewards")
    return RewardRegistry(entry_points=[ep])


def test_a_raising_reward_stops_the_step_by_default_naming_it():
    rewards = RewardSet([RewardSpec("exploding")], registry=_registry(Exploding))
    with pytest.raises(
        RewardError,
        match=r"reward 'exploding' \(tests.test_reward_set:Exploding\) raised ZeroDivisionError: bug in my reward",
    ):
        rewards(**make_batch(["a", "b"]))


def test_skip_policy_scores_none_warns_and_counts():
    registry = _registry(Exploding)
    rewards = RewardSet([RewardSpec("exploding")], on_error="skip", registry=registry)
    with pytest.warns(
        RewardFailedWarning, match=r"(?s)reward 'exploding' .* raised and scores None.*ZeroDivisionError"
    ):
        result = rewards(**make_batch(["a", "b"]))
    assert result.columns["exploding"] == [None, None]
    assert result.metrics["rewards/exploding/errors"] == 1.0
    assert result.metrics["rewards/exploding/applicable"] == 0.0
    assert math.isnan(result.metrics["rewards/exploding/mean"])  # missing, not 0.0: the trainer drops NaN
    assert result.total == [None, None]
    assert result.metrics["rows_without_reward"] == 2.0


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (WrongLength, r"must return a list of 2 values \(one per completion\); got 1 values"),
        (NotFinite, r"returned nan for completion 0; expected a finite float, or None"),
    ],
)
def test_contract_violations_always_raise(cls, message):
    rewards = RewardSet([RewardSpec(cls.name)], on_error="skip", registry=_registry(cls))
    with pytest.raises(RewardError, match=message):
        rewards(**make_batch(["a", "b"]))


def test_provenance_records_package_version_object_and_weight():
    rewards = RewardSet.from_config({"functions": {"answer": {"weight": 2.0}}})
    (entry,) = rewards.provenance.values()
    assert (
        entry["package"] == "migr" and entry["object"] == "rewards.answer:AnswerReward" and entry["weight"] == 2.0
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"rewards.functions must map reward names"),
        ({"functions": {"answer": {"wieght": 1}}}, r"rewards.functions.answer has unknown keys \['wieght'\]"),
        ({"functions": {"answer": {"weight": float("inf")}}}, r"rewards.functions.answer.weight must be a finite"),
        ({"functions": {"answer": None}, "on_error": "ignore"}, r"rewards.on_error must be 'raise' or 'skip'"),
    ],
)
def test_config_errors_name_the_key(config, message):
    with pytest.raises(ValueError, match=message):
        RewardSet.from_config(config)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_reward_config_builds(path):
    text = path.read_text()
    assert text.startswith("#") and "python -m src.train stage=grpo rewards=" + path.stem in text
    rewards = RewardSet.from_config(OmegaConf.load(path), judge=KeywordJudge())
    result = rewards(**make_batch(["<think>fear</think><answer>fear</answer>"]))
    assert len(result.total) == 1


def test_the_two_shipped_sets():
    migr = RewardSet.from_config(OmegaConf.load(CONFIGS / "migr.yaml"))
    r1omni = RewardSet.from_config(OmegaConf.load(CONFIGS / "r1omni.yaml"))
    assert migr.weights == {"modality_order": 1.0, "modality_grounding": 1.0, "answer": 1.0}
    assert r1omni.weights == {"format": 1.0, "answer": 1.0}
