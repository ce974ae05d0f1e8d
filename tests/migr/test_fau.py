"""FAU filter: the OpenFace reader, frame aggregation, every decision of the Emotion-AU table, the filter."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from src.data.labels import emotion_forms, labels_for
from src.data.manifest import Reasoning, Sample
from src.data.openface import OPENFACE_INTENSITY_AUS, OPENFACE_PRESENCE_AUS
from src.data.synth.au_csv import write_au_csv
from src.data.synth.face import au_track
from src.data.synth.spec import AU_INTENSITY, AU_PROTOTYPES
from src.migr.fau import (
    EMOTION_AU_TABLE,
    AUSummary,
    EmotionPrototype,
    NoFaceError,
    OpenFaceError,
    aggregate,
    au_emotions,
    fau_filter,
    fau_reasoning,
    label_prototype,
    match_label,
    read_openface_columns,
    read_openface_csv,
    table_label,
)
from tests.fixtures.openface import HEADER, row, write_csv


def summary(**aus: float) -> AUSummary:
    """A clip whose listed AUs are present at those mean intensities (AU28: presence only); the rest absent."""
    return AUSummary(
        present=frozenset(aus),
        presence={au: float(au in aus) for au in OPENFACE_PRESENCE_AUS},
        intensity={au: aus.get(au, 0.0) for au in OPENFACE_INTENSITY_AUS},
        frames=10,
        method="mean",
    )


# --- reading OpenFace csv files ----------------------------------------------------------------------------


def test_reads_openface_rows_and_drops_frames_without_face(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [row(1, AU12=2.5), row(2, success=0), row(3, AU12=3.5, AU28=1)])
    frames = read_openface_csv(path)
    assert frames.rows == 3 and frames.dropped == 1  # the success == 0 row is excluded and counted
    assert frames.frame.tolist() == [1, 3]
    assert frames.intensity["AU12"].tolist() == [2.5, 3.5]
    assert frames.presence["AU28"].tolist() == [False, True]  # AU28 has a presence column only
    assert "AU28" not in frames.intensity
    assert len(frames.intensity) == 17 and len(frames.presence) == 18


def test_reader_ignores_other_columns_and_accepts_float_flags(tmp_path: Path) -> None:
    header = [*HEADER, "gaze_0_x", "x_0"]  # OpenFace also writes gaze, pose and landmarks
    cells = row(1, AU06=1.5)
    cells[HEADER.index("AU06_c")] = "1.00"  # some OpenFace builds write flags as floats
    path = write_csv(tmp_path / "a.csv", [[*cells, "0.1", "-3.5"]], header)
    frames = read_openface_csv(path)
    assert frames.presence["AU06"].tolist() == [True] and frames.intensity["AU06"].tolist() == [1.5]
    columns = read_openface_columns(path)  # the general reader: every column by stripped name
    assert list(columns)[-2:] == ["gaze_0_x", "x_0"] and columns["x_0"].tolist() == [-3.5]


def test_reader_errors_name_file_line_and_column(tmp_path: Path) -> None:
    header = [name for name in HEADER if name != "AU12_r"]
    path = write_csv(tmp_path / "missing.csv", [], header)
    with pytest.raises(OpenFaceError, match=re.escape(f"{path}:1: missing OpenFace column(s) AU12_r;")):
        read_openface_csv(path)

    bad = row(2)
    bad[HEADER.index("AU06_r")] = "abc"
    path = write_csv(tmp_path / "text.csv", [row(1), bad])
    with pytest.raises(OpenFaceError, match=re.escape(f"{path}:3: column AU06_r holds 'abc'; expected a finite")):
        read_openface_csv(path)

    bad = row(1)
    bad[HEADER.index("AU20_r")] = "nan"
    path = write_csv(tmp_path / "nan.csv", [bad])
    with pytest.raises(OpenFaceError, match=re.escape(f"{path}:2: column AU20_r holds 'nan'")):
        read_openface_csv(path)

    bad = row(1)
    bad[HEADER.index("AU04_c")] = "0.5"
    path = write_csv(tmp_path / "flag.csv", [bad])
    with pytest.raises(OpenFaceError, match=re.escape(f"{path}:2: column AU04_c holds '0.5'; expected 0 or 1")):
        read_openface_csv(path)

    bad = row(3)
    bad[HEADER.index("AU01_r")] = ""
    path = tmp_path / "blank.csv"
    path.write_text("\n".join([", ".join(HEADER), ", ".join(row(1)), "", ", ".join(bad)]) + "\n")
    with pytest.raises(
        OpenFaceError, match=re.escape(f"{path}:4: column AU01_r holds ''")
    ):  # blank line 3 counted
        read_openface_csv(path)

    path = write_csv(tmp_path / "short.csv", [row(1)[:-1]])
    with pytest.raises(OpenFaceError, match=re.escape(f"{path}:2: expected 40 cells like the header, found 39")):
        read_openface_csv(path)

    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(OpenFaceError, match="empty AU csv; expected an OpenFace header row"):
        read_openface_csv(tmp_path / "empty.csv")
    with pytest.raises(OpenFaceError, match="cannot read the AU csv"):
        read_openface_csv(tmp_path / "absent.csv")


def test_no_valid_frame_is_a_no_face_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [row(1, success=0), row(2, success=0)])
    with pytest.raises(
        NoFaceError, match=r"no frame with a detected face \(all 2 rows have success == 0\)"
    ) as info:
        read_openface_csv(path)
    assert info.value.rows == 2
    with pytest.raises(NoFaceError, match=r"\(no data rows\)"):
        read_openface_csv(write_csv(tmp_path / "b.csv", []))


# --- aggregation over frames -------------------------------------------------------------------------------


def test_mean_aggregation(tmp_path: Path) -> None:
    rows = [row(1, AU12=4.0, AU06=3.0), row(2, AU12=2.0), row(3, AU12=3.0), row(4), row(5, success=0, AU06=5.0)]
    result = aggregate(read_openface_csv(write_csv(tmp_path / "a.csv", rows)))
    assert result.presence["AU12"] == 0.75 and result.presence["AU06"] == 0.25  # of the 4 valid frames
    assert result.present == {"AU12"}  # AU06 is on in only a quarter of the frames (< 0.5)
    assert result.intensity["AU12"] == 2.25 and result.intensity["AU06"] == 0.75  # means over valid frames
    assert aggregate(read_openface_csv(write_csv(tmp_path / "a.csv", rows)), presence_rate=0.25).present == {
        "AU12",
        "AU06",
    }
    assert result.frames == 4 and result.peak_frame is None


def test_peak_aggregation_takes_the_frame_with_most_frequent_au_intensity(tmp_path: Path) -> None:
    rows = [row(1, AU12=2.0, AU06=1.0), row(2, AU12=3.0, AU01=4.5), row(3, AU12=3.5, AU06=1.0), row(4, AU12=1.0)]
    result = aggregate(read_openface_csv(write_csv(tmp_path / "a.csv", rows)), method="peak")
    # AU12 (4/4 frames) and AU06 (2/4) are frequent; AU01 (1/4) is not, so frame 2's AU01 does not count.
    assert result.peak_frame == 3
    assert result.present == {"AU12", "AU06"} and result.intensity["AU12"] == 3.5


def test_aggregation_arguments_are_checked(tmp_path: Path) -> None:
    frames = read_openface_csv(write_csv(tmp_path / "a.csv", [row(1)]))
    with pytest.raises(ValueError, match=r"presence_rate must be in \(0, 1\]; got 0"):
        aggregate(frames, presence_rate=0)
    with pytest.raises(ValueError, match="method must be 'mean' or 'peak'; got 'median'"):
        aggregate(frames, method="median")  # type: ignore[arg-type]


# --- the Emotion-AU table ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aus", "expected"),
    [
        ({"AU06": 2.0, "AU12": 3.0}, ["happy"]),  # 2 of 3 AUs, mean (2 + 3 + 0) / 3 = 1.67
        ({"AU06": 2.0, "AU12": 3.0, "AU14": 2.0}, ["happy", "contempt"]),  # AU12 + AU14 also half-fill contempt
        ({"AU01": 2.0, "AU04": 2.0, "AU15": 2.0}, ["sad"]),  # 3 of 4; AU15 without AU09 is no disgust
        ({"AU02": 3.0, "AU05": 3.0}, ["surprise"]),  # 2 of 4 is half; fear needs 4 of 7
        ({"AU01": 3.0, "AU02": 3.0, "AU05": 3.0, "AU26": 3.0}, ["surprise", "fear"]),  # surprise is 4 of fear's 7
        ({"AU04": 3.0, "AU07": 3.0, "AU23": 3.0}, ["angry"]),  # 3 of 6, mean 1.5
        ({"AU10": 2.0, "AU17": 2.0}, ["contempt"]),  # 2 of 4, mean 1.0; angry would need 3 of 6
        ({"AU28": 1.0, "AU20": 1.0}, ["worried"]),  # AU28 counts by presence; intensity is AU20's alone
        ({"AU09": 3.0, "AU15": 2.0}, ["disgust"]),  # FACS disgust: nose wrinkle + lip corner depressor
        ({"AU15": 3.0, "AU17": 3.0}, []),  # 2 of disgust's 3 but no AU09 (required): a pout, not disgust
        ({"AU28": 1.0}, []),  # half of worried present, but AU20 intensity 0 < 0.8
        ({"AU06": 0.5, "AU12": 0.5}, []),  # present but too faint: mean 0.33 < 0.8
        ({"AU01": 4.0}, []),  # one AU is less than half of any prototype
        ({}, []),  # neutral face
    ],
)
def test_each_emotion_of_the_table(tmp_path: Path, aus: dict[str, float], expected: list[str]) -> None:
    rows = [row(1, **aus), row(2, success=0, AU09=5.0, AU15=5.0), row(3, **aus)]  # the faceless frame is ignored
    assert list(au_emotions(aggregate(read_openface_csv(write_csv(tmp_path / "clip.csv", rows))))) == expected
    assert list(au_emotions(summary(**aus))) == expected  # the same decision on the aggregate directly


def test_a_full_fear_face_shows_its_sub_prototypes_ranked_below_fear() -> None:
    fear = dict.fromkeys(("AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"), 2.0)
    evidence = au_emotions(summary(**fear))
    # fear 7/7; surprise 4/4 (mean 2); angry 3/6 (1.0); sad 2/4 (1.0, name order after angry); worried 1/2 (2.0)
    assert list(evidence) == ["fear", "surprise", "angry", "sad", "worried"]
    assert (
        evidence["surprise"].present == ("AU01", "AU02", "AU05", "AU26") and evidence["surprise"].intensity == 2.0
    )
    assert evidence["worried"].strength == (1, 2.0)


def test_thresholds_are_keyword_arguments() -> None:
    face = summary(AU06=2.0, AU12=3.0)  # happy: 2 of 3 present, mean 1.67
    assert list(au_emotions(face, min_present=0.75)) == []  # 2/3 < 0.75
    assert list(au_emotions(face, intensity=2.0)) == []  # 1.67 < 2.0
    assert list(au_emotions(face, intensity=1.6)) == ["happy"]


def test_a_table_au_without_column_is_an_error() -> None:
    table = {"disgust": EmotionPrototype(("AU09", "AU16"))}
    with pytest.raises(
        ValueError, match="emotion 'disgust' of the AU table needs AU16, which the AU csv has no _c"
    ):
        au_emotions(summary(AU09=3.0), table)


@pytest.mark.parametrize(
    ("emotion", "dataset", "label"),
    [
        ("happy", "dfew", "happy"),
        ("happy", "mafw", "happiness"),  # named through normalize_label
        ("angry", "mafw", "anger"),
        ("worried", "mafw", "anxiety"),  # our explicit override
        ("worried", "dfew", None),  # no DFEW class: reported, ignored
        ("contempt", "dfew", None),
        ("contempt", "mafw", "contempt"),
        ("fear", "emer", None),  # EMER has five classes
        ("worried", "emer", "worried"),
        ("disgust", "synth", "disgust"),
    ],
)
def test_table_emotions_are_named_per_dataset(emotion: str, dataset: str, label: str | None) -> None:
    assert table_label(emotion, dataset) == label


def test_labels_without_prototype() -> None:
    assert label_prototype("anxiety", "mafw") == "worried"
    assert label_prototype("helplessness", "mafw") is None  # rejected as no_prototype by the filter
    assert label_prototype("disappointment", "mafw") is None
    assert [label_prototype(label, "dfew") for label in labels_for("dfew") if label != "neutral"] == [
        "happy", "sad", "angry", "surprise", "disgust", "fear",
    ]  # fmt: skip


# --- matching the label ------------------------------------------------------------------------------------

SURPRISE = {"AU01": 3.0, "AU02": 3.0, "AU05": 3.0, "AU26": 3.0}  # shows surprise and fear
SMILE = {"AU06": 2.0, "AU12": 3.0, "AU14": 2.0}  # shows happy and contempt


@pytest.mark.parametrize(
    ("aus", "label", "dataset", "status"),
    [
        ({"AU06": 2.0, "AU12": 3.0}, "happy", "dfew", "match"),  # exactly {happy}
        (SMILE, "happy", "dfew", "match"),  # contempt is no DFEW label: ignored
        (SMILE, "happiness", "mafw", "ambiguous"),  # MAFW has contempt: two named emotions
        (SURPRISE, "surprise", "dfew", "ambiguous"),  # surprise and fear both shown
        (SURPRISE, "fear", "dfew", "ambiguous"),
        (SURPRISE, "sad", "dfew", "mismatch"),  # the label is not shown at all
        ({}, "neutral", "dfew", "match"),  # nothing shown
        ({}, "happy", "dfew", "mismatch"),
        ({"AU06": 2.0, "AU12": 3.0}, "neutral", "dfew", "mismatch"),
        ({"AU10": 2.0, "AU17": 2.0}, "neutral", "dfew", "match"),  # contempt only: nothing DFEW can name
        ({"AU28": 1.0, "AU20": 1.0}, "anxiety", "mafw", "match"),  # worried is MAFW's anxiety
        ({"AU28": 1.0, "AU20": 1.0}, "worried", "emer", "match"),
    ],
)
def test_exact_rule(aus: dict[str, float], label: str, dataset: str, status: str) -> None:
    assert match_label(au_emotions(summary(**aus)), label, dataset).status == status


@pytest.mark.parametrize(
    ("aus", "label", "tie_margin", "status"),
    [
        (SURPRISE, "surprise", 0.25, "match"),  # 4 AUs each; surprise mean 3.0 beats fear's 1.71
        (SURPRISE, "fear", 0.25, "mismatch"),
        (dict.fromkeys(("AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"), 2.0), "fear", 0.25, "match"),
        ({"AU06": 2.0, "AU12": 2.0, "AU01": 2.0, "AU04": 2.0}, "happy", 0.25, "match"),  # 2 AUs each: 1.33 > 1.0
        ({"AU06": 2.0, "AU12": 2.0, "AU01": 2.0, "AU04": 2.0}, "happy", 0.5, "ambiguous"),  # within the margin
        ({"AU06": 2.0, "AU12": 2.0, "AU01": 2.0, "AU04": 2.0}, "sad", 0.5, "ambiguous"),
        ({"AU06": 2.0, "AU12": 2.0, "AU01": 2.0, "AU04": 2.0}, "sad", 0.25, "mismatch"),
        ({}, "neutral", 0.25, "match"),
        ({}, "angry", 0.25, "mismatch"),
    ],
)
def test_strongest_rule(aus: dict[str, float], label: str, tie_margin: float, status: str) -> None:
    verdict = match_label(au_emotions(summary(**aus)), label, "dfew", rule="strongest", tie_margin=tie_margin)
    assert verdict.status == status


def test_verdict_lists_named_and_unnamed_emotions() -> None:
    verdict = match_label(au_emotions(summary(**SMILE)), "happy", "dfew")
    assert verdict.shown == ("happy",) and verdict.unnamed == ("contempt",)
    assert list(verdict.evidence) == ["happy", "contempt"]
    with pytest.raises(ValueError, match="rule must be 'exact' or 'strongest'; got 'loose'"):
        match_label({}, "happy", "dfew", rule="loose")  # type: ignore[arg-type]


def test_synthetic_faces_read_back_as_their_emotion(tmp_path: Path) -> None:
    """The synthetic corpus's AU writer and this filter agree on every emotion (strongest rule)."""
    rng = np.random.default_rng(0)
    for emotion, prototype in AU_PROTOTYPES.items():
        aus = au_track(prototype, 0.9, frames=24, fps=8, rng=rng)
        assert aus.shape[1] == len(AU_INTENSITY)
        path = tmp_path / f"{emotion}.csv"
        write_au_csv(path, aus, fps=8, rng=rng)
        evidence = au_emotions(aggregate(read_openface_csv(path)))
        assert match_label(evidence, emotion, "synth", rule="strongest").status == "match", (emotion, evidence)


