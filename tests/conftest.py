"""Shared test settings: deterministic, offline, quiet."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest
import torch

# Under pytest-xdist (`make test` runs 2 workers) the cores are split between the workers, and the processes the
# tests start inherit the share: threads competing for the same core spin and slow every test down.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = max(1, torch.get_num_threads() // _WORKERS)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_THREADS)
    torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def stage_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 28-clip synthetic corpus (4 per emotion), generated once per session."""
    from src.data.synth import ensure_corpus

    return ensure_corpus(tmp_path_factory.mktemp("stage_synth") / "corpus", n=28, seed=0, workers=1)


@pytest.fixture(scope="session")
def clips_and_random_tiny(tmp_path_factory: pytest.TempPathFactory):
    """``(samples, model, tokenizer, loader)``: 5 clips of a 14-clip synthetic corpus, a random tiny model in
    eval mode, its tokenizer and a media loader of its shapes (for comparing batched scoring with references)."""
    from src.data.manifest import read_manifest
    from src.data.media import MediaLoader
    from src.data.synth import ensure_corpus
    from src.models.omni import OmniModel
    from src.models.presets import get_preset
    from src.models.tokenizer import build_tiny_tokenizer

    manifest = ensure_corpus(tmp_path_factory.mktemp("clips") / "corpus", n=14, seed=0, workers=1)
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()
    return read_manifest(manifest)[:5], model, tokenizer, MediaLoader(image_size=64, audio_seconds=3)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised tiny model exported as a model folder (what a stage hands to the next)."""
    from src.models.checkpoint import save_model
    from src.models.omni import OmniModel
    from src.models.presets import get_preset
    from src.models.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer)
    return save_model(model, tokenizer, tokenizer, tmp_path_factory.mktemp("tiny_export") / "export")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, start the slow (end-to-end, multi-process) tests first so no long one is left for
    the end while the other worker sits idle."""
    if _WORKERS > 1:
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
