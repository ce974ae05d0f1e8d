"""Helpers shared by tests: composing the real configs, pointing a run at a test corpus."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def corpus_overrides(manifest: Path) -> list[str]:
    """Overrides that point a run at a test corpus (and its media cache) without building the default one."""
    return [
        f"data.manifest={manifest}",
        "data.synth=null",
        f"data.cache_dir={manifest.parent / '.cache'}",
        "trainer.enable_progress_bar=false",
    ]


def compose(config_name: str, *overrides: str):
    """The composed ``configs/<config_name>.yaml`` with ``overrides``, as the command line would build it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def compose_train(*overrides: str):
    """The composed `configs/train.yaml` (what `python -m src.train <overrides>` runs)."""
    return compose("train", *overrides)


def one_clip_batch(model, tokenizer, loader, sample, condition: str, *, task: str, target: str | None = None):
    """The collated batch of one clip under one Modality Importance condition (``audio`` | ``visual`` |
    ``audio_visual``): the reference that batched, padded, cache-sharing code is compared with."""
    from src.data.collate import Example, OmniCollator
    from src.data.prompts import build_prompt, instruction_for

    has_video, has_audio = {"audio": (False, True), "visual": (True, False), "audio_visual": (True, True)}[
        condition
    ]
    item = loader.load(sample, video=has_video, audio=has_audio)
    instruction = instruction_for(task)
    example = Example(
        prompt=build_prompt(instruction, has_video=has_video, has_audio=has_audio),
        target=target,
        frames=item.frames,
        mel=item.mel,
        instruction=instruction,
    )
    counts = model.token_counts()
    collate = OmniCollator(
        tokenizer, tokenizer, num_video_tokens=counts["video"], num_audio_tokens=counts["audio"]
    )
    return collate([example])
