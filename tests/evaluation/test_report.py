"""report.md in the paper's table layout, and the side-by-side comparison table."""

from __future__ import annotations

import doctest

import src.evaluation.report
from src.data.labels import labels_for
from src.evaluation.figures import compute_figures, flat_figures
from src.evaluation.report import comparison_table, render_report
from tests.evaluation.conftest import record

LABELS = labels_for("dfew")
RECORDS = [
    record("1", "happy", "happy", judged="happy", first="visual", dominant="visual", judged_set=["happy"]),
    record(
        "2",
        "surprise",
        "fear",
        judged="fear",
        first="audio",
        dominant="audio",
        secondary=("fear",),
        judged_set=["fear", "surprise"],
    ),
    record(
        "3", "surprise", "surprise", judged="surprise", first="audio", dominant="audio", judged_set=["surprise"]
    ),
    record("4", "fear", "fear", judged="sad", first="visual", dominant="audio", judged_set=["sad"]),
]
RUN = {
    "model": "runs/grpo/export",
    "manifest": "data/synth/manifest.jsonl",
    "split": "test",
    "task": "reasoning",
    "temperature": 0.3,
    "max_new_tokens": 256,
    "judge": "KeywordJudge(top_k=2, related=True)",
    "explanation_mode": "explanation",
    "skipped": [
        {"sample_id": "x9", "path": "clips/x9.mp4", "reason": "unreadable", "detail": "", "where": "m.jsonl:9"}
    ],
}


def test_doctests() -> None:
    assert doctest.testmod(src.evaluation.report).failed == 0


def test_report_tables() -> None:
    report = render_report(compute_figures(RECORDS, LABELS), RUN, name="grpo")
    lines = report.splitlines()
    assert lines[0] == "# Evaluation: grpo"
    assert "- **generation**: temperature 0.3, up to 256 new tokens, prompt task reasoning" in lines
    assert "- **samples**: 4 evaluated, 1 skipped" in lines
    # Table 1: FCR 2/4 (records 1, 3), EEA 2/4, EPC 3/4, UAR (1 + 1/2 + 1) / 3, WAR 3/4
    assert "| grpo | 50.00 | 50.00 | 75.00 | 83.33 | 75.00 |" in lines
    # Table 2: record 4 is right for the wrong reason: 1 of 4 samples, 1 of 3 correct answers
    assert "| grpo | 25.00 | 33.33 |" in lines
    # Table 3: per-class recall in the paper's column order
    assert "| Method | Hap | Sad | Neu | Ang | Sur | Dis | Fea | UAR | WAR |" in lines
    assert "| grpo | 100.00 | n/a | n/a | n/a | 50.00 | n/a | 100.00 | 83.33 | 75.00 |" in lines
    assert "| share (%) | 50.00 | 50.00 | 0.00 | 0.00 | 0.00 |" in lines  # visual, audio, think, answer, none
    # records 1-3 open with their dominant modality, record 4 (audio) opens with visual
    assert (
        "Share of explanations opening with the ground-truth dominant modality: **75.00%** (over 4 samples"
        in report
    )
    # Tables 4 and 6 for the one surprise miss (predicted fear, annotators also voted fear, judge kept surprise)
    assert "### surprise: 1 misses" in lines
    assert "| # samples | 0 | 0 | 0 | 0 | 0 | 1 | 0 | 1 |" in lines  # Hap Sad Neu Ang Dis Fea Unk | in top-2
    assert "| ratio (%) | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 100.0 | 0.0 | 100.0 |" in lines
    assert "No misses of class fear." in lines
    assert "| x9 | m.jsonl:9 | clips/x9.mp4 | unreadable |" in lines
    assert "## Attention over generation" not in report  # no curves: no section


def test_comparison_table_side_by_side() -> None:
    migr = flat_figures(compute_figures(RECORDS, LABELS))
    baseline = flat_figures(
        compute_figures([record("1", "happy", "sad", judged="happy", first="visual", dominant="audio")], LABELS)
    )
    lines = comparison_table({"migr": migr, "baseline": baseline}).splitlines()
    assert lines[0].startswith(
        "| Model | WAR | UAR | EEA | EPC | FCR | R✗/A✓ all | R✗/A✓ among correct | dominant-first |"
    )
    assert lines[2] == "| migr | 75.00 | 83.33 | 50.00 | 75.00 | 50.00 | 25.00 | 33.33 | 75.00 | n/a |"
    assert lines[3] == "| baseline | 0.00 | 0.00 | 100.00 | 0.00 | 0.00 | 0.00 | n/a | 0.00 | n/a |"