# --- FAU-consistent reasoning ------------------------------------------------------------------------------


def test_reasoning_text() -> None:
    happy = fau_reasoning(summary(AU06=2.0, AU12=3.5, AU25=4.0), "happy", "dfew", audio="The voice is bright.")
    assert happy == Reasoning(
        visual="The face shows lip corners pulled up and raised cheeks, which points to happiness.",  # AU25: no
        audio="The voice is bright.",
        think="The facial actions match the typical pattern of happiness, so the emotion is happy.",
    )
    anxiety = fau_reasoning(summary(AU28=1.0, AU20=1.2), "anxiety", "mafw")
    assert anxiety.visual == "The face shows lips stretched sideways and lips sucked in, which points to anxiety."
    assert anxiety.audio is None
    neutral = fau_reasoning(summary(), "neutral", "dfew")
    assert (
        neutral.visual == "The face stays relaxed, with no facial action unit clearly active, which looks neutral."
    )
    assert neutral.think == "No facial action pattern of an emotion appears, so the emotion is neutral."
    with pytest.raises(
        ValueError, match="label 'sad' of dataset 'dfew': no present AU of its Emotion-AU prototype"
    ):
        fau_reasoning(summary(AU12=3.0), "sad", "dfew")


@pytest.mark.parametrize("dataset", ["dfew", "mafw", "emer"])
def test_reasoning_names_exactly_the_label_emotion(dataset: str) -> None:
    """What a keyword judge reads: only the label's emotion words, for every label with a prototype."""
    forms = {form: label for label in labels_for(dataset) for form in emotion_forms(label)}
    for label in labels_for(dataset):
        emotion = label_prototype(label, dataset)
        if label != "neutral" and emotion is None:
            continue
        aus = EMOTION_AU_TABLE[emotion].aus if emotion else ()
        reasoning = fau_reasoning(summary(**dict.fromkeys(aus, 2.0)), label, dataset)
        for text in (reasoning.visual, reasoning.think):
            named = {forms[word] for word in re.findall(r"[a-z]+", text.lower()) if word in forms}
            assert named == {label}, (dataset, label, text)


