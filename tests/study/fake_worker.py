"""A stand-in worker for tests of :func:`src.demo.arms.run_workers`: ``python -m tests.study.fake_worker SPEC NAME``.

SPEC is JSON ``{name: {"marker": path, "needs": [paths], "seconds": s}}``; the worker fails (exit 3) when a
marker it needs is missing, else records its start and end in ``<marker>.times``, the shared libraries mapped into it
(``/proc/self/maps``, Linux) in ``<marker>.libs``, and writes its marker.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    spec_file, name = sys.argv[1:]
    task = json.loads(Path(spec_file).read_text())[name]
    if not all(Path(need).exists() for need in task["needs"]):
        sys.exit(3)
    began = time.time()
    time.sleep(task["seconds"])
    marker = Path(task["marker"])
    marker.with_suffix(".times").write_text(json.dumps([began, time.time()]))
    maps = Path("/proc/self/maps")
    libraries = (
        {line.split()[-1] for line in maps.read_text().splitlines() if ".so" in line} if maps.exists() else set()
    )
    marker.with_suffix(".libs").write_text(json.dumps(sorted(libraries)))
    marker.write_text("done")


if __name__ == "__main__":
    main()
