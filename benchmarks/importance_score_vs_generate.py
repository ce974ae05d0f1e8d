"""Modality Importance throughput: batched ``score`` mode vs a naive loop of three ``generate`` calls per clip.

    .venv/bin/python benchmarks/importance_score_vs_generate.py [--clips 32] [--batch-size 16] [--model DIR]

Both sides run the same model on the same clips (media decoded and cached before timing, so only model work
is timed). ``score``: one prefill over the 3 conditions of a batch of clips + one forward scoring every label.
Naive: for every clip and condition, one greedy ``generate`` call (batch 1, answer up to 8 tokens), as a
straightforward implementation of the paper's procedure would do. Prints clips/s of each and the ratio, from
one run. Without ``--model`` a fresh tiny model is used (the speed does not depend on what it learned).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from src.data.manifest import read_manifest
from src.data.media import MediaLoader
from src.data.synth import ensure_corpus
from src.migr.importance import CONDITIONS, ImportanceEstimator
from src.models.checkpoint import load_model
from src.models.generation import generate
from src.models.omni import OmniModel
from src.models.presets import get_preset
from src.models.tokenizer import build_tiny_tokenizer


def naive_loop(model, tokenizer, estimator: ImportanceEstimator, samples) -> None:
    """Per clip, per condition: one batch-1 greedy ``generate`` of the answer (media re-encoded each time)."""
    for sample in samples:
        input_ids, mask, media = estimator._rows([sample])  # the 3 condition rows of this clip
        for row in range(len(CONDITIONS)):
            keep = mask[row].bool()
            generate(
                model,
                input_ids[row : row + 1, keep],
                mask[row : row + 1, keep],
                _single_condition_media(media, row),
                max_new_tokens=8,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", type=Path, default=None, help="a model folder; default: fresh tiny model")
    parser.add_argument("--corpus", type=Path, default=None, help="synthetic corpus folder (made if missing)")
    args = parser.parse_args(argv)

    corpus = args.corpus or Path(tempfile.gettempdir()) / "migr-bench-corpus"
    samples = read_manifest(ensure_corpus(corpus, n=max(args.clips, 14), seed=0))[: args.clips]
    if args.model is not None:
        loaded = load_model(args.model)
        model, tokenizer, gate_tokenizer = loaded.model, loaded.tokenizer, loaded.gate_tokenizer
    else:
        tokenizer = gate_tokenizer = build_tiny_tokenizer()
        torch.manual_seed(0)
        model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()
    cfg = model.config
    loader = MediaLoader(image_size=cfg.image_size, num_frames=cfg.num_frames, audio_seconds=cfg.audio_seconds)
    for sample in samples:  # decode once: both sides then read the same in-memory cache
        loader.load(sample)
    cached = {s.id: loader.load(s) for s in samples}
    loader.load = lambda sample, video=True, audio=True: cached[sample.id]  # type: ignore[method-assign]

    scorer = ImportanceEstimator(model, tokenizer, gate_tokenizer, loader, batch_size=args.batch_size)
    single = ImportanceEstimator(model, tokenizer, gate_tokenizer, loader, batch_size=1, max_new_tokens=8)
    scorer.estimate(samples[: min(4, len(samples))])  # warm-up
    naive_loop(model, tokenizer, single, samples[:1])

    start = time.perf_counter()
    scorer.estimate(samples)
    score_seconds = time.perf_counter() - start

    start = time.perf_counter()
    naive_loop(model, tokenizer, single, samples)
    naive_seconds = time.perf_counter() - start

    n = len(samples)
    print(f"clips: {n}, threads: {torch.get_num_threads()}, model: {cfg.preset}")
    print(
        f"score mode (batched, batch {args.batch_size}): {n / score_seconds:8.1f} clips/s ({score_seconds:.2f} s)"
    )
    print(f"naive loop (3 generate calls per clip):   {n / naive_seconds:8.1f} clips/s ({naive_seconds:.2f} s)")
    print(f"ratio score / naive: {naive_seconds / score_seconds:.1f}x")


def _single_condition_media(media, row: int):
    """The media of condition row ``row`` (0 audio, 1 visual, 2 audio-visual) of a one-clip batch."""
    from src.models.omni import MediaInputs

    has_video = row in (1, 2)
    has_audio = row in (0, 2)
    return MediaInputs(
        frames=media.frames if has_video else None,
        gate_input_ids=media.gate_input_ids if has_video else None,
        gate_attention_mask=media.gate_attention_mask if has_video else None,
        mel=media.mel if has_audio else None,
    )


if __name__ == "__main__":
    main()