# --- the filter --------------------------------------------------------------------------------------------


def _sample(tmp_path: Path, sample_id: str, label: str, au_csv: Path | None, dataset: str = "dfew") -> Sample:
    parts = Reasoning(visual="A face.", audio="A loud voice.", think="So it is.")
    return Sample(sample_id, label, dataset, "train", tmp_path / f"{sample_id}.mp4", None, parts, au_csv=au_csv)


@pytest.fixture
def filter_samples(tmp_path: Path) -> list[Sample]:
    csv = lambda name, rows: write_csv(tmp_path / f"{name}.csv", rows)  # noqa: E731
    bad = row(1)
    bad[HEADER.index("AU12_r")] = "x"
    return [
        _sample(tmp_path, "h1", "happy", csv("h1", [row(1, AU06=2.0, AU12=3.0), row(2, success=0)])),  # kept
        _sample(tmp_path, "h2", "happy", csv("h2", [row(1, AU01=2.0, AU04=2.0, AU15=2.0)])),  # sad face: mismatch
        _sample(tmp_path, "s1", "surprise", csv("s1", [row(1, **SURPRISE)])),  # surprise + fear: ambiguous
        _sample(tmp_path, "n1", "neutral", csv("n1", [row(1), row(2)])),  # kept
        _sample(tmp_path, "a1", "angry", None),  # no AU file
        _sample(tmp_path, "a2", "angry", tmp_path / "absent.csv"),  # unreadable
        _sample(tmp_path, "a3", "angry", csv("a3", [row(1, success=0), row(2, success=0)])),  # no face
        _sample(tmp_path, "a4", "angry", csv("a4", [bad])),  # unreadable
        _sample(tmp_path, "m1", "helplessness", csv("m1", [row(1)]), dataset="mafw"),  # no prototype
    ]


