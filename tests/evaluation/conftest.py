"""Fixtures of the evaluation tests: hand-made records, a tiny corpus and a tiny exported model, and a runner
of ``configs/evaluate.yaml`` composed with Hydra (in process)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from src.data.synth import ensure_corpus
from src.evaluation.predictions import PredictionRecord
from src.evaluation.runner import EvaluationResult, run_evaluation
from src.models.checkpoint import save_model
from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def record(
    id: str,
    label: str,
    prediction: str | None,
    *,
    judged: str | None = None,
    judged_set: list[str] | None = None,
    first: str | None = None,
    dominant: str | None = None,
    mi_dominant: str | None = None,
    secondary: tuple[str, ...] = (),
    completion: str = "",
    dataset: str = "dfew",
    judge: str | None = "test-judge",
    well_formed: bool = True,
    truncated: bool = False,
    num_tokens: int = 10,
) -> PredictionRecord:
    """A hand-made record (fields not given take values that do not matter to the test at hand)."""
    return PredictionRecord(
        id=id,
        dataset=dataset,
        label=label,
        completion=completion,
        answer=prediction,
        prediction=prediction,
        first_segment=first,
        well_formed=well_formed,
        num_tokens=num_tokens,
        truncated=truncated,
        dominant=dominant,
        mi_dominant=mi_dominant,
        secondary_labels=list(secondary),
        judge=judge,
        judged=judged,
        judged_set=judged_set,
    )


@pytest.fixture(scope="session")
def eval_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 14-clip synthetic corpus (train 10, val 2, test 2), generated once per session."""
    return ensure_corpus(tmp_path_factory.mktemp("eval_synth") / "corpus", n=14, seed=0, workers=1)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny model exported as ``<runs>/sft/export`` (plumbing only: it writes noise)."""
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer)
    return save_model(model, tokenizer, tokenizer, tmp_path_factory.mktemp("eval_runs") / "sft" / "export")


def eval_config(manifest: Path, model: Path, output_dir: Path, *overrides: str) -> DictConfig:
    """``configs/evaluate.yaml`` composed for a small, fast evaluation on ``manifest``'s train split."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(
            config_name="evaluate",
            overrides=[
                f"data.manifest={manifest}",
                "data.synth=null",
                f"data.cache_dir={manifest.parent / '.cache'}",
                f"model_path={model}",
                f"output_dir={output_dir}",
                f"feature_cache.dir={Path(output_dir).parent / 'feature_cache'}",  # not under ./runs
                "split=train",
                "limit=8",
                "batch_size=3",
                "max_new_tokens=12",
                "progress_bar=false",
                *overrides,
            ],
        )


@pytest.fixture
def evaluate(eval_corpus: Path, tiny_export: Path, tmp_path: Path) -> Callable[..., EvaluationResult]:
    """Run an evaluation in process: ``evaluate(*overrides, output_dir=...)``."""

    def run(*overrides: str, output_dir: Path | None = None) -> EvaluationResult:
        out = output_dir or tmp_path / "eval"
        return run_evaluation(eval_config(eval_corpus, tiny_export, out, *overrides))

    return run
