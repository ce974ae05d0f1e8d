from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from src.data.manifest import ManifestError, Reasoning, Sample, read_manifest, write_manifest


def _write(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def _row(**fields: object) -> dict:
    return {"id": "a", "label": "happy", "dataset": "dfew", "split": "train", "video": "a.mp4", **fields}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("a.mp4", "b.mp4", "b.wav", "a.csv"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_round_trip_keeps_every_field(folder: Path) -> None:
    sample = Sample(
        id="a",
        label="fear",
        dataset="dfew",
        split="val",
        video=folder / "a.mp4",
        audio=folder / "b.wav",
        reasoning=Reasoning(visual="Wide eyes.", audio=None, think="So fear."),
        secondary_labels=("surprise",),
        dominant="visual",
        au_csv=folder / "a.csv",
        extra={"votes": {"fear": 6, "surprise": 4}, "mi": [0.1, 0.9]},
    )
    path = write_manifest([sample], folder / "m.jsonl")
    row = json.loads(path.read_text())
    assert row["video"] == "a.mp4"  # relative to the manifest's folder
    assert row["audio"] == "b.wav"
    assert row["au_csv"] == "a.csv"
    assert row["votes"] == {"fear": 6, "surprise": 4}  # extra fields sit at the top level
    assert read_manifest(path) == [sample]


def test_media_outside_the_folder_is_written_absolute(
    folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    sample = Sample(id="a", label="sad", dataset="dfew", split="test", video=folder / "a.mp4", audio=None)
    path = write_manifest([sample], elsewhere / "m.jsonl")
    assert json.loads(path.read_text())["video"] == str(folder / "a.mp4")
    assert read_manifest(path)[0].video == folder / "a.mp4"


def test_relative_paths_resolve_against_the_manifest_folder(folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "sub" / "c.mp4").write_bytes(b"x")
    path = _write(folder / "m.jsonl", [_row(video="sub/c.mp4")])
    assert read_manifest(path)[0].video == folder.resolve() / "sub" / "c.mp4"


def test_label_spelling_is_normalised_and_recorded(folder: Path) -> None:
    path = _write(folder / "m.jsonl", [_row(label="Happiness", secondary_labels=["surprised"])])
    sample = read_manifest(path)[0]
    assert sample.label == "happy"  # DFEW's spelling
    assert sample.secondary_labels == ("surprise",)
    assert sample.extra["label_raw"] == "Happiness"  # nothing lost
    write_manifest([sample], folder / "again.jsonl")
    assert read_manifest(folder / "again.jsonl")[0] == sample


def test_audio_only_and_audio_source(folder: Path) -> None:
    path = _write(folder / "m.jsonl", [_row(id="x", video=None, audio="b.wav"), _row(id="y")])
    audio_only, video = read_manifest(path)
    assert audio_only.video is None and audio_only.audio_source == folder.resolve() / "b.wav"
    assert video.audio is None and video.audio_source == folder.resolve() / "a.mp4"  # the container's track


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "label": ', "m.jsonl:2: invalid JSON"),
        ("[1, 2]", "m.jsonl:2: expected a JSON object, found list"),
        (
            json.dumps({"id": "b", "dataset": "dfew", "split": "train", "video": "a.mp4"}),
            "m.jsonl:2: missing required field(s) label",
        ),
        (
            json.dumps(_row(id="b", label="joyous")),
            "label 'joyous' is not an emotion of dataset 'dfew'; expected one of its labels (happy, sad, neutral, "
            "angry, surprise, disgust, fear) or a synonym listed in src/data/labels.py",
        ),
        (
            json.dumps(_row(id="b", dataset="ferv39k")),
            "unknown dataset 'ferv39k'; known datasets: dfew, emer, mafw, synth",
        ),
        (json.dumps(_row(id="b", split="dev")), "split must be one of train, val, test; found 'dev'"),
        (
            json.dumps(_row(id="b", dominant="text")),
            "dominant must be one of audio, visual, both or null; found 'text'",
        ),
        (json.dumps(_row()), "m.jsonl:2: duplicate id 'a' (first seen on line 1)"),
        (json.dumps(_row(id="b", video="gone.mp4")), "m.jsonl:2: sample 'b': video file not found: "),
        (
            json.dumps(_row(id="b", video=None)),
            "m.jsonl:2: no media: give a 'video' path, an 'audio' path, or both",
        ),
        (json.dumps(_row(id="b", secondary_labels=["blue"])), "unknown secondary label 'blue'"),
        (
            json.dumps(_row(id="b", reasoning={"visual": "x", "why": "y"})),
            "unknown reasoning key(s) why; allowed: visual, audio, think",
        ),
        (json.dumps(_row(id="b", reasoning="text")), "reasoning must be an object with keys visual, audio, think"),
    ],
)
def test_each_bad_row_names_file_line_and_problem(folder: Path, line: str, message: str) -> None:
    path = _write(folder / "m.jsonl", [_row(), line])
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    assert message in str(error.value)
    assert error.value.line == 2


def test_missing_media_names_the_path(folder: Path) -> None:
    path = _write(folder / "m.jsonl", [_row(au_csv="missing.csv")])
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: sample .*: au_csv file not found: .*missing\.csv"):
        read_manifest(path)
    assert read_manifest(path, check_media=False)[0].au_csv == folder.resolve() / "missing.csv"


def test_empty_and_absent_manifests(folder: Path) -> None:
    with pytest.raises(ManifestError, match="manifest is empty"):
        read_manifest(_write(folder / "m.jsonl", ["", "  "]))
    with pytest.raises(ManifestError, match="manifest file not found"):
        read_manifest(folder / "nope.jsonl")


def test_blank_lines_are_skipped_and_line_numbers_stay_true(folder: Path) -> None:
    path = _write(folder / "m.jsonl", [_row(), "", _row(id="b", split="nope")])
    with pytest.raises(ManifestError, match=r"m\.jsonl:3: split"):
        read_manifest(path)


def test_sample_is_immutable_and_picklable(folder: Path) -> None:
    sample = read_manifest(_write(folder / "m.jsonl", [_row(votes={"happy": 3})]))[0]
    with pytest.raises(TypeError):
        sample.extra["votes"] = {}  # type: ignore[index]
    assert pickle.loads(pickle.dumps(sample)) == sample  # DataLoader workers, process pools


def test_sample_needs_some_media() -> None:
    with pytest.raises(ValueError, match="neither a video nor an audio path"):
        Sample(id="a", label="sad", dataset="dfew", split="train", video=None, audio=None)


def test_extra_may_not_shadow_fields(folder: Path) -> None:
    sample = Sample(
        id="a",
        label="sad",
        dataset="dfew",
        split="train",
        video=folder / "a.mp4",
        audio=None,
        extra={"split": "x"},
    )
    with pytest.raises(ValueError, match="extra keys split shadow manifest fields"):
        write_manifest([sample], folder / "m.jsonl")
