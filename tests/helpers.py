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
