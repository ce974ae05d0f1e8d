"""Tiny model fixtures shared by the model tests (built once per session: ~1 s)."""

from __future__ import annotations

import pytest
import torch

from src.data.collate import Example, OmniCollator
from src.data.prompts import INSTRUCTIONS, build_prompt
from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture
def tiny_model(tokenizer) -> OmniModel:
    torch.manual_seed(0)
    return OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()


def make_examples(conditions, *, target: str | None = None, seed: int = 0, image_size: int = 64) -> list[Example]:
    """One example per (has_video, has_audio) condition with random media of the tiny preset's shapes."""
    gen = torch.Generator().manual_seed(seed)
    instruction = INSTRUCTIONS["reasoning"]
    return [
        Example(
            prompt=build_prompt(instruction, has_video=v, has_audio=a),
            target=target,
            frames=torch.randn(8, 3, image_size, image_size, generator=gen) if v else None,
            mel=torch.randn(128, 300, generator=gen) if a else None,
            instruction=instruction,
            meta={"id": f"clip{i}"},
        )
        for i, (v, a) in enumerate(conditions)
    ]


def collator_for(model: OmniModel, tokenizer, padding_side: str = "left") -> OmniCollator:
    counts = model.token_counts()
    return OmniCollator(
        tokenizer,
        tokenizer,
        num_video_tokens=counts["video"],
        num_audio_tokens=counts["audio"],
        padding_side=padding_side,
    )
