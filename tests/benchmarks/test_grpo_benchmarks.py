"""The GRPO benchmark scripts run end to end with tiny settings (so they never rot) and print their figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script} failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow
def test_grpo_vs_trl_prints_both_rates_and_their_ratio():
    out = _run("grpo_vs_trl.py", "--steps", "1", "--warmup", "1", "--max-new-tokens", "6")
    trl = re.search(rf"TRL GRPOTrainer\s+({NUMBER}) completions/s", out)
    ours = re.search(rf"ours \(src\.rl\)\s+({NUMBER}) completions/s", out)
    ratio = re.search(rf"ratio ours / TRL\s+({NUMBER})x", out)
    assert trl and ours and ratio, out
    expected = float(ours.group(1)) / float(trl.group(1))  # the ratio is of the two printed rates
    assert float(ratio.group(1)) == pytest.approx(expected, rel=0.02, abs=0.01)
    # both sides decoded up to the same budget: 6 new tokens per completion at most
    lengths = [float(x) for x in re.findall(rf"mean completion length\s+({NUMBER}) tokens", out)]
    assert len(lengths) == 2 and all(0 < length <= 6 for length in lengths), out


@pytest.mark.slow
def test_grpo_step_profile_prints_the_rollout_reward_loss_split():
    out = _run("grpo_step_profile.py", "--steps", "1", "--warmup", "0", "--max-new-tokens", "6")
    parts = {
        name: float(ms) for name, ms in re.findall(rf"^(rollout|reward|loss|step)\s+({NUMBER}) ms", out, re.M)
    }
    assert set(parts) == {"rollout", "reward", "loss", "step"}, out
    assert parts["step"] == pytest.approx(parts["rollout"] + parts["reward"] + parts["loss"], abs=0.3)
    assert "2 prompts x G=4" in out
