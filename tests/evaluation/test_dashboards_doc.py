"""docs/dashboards.md names only keys the code really logs (so the documented layout cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

from src.data.labels import labels_for
from src.evaluation.breakdowns import breakdowns
from src.evaluation.figures import compute_figures, flat_figures
from tests.evaluation.conftest import record

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "dashboards.md").read_text()
TRAIN_SOURCES = "".join((REPO / name).read_text() for name in ("src/stages/sft.py", "src/stages/grpo.py"))
# GRPO's scalars are named in the step (src/rl/step.py), the loss, and the reward set's metrics
LOSS_SOURCES = "".join(
    (REPO / name).read_text()
    for name in ("src/rl/loss.py", "src/rl/advantages.py", "src/rl/step.py", "src/reward_set.py")
)
# eval tables are named in tracking.py, the plots (logged as eval/<name>) in the runner's images dict
TRACKING = "".join(
    (REPO / name).read_text() for name in ("src/evaluation/tracking.py", "src/evaluation/runner.py")
)


def documented(prefix: str) -> list[str]:
    """Backticked keys of the doc that start with ``prefix``, without ``<placeholder>`` keys and section names
    (a key that prefixes another documented key, like ``train/rewards``)."""
    keys = set(re.findall(rf"`({prefix}/[a-z0-9_/]+)`", DOC))
    sections = set(re.findall(rf"`({prefix}/[a-z0-9_/]+)/<", DOC))
    return sorted(
        key for key in keys if key not in sections and not any(other.startswith(key + "/") for other in keys)
    )


def test_every_documented_train_key_is_logged() -> None:
    keys = documented("train") + documented("val")
    assert "train/kl" in keys and "train/clip_ratio/low_mean" in keys and "train/completion_length" in keys
    # logged literally by a stage, or as f"train/{k}" over the loss statistics
    missing = [
        key
        for key in keys
        if f'"{key}"' not in TRAIN_SOURCES and f'"{key.removeprefix("train/")}"' not in LOSS_SOURCES
    ]
    assert missing == []
    assert 'f"rewards/{name}/applicable"' in LOSS_SOURCES  # train/rewards/<name>/...
    assert 'f"train/{k}"' in TRAIN_SOURCES


def test_every_documented_eval_key_is_logged() -> None:
    records = [
        record("1", "happy", "happy", judged="happy", first="audio", dominant="audio", mi_dominant="audio"),
        record("2", "sad", None, judged=None, first=None, dominant="visual", mi_dominant="audio"),
    ]
    figures = compute_figures(records, labels_for("dfew"))
    figures["attention"] = {"drift": {"all": 0.1}}
    figures["breakdowns"] = breakdowns(records, labels_for("dfew"), {"1": "audio/conflict", "2": None})
    scalars = {f"eval/{key}" for key in flat_figures(figures)}
    keys = documented("eval")
    missing = [
        key
        for key in keys
        if key not in scalars and f'"{key}"' not in TRACKING and f'"{key.removeprefix("eval/")}"' not in TRACKING
    ]
    assert missing == []
    assert {"eval/epc", "eval/dominant_first", "eval/recall/happy", "eval/attention/drift/all"} <= scalars
