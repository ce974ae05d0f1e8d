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


def test_anything_but_migrs_structure_scores_zero(batch):
    reward = ModalityGroundingReward(judge=JUDGE)
    completions = [
        f"{VIS}{THINK}{ANS}",  # audio dominant, audio description missing
        f"{AUD}{THINK}{ANS}",  # the non-dominant description missing (S_m itself complete)
        f"{AUD}{VIS}{ANS}",  # think missing
        f"{AUD}{VIS}{THINK}",  # cut off before the answer
        f"{AUD}{VIS}{THINK}{ANS} fear",  # stray text after the answer
        f"{AUD}{VIS}{THINK}{ANS}{ANS}",  # two answers
        "<aud_desc>   </aud_desc><vis_desc>The face is blank.</vis_desc>" + THINK + ANS,  # blank audio
        "",  # empty
    ]
    assert reward(**batch(completions, dominant="audio")) == [0.0] * len(completions)


def test_leaving_a_description_out_never_scores_higher(batch):
    # the reward hack the old rules allowed: drop the non-dominant description that honestly says "neutral"
    reward = ModalityGroundingReward(judge=JUDGE)
    vis_neutral = "<vis_desc>The face is blank.</vis_desc>"
    aud_fear = "<aud_desc>The voice trembles.</aud_desc>"
    think_fear = "<think>It is fear.</think>"
    full = f"{aud_fear}{vis_neutral}{think_fear}{ANS}"
    without_visual = f"{aud_fear}{think_fear}{ANS}"
    think_only = f"{think_fear}{ANS}"
    scores = reward(**batch([full, without_visual, think_only], dominant="both"))
    assert scores == [2 / 3, 0.0, 0.0]
    scores = reward(**batch([full, without_visual], dominant="audio"))
    assert scores == [1.0, 0.0]  # S_audio of both is {trembles, It is fear}: only the structure differs


def test_multi_label_counts_a_sentence_when_the_target_is_in_its_set(batch):
    reward = ModalityGroundingReward(judge=JUDGE, multi_label=True)
    # audio: trembles {fear} ✓, fast {surprise, fear} ✓, It is fear {fear} ✓, cue {} ✗ -> 3/4
    assert reward(**batch([f"{AUD}{VIS}{THINK}{ANS}"], dominant="audio")) == [3 / 4]


def test_not_applicable_without_dominant_and_malformed_counted(batch):
    logged: dict[str, float] = {}
    reward = ModalityGroundingReward(judge=JUDGE)
    completions = [f"{AUD}{VIS}{THINK}{ANS}", f"{AUD}{ANS}", f"{AUD}{THINK}{ANS}", "junk"]
    scores = reward(
        **batch(completions, dominant=["audio", "audio", None, "visual"]), log_metric=logged.__setitem__
    )
    assert scores == [2 / 4, 0.0, None, 0.0]
    assert logged == {"malformed": 2.0}  # not applicable without a dominant modality: not counted


def test_nested_tags_are_malformed_and_never_judged(batch):
    judge = TableJudge({"The voice trembles.": ["fear"], "It is fear.": ["fear"]})
    reward = ModalityGroundingReward(judge=judge)
    text = f"<aud_desc><vis_desc>The voice trembles.</vis_desc></aud_desc>{THINK}{ANS}"
    assert reward(**batch([text], dominant="audio")) == [0.0]
    assert judge.calls == []


def test_label_outside_dataset_fails_with_sample_id(batch):
    with pytest.raises(ValueError, match="sample 's0'"):
        ModalityGroundingReward(judge=JUDGE)(**batch([f"{AUD}{VIS}{THINK}{ANS}"], labels="worried"))
