"""notebooks/analysis.ipynb runs top to bottom on a small evaluation made here (so it never rots)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from src.data.synth import ensure_corpus
from src.evaluation.runner import run_evaluation
from src.models.checkpoint import save_model
from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer
from tests.evaluation.conftest import eval_config

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


@pytest.mark.slow
def test_the_analysis_notebook_reproduces_an_evaluation(tmp_path, monkeypatch) -> None:
    manifest = ensure_corpus(tmp_path / "corpus", n=14, seed=0, workers=1)
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = save_model(
        OmniModel.from_tokenizer(get_preset("tiny"), tokenizer), tokenizer, tokenizer, tmp_path / "runs/sft/export"
    )
    evaluations = tmp_path / "runs" / "eval"
    for name, limit in (("sft-a", 6), ("sft-b", 3)):  # two evaluations: the comparison section has two rows
        run_evaluation(eval_config(manifest, model, evaluations / name, f"limit={limit}", "max_new_tokens=8"))
    monkeypatch.setenv("MIGR_EVAL_DIR", str(evaluations / "sft-a"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(
        output.get("text", "") + str(output.get("data", {}).get("text/markdown", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "6 predictions of" in text
    assert "every figure of metrics.json and attention.json is reproduced from predictions.jsonl" in text
    assert "## Consistency and accuracy (paper Table 1)" in text
    assert "| sft-a |" in text and "| sft-b |" in text  # the comparison table
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 4  # confusion, recall, attention, attention of both evaluations
