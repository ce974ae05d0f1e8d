"""Atomic writes: the old content stays whole until the new one replaces it, and no temporary file is left."""

from __future__ import annotations

import pytest

from src import atomic


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path):
    target = tmp_path / "deep" / "metrics.json"
    assert atomic.write_text(target, '{"war": 0.5}\n') == target  # parents are created
    with pytest.raises(UnicodeEncodeError):
        atomic.write_text(target, '{"label": "surprisé"}', encoding="ascii")  # fails while writing
    assert target.read_text() == '{"war": 0.5}\n'
    atomic.write_text(target, "{}")
    assert target.read_text() == "{}" and [p.name for p in target.parent.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_open_gives_under_the_umask(tmp_path, mask):
    import os

    import numpy as np
    import torch

    from src.data.cache import TensorCache
    from src.evaluation.predictions import PredictionStore
    from src.judges.embedding import LinearHead
    from src.judges.head_training import save_head
    from src.stages.checkpoint_io import save_checkpoint_files

    old = os.umask(mask)
    try:
        (tmp_path / "reference").open("w").close()  # what an ordinary open() creates: the reference
        expected = (tmp_path / "reference").stat().st_mode & 0o777
        atomic.write_text(tmp_path / "metrics.json", "{}")
        atomic.save_tensors({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
        save_checkpoint_files({"state_dict": {"w": torch.zeros(2)}, "epoch": 1}, tmp_path / "ckpt" / "last.ckpt")
        PredictionStore(tmp_path / "predictions.jsonl").rewrite([])
        cache = TensorCache(tmp_path / "cache")
        cache.put("0" * 64, {"frames": torch.zeros(2)})
        head = LinearHead(labels=("happy", "sad"), weight=np.zeros((2, 3)), bias=np.zeros(2), meta={"name": "h"})
        save_head(head, tmp_path / "heads", {})  # the embedding judge's head: .safetensors and .json
    finally:
        os.umask(old)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) >= 9
    assert {path.relative_to(tmp_path).as_posix(): path.stat().st_mode & 0o777 for path in files} == {
        path.relative_to(tmp_path).as_posix(): expected for path in files
    }


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "export"
    with atomic.replacing_folder(folder) as staging:
        (staging / "config.json").write_text("old")
    assert (folder / "config.json").read_text() == "old"
    with pytest.raises(RuntimeError), atomic.replacing_folder(folder) as staging:
        (staging / "config.json").write_text("half")
        raise RuntimeError("killed while writing")
    assert (folder / "config.json").read_text() == "old"  # the failed write changed nothing
    left = tmp_path / "export.tmp"  # what a writer killed midway leaves under a fixed staging name
    left.mkdir()
    (left / "partial.bin").write_text("x")
    with atomic.replacing_folder(folder, staging=left) as staging:
        assert list(staging.iterdir()) == []  # the leftover is cleared, not mixed into the new folder
        (staging / "config.json").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["config.json"] and (folder / "config.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no staging or retired folder left


def test_replacing_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "entry.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(OSError), atomic.replacing(target) as tmp:
        tmp.write_bytes(b"ne")
        raise OSError("disk full")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["entry.safetensors"]


def test_no_other_module_writes_a_temporary_file_and_renames_it():
    """src/atomic.py is the one implementation of write-beside-then-rename (files and folders)."""
    import re

    from tests.helpers import REPO

    pattern = re.compile(r"os\.replace\(|os\.rename\(|\.rename\(|mkstemp\(")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for folder in ("src", "rewards", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != REPO / "src/atomic.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "use src.atomic (write_text, replacing, replacing_folder):\n" + "\n".join(offenders)
