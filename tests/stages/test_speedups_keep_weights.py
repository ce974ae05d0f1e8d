"""Speed settings that must not change what a stage learns: the exported weights are compared bit for bit.

Each test fits the same few steps of the ``base`` stage twice, in this process, with one setting changed, and
requires every exported tensor to be equal (``torch.equal``): the settings only skip work whose result the
training never reads (a clip's media read again from memory instead of disk; validation at fewer epoch ends).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from src.stages.runner import run_stage
from tests.helpers import compose_train, corpus_overrides


@pytest.fixture(autouse=True)
def _one_thread():
    """The fits on one thread; the test process's count restored after (a later in-process run in the same
    process would otherwise train on one thread while its subprocesses use the default)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _export(stage_corpus: Path, runs: Path, *overrides: str) -> dict[str, torch.Tensor]:
    cfg = compose_train(
        "stage=base",
        *corpus_overrides(stage_corpus),
        f"runs_dir={runs}",
        "data.batch_size=4",
        "stage.max_steps=-1",
        "stage.max_epochs=2",
        "data.limit_val_samples=4",
        "stage.val_max_new_tokens=2",
        *overrides,
    )
    export = run_stage(cfg)
    return {
        name: tensor for file in sorted(export.glob("*.safetensors")) for name, tensor in load_file(file).items()
    }


def _validations(runs: Path) -> int:
    """How many validation passes the run logged (rows of its metrics.csv with a ``val/loss``)."""
    with open(runs / "base" / "logs" / "metrics.csv", newline="") as handle:
        return sum(1 for row in csv.DictReader(handle) if row.get("val/loss"))


def _assert_identical(one: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> None:
    assert one.keys() == other.keys()
    different = [name for name in one if not torch.equal(one[name], other[name])]
    assert not different, f"{len(different)} exported tensors differ, e.g. {different[:3]}"


@pytest.mark.slow  # four short base fits
def test_media_memory_and_validation_schedule_leave_the_weights_bit_identical(stage_corpus, tmp_path):
    reference = _export(stage_corpus, tmp_path / "reference", "++data.media_memory_mb=0")
    _assert_identical(reference, _export(stage_corpus, tmp_path / "memory", "++data.media_memory_mb=1024"))
    # validation after each of the 2 epochs against none at all: validation never touches the training
    _assert_identical(reference, _export(stage_corpus, tmp_path / "no_val", "trainer.check_val_every_n_epoch=6"))
    assert _validations(tmp_path / "reference") == 2 and _validations(tmp_path / "no_val") == 0
    # a control that must differ, so the comparison above can fail: another seed
    other = _export(stage_corpus, tmp_path / "seed", "seed=1")
    assert any(not torch.equal(reference[name], other[name]) for name in reference)
