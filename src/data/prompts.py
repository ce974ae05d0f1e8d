"""The one prompt template used identically by SFT, GRPO, Modality Importance and evaluation.

A prompt is Qwen2's chat format with one placeholder token per present modality::

    <|im_start|>system
    You are a helpful assistant.<|im_end|>
    <|im_start|>user
    <video>
    <audio>
    As an emotional recognition expert; ...<|im_end|>
    <|im_start|>assistant

Leaving ``<video>`` or ``<audio>`` out is how a sample becomes audio-only or visual-only. Models trained with
HumanOmni's ``mm_use_x_start_end`` (the released ones) see each placeholder wrapped in plain-text markers,
``<vi_start><video><vi_end>`` / ``<au_start><audio><au_end>`` (:func:`wrap_media_placeholders`, applied by the
collator when the model's config says so). The tokenizer step
(:mod:`src.data.collate`) expands each placeholder into as many placeholder ids as the model produces
features for that modality, so sequence lengths are known before the model runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

VIDEO_PLACEHOLDER = "<video>"
AUDIO_PLACEHOLDER = "<audio>"
IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SYSTEM_PROMPT = "You are a helpful assistant."
# HumanOmni's start/end markers around each placeholder (plain text: its tokenizer has no such special tokens).
MEDIA_WRAPPERS = {VIDEO_PLACEHOLDER: ("<vi_start>", "<vi_end>"), AUDIO_PLACEHOLDER: ("<au_start>", "<au_end>")}

Task = Literal["reasoning", "label", "r1omni"]

INSTRUCTIONS: dict[str, str] = {
    # MIGR: descriptions first (dominant modality first), then think, then answer.
    "reasoning": (
        "As an emotional recognition expert; throughout the video, which emotion conveyed by the characters "
        "is the most obvious to you? First describe the cues of the modality most important for the emotion, "
        "visual cues in <vis_desc> </vis_desc> and audio cues in <aud_desc> </aud_desc>, then output the "
        "thinking process in <think> </think> and final emotion in <answer> </answer> tags."
    ),
    # Label-only warm-up (`stage=base`) and Modality Importance scoring.
    "label": (
        "As an emotional recognition expert; throughout the video, which emotion conveyed by the characters "
        "is the most obvious to you? Answer with one emotion word."
    ),
    # R1-Omni's instruction, kept for users evaluating released R1-Omni/ERV checkpoints.
    "r1omni": (
        "As an emotional recognition expert; throughout the video, which emotion conveyed by the characters "
        "is the most obvious to you? Output the thinking process in <think> </think> and final emotion in "
        "<answer> </answer> tags."
    ),
}


def instruction_for(task: str) -> str:
    """The instruction text of ``task``; unknown tasks fail with the list of known ones."""
    try:
        return INSTRUCTIONS[task]
    except KeyError:
        raise ValueError(f"unknown prompt task {task!r}; known: {', '.join(INSTRUCTIONS)}") from None


def build_prompt(instruction: str, *, has_video: bool, has_audio: bool) -> str:
    """The chat-formatted prompt text for one sample, ending where the assistant starts writing."""
    media = (f"{VIDEO_PLACEHOLDER}\n" if has_video else "") + (f"{AUDIO_PLACEHOLDER}\n" if has_audio else "")
    return (
        f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n"
        f"{IM_START}user\n{media}{instruction}{IM_END}\n"
        f"{IM_START}assistant\n"
    )


def wrap_media_placeholders(prompt: str) -> str:
    """``prompt`` with every ``<video>`` / ``<audio>`` wrapped in HumanOmni's start/end markers."""
    for placeholder, (start, end) in MEDIA_WRAPPERS.items():
        prompt = prompt.replace(placeholder, f"{start}{placeholder}{end}")
    return prompt


def media_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Ids of the ``<video>`` and ``<audio>`` placeholders (``{"video": id, "audio": id}``)."""
    return {
        "video": tokenizer.convert_tokens_to_ids(VIDEO_PLACEHOLDER),
        "audio": tokenizer.convert_tokens_to_ids(AUDIO_PLACEHOLDER),
    }
