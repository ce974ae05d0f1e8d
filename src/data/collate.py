"""Turning examples into model batches: placeholder expansion, padding, label masking.

One :class:`Example` is one row: a prompt (chat text with ``<video>``/``<audio>`` placeholders for the present
modalities), optionally a target, and the decoded media. :class:`OmniCollator` tokenizes the prompt, expands
each placeholder into the model's number of feature positions, appends ``target + <|im_end|>`` for training,
and pads: right for training (labels ``-100`` everywhere but the target), left for generation.

Example:
    >>> batch = collator([Example(prompt=p, target="happy", frames=f, mel=None, instruction=i)])
    >>> batch.input_ids.shape, batch.labels.shape   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from src.data.prompts import media_token_ids, wrap_media_placeholders

IGNORE_INDEX = -100


@dataclass
class MediaInputs:
    """Media of a batch, one entry per *clip*; ``*_index`` map placeholder rows (in row order) to clips.

    Attributes:
        frames: ``[Nv, T, 3, S, S]`` SigLIP-normalised frames.
        gate_input_ids / gate_attention_mask: ``[Nv, Lg]`` instruction tokens for the BERT gate.
        mel: ``[Na, n_mels, F]`` log-mel features.
        video_index: ``[R_v]`` clip index of each row that has a ``<video>`` run (default: ``arange(Nv)``).
        audio_index: ``[R_a]`` likewise for ``<audio>``.
    """

    frames: Tensor | None = None
    gate_input_ids: Tensor | None = None
    gate_attention_mask: Tensor | None = None
    mel: Tensor | None = None
    video_index: Tensor | None = None
    audio_index: Tensor | None = None

    def to(self, device: torch.device | str) -> MediaInputs:
        return MediaInputs(**{k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()})

    def repeat_interleave(self, repeats: int) -> MediaInputs:
        """The media of a batch whose rows are each repeated ``repeats`` times, without copying clips."""

        def index(idx: Tensor | None, n: int | None) -> Tensor | None:
            if n is None:
                return None
            base = idx if idx is not None else torch.arange(n)
            return base.repeat_interleave(repeats)

        nv = None if self.frames is None else self.frames.shape[0]
        na = None if self.mel is None else self.mel.shape[0]
        return MediaInputs(
            frames=self.frames,
            gate_input_ids=self.gate_input_ids,
            gate_attention_mask=self.gate_attention_mask,
            mel=self.mel,
            video_index=index(self.video_index, nv),
            audio_index=index(self.audio_index, na),
        )


@dataclass
class Example:
    """One row before batching.

    Attributes:
        prompt: chat-formatted prompt text (see :func:`src.data.prompts.build_prompt`).
        target: completion text without the end-of-turn token, or None for generation-only rows.
        frames: ``[T, 3, S, S]`` when the row shows video (must match a ``<video>`` placeholder).
        mel: ``[n_mels, F]`` when the row hears audio (must match an ``<audio>`` placeholder).
        instruction: the instruction text the BERT gate reads.
        meta: anything the consumer needs back (sample id, label, dominant modality, ...).
    """

    prompt: str
    target: str | None
    frames: Tensor | None
    mel: Tensor | None
    instruction: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """A collated batch. ``labels`` is None for left-padded (generation) batches."""

    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L]
    labels: Tensor | None  # [B, L] -100 outside targets
    media: MediaInputs
    meta: list[Mapping[str, Any]]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            labels=None if self.labels is None else self.labels.to(device),
            media=self.media.to(device),
            meta=self.meta,
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class OmniCollator:
    """Callable ``list[Example] -> Batch`` for one model/tokenizer pair.

    Args:
        tokenizer: the LLM tokenizer (prepared by :func:`src.models.tokenizer.prepare_tokenizer`).
        gate_tokenizer: tokenizer of the BERT gate (the LLM tokenizer for the tiny preset).
        num_video_tokens / num_audio_tokens: feature positions per clip (``model.token_counts()``).
        padding_side: "right" for training, "left" for generation.
        max_length: rows longer than this raise (never silently truncated).
        wrap_media: wrap each placeholder in HumanOmni's start/end markers before tokenizing (the model config's
            ``wrap_media_tokens``).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        gate_tokenizer: PreTrainedTokenizerBase,
        *,
        num_video_tokens: int,
        num_audio_tokens: int,
        padding_side: Literal["left", "right"] = "right",
        max_length: int | None = None,
        wrap_media: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.wrap_media = wrap_media
        self.gate_tokenizer = gate_tokenizer
        ids = media_token_ids(tokenizer)
        self.expand = {ids["video"]: num_video_tokens, ids["audio"]: num_audio_tokens}
        self.video_id, self.audio_id = ids["video"], ids["audio"]
        self.padding_side = padding_side
        self.max_length = max_length
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id
        self._prompt_cache: dict[str, list[int]] = {}

    @classmethod
    def for_model(
        cls,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        gate_tokenizer: PreTrainedTokenizerBase,
        **options: Any,
    ) -> OmniCollator:
        """A collator with ``model``'s media token counts and placeholder wrapping (``model``: an OmniModel);
        ``options``: ``padding_side``, ``max_length``."""
        counts = model.token_counts()
        return cls(
            tokenizer,
            gate_tokenizer,
            num_video_tokens=counts["video"],
            num_audio_tokens=counts["audio"],
            wrap_media=model.config.wrap_media_tokens,
            **options,
        )

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a prompt with placeholders expanded (cached: prompts repeat across a data set)."""
        cached = self._prompt_cache.get(prompt)
        if cached is None:
            cached = []
            text = wrap_media_placeholders(prompt) if self.wrap_media else prompt
            for token in self.tokenizer.encode(text, add_special_tokens=False):
                cached.extend([token] * self.expand.get(token, 1))
            self._prompt_cache[prompt] = cached
        return cached

    def target_ids(self, target: str) -> list[int]:
        return [*self.tokenizer.encode(target, add_special_tokens=False), self.eos_id]

    def _check_media(self, example: Example, ids: list[int], row: int) -> None:
        for name, token, value in (
            ("video", self.video_id, example.frames),
            ("audio", self.audio_id, example.mel),
        ):
            has_placeholder = token in ids
            if has_placeholder != (value is not None):
                where = example.meta.get("id", f"row {row}")
                raise ValueError(
                    f"{where}: prompt {'has' if has_placeholder else 'lacks'} a <{name}> placeholder but "
                    f"{'no' if value is None else 'some'} {name} data was given"
                )

    def __call__(self, examples: Sequence[Example]) -> Batch:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        rows: list[list[int]] = []
        label_rows: list[list[int]] = []
        for i, example in enumerate(examples):
            prompt = self.prompt_ids(example.prompt)
            self._check_media(example, prompt, i)
            target = [] if example.target is None else self.target_ids(example.target)
            ids = prompt + target
            if self.max_length is not None and len(ids) > self.max_length:
                raise ValueError(
                    f"{example.meta.get('id', f'row {i}')}: {len(ids)} tokens exceed data.max_length="
                    f"{self.max_length} (prompt {len(prompt)}, target {len(target)})"
                )
            rows.append(ids)
            label_rows.append([IGNORE_INDEX] * len(prompt) + target)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, (ids, lab) in enumerate(zip(rows, label_rows)):
            span = slice(width - len(ids), width) if self.padding_side == "left" else slice(0, len(ids))
            input_ids[i, span] = torch.tensor(ids)
            attention_mask[i, span] = 1
            labels[i, span] = torch.tensor(lab)
        has_targets = any(e.target is not None for e in examples)
        return Batch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels if has_targets else None,
            media=self.media(examples),
            meta=[dict(e.meta) for e in examples],
        )

    def media(self, examples: Sequence[Example]) -> MediaInputs:
        """Stack the rows' media (one clip per row that has it, in row order) plus gate tokens."""
        video = [e for e in examples if e.frames is not None]
        audio = [e.mel for e in examples if e.mel is not None]
        gate_ids = gate_mask = frames = None
        if video:
            frames = torch.stack([e.frames for e in video])
            encoded = self.gate_tokenizer([e.instruction for e in video], padding=True, return_tensors="pt")
            gate_ids, gate_mask = encoded["input_ids"], encoded["attention_mask"]
        return MediaInputs(
            frames=frames,
            gate_input_ids=gate_ids,
            gate_attention_mask=gate_mask,
            mel=torch.stack(audio) if audio else None,
        )
