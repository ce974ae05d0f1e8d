"""Breakdowns of the endpoints per cell, per opening and over well-formed explanations, against hand counts."""

from __future__ import annotations

import pytest

from src.evaluation.breakdowns import breakdowns, cell_of, flat_breakdowns
from src.evaluation.figures import compute_figures, flat_figures
from src.evaluation.report import render_report
from tests.evaluation.conftest import record

LABELS = ["happy", "sad", "angry"]
GOOD = "<aud_desc>a</aud_desc><vis_desc>b</vis_desc><think>c</think><answer>{}</answer>"
BROKEN = "<aud_desc>a</aud_desc><think>c</think><answer>{}</answer>"  # no visual description


def rec(id, label, pred, judged, first, dominant, good=True):
    text = (GOOD if good else BROKEN).format(pred or "x")
    return record(id, label, pred, judged=judged, first=first, dominant=dominant, completion=text, dataset="synth")


RECORDS = [
    #   id   label    pred     judged   opens     dominant  well-formed
    rec("1", "happy", "happy", "happy", "audio", "audio"),  # audio/conflict: right, faithful
    rec("2", "happy", "happy", "sad", "visual", "audio"),  # audio/conflict: right, wrong reasoning
    rec("3", "sad", "happy", "happy", "visual", "audio", good=False),  # audio/conflict: wrong, consistent
    rec("4", "angry", "angry", "sad", "audio", "audio", good=False),  # audio/neutral: right, wrong reasoning
    rec("5", "sad", "sad", "sad", "visual", "visual"),  # visual/conflict: right, faithful
    rec("6", "sad", None, None, "audio", "both"),  # no cell (no cue), not opening-scored: wrong, no answer
]
CELLS = {
    "1": "audio/conflict",
    "2": "audio/conflict",
    "3": "audio/conflict",
    "4": "audio/neutral",
    "5": "visual/conflict",
    "6": None,
}


def test_by_hand():
    section = breakdowns(RECORDS, LABELS, CELLS)
    assert section["well_formed"] == pytest.approx(4 / 6)
    overall = section["overall"]
    # WAR: 1, 2, 4, 5 right -> 4/6. EPC (judged = answer): 1, 3, 5 -> 3/6. FCR (judged = answer = label): 1, 5.
    # R✗/A✓ among correct: 2 and 4 of the 4 right answers.
    assert (overall["war"], overall["epc"], overall["fcr"]) == pytest.approx((4 / 6, 3 / 6, 2 / 6))
    assert overall["r_wrong_a_right_among_correct"] == pytest.approx(2 / 4)
    assert overall["eea"] == pytest.approx(2 / 6)  # judged = label: 1 and 5
    wf = overall["well_formed_only"]  # records 1, 2, 5, 6
    assert wf["n"] == 4
    assert (wf["war"], wf["epc"], wf["r_wrong_a_right_among_correct"]) == pytest.approx((3 / 4, 2 / 4, 1 / 3))

    conflict = section["by_cell"]["audio/conflict"]  # 1, 2, 3
    assert conflict["n"] == 3 and conflict["well_formed"] == pytest.approx(2 / 3)
    assert (conflict["war"], conflict["epc"], conflict["fcr"]) == pytest.approx((2 / 3, 2 / 3, 1 / 3))
    assert conflict["r_wrong_a_right_among_correct"] == pytest.approx(1 / 2)
    assert conflict["well_formed_only"]["n"] == 2 and conflict["well_formed_only"]["epc"] == pytest.approx(1 / 2)
    assert set(section["by_cell"]) == {"audio/conflict", "audio/neutral", "visual/conflict"}
    assert section["no_cell"] == 1

    # opened with the dominant modality: 1 (audio), 4 (audio), 5 (visual); other-first: 2, 3; 6 is "both"
    first, other = section["by_opening"]["dominant_first"], section["by_opening"]["other_first"]
    assert first["n"] == 3 and other["n"] == 2
    assert (first["war"], first["epc"], first["r_wrong_a_right_among_correct"]) == pytest.approx((1, 2 / 3, 1 / 3))
    assert (other["war"], other["epc"], other["r_wrong_a_right_among_correct"]) == pytest.approx((1 / 2, 1 / 2, 1))
    inside = section["by_cell_opening"]["audio/conflict"]
    assert inside["dominant_first"]["n"] == 1 and inside["other_first"]["n"] == 2


def test_flat_keys_report_and_undefined_values():
    figures = compute_figures(RECORDS, LABELS)
    figures["breakdowns"] = breakdowns(RECORDS, LABELS, CELLS)
    flat = flat_figures(figures)
    assert flat["well_formed"] == pytest.approx(4 / 6)
    assert flat["cell/audio/conflict/epc"] == pytest.approx(2 / 3)
    assert flat["cell/audio/conflict/wf/epc"] == pytest.approx(1 / 2)
    assert flat["opened/other_first/war"] == pytest.approx(1 / 2)
    assert flat["cell/audio/conflict/opened/other_first/n"] == 2
    assert flat["wf/war"] == pytest.approx(3 / 4)
    # audio/neutral's one record is malformed: no well-formed figures (undefined, left out, never 0)
    assert "cell/audio/neutral/wf/war" not in flat and flat["cell/audio/neutral/war"] == 1.0
    assert set(flat_breakdowns(figures["breakdowns"])) <= set(flat)
    report = render_report({**figures, "first_tag": None}, {"skipped": []})
    assert "## Breakdowns" in report and "| audio/conflict | 3 | 66.67 | 66.67 |" in report


def test_cell_of_reads_the_synthetic_cue():
    from src.data.manifest import Sample

    sample = Sample(
        id="a",
        label="happy",
        dataset="synth",
        split="test",
        video=None,
        audio="a.wav",
        dominant="audio",
        extra={"synth": {"cue": "conflict"}},
    )
    assert cell_of(sample) == "audio/conflict"
    assert (
        cell_of(
            Sample(
                id="b", label="happy", dataset="dfew", split="test", video=None, audio="a.wav", dominant="audio"
            )
        )
        is None
    )
