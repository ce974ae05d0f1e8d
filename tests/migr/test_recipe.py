from __future__ import annotations

from pathlib import Path

import pytest

from src.data.manifest import Reasoning, Sample
from src.migr.recipe import NEUTRAL_AUDIO, read_label, select_new_clips
from tests.migr.test_fau import row, write_csv


def clip(tmp_path: Path, name: str, label: str, **aus: float) -> Sample:
    csv = write_csv(tmp_path / f"{name}.csv", [row(1), row(2, **aus), row(3)])
    return Sample(name, label, "dfew", "train", tmp_path / f"{name}.mp4", None, au_csv=csv)


def test_new_matching_clips_are_kept_checked_and_merged(tmp_path: Path) -> None:
    emer = [Sample("e1", "happy", "dfew", "train", tmp_path / "e1.mp4", None, Reasoning("v", "a", "happy"))]
    candidates = [
        clip(tmp_path, "e1", "happy", AU06=2.0, AU12=3.0),  # already an EMER row
        clip(tmp_path, "d1", "happy", AU06=2.0, AU12=3.0),  # matches at its peak frame
        clip(tmp_path, "d2", "sad", AU06=2.0, AU12=3.0),  # the face shows happiness: FAU mismatch
    ]
    selection = select_new_clips(emer, candidates)
    # hand-computed: 3 candidates, 1 in EMER, of 2 fresh 1 kept by FAU, 1 rejected; the judge keeps it
    assert selection.counts == {
        "candidates": 3, "in_emer": 1, "fau_kept": 1, "fau_rejected": 1, "judge_rejected": 0, "new": 1, "emer": 1, "merged": 2,
    }  # fmt: skip
    assert [sample.id for sample in selection.merged] == ["e1", "d1"]
    assert selection.new[0].reasoning.audio == NEUTRAL_AUDIO


def test_judge_reads_the_label_and_unwired_sources_fail() -> None:
    assert read_label(Reasoning(think="so the emotion is sad."), "dfew") == "sad"
    assert read_label(Reasoning(think="happy or sad."), "dfew") is None
    with pytest.raises(NotImplementedError, match=r"recipe\.source='model'"):
        select_new_clips([], [], source="model")
