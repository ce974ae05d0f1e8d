"""Every installed reward, exercised on good and malformed completions: one float-or-None per completion."""

from __future__ import annotations

import doctest
import importlib
import math
import pkgutil

import pytest

import rewards
from rewards.base import Reward
from src.judges.keywords import KeywordJudge
from src.registry import available_rewards
from src.reward_set import build_reward
from tests.rewards.conftest import make_batch

GOOD = (
    "<aud_desc>The voice trembles.</aud_desc>\n<vis_desc>Eyes go wide.</vis_desc>\n"
    "<think>The trembling voice shows fear.</think>\n<answer>fear</answer>"
)
COMPLETIONS = [
    GOOD,
    "<think>The voice shows fear.</think><answer>fear</answer>",  # R1-Omni structure
    "",  # empty text
    "   \n",  # whitespace only
    "The person looks scared.",  # no tags at all
    "<aud_desc>The voice trembles.",  # unclosed tag
    "<answer>zorbly</answer>",  # unknown emotion word
    "<vis_desc><aud_desc>nested</aud_desc></vis_desc><think>x</think><answer>fear</answer>",  # nested tags
    "<think>a</think><think>b</think><answer>fear</answer><answer>sad</answer>",  # duplicated tags
    "<answer>fear</answer>" * 50,  # repeated
    "</think></answer><aud_desc>",  # stray closing tags
    "<aud_desc>Ünïcödé… 😨 terrified!</aud_desc><think>😱</think><answer>Fear</answer>",  # non-ASCII
]
DOMINANT = ["audio", "visual", "both", None] * 3


@pytest.mark.parametrize("name", available_rewards())
def test_every_reward_returns_one_float_or_none_per_completion(name):
    reward = build_reward(name, judge=KeywordJudge())
    assert isinstance(reward, Reward)
    assert reward.name == name
    logged: dict[str, float] = {}
    scores = reward(**make_batch(COMPLETIONS, dominant=DOMINANT), log_metric=logged.__setitem__)
    assert isinstance(scores, list)
    assert len(scores) == len(COMPLETIONS)
    for score in scores:
        assert score is None or (isinstance(score, float) and math.isfinite(score))
    assert all(isinstance(value, float) for value in logged.values())


@pytest.mark.parametrize("name", available_rewards())
def test_every_reward_handles_an_empty_batch(name):
    reward = build_reward(name, judge=KeywordJudge())
    assert reward(**make_batch([])) == []


def _reward_modules() -> list[str]:
    return sorted(f"rewards.{m.name}" for m in pkgutil.iter_modules(rewards.__path__))


@pytest.mark.parametrize("module", _reward_modules())
def test_docstring_examples_run(module):
    # rewards/base.py's Protocol example and each reward's example are part of the documentation.
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
