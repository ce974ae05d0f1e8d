from __future__ import annotations

import csv
from pathlib import Path

import pytest

from src.data.adapters import (
    AdapterError,
    convert,
    convert_dfew,
    convert_emer,
    convert_mafw,
    dfew_samples,
    emer_samples,
    mafw_samples,
)
from src.data.adapters.__main__ import main as adapters_cli
from src.data.manifest import Reasoning, read_manifest
from src.data.openface import read_openface_csv
from tests.fixtures.media import grey_clip
from tests.fixtures.openface import row, write_csv
from tests.fixtures.recipe import DFEW_TEST, DFEW_TRAIN, EMER_ROWS, write_dfew, write_emer


def _clips(folder: Path, names: list[str]) -> None:
    for name in names:
        grey_clip(folder / name, frames=2, height=16, width=16, audio_seconds=0.1)


def _csv(path: Path, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


# --- DFEW -------------------------------------------------------------------------------------------------


@pytest.fixture
def dfew_root(tmp_path: Path) -> Path:
    """The repacked layout: label/single_{train,test}set_1.csv, clip/00001.mp4, Annotation/annotation.xlsx."""
    import openpyxl

    root = tmp_path / "DFEW"
    _csv(root / "label" / "single_trainset_1.csv", [["video_name", "label"], [1, 1], [2, 5], ["00003", 7]])
    _csv(root / "label" / "single_testset_1.csv", [["video_name", "label"], [4, 2]])
    _clips(root / "clip", ["00001.mp4", "00002.mp4", "00003.mp4", "00004.mp4"])
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(
        [
            "vote_happy",
            "vote_sad",
            "vote_neutral",
            "vote_angry",
            "vote_surprise",
            "vote_disgust",
            "vote_fear",
            "clip_name",
            "annotation",
        ]
    )
    sheet.append([7, 0, 0, 0, 3, 0, 0, "00001", 1])
    sheet.append([0, 0, 1, 0, 5, 0, 4, 2, 5])  # an unpadded clip name, as a number
    sheet.append([0, 2, 0, 0, 0, 0, 8, "00003", 7])
    (root / "Annotation").mkdir()
    book.save(root / "Annotation" / "annotation.xlsx")
    return root


def test_dfew_round_trip_with_votes(dfew_root: Path, tmp_path: Path) -> None:
    report = convert_dfew(dfew_root, tmp_path / "dfew.jsonl", fold=1)
    assert report.counts == {"train": 3, "test": 1}
    samples = {s.id: s for s in read_manifest(report.manifest)}  # media are checked on reading
    assert {i: (s.label, s.split) for i, s in samples.items()} == {
        "00001": ("happy", "train"),
        "00002": ("surprise", "train"),
        "00003": ("fear", "train"),
        "00004": ("sad", "test"),
    }
    assert samples["00001"].secondary_labels == ("surprise",)
    assert samples["00002"].secondary_labels == ("fear", "neutral")  # most votes first
    assert samples["00003"].secondary_labels == ("sad",)
    assert samples["00004"].secondary_labels == ()  # no votes row
    assert samples["00002"].extra["votes"] == {
        "happy": 0,
        "sad": 0,
        "neutral": 1,
        "angry": 0,
        "surprise": 5,
        "disgust": 0,
        "fear": 4,
    }
    assert samples["00001"].extra["fold"] == 1
    assert samples["00001"].video == (dfew_root / "clip" / "00001.mp4").resolve()


def test_dfew_min_secondary_votes(dfew_root: Path) -> None:
    samples = {s.id: s for s in dfew_samples(dfew_root, min_secondary_votes=2)[0]}
    assert samples["00002"].secondary_labels == ("fear",)  # neutral's single vote no longer counts


def test_dfew_official_layout_with_csv_votes(tmp_path: Path) -> None:
    root = tmp_path / "DFEW"
    split_dir = root / "EmoLabel_DataSplit"
    _csv(split_dir / "train(single-labeled)" / "set_2.csv", [["video_name", "label"], [10, 4]])
    _csv(split_dir / "test(single-labeled)" / "set_2.csv", [["video_name", "label"], [11, 6]])
    _clips(root / "Clip" / "original", ["00010.mp4", "00011.mp4"])
    _csv(root / "Annotation" / "annotation.csv", [[0, 0, 0, 9, 0, 1, 0, "00010", 4]])
    samples, skipped = dfew_samples(root, fold=2, val_fraction=0.0)
    assert [(s.id, s.label, s.split, s.secondary_labels) for s in samples] == [
        ("00010", "angry", "train", ("disgust",)),
        ("00011", "disgust", "test", ()),
    ]
    assert skipped == []


def test_dfew_bad_rows_raise_or_are_counted(dfew_root: Path) -> None:
    path = dfew_root / "label" / "single_trainset_1.csv"
    _csv(path, [["video_name", "label"], [1, 1], [2, 9], [5, 3]])  # unknown label id; clip 00005 missing
    with pytest.raises(AdapterError, match=r"single_trainset_1\.csv:3: unknown label '9'; expected 1\.\.7"):
        dfew_samples(dfew_root)
    samples, skipped = dfew_samples(dfew_root, on_error="skip")
    assert [s.id for s in samples] == ["00001", "00004"]
    assert [where.rsplit(":", 1)[1] for where, _ in skipped] == ["3", "4"]
    assert "clip not found" in skipped[1][1] and "00005.mp4" in skipped[1][1]


def test_dfew_layout_errors_say_where_they_looked(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    with pytest.raises(
        AdapterError,
        match=r"cannot find the DFEW train label file of fold 1; looked for:\n.*single_trainset_1\.csv",
    ):
        dfew_samples(tmp_path)
    with pytest.raises(AdapterError, match=r"DFEW has folds 1\.\.5; got fold=6"):
        dfew_samples(tmp_path, fold=6)


def test_dfew_val_fraction_is_carved_from_train(dfew_root: Path) -> None:
    _csv(
        dfew_root / "label" / "single_trainset_1.csv",
        [["video_name", "label"]] + [[i, 1] for i in range(1, 4)] + [[i, 2] for i in range(5, 8)],
    )
    _clips(dfew_root / "clip", ["00005.mp4", "00006.mp4", "00007.mp4"])
    samples, _ = dfew_samples(dfew_root, val_fraction=0.34, seed=0)
    splits = [(s.label, s.split) for s in samples]
    assert splits.count(("happy", "val")) == 1 and splits.count(("sad", "val")) == 1  # stratified
    assert sum(split == "test" for _, split in splits) == 1  # the test fold is untouched


# --- MAFW -------------------------------------------------------------------------------------------------


@pytest.fixture
def mafw_root(tmp_path: Path) -> Path:
    root = tmp_path / "MAFW"
    sets = root / "Train & Test Set" / "single" / "no_caption" / "set_1"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("00025.mp4 anger\n00026.mp4 anxious\n\n00028.mp4 helplessness\n")
    (sets / "test.txt").write_text("00027.mp4 happiness\n")
    _clips(root / "data" / "clips", ["00025.mp4", "00026.mp4", "00027.mp4", "00028.mp4"])
    return root


def test_mafw_round_trip_with_label_normalisation(mafw_root: Path, tmp_path: Path) -> None:
    report = convert_mafw(mafw_root, tmp_path / "mafw.jsonl", fold=1)
    samples = read_manifest(report.manifest)
    assert [(s.id, s.label, s.split) for s in samples] == [
        ("00025", "anger", "train"),
        ("00026", "anxiety", "train"),  # anxious -> anxiety
        ("00028", "helplessness", "train"),
        ("00027", "happiness", "test"),
    ]
    assert samples[1].extra["label_raw"] == "anxious"
    assert "label_raw" not in samples[0].extra


def test_mafw_au_dir_attaches_openface_csvs(mafw_root: Path) -> None:
    aus = mafw_root / "openface"
    aus.mkdir()
    write_csv(aus / "00026.csv", [row(1, AU20=1.5)])
    samples = {s.id: s for s in mafw_samples(mafw_root, au_dir=aus)[0]}
    assert {i: s.au_csv for i, s in samples.items() if s.au_csv} == {"00026": (aus / "00026.csv").resolve()}
    with pytest.raises(AdapterError, match=r"MAFW au_dir \(the folder of OpenFace csvs\) not found: .*nowhere"):
        mafw_samples(mafw_root, au_dir=mafw_root / "nowhere")


def test_mafw_bad_lines(mafw_root: Path) -> None:
    train = mafw_root / "Train & Test Set" / "single" / "no_caption" / "set_1" / "train.txt"
    train.write_text("00025.mp4 anger\n00026.mp4\n00028.mp4 bored\n")
    with pytest.raises(AdapterError, match=r"train\.txt:2: expected '<file name> <label>'; found '00026\.mp4'"):
        convert_mafw(mafw_root, mafw_root / "m.jsonl")
    report = convert_mafw(mafw_root, mafw_root / "m.jsonl", on_error="skip")
    assert report.counts == {"train": 1, "test": 1}
    assert "unknown label 'bored'; MAFW labels: anger, disgust, fear, happiness" in report.skipped[1][1]
    assert "skipped 2 rows (on_error=skip)" in report.summary()


# --- EMER -------------------------------------------------------------------------------------------------


def test_emer_clue_columns(tmp_path: Path) -> None:
    root = tmp_path / "EMER"
    _clips(root / "video", ["sample_1.mp4", "sample_2.avi"])
    reasons = _csv(
        root / "EMER-reason.csv",
        [
            ["name", "emotion", "visual clue", "acoustic clue", "reasoning", "subtitle"],
            [
                "sample_1",
                "worried",
                "Her brows knit, she glances away.",
                "Her voice shakes, quiet.",
                "So she is worried.",
                "I, um, don't know.",
            ],
            ["sample_2", "Happy", "A wide smile.", "", "She is happy.", ""],
        ],
    )
    report = convert_emer(reasons, tmp_path / "emer.jsonl")
    first, second = read_manifest(report.manifest)
    assert (first.id, first.label, first.dataset, first.split) == ("sample_1", "worried", "emer", "train")
    assert first.reasoning == Reasoning(
        visual="Her brows knit, she glances away.", audio="Her voice shakes, quiet.", think="So she is worried."
    )
    assert first.extra["subtitle"] == "I, um, don't know."  # other columns are kept
    assert second.video.suffix == ".avi" and second.label == "happy"
    assert second.reasoning == Reasoning(visual="A wide smile.", audio=None, think="She is happy.")


def test_emer_v2_paragraph_with_separate_labels(tmp_path: Path) -> None:
    root = tmp_path / "EMER"
    _clips(root / "videos", ["a.mp4", "b.mp4", "c.mp4"])
    reasons = _csv(
        root / "final-EMER-reason.csv",
        [
            ["name", "chinese", "english"],
            ["a", "...", "He frowns and shouts; he is angry."],
            ["b", "...", "Calm."],
            ["c", "...", "Sad."],
        ],
    )
    labels = _csv(root / "labels.csv", [["name", "discrete"], ["a", "angry"], ["b", "neutral"], ["c", "sad"]])
    with pytest.raises(AdapterError, match="no label column"):
        convert_emer(reasons, tmp_path / "emer.jsonl")
    with pytest.raises(
        AdapterError, match=r"final-EMER-reason\.csv:3: unknown label 'neutral' for clip 'b'; EMER labels"
    ):
        convert_emer(reasons, tmp_path / "emer.jsonl", labels_csv=labels)
    report = convert_emer(reasons, tmp_path / "emer.jsonl", labels_csv=labels, on_error="skip")
    samples = read_manifest(report.manifest)
    assert [(s.id, s.label) for s in samples] == [("a", "angry"), ("c", "sad")]
    assert samples[0].reasoning == Reasoning(visual=None, audio=None, think="He frowns and shouts; he is angry.")
    assert samples[0].extra == {"chinese": "..."}


def test_emer_needs_a_name_column(tmp_path: Path) -> None:
    reasons = _csv(tmp_path / "r.csv", [["clip_title", "emotion"], ["x", "sad"]])
    (tmp_path / "video").mkdir()
    with pytest.raises(AdapterError, match=r"r\.csv:1: no clip-name column"):
        convert_emer(reasons, tmp_path / "e.jsonl")


# --- dispatch and CLI -------------------------------------------------------------------------------------


def test_convert_dispatch_and_unknown_dataset(mafw_root: Path, tmp_path: Path) -> None:
    assert convert("mafw", mafw_root, tmp_path / "m.jsonl").counts == {"train": 3, "test": 1}
    with pytest.raises(AdapterError, match="no adapter for dataset 'ferv39k'; available: dfew, mafw, emer"):
        convert("ferv39k", mafw_root, tmp_path / "m.jsonl")


def test_cli(dfew_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fold1.jsonl"
    assert adapters_cli(["dfew", str(dfew_root), "--out", str(out), "--val-fraction", "0.34"]) == 0
    assert f"wrote 4 samples (train 2, val 1, test 1) to {out}" in capsys.readouterr().out
    assert len(read_manifest(out)) == 4
    assert adapters_cli(["mafw", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "error: cannot find the MAFW clip folder" in capsys.readouterr().err


# --- the paper recipe's fixtures (tests/fixtures/recipe.py) through the real adapters -----------------------


def test_the_recipe_fixtures_load_through_the_adapters(tmp_path: Path) -> None:
    dfew = write_dfew(tmp_path)
    samples, skipped = dfew_samples(dfew, fold=1, au_dir=dfew / "openface")
    assert skipped == []
    names = ("happy", "sad", "neutral", "angry")  # DFEW ids 1..4
    expected = {
        f"{number:05d}": (names[label - 1], split, frames is not None)
        for split, rows in (("train", DFEW_TRAIN), ("test", DFEW_TEST))
        for number, label, frames in rows
    }
    assert {s.id: (s.label, s.split, s.au_csv is not None) for s in samples} == expected
    for sample in samples:
        if sample.au_csv is not None:  # OpenFace's layout, read by the FAU filter's reader: 5 valid frames
            assert len(read_openface_csv(sample.au_csv).frame) == 5
    emer, skipped = emer_samples(write_emer(tmp_path))
    assert skipped == []
    assert [(s.id, s.label, s.reasoning) for s in emer] == [
        (name, label, Reasoning(visual, audio, think)) for name, label, visual, audio, think in EMER_ROWS
    ]
    assert all(s.video is not None and s.video.is_file() for s in emer)


def test_dfew_au_dir_must_exist(dfew_root: Path) -> None:
    with pytest.raises(AdapterError, match=r"DFEW au_dir \(the folder of OpenFace csvs\) not found"):
        dfew_samples(dfew_root, au_dir=dfew_root / "openface")
