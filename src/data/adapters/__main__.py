"""Convert a dataset in its official layout to a manifest: ``python -m src.data.adapters DATASET SOURCE --out M``.

    python -m src.data.adapters dfew /data/DFEW --fold 1 --out /data/DFEW/dfew_fold1.jsonl --val-fraction 0.1
    python -m src.data.adapters mafw /data/MAFW --fold 2 --out /data/MAFW/mafw_fold2.jsonl --on-error skip
    python -m src.data.adapters emer /data/EMER/EMER-reason.csv --out /data/EMER/emer.jsonl

SOURCE is the dataset folder (DFEW, MAFW) or the reason csv (EMER). Exit status 2 on a layout or row error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from src.data.adapters import ADAPTERS, AdapterError, convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.data.adapters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=sorted(ADAPTERS))
    parser.add_argument("source", help="dataset folder (dfew, mafw) or reason csv (emer)")
    parser.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    parser.add_argument("--fold", type=int, default=1, help="cross-validation fold 1..5 (dfew, mafw)")
    parser.add_argument("--clips-dir", help="clip folder, when not in a recognised place")
    parser.add_argument("--val-fraction", type=float, default=0.0, help="share of train moved to val (stratified)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the val split")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="bad rows: stop or count")
    parser.add_argument("--min-secondary-votes", type=int, default=1, help="dfew: votes for a secondary label")
    parser.add_argument("--au-dir", help="dfew, mafw: folder of OpenFace csvs named after the clips")
    parser.add_argument("--labels-csv", help="emer: name,label file when the reason csv has no label column")
    parser.add_argument("--audio-dir", help="emer: folder of separate <name>.wav files")
    args = parser.parse_args(argv)

    options: dict[str, Any] = {"val_fraction": args.val_fraction, "seed": args.seed, "on_error": args.on_error}
    if args.clips_dir:
        options["clips_dir"] = args.clips_dir
    if args.dataset in ("dfew", "mafw"):
        options.update(fold=args.fold, au_dir=args.au_dir)
    if args.dataset == "dfew":
        options["min_secondary_votes"] = args.min_secondary_votes
    if args.dataset == "emer":
        options.update(labels_csv=args.labels_csv, audio_dir=args.audio_dir)
    try:
        report = convert(args.dataset, args.source, args.out, **options)
    except AdapterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
