"""Frozen-tower outputs computed once per clip: an in-memory LRU over an on-disk safetensors cache.

From SFT on the SigLIP and Whisper towers are frozen, yet every SFT epoch, GRPO step, Modality Importance
condition and evaluation would run them again on the same clips. :class:`FeatureCache` keeps each clip's raw
tower output (SigLIP patch features ``[T, P*P, Dv]``, pooled Whisper states ``[N_audio, Da]``; the projectors
after them train, so nothing later is cached) under a key that hashes

* the tower: every parameter and buffer (bytes, dtype, shape), its settings (selected SigLIP layer, Whisper
  pooling) and the device type; re-hashed whenever a parameter is replaced or modified in place (torch's
  version counters), so loading other weights can never serve the old features;
* the clip's tower input itself (the normalised frames or the log-mel, bytes + shape + dtype), so every
  preprocessing setting (frame indices, size, padding, mel settings) and the media file's content are covered
  without trusting any description of them.

Entries are one ``.safetensors`` file each under ``<dir>/<2 hex>/<key>.safetensors``, written atomically
(temporary file + rename, :class:`~src.data.cache.TensorCache`), so two processes filling the cache (the demo's
two arms) never leave a partial entry: both write the same bytes and the last rename wins. Memory and disk are
bounded (least recently used entries go first; a disk hit refreshes the file's modification time) and
:meth:`FeatureCache.summary` reports hits, misses and bytes. Hashing a tiny-preset batch of 16 clips with
XXH3-128 takes under 1 ms, far less than the towers.

Example:
    >>> import tempfile, torch
    >>> cache = FeatureCache(tempfile.mkdtemp(), memory_mb=1, disk_mb=1)
    >>> tower = torch.nn.Linear(4, 2)
    >>> x = torch.randn(3, 4)
    >>> out = cache.lookup("demo", tower, "settings", x, lambda rows: tower(rows).detach())
    >>> out.shape, cache.stats.misses, cache.lookup("demo", tower, "settings", x, tower).shape, cache.stats.hits
    (torch.Size([3, 2]), 3, torch.Size([3, 2]), 3)
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import xxhash
from torch import Tensor, nn

from src.data.cache import MemoryLRU, TensorCache

log = logging.getLogger(__name__)

# Bump when the meaning of a cached tower output changes (tower code in src/models/towers.py).
FEATURE_CACHE_VERSION = 1
MB = 1 << 20


@dataclass
class CacheStats:
    """Counts of one process since the cache was opened."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    evicted_memory: int = 0
    evicted_disk: int = 0

    @property
    def hits(self) -> int:
        return self.memory_hits + self.disk_hits


def tower_fingerprint(module: nn.Module, settings: str) -> str:
    """SHA-256 over a module's parameters and buffers (names, dtypes, shapes, bytes) plus ``settings``."""
    digest = hashlib.sha256(f"v{FEATURE_CACHE_VERSION}|{settings}".encode())
    for name, tensor in (*module.named_parameters(), *module.named_buffers()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"|{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def weights_signature(module: nn.Module) -> tuple[Any, ...]:
    """Changes whenever a parameter/buffer is replaced, moved or modified in place (cheap: no data read)."""
    return tuple(
        (t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape))
        for t in (*module.parameters(), *module.buffers())
    )


