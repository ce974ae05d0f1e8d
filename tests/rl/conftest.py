"""A real TRL ``GRPOTrainer`` on a tiny offline model, to compare our GRPO maths with TRL's own code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer Qwen2 with random weights saved as safetensors (TRL reloads it by path for its reference)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=12,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    path = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def char_tokenizer() -> Any:
    """One token per character over "abcdefghij", built in code (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{char: index + 2 for index, char in enumerate("abcdefghij")}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")


@pytest.fixture
def make_trl_trainer(tmp_path: Path, tiny_lm_dir: Path, char_tokenizer: Any) -> Callable[..., Any]:
    """Build a ``GRPOTrainer`` in train mode, one process, no gradient accumulation.

    Each reward function is named after a dataset column and returns that column unchanged, so a test
    decides every reward (None included) through the rows it feeds to the trainer.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def make(
        *, reward_names: Sequence[str] = ("reward",), num_generations: int = 4, batch_size: int = 8, **config: Any
    ) -> Any:
        reward_funcs = [_column_reward(name) for name in reward_names]
        args = GRPOConfig(
            output_dir=str(tmp_path / "trl"),
            num_generations=num_generations,
            per_device_train_batch_size=batch_size,
            report_to=[],
            use_cpu=True,
            bf16=False,
            **config,
        )
        dataset = Dataset.from_dict(
            {"prompt": ["ab"] * batch_size, **{name: [0.0] * batch_size for name in reward_names}}
        )
        trainer = GRPOTrainer(
            model=str(tiny_lm_dir),
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=dataset,
            processing_class=char_tokenizer,
        )
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer inside its loop; 1 = no accumulation
        return trainer

    return make


def _column_reward(name: str) -> Callable[..., list[float | None]]:
    def reward(completions: list[str], **columns: Any) -> list[float | None]:
        return list(columns[name])

    reward.__name__ = name  # TRL names its reward logs after the function
    return reward
