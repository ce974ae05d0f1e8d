"""Build a judge from its config (``configs/judge/*.yaml``): ``build_judge({"name": "keywords"})``.

The ``name`` key picks the backend; every other key is a constructor argument of that backend, so a config
typo fails with the accepted keys listed. Backends with heavy dependencies are imported only when chosen.

Example:
    >>> build_judge({"name": "keywords", "top_k": 1})
    KeywordJudge(top_k=1, related=True)
    >>> build_judge({"name": "keyword"})
    Traceback (most recent call last):
    ...
    ValueError: judge.name='keyword' is not a judge backend. Did you mean 'keywords'? Backends: embedding, hf, keywords, openai
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from src.judges.base import Judge

# name -> "module:class"
BACKENDS: dict[str, str] = {
    "keywords": "src.judges.keywords:KeywordJudge",
    "embedding": "src.judges.embedding:EmbeddingJudge",
    "hf": "src.judges.hf:HFJudge",
    "openai": "src.judges.openai:OpenAIJudge",
}


def build_judge(config: Mapping[str, Any] | None = None) -> Judge:
    """The judge ``config`` describes (plain dict or OmegaConf ``DictConfig``); None builds the keyword judge."""
    options = {str(key): _plain(value) for key, value in (config or {"name": "keywords"}).items()}
    name = options.pop("name", None)
    check_backend(name)
    module_name, class_name = BACKENDS[name].split(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    accepted = [p for p in inspect.signature(backend).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"judge.{unknown[0]} is not an option of the {name} judge; it accepts: {', '.join(accepted)}"
        )
    return backend(**options)


def check_backend(name: Any, key: str = "judge.name") -> None:
    """Refuse a ``name`` that is not one of :data:`BACKENDS` (cheap: nothing imported), naming ``key``.

    Raises:
        ValueError: the key, the name found, the closest backend and every backend.
    """
    if name not in BACKENDS:
        close = difflib.get_close_matches(str(name), BACKENDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{key}={name!r} is not a judge backend.{hint} Backends: {', '.join(sorted(BACKENDS))}")


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python (label maps arrive as DictConfig)."""
    if hasattr(value, "_content"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value
