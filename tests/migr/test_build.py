"""`python -m src.migr.build` end to end on a tiny corpus: every output, and the SFT stage trains on it."""

from __future__ import annotations

import csv
import json

import pytest

from src.data.manifest import read_manifest
from src.migr.build import build
from tests.helpers import compose, compose_train, corpus_overrides


def _compose_build(*overrides: str):
    return compose("build", *overrides)


@pytest.fixture(scope="module")
def built(stage_corpus, tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    cfg = _compose_build(
        *corpus_overrides(stage_corpus)[:3],
        f"model_path={tiny_export}",
        f"out_dir={out}",
        f"runs_dir={out.parent}",  # the feature cache goes under runs_dir
        "importance.batch_size=8",
    )
    return build(cfg), out, stage_corpus


def test_build_writes_every_output(built):
    _, out, corpus = built
    for name in (
        "sft_manifest.jsonl",
        "baseline_manifest.jsonl",
        "annotated_manifest.jsonl",
        "build.json",
        "report.md",
        "importance_synth.csv",
    ):
        assert (out / name).exists(), name
    with (out / "importance_synth.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    source = read_manifest(corpus)
    assert [r["sample_id"] for r in rows] == [s.id for s in source]
    assert list(rows[0])[:6] == [
        "sample_id",
        "audio_only_correct",
        "visual_only_correct",
        "audio_visual_correct",
        "dominant",
        "score",
    ]
    annotated = {s.id: s for s in read_manifest(out / "annotated_manifest.jsonl")}
    for row in rows:
        sample = annotated[row["sample_id"]]
        assert sample.extra["mi_dominant"] == row["dominant"]
        assert sample.dominant == next(s.dominant for s in source if s.id == row["sample_id"])  # truth kept
    # MI vs truth is reported on the synthetic corpus (which knows the truth)
    confusion = json.loads((out / "build.json").read_text())["mi_vs_truth"]
    assert confusion["n"] == len(source)
    assert sum(sum(r.values()) for r in confusion["table"].values()) == len(source)
    assert "Modality Importance vs ground truth" in (out / "report.md").read_text()


def test_sft_manifest_is_reordered_by_mi_and_baseline_is_visual_first(built):
    _, out, _ = built
    migr = [s for s in read_manifest(out / "sft_manifest.jsonl") if s.split == "train"]
    baseline = [s for s in read_manifest(out / "baseline_manifest.jsonl") if s.split == "train"]
    assert migr and baseline
    for sample in migr:
        first = sample.extra["first_modality"]
        tag = {"audio": "<aud_desc>", "visual": "<vis_desc>"}[first]
        assert sample.extra["target"].startswith(tag)
        if sample.extra["mi_dominant"] in ("audio", "visual"):
            assert first == sample.extra["mi_dominant"]
    assert all(s.extra["target"].startswith("<vis_desc>") for s in baseline)
    held_out = [s for s in read_manifest(out / "sft_manifest.jsonl") if s.split != "train"]
    assert held_out and all("mi_dominant" in s.extra for s in held_out)


def test_the_oracle_build_orders_by_the_true_dominant_modality_and_can_leave_out_the_fau_copies(
    stage_corpus, tiny_export, tmp_path
):
    # the study's MIGR-oracle and MIGR-without-FAU arms: reorder.order_source=manifest, fau.enabled=false
    cfg = _compose_build(
        *corpus_overrides(stage_corpus)[:3],
        f"model_path={tiny_export}",
        f"out_dir={tmp_path}",
        f"runs_dir={tmp_path / 'runs'}",
        "importance.batch_size=8",
        "reorder.order_source=manifest",
        "fau.enabled=false",
    )
    summary = build(cfg)
    truth = {s.id: s.dominant for s in read_manifest(stage_corpus)}
    rows = [s for s in read_manifest(tmp_path / "sft_manifest.jsonl") if s.split == "train"]
    assert rows and not any("#fau" in s.id for s in rows)
    opened = {}
    for sample in rows:
        source = sample.extra["source_id"]
        opened.setdefault(source, set()).add(sample.extra["first_modality"])
    expected = {"audio": {"audio"}, "visual": {"visual"}, "both": {"audio", "visual"}}  # both: both orders
    assert {source: expected[truth[source]] for source in opened} == opened
    assert summary["order_source"] == "manifest" and summary["fau"] == {"enabled": False, "mode": "augment"}
    assert "order by the manifest's own dominant modality" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match=r"reorder\.order_source='truth'"):
        build(
            _compose_build(
                *corpus_overrides(stage_corpus)[:3],
                f"model_path={tiny_export}",
                f"out_dir={tmp_path / 'bad'}",
                f"runs_dir={tmp_path / 'runs'}",
                "reorder.order_source=truth",
            )
        )


def test_the_reordered_set_trains_with_stage_sft_unchanged(built, tiny_export, tmp_path):
    _, out, corpus = built
    from src.stages.runner import run_stage

    cfg = compose_train(
        "stage=sft",
        *corpus_overrides(corpus),
        f"stage.train_manifest={out / 'sft_manifest.jsonl'}",
        f"stage.init_from={tiny_export}",
        f"runs_dir={tmp_path}",
        "stage.max_steps=2",
        "data.batch_size=4",
        "logger=none",
        "trainer.limit_val_batches=0",
    )
    export = run_stage(cfg)
    assert (export / "model.safetensors").exists()


def test_a_second_build_into_a_held_folder_fails_naming_the_holder(tmp_path, stage_corpus, tiny_export):
    from src.folder_lock import FolderLock, FolderLockError

    out = tmp_path / "build"
    cfg = _compose_build(
        *corpus_overrides(stage_corpus)[:3], f"model_path={tiny_export}", f"out_dir={out}", f"runs_dir={tmp_path}"
    )
    with (
        FolderLock(out, command="python -m src.migr.build (the first)"),
        pytest.raises(
            FolderLockError, match=r"build is in use by pid \d+ .*\(python -m src.migr.build \(the first\)\)"
        ),
    ):
        build(cfg)


def test_new_clips_mode_needs_candidates_and_a_known_mode(tmp_path):
    common = ("data=emer", f"data.root={tmp_path / 'none.csv'}", f"out_dir={tmp_path / 'out'}")
    with pytest.raises(
        ValueError, match=r"fau\.mode=new_clips needs candidate clips: recipe\.candidates is empty"
    ):
        build(_compose_build(*common, "fau.mode=new_clips"))
    with pytest.raises(ValueError, match=r"fau\.mode='new': expected one of augment, new_clips"):
        build(_compose_build(*common, "fau.mode=new"))
