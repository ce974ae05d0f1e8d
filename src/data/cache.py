"""A disk cache of decoded media tensors (safetensors), keyed by file identity and preprocessing parameters.

Decoding a clip costs far more than reading a few hundred kilobytes of tensors back, and training re-reads the
same clips every epoch. An entry's key hashes the source's resolved path, size and modification time together
with every parameter that changes the result, so editing a clip or changing ``image_size`` never returns stale
tensors. Writes are atomic (temporary file + rename), so parallel DataLoader workers may fill the same cache.

Example:
    >>> import tempfile, pathlib, torch
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> source = folder / "clip.wav"
    >>> _ = source.write_bytes(b"RIFF")
    >>> cache = TensorCache(folder / "cache")
    >>> key = cache.key("audio", source, {"sample_rate": 16000})
    >>> cache.get(key) is None
    True
    >>> cache.put(key, {"waveform": torch.zeros(3)})
    >>> cache.get(key)["waveform"].shape
    torch.Size([3])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from src import atomic

# Bump when the meaning of cached tensors changes (decoding or preprocessing code), to orphan old entries.
CACHE_VERSION = 1

log = logging.getLogger(__name__)

V = TypeVar("V")


class TensorCache:
    """Named tensors per key, one ``.safetensors`` file each under ``directory/<2 hex>/<key>.safetensors``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        # Created on the first write only: a cache folder inside a not-yet-generated corpus must not exist early.
        self.directory = Path(directory)

    @staticmethod
    def key(kind: str, source: Path, params: Mapping[str, Any]) -> str:
        """The entry key of ``kind`` (e.g. "frames") derived from ``source`` with ``params``."""
        stat = source.stat()
        payload = {
            "version": CACHE_VERSION,
            "kind": kind,
            "path": str(source.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "params": dict(params),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def file(self, key: str) -> Path:
        """Where the entry of ``key`` lives (it may not exist)."""
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, Tensor] | None:
        """The tensors stored under ``key``, or None. A damaged entry is removed and treated as missing."""
        file = self.file(key)
        if not file.is_file():
            return None
        try:
            return load_file(file)
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:  # safetensors: RuntimeError on open
            if not file.exists():  # removed by another process between the check and the read: a plain miss
                return None
            log.warning("removing unreadable cache entry %s (%s); it will be rebuilt", file, error)
            file.unlink(missing_ok=True)
            return None

    def put(self, key: str, tensors: Mapping[str, Tensor]) -> None:
        """Store ``tensors`` under ``key`` (atomically: readers never see a partial file)."""
        with atomic.replacing(self.file(key)) as tmp:
            atomic.save_tensors({name: tensor.contiguous() for name, tensor in tensors.items()}, tmp)


class MemoryLRU(Generic[V]):
    """Values kept in this process's memory up to ``limit_bytes``, the least recently used dropped first.

    The caller gives each value's size in bytes; a value larger than the whole limit is not kept. Values are
    returned as stored (no copy): a caller must not modify them in place.

    Example:
        >>> lru = MemoryLRU(limit_bytes=10)
        >>> lru.put("a", "A", size=6); lru.put("b", "B", size=6)
        >>> lru.get("a") is None, lru.get("b"), lru.evicted, lru.bytes
        (True, 'B', 1, 6)
    """

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 0:
            raise ValueError(f"a memory limit must be >= 0 bytes; got {limit_bytes}")
        self.limit = int(limit_bytes)
        self.bytes = 0
        self.evicted = 0
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        """The value stored under ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: V, *, size: int) -> None:
        """Keep ``value`` (``size`` bytes) under ``key``, dropping the least recently used beyond the limit."""
        if size > self.limit:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.bytes -= previous[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.limit:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
            self.evicted += 1

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
