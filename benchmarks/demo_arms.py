"""Why the demo runs its two arms side by side: SFT steps of two arms, one after the other vs at the same time.

Each arm is a worker process that builds the ``tiny`` preset (towers frozen, as in the demo's SFT) and trains
``--steps`` SFT steps (forward, backward, AdamW) on one batch of 16 rows shaped like the demo's (8 frames,
3 s of audio, the reasoning instruction, a tagged explanation of ~55 tokens). The two ways of running two arms
on this machine's torch threads (``--threads``, default all of them):

* one after the other, each arm with every thread (what ``arms_in_parallel=false`` does);
* side by side, the threads split between the arms (``arms_in_parallel=auto`` on a CPU machine).

Only the steps are timed (process start, imports and model building are left out; the demo pays them once per
arm either way); the side-by-side time runs from the moment both workers are ready to the moment both are done.

    python benchmarks/demo_arms.py [--steps 30] [--warmup 3] [--threads N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROWS = 16
EXPLANATION = {
    "visual": "The brows rise and draw together, the eyes widen and the lips stretch sideways, which looks fearful.",
    "audio": "The voice wavers slightly, a hint of fear.",
    "think": "The face carries the clearest cue, so the person feels afraid.",
}


def _arm(threads: int, steps: int, warmup: int, barrier: Any, results: Any, seed: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from src.data.collate import Example, OmniCollator
    from src.data.prompts import INSTRUCTIONS, build_prompt
    from src.data.reasoning import build_target
    from src.models.omni import OmniModel
    from src.models.presets import get_preset
    from src.models.tokenizer import build_tiny_tokenizer
    from src.stages.common import build_optimizer, trainable_parameters

    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer)
    model.freeze(vision_tower=True, audio_tower=True, bert_model=True)
    config = model.config
    instruction = INSTRUCTIONS["reasoning"]
    examples = [
        Example(
            prompt=build_prompt(instruction, has_video=True, has_audio=True),
            target=build_target(**EXPLANATION, answer="fear", first="visual" if row % 2 else "audio"),
            frames=torch.randn(config.num_frames, 3, config.image_size, config.image_size),
            mel=torch.randn(config.n_mels, config.num_mel_frames),
            instruction=instruction,
        )
        for row in range(ROWS)
    ]
    counts = model.token_counts()
    collate = OmniCollator(
        tokenizer, tokenizer, num_video_tokens=counts["video"], num_audio_tokens=counts["audio"]
    )
    batch = collate(examples)
    optimizer = build_optimizer(trainable_parameters(model), {"lr": 1e-4})

    def step() -> None:
        out = model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if barrier is not None:
        barrier.wait()
    began = time.time()  # wall-clock: the two workers' spans are compared with each other
    for _ in range(steps):
        step()
    results.put((began, time.time()))


def _run(arms: list[int], args: argparse.Namespace, *, together: bool) -> float:
    """Seconds of stepping for arms with the given thread counts, run together or one after the other."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = context.Barrier(len(arms)) if together else None
    spans = []
    groups = [arms] if together else [[threads] for threads in arms]
    for group in groups:
        workers = [
            context.Process(target=_arm, args=(threads, args.steps, args.warmup, barrier, results, seed))
            for seed, threads in enumerate(group)
        ]
        for worker in workers:
            worker.start()
        group_spans = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
            if worker.exitcode != 0:
                raise SystemExit(f"an arm worker failed (exit code {worker.exitcode})")
        spans.append(max(end for _, end in group_spans) - min(start for start, _ in group_spans))
    return sum(spans)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.threads < 2:
        raise SystemExit(f"--threads={args.threads}: side by side needs at least one thread per arm (2)")
    split = args.threads // 2
    after = _run([args.threads, args.threads], args, together=False)
    beside = _run([split, split], args, together=True)
    print(f"two arms x {args.steps} SFT steps, tiny preset, batch {ROWS}, {args.threads} threads in all")
    print(f"one after the other ({args.threads} threads each)  {after:8.2f} s")
    print(f"side by side ({split} thread{'s' if split > 1 else ''} each)        {beside:8.2f} s")
    print(f"ratio after / beside               {after / beside:8.2f}x")


if __name__ == "__main__":
    main()
