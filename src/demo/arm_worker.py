"""One arm of the demo in its own process: ``python -m src.demo.arm_worker CONFIG ARM`` (started by
:func:`src.demo.arms.run_arms_side_by_side`). It plans the demo's arms from the saved configuration
(:func:`src.demo.pipeline.arm_tasks`) and runs its arm with :func:`src.demo.arms.worker_main`; it sits above
both so that neither imports the other's layer back.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from src.demo.arms import worker_main
from src.demo.pipeline import arm_tasks


def main(argv: Sequence[str] | None = None) -> None:
    worker_main(argv if argv is not None else sys.argv[1:], arm_tasks)


if __name__ == "__main__":
    main()
