"""scripts/study_format.py on a hand-made study folder: shares and counts computed by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

GOOD = "<aud_desc>The voice trembles.</aud_desc><vis_desc>A blank face.</vis_desc><think>Fear.</think><answer>fear</answer>"
CROSSED = "<aud_desc>The voice trembles.</vis_desc><vis_desc>A blank face.</vis_desc><think>Fear.</think><answer>fear</answer>"
TWICE = (
    "<aud_desc>The voice trembles.</aud_desc><aud_desc>Loud.</aud_desc><think>Fear.</think><answer>fear</answer>"
)


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_rollout_shares_and_crossed_tags_counted_by_hand(tmp_path: Path) -> None:
    seed = tmp_path / "study" / "conflict" / "seed_0"
    # steps 1-3: step 1 has 1 of 2 well-formed, step 2 0 of 2, step 3 2 of 2; with --steps 1: 50% -> 100%
    rollouts = [(1, GOOD), (1, CROSSED), (2, TWICE), (2, CROSSED), (3, GOOD), (3, GOOD)]
    _write(seed / "migr_grpo" / "completions.jsonl", [{"step": s, "completion": c} for s, c in rollouts])
    # 4 test explanations: 3 malformed, 2 of them with crossed tags (the third repeats a segment)
    predictions = [GOOD, CROSSED, CROSSED, TWICE]
    _write(
        seed / "eval_migr" / "predictions.jsonl",
        [{"id": str(i), "completion": c} for i, c in enumerate(predictions)],
    )
    (seed / "eval_migr_embedding").mkdir()  # a re-judge folder is not an arm
    result = subprocess.run(
        [sys.executable, "scripts/study_format.py", str(tmp_path / "study"), "--steps", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "conflict/migr: well-formed rollouts, first -> last 1 GRPO steps: seed_0 50% -> 100%; "
        "malformed test explanations 3, with crossed description tags 2 (67%)"
    )


def test_a_missing_study_folder_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/study_format.py", str(tmp_path / "nowhere")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "nowhere: no such folder" in result.stderr
