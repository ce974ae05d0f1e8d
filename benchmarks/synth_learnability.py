"""Is the synthetic corpus learnable, and from the right modality? A linear probe per modality.

Generates (or reuses, with --out) a corpus, decodes it with the tiny preset's inputs (8 frames at 64 px, a 3 s
Whisper log-mel) and runs :func:`src.data.synth.probe.probe`: a logistic regression per modality on the clips
where that modality carries the label, scored on held-out clips where it is dominant and where it is not.

    python benchmarks/synth_learnability.py [--n 350] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from src.data.manifest import read_manifest
from src.data.media import MediaLoader
from src.data.synth import ensure_corpus
from src.data.synth.probe import probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=350)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="corpus folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "synth"
        samples = read_manifest(ensure_corpus(out, n=args.n, seed=args.seed))
        results = probe(samples, MediaLoader(image_size=64, num_frames=8, audio_seconds=3))
    print(f"synthetic corpus n={args.n} seed={args.seed}; chance = 1/7 = {1 / 7:.3f}")
    for modality, figures in results.items():
        print(
            f"{modality:>6} probe: dominant {figures['dominant_accuracy']:.3f} "
            f"(n={figures['held_out_dominant']}), non-dominant {figures['non_dominant_accuracy']:.3f} "
            f"(n={figures['held_out_non_dominant']}), names the misleading emotion {figures['names_misleading']:.3f}"
        )


if __name__ == "__main__":
    main()