def test_filter_keeps_exact_matches_and_counts_every_rejection(filter_samples: list[Sample]) -> None:
    result = fau_filter(filter_samples)
    assert [sample.id for sample in result.kept] == ["h1", "n1"]
    assert [(r.sample.id, r.reason) for r in result.rejected] == [
        ("h2", "mismatch"), ("s1", "ambiguous"), ("a1", "no_au_file"), ("a2", "unreadable"),
        ("a3", "no_face"), ("a4", "unreadable"), ("m1", "no_prototype"),
    ]  # fmt: skip
    assert result.rejected[0].detail == "face shows sad"
    assert result.rejected[1].detail == "face shows surprise, fear"
    assert "a4.csv:2: column AU12_r holds 'x'" in result.rejected[5].detail
    assert result.counts == {
        "happy": {"total": 2, "kept": 1, "mismatch": 1},
        "surprise": {"total": 1, "ambiguous": 1},
        "neutral": {"total": 1, "kept": 1},
        "angry": {"total": 4, "no_au_file": 1, "unreadable": 2, "no_face": 1},
        "helplessness": {"total": 1, "no_prototype": 1},
    }
    assert result.frames_without_face == 3  # one row of h1, two of a3
    assert result.format_table() == "\n".join(
        [
            "label         total  kept  no_au_file  unreadable  no_face  no_prototype  mismatch  ambiguous",
            "------------  -----  ----  ----------  ----------  -------  ------------  --------  ---------",
            "happy             2     1           0           0        0             0         1          0",
            "surprise          1     0           0           0        0             0         0          1",
            "neutral           1     1           0           0        0             0         0          0",
            "angry             4     0           1           2        1             0         0          0",
            "helplessness      1     0           0           0        0             1         0          0",
            "all               9     2           1           2        1             1         1          1",
            "frames without a face (success == 0) excluded: 3",
        ]
    )


