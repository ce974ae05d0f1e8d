"""R_MAO (paper Eq. 1): 1 if y starts with <M> and e* is in E_m(y), else 0."""

from __future__ import annotations

import pytest

from rewards.modality_order import ModalityOrderReward
from src.judges.keywords import KeywordJudge
from tests.rewards.conftest import SingleLabelTableJudge, TableJudge

# The judge's reading of each sentence (label sets, as a multi-label classifier would give).
JUDGE = TableJudge(
    {
        "The voice trembles.": ["fear"],
        "A scream follows.": ["fear", "surprise"],
        "The face is blank.": ["neutral"],
        "Eyes go wide.": ["surprise", "fear"],
        "It is fear.": ["fear"],
    }
)
AUD_FEAR = "<aud_desc>The voice trembles. A scream follows.</aud_desc>"
AUD_NONE = "<aud_desc>The face is blank.</aud_desc>"
VIS_BLANK = "<vis_desc>The face is blank.</vis_desc>"
VIS_WIDE = "<vis_desc>Eyes go wide.</vis_desc>"
TAIL = "<think>It is fear.</think><answer>fear</answer>"


def test_equation_1_audio_dominant(batch):
    reward = ModalityOrderReward(judge=JUDGE)
    completions = [
        f"{AUD_FEAR}{VIS_BLANK}{TAIL}",  # starts with <aud_desc>, E_audio = {fear, surprise} ∋ fear -> 1
        f"{VIS_BLANK}{AUD_FEAR}{TAIL}",  # starts with <vis_desc>                                  -> 0
        f"{AUD_NONE}{VIS_WIDE}{TAIL}",  # starts right, E_audio = {neutral} ∌ fear                 -> 0
        f"\n  {AUD_FEAR}{VIS_BLANK}{TAIL}",  # leading whitespace still "starts with"              -> 1
        f"Let me think. {AUD_FEAR}{TAIL}",  # untagged opening text                                -> 0
        f"{TAIL}",  # opens with <think>                                                           -> 0
        "",  # empty                                                                                -> 0
    ]
    assert reward(**batch(completions, dominant="audio")) == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_equation_1_visual_dominant_uses_the_visual_segment(batch):
    reward = ModalityOrderReward(judge=JUDGE)
    completions = [
        f"{VIS_WIDE}{AUD_NONE}{TAIL}",  # E_visual = {surprise, fear} ∋ fear -> 1
        f"{VIS_BLANK}{AUD_FEAR}{TAIL}",  # E_visual = {neutral}; the fearful audio does not count -> 0
    ]
    assert reward(**batch(completions, dominant="visual")) == [1.0, 0.0]


def test_both_accepts_either_opening_with_the_target_in_that_segment(batch):
    reward = ModalityOrderReward(judge=JUDGE)
    completions = [
        f"{AUD_FEAR}{VIS_BLANK}{TAIL}",  # audio first, fear in audio -> 1
        f"{VIS_WIDE}{AUD_NONE}{TAIL}",  # visual first, fear in visual -> 1
        f"{VIS_BLANK}{AUD_FEAR}{TAIL}",  # visual first, fear only in the second segment -> 0
    ]
    assert reward(**batch(completions, dominant="both")) == [1.0, 1.0, 0.0]


def test_unknown_dominant_is_not_applicable(batch):
    reward = ModalityOrderReward(judge=JUDGE)
    scores = reward(**batch([f"{AUD_FEAR}{VIS_BLANK}{TAIL}"] * 2, dominant=[None, "audio"]))
    assert scores == [None, 1.0]


def test_single_label_judges_contribute_one_label_per_sentence(batch):
    # "A scream follows." is surprise for this judge: E_audio = {fear (1st sentence), surprise} still holds fear.
    judge = SingleLabelTableJudge({"The voice trembles.": "neutral", "A scream follows.": "surprise"})
    reward = ModalityOrderReward(judge=judge)
    assert reward(**batch([f"{AUD_FEAR}{VIS_BLANK}{TAIL}"], labels="fear")) == [0.0]  # E = {neutral, surprise}
    assert reward(**batch([f"{AUD_FEAR}{VIS_BLANK}{TAIL}"], labels="surprise")) == [1.0]


def test_judge_is_called_once_per_dataset_with_that_datasets_labels(batch):
    judge = TableJudge({"The voice trembles.": ["fear"]})
    reward = ModalityOrderReward(judge=judge)
    text = "<aud_desc>The voice trembles.</aud_desc><vis_desc>x</vis_desc>" + TAIL
    scores = reward(**batch([text, text, text], labels=["fear", "fear", "fear"], dataset=["dfew", "mafw", "dfew"]))
    assert scores == [1.0, 1.0, 1.0]
    assert [labels[0] for _, labels in judge.calls] == ["happy", "anger"]  # DFEW's then MAFW's label order
    assert [len(sentences) for sentences, _ in judge.calls] == [2, 1]


def test_malformed_openings_are_counted_not_raised(batch):
    logged: dict[str, float] = {}
    completions = [
        f"{AUD_FEAR}{VIS_BLANK}{TAIL}",  # fine
        f"{VIS_BLANK}{AUD_FEAR}{TAIL}",  # wrong order, not malformed
        "<aud_desc>never closed",  # malformed
        "plain text",  # malformed
        f"{AUD_FEAR}{TAIL}",  # opens right, but the visual description is missing: malformed
        f"{AUD_FEAR}{VIS_BLANK}{TAIL} fear",  # stray text after the answer: malformed
        f"{AUD_FEAR}{VIS_BLANK}<think>It is fear.</think>",  # cut off before the answer: malformed
    ]
    reward = ModalityOrderReward(judge=JUDGE)
    scores = reward(**batch(completions), log_metric=lambda k, v: logged.update({k: v}))
    assert scores == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert logged == {"malformed": 5.0}


def test_default_judge_is_the_keyword_judge(batch):
    reward = ModalityOrderReward()
    assert isinstance(reward.judge, KeywordJudge)
    text = "<aud_desc>Her voice trembles with terror.</aud_desc><vis_desc>A blank face.</vis_desc>" + TAIL
    assert reward(**batch([text])) == [1.0]


def test_bad_dominant_value_names_the_sample(batch):
    with pytest.raises(ValueError, match=r"sample 's0': `dominant` is 'face'"):
        ModalityOrderReward(judge=JUDGE)(**batch([TAIL], dominant="face"))
