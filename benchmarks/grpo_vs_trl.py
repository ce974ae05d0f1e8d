"""GRPO step throughput: our step (``src.rl``) against TRL 1.16's ``GRPOTrainer``, same model, same prompts.

Both sides train the same tiny text-only Qwen2 (hidden 64, 2 layers, random weights, the project's BPE
tokenizer built in code) on the same chat prompts, in fp32 on one CPU thread:

* G=4 completions per prompt, 2 prompts per step (8 completions), 32 new tokens, temperature 1.0;
* beta=0.04 with a frozen reference model, ``loss_type="grpo"``, epsilon 0.2, one update per rollout
  (``num_iterations=1``), AdamW at the same learning rate, gradient norm clipped at 1.0;
* the same reward function (a cheap text statistic), called once per step.

TRL runs its own ``Trainer.train()`` loop (transformers ``generate`` for sampling, no vLLM, no logging, no
checkpoints). Our step is :func:`src.rl.step.grpo_step`, the function ``GRPOModule.training_step`` runs (the
reward scored into a :class:`~src.reward_set.RewardResult` directly rather than through a ``RewardSet`` of
registered rewards), on a ``TextPolicy``: tokenise -> sample -> reward -> total and group advantages ->
reference log-probs -> policy log-probs (with entropy) -> ``grpo_loss`` -> backward, clip, AdamW step.

Timing: the two alternate within ONE run. A ``TrainerCallback`` runs one of our steps at the end of every
TRL step, so step k of each side sees the same machine state; a TRL step is timed from the end of our
previous step to the end of its optimiser step (data loading, generation, scoring, loss, backward, step).
The first ``--warmup`` steps of each side are not timed.

Generation length: the tokenizer's EOS is a token outside the model's output vocabulary (added after the
model's vocabulary size was fixed), so neither side can stop early and every completion has exactly
``--max-new-tokens`` tokens on both sides; the script prints each side's mean completion length as a check.

    python benchmarks/grpo_vs_trl.py [--steps 10] [--warmup 3] [--max-new-tokens 32] [--profile]

``--profile`` additionally prints a cProfile of our steps (cumulative time, top 25 entries).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as hf_logging

from src.data.prompts import INSTRUCTIONS, build_prompt
from src.models.tokenizer import build_tiny_tokenizer
from src.reward_set import RewardResult, reward_metrics
from src.rl.rollout import Rollout, TextPolicy, completion_logprobs
from src.rl.step import GRPOConfig, Prompts, grpo_step

LEARNING_RATE = 1e-6
EPSILON = 0.2
UNREACHABLE_EOS = "<|benchmark_eos|>"


@dataclass(frozen=True)
class BenchConfig:
    """The settings both sides share."""

    num_generations: int = 4
    prompts_per_step: int = 2
    max_new_tokens: int = 32
    beta: float = 0.04
    temperature: float = 1.0
    max_grad_norm: float = 1.0

    @property
    def completions_per_step(self) -> int:
        return self.num_generations * self.prompts_per_step


def benchmark_prompts() -> list[str]:
    """Chat prompts of different lengths (so left padding happens), text only: the instructions of each task."""
    return [build_prompt(text, has_video=False, has_audio=False) for text in INSTRUCTIONS.values()] + [
        build_prompt(
            "Which emotion does the speaker convey? Answer with one word.", has_video=False, has_audio=False
        )
    ]


class LetterShare:
    """The shared reward: the share of a completion's characters that are letters (cheap, deterministic).

    It follows TRL's reward signature, which our reward contract shares, and records the mean completion
    length (tokens, up to and including EOS) of every batch it scores, so each side's lengths can be checked.
    """

    __name__ = "letter_share"  # TRL names its reward columns after this

    def __init__(self) -> None:
        self.mean_lengths: list[float] = []

    def __call__(self, completions: list[str], completion_ids: list[list[int]], **kwargs: object) -> list[float]:
        self.mean_lengths.append(sum(map(len, completion_ids)) / len(completion_ids))
        return [sum(char.isalpha() for char in text) / max(1, len(text)) for text in completions]


def benchmark_tokenizer() -> tuple[PreTrainedTokenizerBase, int]:
    """The project's tiny BPE with an end-of-sequence token the model cannot emit, and the model's vocabulary size.

    EOS is added after the vocabulary the model is built with, so no sampled id can equal it: both sides decode
    exactly ``max_new_tokens`` tokens for every completion, whatever the random weights sample.
    """
    tokenizer = build_tiny_tokenizer()
    vocab_size = len(tokenizer)
    tokenizer.add_special_tokens({"eos_token": UNREACHABLE_EOS})
    return tokenizer, vocab_size


def build_tiny_lm(tokenizer: PreTrainedTokenizerBase, vocab_size: int, *, seed: int = 0) -> Qwen2ForCausalLM:
    """The benchmark's Qwen2: hidden 64, 2 layers, 4 heads (2 KV heads), random weights, fp32."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id  # TRL stops on every eos the model declares
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


