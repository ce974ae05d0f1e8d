"""The FLOP counts behind docs/performance.md's table, checked against counts done by hand."""

from __future__ import annotations

import importlib.util

import pytest

from tests.helpers import REPO


def _profile_stage():
    spec = importlib.util.spec_from_file_location("profile_stage", REPO / "benchmarks" / "profile_stage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tiny_llm_flops_are_the_hand_count() -> None:
    flops = _profile_stage().component_flops("tiny", 40, 60)
    # tiny Qwen2: hidden 128, 2 layers, 4 heads x 32, 2 KV heads, MLP 384, vocab 2048 (tied head still a matmul)
    per_layer = 128 * (128 + 64 + 64 + 128) + 3 * 128 * 384  # q, k, v, o + gate, up, down
    weights = 2 * per_layer + 128 * 2048
    prompt = 32 + 50 + 40  # video + audio placeholders + text

    def forward(tokens: int) -> int:  # 2 FLOPs per multiply-add; QK^T and AV over all tokens, every layer
        return 2 * weights * tokens + 2 * 2 * 2 * tokens * tokens * 128

    assert flops["prompt"] == prompt
    assert flops["llm/prompt"] == forward(prompt)
    assert flops["llm/answer"] == forward(prompt + 60) - forward(prompt)


def test_step_shares_follow_the_documented_formulas() -> None:
    counts = {"towers/vision": 1.0, "towers/audio": 1.0, "towers/bert": 0.0, "projectors": 1.0}
    shares = _profile_stage().flop_shares({**counts, "llm/prompt": 3.0, "llm/answer": 1.0}, generations=4)
    assert shares["forward"] == pytest.approx(2 / (2 + 1 + 3))
    assert shares["sft"] == pytest.approx(2 / (2 + 3 * (1 + 3 + 1)))  # backward = 2x forward, towers frozen
    assert shares["grpo"] == pytest.approx(2 / (2 + 5 * (1 + 3 + 4 * 1)))  # rollout + reference + policy fwd/bwd
