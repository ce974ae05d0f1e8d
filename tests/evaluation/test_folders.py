"""Which model model_path=auto picks, where outputs go, and when a folder may be resumed."""

from __future__ import annotations

import doctest
import json

import pytest

import src.evaluation.folders
from src.evaluation.folders import check_run_settings, find_model, output_folder
from src.evaluation.predictions import EvaluationError


def _export(runs, stage):
    folder = runs / stage / "export"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_doctests() -> None:
    assert doctest.testmod(src.evaluation.folders).failed == 0


def test_auto_takes_the_latest_stage_that_exists(tmp_path) -> None:
    runs = tmp_path / "runs"
    search = ["grpo", "sft", "base"]
    with pytest.raises(
        EvaluationError,
        match=r"model_path=auto found no exported model \(looked for .*grpo/export, .*sft/export, .*base/export",
    ):
        find_model("auto", runs_dir=runs, search=search)
    base = _export(runs, "base")
    assert find_model("auto", runs_dir=runs, search=search) == base
    sft = _export(runs, "sft")
    assert find_model("auto", runs_dir=runs, search=search) == sft  # sft comes before base
    (runs / "grpo").mkdir()  # a grpo run without an export (still training) does not count
    assert find_model("auto", runs_dir=runs, search=search) == sft
    assert find_model("/ckpt/ERV-0.5B", runs_dir=runs, search=search).name == "ERV-0.5B"


def test_output_folder_names(tmp_path) -> None:
    model = tmp_path / "runs" / "grpo" / "export"
    assert (
        output_folder("auto", runs_dir="runs", model_dir=model, dataset="dfew", split="test").as_posix()
        == "runs/eval/grpo-dfew-test"
    )
    assert (
        output_folder(tmp_path / "mine", runs_dir="runs", model_dir=model, dataset="dfew", split="test")
        == tmp_path / "mine"
    )


def test_a_folder_resumes_only_with_the_same_settings(tmp_path) -> None:
    settings = {"model": "/m", "temperature": 0.0, "max_new_tokens": 64}
    assert check_run_settings(tmp_path / "out", settings, overwrite=False) is False  # new: run.json written
    assert json.loads((tmp_path / "out" / "run.json").read_text()) == settings
    assert check_run_settings(tmp_path / "out", settings, overwrite=False) is True
    changed = {**settings, "temperature": 0.3}
    with pytest.raises(EvaluationError, match=r"other settings \(temperature: 0.0 -> 0.3\).*overwrite=true"):
        check_run_settings(tmp_path / "out", changed, overwrite=False)
    assert check_run_settings(tmp_path / "out", changed, overwrite=True) is False
    assert json.loads((tmp_path / "out" / "run.json").read_text())["temperature"] == 0.3
