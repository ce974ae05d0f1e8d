"""Generate the synthetic corpus: ``python -m src.data.synth --out DIR --n N --seed S [--regime conflict]``.

Reuses an up-to-date corpus in DIR (same parameters) unless ``--force``; prints the split counts and the
generation speed in clips/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from src.data.synth import DEFAULT_CORPUS_DIR, SynthConfig, ensure_corpus, is_current
from src.data.synth.corpus import INFO_NAME
from src.data.synth.plan import REGIMES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.data.synth", description=__doc__)
    parser.add_argument("--out", default=DEFAULT_CORPUS_DIR, help=f"corpus folder (default {DEFAULT_CORPUS_DIR})")
    parser.add_argument("--n", type=int, default=200, help="number of clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels (even)")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length")
    parser.add_argument("--variation", type=float, default=0.3, help="skin/background colour spread, 0..1")
    parser.add_argument("--phrasings", type=int, default=None, help="wordings per cue (default: all templates)")
    parser.add_argument(
        "--regime",
        choices=REGIMES,
        default="faint",
        help="faint (default): the non-dominant cue is absent or faint and worded so; conflict: another emotion "
        "at full intensity, brief, in plain words (src/data/synth/plan.py)",
    )
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="regenerate even when an identical corpus exists")
    args = parser.parse_args(argv)

    out = Path(args.out)
    options = {
        "size": args.size,
        "fps": args.fps,
        "seconds": args.seconds,
        "variation": args.variation,
        "phrasings": args.phrasings,
        "regime": args.regime,
    }
    config = SynthConfig(n=args.n, seed=args.seed, **options)
    if args.force and (out / INFO_NAME).is_file():
        shutil.rmtree(out)
    if is_current(out, config):
        print(
            f"{out} already holds this corpus (n={args.n}, seed={args.seed}, regime={args.regime}); "
            "use --force to regenerate"
        )
        return 0
    start = time.perf_counter()
    try:
        manifest = ensure_corpus(out, n=args.n, seed=args.seed, workers=args.workers, **options)
    except (FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    counts = json.loads((out / INFO_NAME).read_text())["counts"]
    splits = ", ".join(f"{name} {number}" for name, number in counts["split"].items())
    print(f"wrote {args.n} clips ({splits}) to {manifest} in {elapsed:.1f} s ({args.n / elapsed:.1f} clips/s)")
    print(f"dominant: {counts['dominant']}; non-dominant cue: {counts['cue']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
