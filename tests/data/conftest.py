"""Fixtures of the data tests: tiny real media files and one small synthetic corpus per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from src.data.synth import ensure_corpus
from tests.fixtures.media import grey_clip

TINY_CORPUS_SIZE = 14  # two clips per emotion: every split non-empty


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_clip("name.mp4", frames=..., audio_seconds=None, ...)`` writes under ``tmp_path``."""

    def make(name: str = "clip.mp4", **options: object) -> Path:
        return grey_clip(tmp_path / name, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 14-clip synthetic corpus (seed 0), generated once per test session."""
    return ensure_corpus(tmp_path_factory.mktemp("synth") / "corpus", n=TINY_CORPUS_SIZE, seed=0, workers=1)