@dataclass
class OurSide:
    """Everything our step needs: policy, frozen reference, optimiser, and the lengths it produced."""

    policy: TextPolicy
    reference: TextPolicy
    optimizer: torch.optim.Optimizer
    tokenizer: PreTrainedTokenizerBase
    config: BenchConfig
    prompts: list[str]
    reward: LetterShare = field(default_factory=LetterShare)
    cursor: int = 0

    @classmethod
    def build(cls, model_dir: Path, tokenizer: PreTrainedTokenizerBase, config: BenchConfig, prompts: list[str]):
        policy = TextPolicy(Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32)).train()
        reference = TextPolicy(Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32))
        reference.requires_grad_(False).eval()
        optimizer = torch.optim.AdamW(policy.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
        return cls(policy, reference, optimizer, tokenizer, config, prompts)

    def next_prompts(self) -> list[str]:
        """The next ``prompts_per_step`` prompts, in dataset order (TRL runs with ``shuffle_dataset=False``)."""
        count = self.config.prompts_per_step
        batch = [self.prompts[(self.cursor + i) % len(self.prompts)] for i in range(count)]
        self.cursor += count
        return batch

    def step(self) -> None:
        """One GRPO step: :func:`src.rl.step.grpo_step` with the shared settings."""
        cfg = self.config
        prompts = self.next_prompts()
        encoded = self.tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
        settings = GRPOConfig(
            num_generations=cfg.num_generations,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            beta=cfg.beta,
            epsilon_low=EPSILON,
            epsilon_high=EPSILON,
            loss_type="grpo",
            scale_rewards="group",
        )

        def score(rollout: Rollout) -> RewardResult:
            ids = [row[keep.bool()].tolist() for row, keep in zip(rollout.completion_ids, rollout.completion_mask)]
            column = {"letters": self.reward(rollout.texts, ids)}
            weights = {"letters": 1.0}
            return RewardResult(column, weights, reward_metrics(column, weights, {}, {}))

        grpo_step(
            self.policy,
            self.tokenizer,
            Prompts(encoded["input_ids"], encoded["attention_mask"]),
            settings,
            score=score,
            reference_logprobs=lambda rollout: completion_logprobs(self.reference, rollout)[0],
            optimizer=self.optimizer,
            clip=lambda: torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm),
        )


class _Alternate(TrainerCallback):
    """Times TRL's steps and runs (and times) one of ours after each, so the two alternate."""

    def __init__(self, ours: OurSide, profiler: cProfile.Profile | None, warmup: int) -> None:
        self.ours, self.profiler, self.warmup = ours, profiler, warmup
        self.trl_seconds: list[float] = []
        self.our_seconds: list[float] = []
        self._mark = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[override]
        self._mark = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[override]
        self.trl_seconds.append(time.perf_counter() - self._mark)
        profile = self.profiler is not None and state.global_step > self.warmup
        start = time.perf_counter()
        if profile:
            self.profiler.enable()
        self.ours.step()
        if profile:
            self.profiler.disable()
        self.our_seconds.append(time.perf_counter() - start)
        self._mark = time.perf_counter()


