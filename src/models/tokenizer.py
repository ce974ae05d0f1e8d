"""Tokenizers: the tiny preset's BPE built in code (no download), and the special tokens every tokenizer needs.

Any tokenizer the model uses (our tiny BPE or a released Qwen2.5 tokenizer) goes through
:func:`prepare_tokenizer`, which registers

* ``<video>`` and ``<audio>``: placeholders the collator expands into feature positions;
* the eight reasoning tags (``<vis_desc>`` ... ``</answer>``) as single, *non-special* tokens, so decoding with
  ``skip_special_tokens=True`` keeps them while dropping ``<|im_end|>`` and padding.

Example:
    >>> tok = build_tiny_tokenizer()
    >>> len(tok.encode("<aud_desc>", add_special_tokens=False))
    1
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AddedToken, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from src.data.labels import DATASET_LABELS, emotion_forms
from src.data.prompts import (
    AUDIO_PLACEHOLDER,
    END_OF_TEXT,
    IM_END,
    IM_START,
    INSTRUCTIONS,
    SYSTEM_PROMPT,
    VIDEO_PLACEHOLDER,
    build_prompt,
)
from src.data.reasoning import REASONING_TOKENS

CONTROL_TOKENS = (END_OF_TEXT, IM_START, IM_END)
MEDIA_TOKENS = (VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER)

# Domain text the tiny BPE is trained on: how explanations of facial and vocal emotion are worded. The
# tokenizer is byte-level, so any other text still encodes (just in more pieces).
_FACE = (
    "eyebrows brows raised lowered drawn together furrowed inner corners eyes wide open narrowed squinting "
    "tightened lids cheeks raised nose wrinkled upper lip raised lips pressed corners of the mouth pulled up "
    "down mouth open jaw dropped smile smiling frown frowning grimace tense relaxed face expression looks "
    "head tilted turned gaze steady moving"
)
_VOICE = (
    "voice pitch high low rising falling range wide narrow speech rate fast slow loud soft quiet loudness "
    "tremor trembling shaky steady flat monotone pauses hesitant breathy sharp harsh shouting whispering "
    "sighing laughing tone sounds intonation energetic weak"
)
_REASONING = (
    "The person in the video shows {e}. The face suggests {e}. The voice sounds {e}. "
    "The strongest evidence comes from the audio. The strongest evidence comes from the face. "
    "Both the face and the voice point to {e}, so the emotion is {e}. "
    "Although the face looks slightly {e}, the voice clearly conveys another emotion. "
    "There is no clear emotional cue in the audio. There is no clear emotional cue in the face."
)


def _training_text(extra_texts: Iterable[str]) -> list[str]:
    from src.data.openface import AU_PHRASES
    from src.data.synth.text import vocabulary_text

    emotions = sorted(
        {form for labels in DATASET_LABELS.values() for label in labels for form in emotion_forms(label)}
    )
    lines = [_FACE, _VOICE, SYSTEM_PROMPT, *INSTRUCTIONS.values()]
    lines += [_REASONING.format(e=e) for e in emotions]
    lines += [build_prompt(text, has_video=True, has_audio=True) for text in INSTRUCTIONS.values()]
    lines += vocabulary_text() + list(AU_PHRASES.values())
    # Every label of every dataset, as answers write it, often enough to become one token.
    labels = sorted({label for labels in DATASET_LABELS.values() for label in labels})
    lines += [f"<answer>{label}</answer>" for label in labels] * 30 + [
        f"{label}<|im_end|>" for label in labels
    ] * 30
    lines += list(extra_texts)
    return lines


def build_tiny_tokenizer(vocab_size: int = 2048, extra_texts: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on the project's domain text (deterministic, ~0.2 s) and prepare it."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(CONTROL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text(extra_texts), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, clean_up_tokenization_spaces=False)
    return prepare_tokenizer(wrapped)


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Register control, media and reasoning tokens (idempotent) and set eos/pad as Qwen2 chat models use.

    Returns the same tokenizer object.
    """
    vocab = tokenizer.get_vocab()
    missing_control = [t for t in CONTROL_TOKENS if t not in vocab]
    special = [AddedToken(t, special=True, normalized=False) for t in (*missing_control, *MEDIA_TOKENS)]
    tokenizer.add_special_tokens({"additional_special_tokens": special}, replace_extra_special_tokens=False)
    plain = [AddedToken(t, special=False, normalized=False, single_word=False) for t in REASONING_TOKENS]
    tokenizer.add_tokens(plain)
    tokenizer.eos_token = IM_END
    tokenizer.pad_token = END_OF_TEXT
    for token in (*CONTROL_TOKENS, *MEDIA_TOKENS, *REASONING_TOKENS):
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise RuntimeError(f"token {token!r} encodes to {len(ids)} ids {ids}; expected a single id")
    return tokenizer
