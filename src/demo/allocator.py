"""The memory allocator of worker processes: tcmalloc preloaded when the machine has it.

The tiny model's steps are thousands of small tensor allocations (activations, gradients, the optimiser's
temporaries); glibc's ``malloc`` hands large ones back to the kernel and faults the pages in again on the next
step. tcmalloc keeps them, and a worker's stage runs faster with the same arithmetic: the exported weights are
bit-identical (``tests/study/test_allocator.py``), and ``benchmarks/allocator.py`` measures the ratio
(docs/performance.md). The setting is ``worker_allocator`` of configs/pipeline.yaml:

* ``auto``: tcmalloc (``libtcmalloc_minimal``, Debian's ``libtcmalloc-minimal4``, which ``make`` installs as
  root) when the dynamic linker finds it, else the system's allocator;
* ``system``: the C library's ``malloc``;
* a path to a shared library (for example jemalloc's ``libjemalloc.so.2``), which must exist.

Only worker processes get it (``LD_PRELOAD`` must be set before a process starts): the study's every stage,
and the demo's arms when they run side by side.
"""

from __future__ import annotations

import ctypes.util
import sys
from collections.abc import Mapping
from pathlib import Path

SETTING = "worker_allocator"  # the configuration key (configs/pipeline.yaml)
TCMALLOC = "tcmalloc_minimal"
# tcmalloc reports every allocation over 1 GB on stderr; the stage logs have no use for that
QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


def preload_library(setting: str) -> str | None:
    """The library workers preload for ``setting`` (see the module docstring), or None for the system's."""
    setting = str(setting)
    if setting == "system":
        return None
    if setting == "auto":
        if not sys.platform.startswith("linux"):
            return None
        return ctypes.util.find_library(TCMALLOC)  # a soname the dynamic linker resolves, or None
    path = Path(setting)
    if not path.is_file():
        raise ValueError(
            f"{SETTING}={setting!r}: expected auto, system or the path of a shared library; no file {path}"
        )
    return str(path.resolve())


def with_preload(env: Mapping[str, str], library: str | None) -> dict[str, str]:
    """``env`` with ``library`` first in ``LD_PRELOAD`` (what was there is kept after it)."""
    result = dict(env)
    if library is None:
        return result
    result["LD_PRELOAD"] = " ".join([library, *result.get("LD_PRELOAD", "").split()])
    if TCMALLOC in library:
        result = {**QUIET, **result}
    return result


def describe(library: str | None) -> str:
    return "the system allocator" if library is None else f"the allocator {library} (LD_PRELOAD)"
