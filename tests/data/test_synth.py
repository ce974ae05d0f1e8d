from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import av
import pytest

from src.data.labels import emotion_forms, labels_for
from src.data.manifest import read_manifest
from src.data.media import MediaLoader
from src.data.synth import SynthConfig, ensure_corpus, generate_corpus, plan_corpus
from src.data.synth import text as synth_text
from src.data.synth.__main__ import main as synth_cli
from src.data.synth.au_csv import COLUMNS, read_au_csv
from src.data.synth.spec import AU_PROTOTYPES
from tests.data.conftest import TINY_CORPUS_SIZE

EMOTIONS = labels_for("synth")
_WORD_TO_EMOTION = {form: label for label in EMOTIONS for form in emotion_forms(label)}


def _emotions_named(sentence: str) -> set[str]:
    """What a keyword judge finds: every emotion whose word forms occur in ``sentence``."""
    return {_WORD_TO_EMOTION[word] for word in re.findall(r"[a-z]+", sentence.lower()) if word in _WORD_TO_EMOTION}


# --- the plan ---------------------------------------------------------------------------------------------


def test_plan_follows_the_mixes() -> None:
    plans = plan_corpus(SynthConfig(n=210, seed=5))
    assert Counter(p.label for p in plans) == dict.fromkeys(EMOTIONS, 30)
    assert Counter(p.dominant for p in plans) == {"audio": 84, "visual": 84, "both": 42}
    assert Counter(p.split for p in plans) == {"train": 147, "val": 32, "test": 31}
    for plan in plans:
        strong, other = (plan.visual, plan.audio) if plan.dominant == "visual" else (plan.audio, plan.visual)
        assert strong[0] == plan.label and 0.8 <= strong[1] <= 1.0  # the dominant modality shows the label
        if plan.dominant == "both":
            assert plan.cue == "none" and other[0] == plan.label and other[1] >= 0.8
        elif plan.cue == "neutral":
            assert other == ("neutral", 0.0, "neutral")
        elif plan.cue == "weak":
            assert other[0] == plan.label and other[2] == "faint" and 0.25 <= other[1] <= 0.4
        else:
            assert plan.cue == "misleading" and other[0] not in (plan.label, "neutral") and other[2] == "faint"
            assert plan.misleading_emotion == other[0]
        if plan.label == "neutral" and plan.dominant != "both":
            assert plan.cue == "misleading"  # otherwise neither modality would be more telling


def test_plan_is_deterministic() -> None:
    assert plan_corpus(SynthConfig(n=30, seed=1)) == plan_corpus(SynthConfig(n=30, seed=1))
    assert plan_corpus(SynthConfig(n=30, seed=1)) != plan_corpus(SynthConfig(n=30, seed=2))


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="size must be even"):
        SynthConfig(size=63)
    with pytest.raises(ValueError, match="cue_mix keys must be among"):
        SynthConfig(cue_mix={"loud": 1.0})


# --- the generated corpus ---------------------------------------------------------------------------------


def test_corpus_manifest_and_info(tiny_corpus: Path) -> None:
    samples = read_manifest(tiny_corpus)  # every media and AU file exists
    assert len(samples) == TINY_CORPUS_SIZE
    assert {s.dataset for s in samples} == {"synth"}
    assert Counter(s.split for s in samples) == {"train": 10, "val": 2, "test": 2}
    assert Counter(s.label for s in samples) == dict.fromkeys(EMOTIONS, 2)
    assert all(s.reasoning and s.reasoning.visual and s.reasoning.audio and s.reasoning.think for s in samples)
    assert all(s.au_csv is not None and s.dominant in ("audio", "visual", "both") for s in samples)
    info = json.loads((tiny_corpus.parent / "corpus.json").read_text())
    assert info["params"]["n"] == TINY_CORPUS_SIZE and info["params"]["seed"] == 0
    assert info["counts"]["split"] == {"test": 2, "train": 10, "val": 2}


