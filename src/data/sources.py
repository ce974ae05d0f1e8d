"""Where a run's manifest comes from: the synthetic corpus (built on first use) or a dataset adapter run on the
official files (on first use). One function, used by training, the MIGR build and evaluation alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def prepare_manifest(data: Mapping[str, Any]) -> Path:
    """The manifest of the ``data`` config, creating it first when it is derived and missing.

    * ``data.synth`` (options of :class:`~src.data.synth.plan.SynthConfig`): the synthetic corpus in the
      manifest's folder, generated when missing or made with other options;
    * ``data.adapter`` (``{name, source, options}``): the dataset adapter converting the official layout at
      ``source`` into the manifest, when the manifest does not exist yet.
    """
    manifest = Path(data["manifest"])
    synth = _plain(data.get("synth"))
    adapter = _plain(data.get("adapter"))
    if synth:
        from src.data.synth import ensure_corpus

        ensure_corpus(manifest.parent, **synth)
    elif adapter and not manifest.exists():
        from src.data.adapters import convert

        log.info("writing %s from the %s files at %s", manifest, adapter["name"], adapter["source"])
        manifest.parent.mkdir(parents=True, exist_ok=True)
        convert(adapter["name"], adapter["source"], manifest, **(adapter.get("options") or {}))
    return manifest