def test_kept_samples_get_fau_reasoning_and_keep_the_original(filter_samples: list[Sample]) -> None:
    happy, neutral = fau_filter(filter_samples).kept
    assert happy.reasoning == Reasoning(
        visual="The face shows lip corners pulled up and raised cheeks, which points to happiness.",
        audio="A loud voice.",  # the clip's own audio description is kept
        think="The facial actions match the typical pattern of happiness, so the emotion is happy.",
    )
    assert happy.extra["fau"] == {"method": "mean", "frames": 1, "aus": {"AU06": 2.0, "AU12": 3.0}}
    assert happy.extra["reasoning_original"] == {
        "visual": "A face.",
        "audio": "A loud voice.",
        "think": "So it is.",
    }
    assert neutral.extra["fau"] == {"method": "mean", "frames": 2, "aus": {}}
    assert (happy.id, happy.label, happy.au_csv) == ("h1", "happy", filter_samples[0].au_csv)


def test_filter_rule_and_dataset_guard(filter_samples: list[Sample]) -> None:
    result = fau_filter(filter_samples, rule="strongest")
    assert [sample.id for sample in result.kept] == ["h1", "s1", "n1"]  # surprise outranks fear
    with pytest.raises(ValueError, match="sample 'm1' belongs to dataset 'mafw', not 'dfew'"):
        fau_filter(filter_samples, dataset="dfew")
    with pytest.raises(ValueError, match="rule must be 'exact' or 'strongest'"):
        fau_filter(filter_samples, rule="top")  # type: ignore[arg-type]