def build_trl_trainer(
    model_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    config: BenchConfig,
    prompts: list[str],
    reward: LetterShare,
    *,
    steps: int,
    output: Path,
):
    """TRL's GRPOTrainer with the shared settings, offline, on the CPU, no logging or checkpoints."""
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    args = TRLConfig(
        output_dir=str(output),
        max_steps=steps,
        per_device_train_batch_size=config.completions_per_step,  # TRL counts completions: 2 prompts x G
        num_generations=config.num_generations,
        max_completion_length=config.max_new_tokens,
        temperature=config.temperature,
        beta=config.beta,
        epsilon=EPSILON,
        loss_type="grpo",
        num_iterations=1,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=config.max_grad_norm,
        shuffle_dataset=False,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to=[],
        logging_strategy="no",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    repeats = steps * config.prompts_per_step // len(prompts) + 1
    dataset = Dataset.from_dict({"prompt": prompts * repeats})
    return GRPOTrainer(
        model=str(model_dir),
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )


def _summary(name: str, seconds: list[float], completions: int, mean_length: float) -> tuple[float, str]:
    rate = completions * len(seconds) / sum(seconds)
    line = (
        f"{name:<22} {rate:8.1f} completions/s   median step {statistics.median(seconds) * 1000:7.1f} ms   "
        f"mean completion length {mean_length:5.1f} tokens"
    )
    return rate, line


def run(
    steps: int, warmup: int, max_new_tokens: int, profile: bool, report: Callable[[str], None] = print
) -> float:
    """Run the interleaved benchmark; returns our completions/s divided by TRL's."""
    torch.set_num_threads(1)
    config = BenchConfig(max_new_tokens=max_new_tokens)
    tokenizer, vocab_size = benchmark_tokenizer()
    prompts = benchmark_prompts()
    profiler = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        model_dir = Path(tmp) / "tiny-qwen2"
        # safetensors on disk: TRL loads its policy and builds its reference from a path
        build_tiny_lm(tokenizer, vocab_size).save_pretrained(model_dir)
        ours = OurSide.build(model_dir, tokenizer, config, prompts)
        trl_reward = LetterShare()
        trainer = build_trl_trainer(
            model_dir, tokenizer, config, prompts, trl_reward, steps=warmup + steps, output=Path(tmp) / "trl"
        )
        timer = _Alternate(ours, profiler, warmup)
        trainer.add_callback(timer)
        trainer.remove_callback(PrinterCallback)  # it would print TRL's end-of-training metrics
        trainer.train()

    trl_seconds, our_seconds = timer.trl_seconds[warmup:], timer.our_seconds[warmup:]
    per_step = config.completions_per_step
    report(
        f"tiny Qwen2 (hidden 64, 2 layers, vocab {vocab_size}), G={config.num_generations}, "
        f"{config.prompts_per_step} prompts/step, {max_new_tokens} new tokens, beta={config.beta}, fp32, "
        f"torch threads: {torch.get_num_threads()}; {steps} timed steps each after {warmup} warm-up, interleaved"
    )
    trl_rate, trl_line = _summary(
        "TRL GRPOTrainer", trl_seconds, per_step, statistics.fmean(trl_reward.mean_lengths[warmup:])
    )
    our_rate, our_line = _summary(
        "ours (src.rl)", our_seconds, per_step, statistics.fmean(ours.reward.mean_lengths[warmup:])
    )
    report(trl_line)
    report(our_line)
    report(f"{'ratio ours / TRL':<22} {our_rate / trl_rate:8.2f}x")
    if profiler is not None:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
        report(stream.getvalue())
    return our_rate / trl_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each side first")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of our timed steps")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"--steps must be >= 1 and --warmup >= 0, got {args.steps} and {args.warmup}")
    # Keep the output to the figures: weight-loading bars and TRL's CPU/deprecation notices are not results.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    run(args.steps, args.warmup, args.max_new_tokens, args.profile)


if __name__ == "__main__":
    main()
