"""Whisper log-mel: ``src.data.features.log_mel`` against ``transformers.WhisperFeatureExtractor``.

Both turn the same batch of 32 ten-second 16 kHz clips into 128 x 3000 log-mel features (the 30 s window of
Whisper-large-v3); the script checks they agree, then prints the median of several alternately timed runs of each and the
speed ratio, all from this one run.

    python benchmarks/features_vs_whisper.py [--batch 32] [--seconds 10] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from transformers import WhisperFeatureExtractor

from src.data.features import log_mel


def _interleaved_medians(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of each, timed alternately so a load change on the machine hits both alike."""
    first(), second()  # warm-up: allocator, FFT plans, lazy imports
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, bucket in ((first, timings[0]), (second, timings[1])):
            start = time.perf_counter()
            run()
            bucket.append(time.perf_counter() - start)
    return statistics.median(timings[0]), statistics.median(timings[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    samples = int(args.seconds * 16000)
    # Speech-like level and a different length per clip, as a real batch has.
    waves = [
        (0.1 * rng.standard_normal(samples - int(rng.integers(0, 1600)))).astype(np.float32)
        for _ in range(args.batch)
    ]
    extractor = WhisperFeatureExtractor(feature_size=128)

    def reference() -> torch.Tensor:
        return extractor(waves, sampling_rate=16000, return_tensors="pt")["input_features"]

    def ours() -> torch.Tensor:
        return log_mel([torch.from_numpy(wave) for wave in waves], n_mels=128, num_seconds=30)

    max_diff = (reference() - ours()).abs().max().item()
    reference_s, ours_s = _interleaved_medians(reference, ours, args.repeats)
    print(
        f"batch of {args.batch} clips x {args.seconds:g} s -> [{args.batch}, 128, 3000], torch threads: {torch.get_num_threads()}"
    )
    print(f"max |difference|          : {max_diff:.2e}")
    print(f"WhisperFeatureExtractor   : {reference_s * 1000:8.1f} ms (median of {args.repeats})")
    print(f"src.data.features.log_mel : {ours_s * 1000:8.1f} ms (median of {args.repeats})")
    print(f"speed-up                  : {reference_s / ours_s:8.2f}x")


if __name__ == "__main__":
    main()