def test_think_credits_the_voice_of_audio_dominant_clips_only_when_asked(filter_samples: list[Sample]) -> None:
    audio_led = [
        replace(s, dominant="audio") if s.id == "h1" else replace(s, dominant="visual") for s in filter_samples
    ]
    face_credit = {s.id: s.reasoning.think for s in fau_filter(audio_led).kept}  # the paper's (default) think
    assert face_credit == {
        "h1": "The facial actions match the typical pattern of happiness, so the emotion is happy.",
        "n1": "No facial action pattern of an emotion appears, so the emotion is neutral.",
    }
    dominant = {s.id: s.reasoning for s in fau_filter(audio_led, think="dominant").kept}
    assert dominant["h1"].think == "The voice carries the clearest cue, so the emotion is happy."
    assert "face" not in dominant["h1"].think and "facial" not in dominant["h1"].think
    assert dominant["h1"].visual.startswith("The face shows lip corners pulled up")  # the description stays
    assert dominant["n1"].think == face_credit["n1"]  # a visual-dominant clip keeps crediting its face
    neutral_audio_led = [replace(s, dominant="audio") for s in filter_samples if s.id == "n1"]
    assert fau_filter(neutral_audio_led, think="dominant").kept[0].reasoning.think == (
        "The voice carries the clearest cue, so the emotion is neutral."
    )
    with pytest.raises(ValueError, match=r"fau\.think must be one of face, dominant"):
        fau_filter(filter_samples, think="voice")  # type: ignore[arg-type]
