"""Adapters from the official layouts of DFEW, MAFW and EMER to the manifest format (:mod:`src.data.manifest`).

Each adapter has a ``*_samples(...)`` function returning ``(samples, skipped_rows)`` and a ``convert_*(source,
out, **options)`` function writing the manifest and returning a :class:`ConversionReport`. From the shell::

    python -m src.data.adapters dfew /data/DFEW --fold 1 --out dfew_fold1.jsonl --val-fraction 0.1
    python -m src.data.adapters mafw /data/MAFW --fold 1 --out mafw_fold1.jsonl
    python -m src.data.adapters emer /data/EMER/EMER-reason.csv --out emer.jsonl
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from src.data.adapters.common import AdapterError, ConversionReport
from src.data.adapters.dfew import convert_dfew, dfew_samples
from src.data.adapters.emer import convert_emer, emer_samples
from src.data.adapters.mafw import convert_mafw, mafw_samples

ADAPTERS: dict[str, Callable[..., ConversionReport]] = {
    "dfew": convert_dfew,
    "mafw": convert_mafw,
    "emer": convert_emer,
}


def convert(dataset: str, source: Any, out: Any, **options: Any) -> ConversionReport:
    """Run the adapter of ``dataset`` (one of :data:`ADAPTERS`)."""
    try:
        adapter = ADAPTERS[dataset]
    except KeyError:
        raise AdapterError(f"no adapter for dataset {dataset!r}; available: {', '.join(ADAPTERS)}") from None
    return adapter(source, out, **options)


__all__ = [
    "ADAPTERS",
    "AdapterError",
    "ConversionReport",
    "convert",
    "convert_dfew",
    "convert_emer",
    "convert_mafw",
    "dfew_samples",
    "emer_samples",
    "mafw_samples",
]
