"""Fixtures of the data tests: tiny real media files and one small synthetic corpus per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from src.data.synth import ensure_corpus
from src.data.synth.mp4 import write_mp4

TINY_CORPUS_SIZE = 14  # two clips per emotion: every split non-empty


def grey_clip(
    path: Path,
    *,
    frames: int = 16,
    height: int = 32,
    width: int = 32,
    fps: int = 8,
    audio_seconds: float | None = 1.0,
    sample_rate: int = 16000,
) -> Path:
    """An mp4 whose frame ``i`` is flat grey ``10 + 15 * i`` (so tests can tell which frames were read)."""
    levels = (10 + 15 * np.arange(frames)).clip(0, 255).astype(np.uint8)
    video = np.broadcast_to(levels[:, None, None, None], (frames, height, width, 3)).copy()
    audio = None
    if audio_seconds is not None:
        time = np.arange(int(audio_seconds * sample_rate)) / sample_rate
        audio = (0.3 * np.sin(2 * np.pi * 220 * time)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, video, fps=fps, audio=audio, sample_rate=sample_rate)
    return path


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