class FeatureCache:
    """Per-clip tower outputs: memory LRU (``memory_mb``) over safetensors files (``disk_mb``) in ``directory``.

    Args:
        directory: where entries live (created on the first write); None keeps the cache in memory only.
        memory_mb / disk_mb: size bounds; least recently used entries are dropped beyond them.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None, *, memory_mb: float = 1024, disk_mb: float = 8192
    ):
        if memory_mb < 0 or disk_mb < 0:
            raise ValueError(f"feature_cache.memory_mb={memory_mb} / disk_mb={disk_mb} must be >= 0")
        self.disk = TensorCache(directory) if directory is not None else None
        self.disk_limit = int(disk_mb * MB)
        self.stats = CacheStats()
        self._memory: MemoryLRU[Tensor] = MemoryLRU(int(memory_mb * MB))
        self._disk_bytes: int | None = None  # this process's running estimate; rescanned when over the limit
        self._fingerprints: dict[int, tuple[tuple[Any, ...], str]] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> FeatureCache | None:
        """The cache a ``feature_cache`` config group asks for (None when absent or ``enabled: false``)."""
        if not config or not config.get("enabled", False):
            return None
        unknown = set(config) - {"enabled", "dir", "memory_mb", "disk_mb"}
        if unknown:
            raise ValueError(
                f"feature_cache has unknown keys {sorted(unknown)}; known: enabled, dir, memory_mb, disk_mb"
            )
        return cls(
            config.get("dir"),
            memory_mb=float(config.get("memory_mb", 1024)),
            disk_mb=float(config.get("disk_mb", 8192)),
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> FeatureCache:
        return self  # a copied model (GRPO's reference) shares the cache: keys carry the tower fingerprint

    # ---- keys --------------------------------------------------------------------------------------------
    def fingerprint(self, tower: nn.Module, settings: str) -> str:
        """:func:`tower_fingerprint`, recomputed only when the tower's parameters changed since last time."""
        signature = (settings, weights_signature(tower))
        known = self._fingerprints.get(id(tower))
        if known is None or known[0] != signature:
            known = (signature, tower_fingerprint(tower, settings))
            self._fingerprints[id(tower)] = known
        return known[1]

    @staticmethod
    def clip_key(kind: str, fingerprint: str, clip: Tensor) -> str:
        """The entry key of one clip's tower input ``clip`` under a tower ``fingerprint``."""
        data = clip.detach().to("cpu").contiguous()
        digest = xxhash.xxh3_128(f"{kind}|{fingerprint}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
        return digest.hexdigest()

    # ---- lookup ------------------------------------------------------------------------------------------
    def lookup(
        self, kind: str, tower: nn.Module, settings: str, inputs: Tensor, compute: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """Tower outputs of ``inputs`` ``[N, ...]`` (one clip per row): cached rows, ``compute`` on the rest.

        ``compute`` takes the missing rows ``[M, ...]`` and returns their outputs ``[M, ...]`` in one batch.
        """
        fingerprint = self.fingerprint(tower, settings)
        keys = [self.clip_key(kind, fingerprint, row) for row in inputs]
        found: dict[int, Tensor] = {}
        for i, key in enumerate(keys):
            cached = self._get(key)
            if cached is not None:
                found[i] = cached
        first_row: dict[str, int] = {}  # a clip twice in one batch (MI's conditions) is computed once
        for i, key in enumerate(keys):
            if i not in found:
                first_row.setdefault(key, i)
        missing = list(first_row.values())
        self.stats.misses += len(missing)
        if missing:
            computed = compute(inputs[missing] if len(missing) < len(keys) else inputs)
            for j, i in enumerate(missing):
                features = computed[j].detach().clone()  # its own storage: not a view of the whole batch
                self._put(keys[i], features)
                found.update({row: features for row, key in enumerate(keys) if key == keys[i]})
        return torch.stack([found[i].to(inputs.device) for i in range(len(keys))])

    def _get(self, key: str) -> Tensor | None:
        remembered = self._memory.get(key)
        if remembered is not None:
            self.stats.memory_hits += 1
            return remembered
        if self.disk is None:
            return None
        file = self.disk.file(key)
        try:
            tensors = self.disk.get(key)
            if tensors is not None:
                os.utime(file)  # most recently used: evicted last
        except FileNotFoundError:  # another process evicted it between the check and the read
            tensors = None
        if tensors is None or "features" not in tensors:
            return None
        features = tensors["features"]
        self.stats.disk_hits += 1
        self.stats.bytes_read += _nbytes(features)
        self._remember(key, features)
        return features

    def _put(self, key: str, features: Tensor) -> None:
        self._remember(key, features)
        if self.disk is None or _nbytes(features) > self.disk_limit:
            return
        self.disk.put(key, {"features": features.to("cpu")})
        try:
            size = self.disk.file(key).stat().st_size
        except FileNotFoundError:  # another process evicted it already
            size = 0
        self.stats.bytes_written += size
        if self._disk_bytes is None:
            self._disk_bytes = self._scan_disk()[1]
        else:
            self._disk_bytes += size
        if self._disk_bytes > self.disk_limit:
            self._evict_disk()

    def _remember(self, key: str, features: Tensor) -> None:
        before = self._memory.evicted
        self._memory.put(key, features, size=_nbytes(features))
        self.stats.evicted_memory += self._memory.evicted - before

    def _scan_disk(self) -> tuple[list[tuple[float, int, Path]], int]:
        entries = []
        directory = self.disk.directory if self.disk is not None else None
        if directory is not None and directory.is_dir():
            for file in directory.glob("*/*.safetensors"):
                try:
                    stat = file.stat()
                except FileNotFoundError:
                    continue
                entries.append((stat.st_mtime, stat.st_size, file))
        return entries, sum(size for _, size, _ in entries)

    def _evict_disk(self) -> None:
        """Drop the least recently used files until the folder is at 90% of its limit (all processes' files)."""
        entries, total = self._scan_disk()
        for _, size, file in sorted(entries, key=lambda entry: entry[0]):
            if total <= 0.9 * self.disk_limit:
                break
            file.unlink(missing_ok=True)
            total -= size
            self.stats.evicted_disk += 1
        self._disk_bytes = total

    # ---- report ------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: hits (memory/disk), misses, bytes read/written, what is held, evictions."""
        s = self.stats
        held = f"{self._memory.bytes / MB:.1f} MB in memory"
        if self.disk is not None:
            held += f", {(self._disk_bytes if self._disk_bytes is not None else self._scan_disk()[1]) / MB:.1f} MB on disk"
        return (
            f"feature cache: {s.hits} hits ({s.memory_hits} memory, {s.disk_hits} disk), {s.misses} misses; "
            f"read {s.bytes_read / MB:.1f} MB, wrote {s.bytes_written / MB:.1f} MB; holds {held}; "
            f"evicted {s.evicted_memory} from memory, {s.evicted_disk} from disk"
        )

    def log_summary(self, where: str) -> None:
        log.info("%s: %s", where, self.summary())


def attach_feature_cache(
    model: nn.Module, config: Mapping[str, Any] | None, *, sharded: bool = False
) -> FeatureCache | None:
    """Give an :class:`~src.models.omni.OmniModel` the cache ``config`` asks for (none for sharded towers).

    Under FSDP every rank must run the same tower forwards (they all-gather parameters), so a cache hit on one
    rank and a miss on another would hang: sharded models always recompute.
    """
    cache = FeatureCache.from_config(config)
    if cache is not None and sharded:
        log.info("feature_cache: off for sharded (FSDP) towers; every rank recomputes them")
        cache = None
    model.feature_cache = cache
    if cache is not None:
        frozen = [name for name, is_frozen in model.frozen_parts().items() if is_frozen and name != "bert_model"]
        log.info(
            "feature_cache: %s outputs cached under %s", " and ".join(frozen) or "no tower", config.get("dir")
        )
    return cache


def _nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()
