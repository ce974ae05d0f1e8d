"""Emotion label sets of the supported datasets and the normalisation that maps free text onto them.

Every place that compares an emotion word with a label (rewards, judges, metrics, adapters) goes through
:func:`normalize_label`, so "Happiness", "happy" and "joyful" agree with the DFEW label ``happy`` the same way
everywhere.

Example:
    >>> normalize_label("Happiness", "dfew")
    'happy'
    >>> normalize_label("anxious", "mafw")
    'anxiety'
    >>> normalize_label("blue", "dfew") is None
    True
"""

from __future__ import annotations

import re

# Order matters: it is the class index order used by metrics and confusion matrices.
DATASET_LABELS: dict[str, tuple[str, ...]] = {
    # DFEW ids 1..7 in the official csv files follow this order.
    "dfew": ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"),
    "mafw": (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    ),
    "emer": ("angry", "sad", "surprise", "worried", "happy"),
    # The synthetic corpus uses the DFEW classes.
    "synth": ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"),
}

# Surface forms -> a canonical "concept". Each dataset then names the concept with its own word.
_CONCEPT_FORMS: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "happiness", "joy", "joyful", "glad", "cheerful", "delighted", "pleased", "excited"),
    "sad": ("sad", "sadness", "sorrow", "sorrowful", "unhappy", "grief", "upset", "depressed"),
    "neutral": ("neutral", "calm", "neutrality", "indifferent", "none", "no emotion"),
    "angry": ("angry", "anger", "mad", "furious", "rage", "irritated", "annoyed"),
    "surprise": ("surprise", "surprised", "astonished", "amazed", "shocked", "startled"),
    "disgust": ("disgust", "disgusted", "revulsion", "repulsed"),
    "fear": ("fear", "fearful", "afraid", "scared", "frightened", "terrified"),
    "contempt": ("contempt", "contemptuous", "scorn", "disdain"),
    "anxiety": ("anxiety", "anxious", "nervous", "nervousness"),
    "worried": ("worried", "worry", "concerned"),
    "helplessness": ("helplessness", "helpless", "powerless"),
    "disappointment": ("disappointment", "disappointed", "let down"),
}

# How each dataset spells a concept (only where it differs from the concept name).
_DATASET_SPELLING: dict[str, dict[str, str]] = {
    "mafw": {"happy": "happiness", "sad": "sadness", "angry": "anger"},
    # EMER's "worried" absorbs anxiety/fear-like worry words.
    "emer": {"anxiety": "worried"},
}

_FORM_TO_CONCEPT: dict[str, str] = {form: concept for concept, forms in _CONCEPT_FORMS.items() for form in forms}


def labels_for(dataset: str) -> tuple[str, ...]:
    """The ordered label set of ``dataset``; unknown names fail with the list of known ones."""
    try:
        return DATASET_LABELS[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; known datasets: {', '.join(sorted(DATASET_LABELS))}"
        ) from None


def normalize_label(text: str | None, dataset: str) -> str | None:
    """Map an emotion word (any case, surrounding spaces/punctuation) onto ``dataset``'s label, else None."""
    if text is None:
        return None
    word = re.sub(r"[^a-z ]+", " ", text.lower()).strip()
    word = re.sub(r"\s+", " ", word)
    labels = labels_for(dataset)
    if word in labels:
        return word
    concept = _FORM_TO_CONCEPT.get(word)
    if concept is None:
        return None
    spelled = _DATASET_SPELLING.get(dataset, {}).get(concept, concept)
    return spelled if spelled in labels else None


def emotion_forms(label: str) -> tuple[str, ...]:
    """Every surface form that normalises to ``label``'s concept (used by keyword judges and the lexicon)."""
    concept = _FORM_TO_CONCEPT.get(label.lower(), label.lower())
    return _CONCEPT_FORMS.get(concept, (label.lower(),))
