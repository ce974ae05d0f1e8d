from __future__ import annotations

from rewards.format import FormatReward, R1OmniFormatReward

VIS = "<vis_desc>Brows raised.</vis_desc>"
AUD = "<aud_desc>A sharp gasp.</aud_desc>"
THINK = "<think>Surprise.</think>"
ANS = "<answer>surprise</answer>"


def test_migr_format(batch):
    completions = [
        f"{VIS}\n{AUD}\n{THINK}\n{ANS}",  # visual first
        f"{AUD}{VIS}{THINK}{ANS}",  # audio first, no newlines
        f"  {AUD}\n{VIS}\n{THINK}\n{ANS}\n",  # surrounding whitespace is fine
        f"{VIS}{THINK}{ANS}",  # a description is missing
        f"{THINK}{ANS}",  # R1-Omni structure
        f"{VIS}{AUD}{ANS}{THINK}",  # answer not last
        f"{VIS}{AUD}{THINK}{ANS} extra",  # trailing text
        f"Sure! {VIS}{AUD}{THINK}{ANS}",  # leading text
        f"{VIS}{VIS}{AUD}{THINK}{ANS}",  # duplicated description
        f"{VIS}{AUD}<think><think>x</think></think>{ANS}",  # nested think
        f"<vis_desc></vis_desc>{AUD}{THINK}{ANS}",  # empty description
        f"{VIS}{AUD}{THINK}<answer>surprise",  # unclosed answer
        "",  # empty text
    ]
    expected = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert FormatReward()(**batch(completions)) == expected


def test_r1omni_format_is_a_full_match(batch):
    completions = [
        f"{THINK}{ANS}",  # the R1-Omni structure
        f"{THINK}\n  \n{ANS}",  # whitespace between the two
        "<think>multi\nline</think><answer>x</answer>",  # dot matches newlines
        f"{VIS}{AUD}{THINK}{ANS}",  # MIGR structure is not R1-Omni's
        f"{THINK}{ANS}\n",  # trailing newline: no full match (as R1-Omni)
        f"{ANS}{THINK}",  # wrong order
        "",  # empty
    ]
    assert R1OmniFormatReward()(**batch(completions)) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_format_rewards_count_every_zero_as_malformed(batch):
    logged: dict[str, float] = {}
    FormatReward()(**batch([f"{VIS}{AUD}{THINK}{ANS}", "", "x"]), log_metric=lambda k, v: logged.update({k: v}))
    assert logged == {"malformed": 2.0}
