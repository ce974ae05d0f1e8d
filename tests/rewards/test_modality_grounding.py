"""R_MGR (paper Eq. 2): fraction of S_m(y) (dominant description + think sentences) judged as e*."""

from __future__ import annotations

import pytest

from rewards.modality_grounding import ModalityGroundingReward
from tests.rewards.conftest import TableJudge

JUDGE = TableJudge(
    {
        "The voice trembles.": ["fear"],
        "Words come fast.": ["surprise", "fear"],
        "The face is blank.": ["neutral"],
        "Eyes go wide.": ["fear"],
        "It is fear.": ["fear"],
        "The cue is the voice.": [],
    }
)
AUD = "<aud_desc>The voice trembles. Words come fast.</aud_desc>"  # fear, surprise (top set: surprise, fear)
VIS = "<vis_desc>The face is blank. Eyes go wide.</vis_desc>"  # neutral, fear
THINK = "<think>It is fear. The cue is the voice.</think>"  # fear, None
ANS = "<answer>fear</answer>"


def test_equation_2_by_dominant_modality(batch):
    reward = ModalityGroundingReward(judge=JUDGE)
    text = f"{AUD}{VIS}{THINK}{ANS}"
    scores = reward(**batch([text, text, text], dominant=["audio", "visual", "both"]))
    # audio:  S = {trembles: fear, fast: surprise, It is fear: fear, cue: -}            -> 2/4
    # visual: S = {blank: neutral, wide: fear, It is fear: fear, cue: -}               -> 2/4
    # both:   S = visual (2) + audio (2) + think (2) sentences, fear in 4 of them      -> 3/6
    assert scores == [2 / 4, 2 / 4, 3 / 6]


def test_a_missing_segment_counts_as_one_ungrounded_sentence(batch):
    reward = ModalityGroundingReward(judge=JUDGE)
    completions = [
        f"{VIS}{THINK}{ANS}",  # audio dominant, audio segment missing: think (fear, -) + missing -> 1/3
        f"{AUD}{VIS}{ANS}",  # think missing: audio (fear, surprise) + missing -> 1/3
        f"{VIS}{ANS}",  # neither the audio description nor think: 0/2
        "",  # empty -> 0
        "<aud_desc>   </aud_desc><think>It is fear.</think>",  # blank audio: think (fear) + missing -> 1/2
    ]
    assert reward(**batch(completions, dominant="audio")) == [1 / 3, 1 / 3, 0.0, 0.0, 1 / 2]


def test_leaving_a_description_out_never_scores_higher(batch):
    # the reward hack the old rule allowed: drop the non-dominant description that honestly says "neutral"
    reward = ModalityGroundingReward(judge=JUDGE)
    vis_neutral = "<vis_desc>The face is blank.</vis_desc>"
    aud_fear = "<aud_desc>The voice trembles.</aud_desc>"
    think_fear = "<think>It is fear.</think>"
    full = f"{aud_fear}{vis_neutral}{think_fear}{ANS}"
    without_visual = f"{aud_fear}{think_fear}{ANS}"
    think_only = f"{think_fear}{ANS}"
    scores = reward(**batch([full, without_visual, think_only], dominant="both"))
    assert scores == [2 / 3, 2 / 3, 1 / 3]
    assert scores[1] <= scores[0] and scores[2] <= scores[0]


def test_multi_label_counts_a_sentence_when_the_target_is_in_its_set(batch):
    reward = ModalityGroundingReward(judge=JUDGE, multi_label=True)
    # audio: trembles {fear} ✓, fast {surprise, fear} ✓, It is fear {fear} ✓, cue {} ✗ -> 3/4
    assert reward(**batch([f"{AUD}{VIS}{THINK}{ANS}"], dominant="audio")) == [3 / 4]


def test_not_applicable_without_dominant_and_malformed_counted(batch):
    logged: dict[str, float] = {}
    reward = ModalityGroundingReward(judge=JUDGE)
    completions = [f"{AUD}{THINK}{ANS}", f"{AUD}{ANS}", f"{AUD}{THINK}{ANS}", "junk"]
    scores = reward(
        **batch(completions, dominant=["audio", "audio", None, "visual"]), log_metric=logged.__setitem__
    )
    assert scores == [2 / 4, 1 / 3, None, 0.0]
    assert logged == {"malformed": 2.0}  # think missing; visual description and think missing


def test_nested_tags_are_stripped_before_judging(batch):
    judge = TableJudge({"The voice trembles.": ["fear"]})
    reward = ModalityGroundingReward(judge=judge)
    text = "<aud_desc><vis_desc>The voice trembles.</vis_desc></aud_desc>"
    assert reward(**batch([text], dominant="audio")) == [1 / 2]  # grounded; <think> missing: one ungrounded
    assert judge.calls[0][0] == ["The voice trembles."]


def test_label_outside_dataset_fails_with_sample_id(batch):
    with pytest.raises(ValueError, match="sample 's0'"):
        ModalityGroundingReward(judge=JUDGE)(**batch([f"{AUD}{THINK}"], labels="worried"))
