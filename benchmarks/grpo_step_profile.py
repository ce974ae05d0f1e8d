"""Where one multimodal GRPO step spends its time: rollout / reward / loss (+ backward + optimiser step).

The step is :func:`src.rl.step.grpo_step`, the function ``GRPOModule.training_step`` runs, on the ``tiny`` preset with random weights (the
module builds a fresh model when it has no ``init_from``), MIGR's reward set (modality_order +
modality_grounding + answer, keyword judge), G=4 completions for each of 2 prompts, beta 0.04 against a
frozen reference. The prompts carry media of the preset's shapes (random frames and mel features, one clip
with video and audio, one with video only), so the rollout includes the towers, projectors and BERT gate,
computed once per prompt.

The three parts, timed separately in every step by ``grpo_step`` itself:

* rollout: tower features, one prefill per prompt, KV-cache decode of B*G rows;
* reward: :meth:`GRPOModule.score` (the reward set), the weighted total and the group advantages;
* loss: reference log-probs, policy log-probs with entropy, :func:`~src.rl.loss.grpo_loss`, backward,
  gradient clipping, AdamW step (plain ``loss.backward()`` and ``clip_grad_norm_`` here, Lightning's
  ``manual_backward`` and ``clip_gradients`` in training).

    python benchmarks/grpo_step_profile.py [--steps 8] [--warmup 2] [--max-new-tokens 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from omegaconf import OmegaConf

from src.data.collate import Batch, Example, OmniCollator
from src.data.prompts import INSTRUCTIONS, build_prompt
from src.rl.step import STEP_PARTS, GRPOConfig, Prompts, grpo_step
from src.stages.common import build_optimizer, trainable_parameters
from src.stages.grpo import GRPOModule

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PARTS = STEP_PARTS


def _config(group: str, name: str) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{name}.yaml"), resolve=True)


def build_module(*, num_generations: int, max_new_tokens: int, seed: int = 0) -> GRPOModule:
    """A ``GRPOModule`` from the shipped configs (tiny model, grpo stage, MIGR rewards, keyword judge)."""
    known = {f.name for f in fields(GRPOConfig)}
    grpo = {key: value for key, value in _config("stage", "grpo").items() if key in known}
    grpo.update(num_generations=num_generations, max_new_tokens=max_new_tokens)
    model = _config("model", "tiny")
    model["freeze"] = {"vision_tower": True, "audio_tower": True, "bert_model": True}  # as GRPO on an SFT export
    module = GRPOModule(model, grpo, _config("rewards", "migr"), _config("judge", "keywords"), seed=seed)
    module.configure_model()
    return module


def build_batch(module: GRPOModule, *, seed: int = 0) -> Batch:
    """Two left-padded prompts with random media of the preset's shapes: video+audio, and video only."""
    config = module.model.config
    generator = torch.Generator().manual_seed(seed)
    instruction = INSTRUCTIONS["reasoning"]
    rows = [("happy", "audio", True, True), ("sad", "visual", True, False)]  # label, dominant, video, audio
    examples = [
        Example(
            prompt=build_prompt(instruction, has_video=has_video, has_audio=has_audio),
            target=None,
            frames=torch.randn(config.num_frames, 3, config.image_size, config.image_size, generator=generator)
            if has_video
            else None,
            mel=torch.randn(config.n_mels, config.num_mel_frames, generator=generator) if has_audio else None,
            instruction=instruction,
            meta={"id": f"clip{i}", "label": label, "dataset": "dfew", "dominant": dominant},
        )
        for i, (label, dominant, has_video, has_audio) in enumerate(rows)
    ]
    counts = module.model.token_counts()
    collate = OmniCollator(
        module.tokenizer,
        module.gate_tokenizer,
        num_video_tokens=counts["video"],
        num_audio_tokens=counts["audio"],
        padding_side="left",
    )
    return collate(examples)


class StepTimer:
    """Runs ``GRPOModule``'s step piece by piece and records the seconds of each part."""

    def __init__(self, module: GRPOModule) -> None:
        self.module = module
        self.optimizer = build_optimizer(trainable_parameters(module.model), module.cfg.optim)
        self.seconds: dict[str, list[float]] = {part: [] for part in PARTS}
        self.completion_lengths: list[float] = []

    def step(self, batch: Batch) -> None:
        module, cfg = self.module, self.module.cfg
        parameters = trainable_parameters(module.model)
        clip = (
            (lambda: torch.nn.utils.clip_grad_norm_(parameters, cfg.gradient_clip_val))
            if cfg.gradient_clip_val
            else None
        )
        result = grpo_step(
            module.model,
            module.tokenizer,
            Prompts(batch.input_ids, batch.attention_mask, batch.media),
            cfg,
            score=lambda rollout: module.score(rollout, batch),
            reference_logprobs=module.reference_logprobs if cfg.beta > 0 else None,
            optimizer=self.optimizer,
            clip=clip,
        )
        for part in PARTS:
            self.seconds[part].append(result.seconds[part])
        self.completion_lengths.append(float(result.rollout.lengths.float().mean()))


def run(
    steps: int, warmup: int, max_new_tokens: int, num_generations: int = 4, report: Callable[[str], None] = print
) -> dict[str, float]:
    """Time ``steps`` steps after ``warmup`` untimed ones; returns the median seconds of each part."""
    module = build_module(num_generations=num_generations, max_new_tokens=max_new_tokens)
    batch = build_batch(module)
    module.model.train()
    timer = StepTimer(module)
    for _ in range(warmup):
        timer.step(batch)
    timer.seconds = {part: [] for part in PARTS}
    timer.completion_lengths = []
    for _ in range(steps):
        timer.step(batch)

    medians = {part: statistics.median(values) for part, values in timer.seconds.items()}
    step_seconds = sum(medians.values())
    completions = len(batch) * num_generations
    report(
        f"tiny preset, {len(batch)} prompts x G={num_generations}, up to {max_new_tokens} new tokens "
        f"(mean {statistics.fmean(timer.completion_lengths):.1f}), prompt length {batch.input_ids.shape[1]} "
        f"positions, torch threads: {torch.get_num_threads()}; median of {steps} steps after {warmup} warm-up"
    )
    for part in PARTS:
        report(f"{part:<8} {medians[part] * 1000:8.1f} ms  {medians[part] / step_seconds:6.1%}")
    report(f"{'step':<8} {step_seconds * 1000:8.1f} ms  {completions / step_seconds:6.1f} completions/s")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    run(args.steps, args.warmup, args.max_new_tokens, args.num_generations)


if __name__ == "__main__":
    main()