def test_clips_read_back_with_decord_pyav_and_our_loader(tiny_corpus: Path) -> None:
    from decord import AudioReader, VideoReader

    sample = read_manifest(tiny_corpus)[0]
    video = VideoReader(str(sample.video))
    assert len(video) == 24 and video[0].shape == (112, 112, 3)  # 3 s at 8 fps
    assert abs(AudioReader(str(sample.video), sample_rate=16000, mono=True).shape[1] - 48000) <= 2048
    with av.open(str(sample.video)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        assert container.streams.audio[0].codec_context.sample_rate == 16000
        assert sum(1 for _ in container.decode(video=0)) == 24
    tiny = MediaLoader(image_size=64, num_frames=8, audio_seconds=3).load(sample)
    assert tiny.frames.shape == (8, 3, 64, 64) and tiny.mel.shape == (128, 300)
    humanomni = MediaLoader(image_size=224, num_frames=8, audio_seconds=30).load(sample)
    assert humanomni.frames.shape == (8, 3, 224, 224) and humanomni.mel.shape == (128, 3000)
    assert tiny.frames.min() >= -1.0 and tiny.frames.max() <= 1.0


def test_au_csv_is_openface_format_and_shows_the_face(tiny_corpus: Path) -> None:
    for sample in read_manifest(tiny_corpus):
        assert sample.au_csv.read_text().splitlines()[0] == ", ".join(COLUMNS)
        table = read_au_csv(sample.au_csv)
        assert len(table["frame"]) == 24 and set(table["success"]) == {1.0}
        shown = sample.extra["synth"]["visual"]
        strong = {name: weight for name, weight in AU_PROTOTYPES[shown["emotion"]].items() if weight >= 0.8}
        if shown["intensity"] >= 0.8:  # a full display: its main AUs are clearly on
            for name in strong:
                assert table[f"{name}_r"].mean() > 2.5 and table[f"{name}_c"].mean() > 0.9, (sample.id, name)
        if shown["emotion"] == "neutral":  # a neutral face: no AU present
            assert all(table[f"{name}_c"].sum() == 0 for name in ("AU01", "AU04", "AU06", "AU12", "AU15", "AU26"))


def test_reasoning_names_what_each_modality_shows(tiny_corpus: Path) -> None:
    for sample in read_manifest(tiny_corpus):
        shown = sample.extra["synth"]
        assert _emotions_named(sample.reasoning.visual) == {shown["visual"]["emotion"]}
        assert _emotions_named(sample.reasoning.audio) == {shown["audio"]["emotion"]}
        assert _emotions_named(sample.reasoning.think) == {sample.label}
        if shown["cue"] == "misleading":  # a keyword judge finds the wrong emotion in the non-dominant part
            other = sample.reasoning.audio if sample.dominant == "visual" else sample.reasoning.visual
            assert _emotions_named(other) == set(sample.secondary_labels) != {sample.label}


def test_every_template_names_exactly_its_emotion() -> None:
    for table in (
        synth_text.VISUAL_STRONG,
        synth_text.VISUAL_FAINT,
        synth_text.AUDIO_STRONG,
        synth_text.AUDIO_FAINT,
    ):
        for emotion, sentences in table.items():
            assert all(_emotions_named(sentence) == {emotion} for sentence in sentences), emotion
    for dominant, sentences in synth_text.THINK.items():
        for label in EMOTIONS:
            for sentence in sentences:
                for adjective in synth_text.ADJECTIVES[label]:
                    filled = sentence.format(adjective=adjective, noun=synth_text.NOUNS[label])
                    assert _emotions_named(filled) == {label}, (dominant, filled)


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    config = SynthConfig(n=3, seed=7)
    first, second = (
        generate_corpus(tmp_path / "a", config, workers=1),
        generate_corpus(tmp_path / "b", config, workers=1),
    )
    assert first.read_text() == second.read_text()
    for clip in sorted((tmp_path / "a" / "clips").iterdir()):
        assert clip.read_bytes() == (tmp_path / "b" / "clips" / clip.name).read_bytes()
    other = generate_corpus(tmp_path / "c", SynthConfig(n=3, seed=8), workers=1)
    assert other.read_text() != first.read_text()


def test_ensure_corpus_reuses_regenerates_and_refuses(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    manifest = ensure_corpus(out, n=2, seed=0, workers=1)
    stamp = manifest.stat().st_mtime_ns
    assert ensure_corpus(out, n=2, seed=0, workers=1) == manifest
    assert manifest.stat().st_mtime_ns == stamp  # reused, not regenerated
    ensure_corpus(out, n=3, seed=0, workers=1)  # other parameters: replaced
    assert len(read_manifest(manifest)) == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == [".corpus.lock", "corpus"]  # no staging/old left
    cache_first = tmp_path / "cached" / ".cache"  # a media cache inside a corpus folder not generated yet
    cache_first.mkdir(parents=True)
    assert len(read_manifest(ensure_corpus(tmp_path / "cached", n=2, seed=0, workers=1))) == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"not empty and holds no corpus\.json"):
        ensure_corpus(tmp_path / "mine", n=2, workers=1)


def _ensure_in_child(out: str) -> str:
    return str(ensure_corpus(out, n=2, seed=4, workers=1))


def test_concurrent_callers_share_one_corpus(tmp_path: Path) -> None:
    import multiprocessing

    out = str(tmp_path / "corpus")
    with multiprocessing.get_context("fork").Pool(2) as pool:  # two DDP ranks asking at once
        manifests = pool.map(_ensure_in_child, [out, out])
    assert manifests == [str(tmp_path / "corpus" / "manifest.jsonl")] * 2
    assert len(read_manifest(manifests[0])) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == [".corpus.lock", "corpus"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth"
    assert synth_cli(["--out", str(out), "--n", "2", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 2 clips (train 2) to {out / 'manifest.jsonl'} in" in printed and "clips/s" in printed
    assert synth_cli(["--out", str(out), "--n", "2", "--workers", "1"]) == 0
    assert "already holds this corpus" in capsys.readouterr().out


@pytest.mark.slow
def test_worker_processes_give_the_same_corpus(tmp_path: Path) -> None:
    config = SynthConfig(n=8, seed=3)
    serial = generate_corpus(tmp_path / "serial", config, workers=1)
    parallel = generate_corpus(tmp_path / "parallel", config, workers=2)
    assert serial.read_text() == parallel.read_text()
    for clip in sorted((tmp_path / "serial" / "clips").iterdir()):
        assert clip.read_bytes() == (tmp_path / "parallel" / "clips" / clip.name).read_bytes()


@pytest.mark.slow
def test_signal_is_learnable_from_the_dominant_modality_only(tmp_path: Path) -> None:
    from src.data.synth.probe import probe

    samples = read_manifest(ensure_corpus(tmp_path / "corpus", n=350, seed=0))
    results = probe(samples, MediaLoader(image_size=64, num_frames=8, audio_seconds=3))
    chance = 1 / len(EMOTIONS)
    for modality in ("visual", "audio"):
        assert results[modality]["dominant_accuracy"] >= 0.7, results  # chance is 0.14; measured 0.86 and 1.0
        assert results[modality]["non_dominant_accuracy"] <= 2 * chance, results
