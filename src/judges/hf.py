"""A judge backed by any local ``AutoModelForSequenceClassification`` folder (e.g. ERV's GoEmotions classifier).

The model's own labels are first mapped onto emotion *concepts* (``label_map``), then onto the labels the caller
asks for (:func:`src.judges.base.concept_to_label`). Model labels without a mapping ("admiration") never become
an answer.

- ``label_map="goemotions"``: ERV's reading of the 28 GoEmotions labels: joy -> happy, anger, disgust, fear,
  sadness, surprise, neutral, nervousness -> anxiety, grief -> helplessness, disappointment, disapproval ->
  contempt. Configs that name labels ``LABEL_0..LABEL_27`` are read by GoEmotions id.
- ``label_map="identity"``: the model's label names are emotion words themselves (a 7-class DFEW classifier).
- a mapping ``{model_label: concept}`` for anything else.

Multi-label models (``problem_type: multi_label_classification``, or ``multi_label=True``) use ERV's rule: sigmoid,
keep the ``top_k`` (2) labels with probability >= ``threshold`` (0.1). ``classify`` returns the most probable of
those that maps onto the requested labels (None if none does); ``classify_sets`` all of them. Single-label models
use softmax and their argmax (mapped, or None).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from src.judges.base import check_labels, concept_to_label

# GoEmotions label names by id (the order of the dataset's emotions.txt and of classifiers trained on it).
GOEMOTIONS_LABELS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip
# ERV's mapping of GoEmotions labels onto the emotion concepts of DFEW/MAFW.
GOEMOTIONS_TO_CONCEPT: dict[str, str] = {
    "joy": "happy",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
    "nervousness": "anxiety",
    "grief": "helplessness",
    "disappointment": "disappointment",
    "disapproval": "contempt",
}


def model_label_names(id2label: Mapping[int, str], label_map: str | Mapping[str, str]) -> list[str]:
    """The model's label names by id; generic ``LABEL_i`` names of a 28-way GoEmotions model become GoEmotions names."""
    names = [id2label[i] for i in range(len(id2label))]
    generic = all(name == f"LABEL_{i}" for i, name in enumerate(names))
    if label_map == "goemotions" and generic and len(names) == len(GOEMOTIONS_LABELS):
        return list(GOEMOTIONS_LABELS)
    return names


def concepts_of(names: Sequence[str], label_map: str | Mapping[str, str]) -> list[str | None]:
    """The emotion concept of each model label (None: the label is ignored)."""
    if label_map == "goemotions":
        return [GOEMOTIONS_TO_CONCEPT.get(name.lower()) for name in names]
    if label_map == "identity":
        return [name.lower() for name in names]
    if isinstance(label_map, Mapping):
        unknown = sorted(set(label_map) - set(names))
        if unknown:
            raise ValueError(
                f"judge.label_map names labels the model does not have: {unknown}; model labels: {list(names)}"
            )
        return [label_map.get(name) for name in names]
    raise ValueError(f"judge.label_map must be 'goemotions', 'identity' or a mapping; got {label_map!r}")


class HFJudge:
    """Sequence-classification model judge; see the module docstring.

    Args:
        path: local model folder (``config.json`` with ``id2label``, weights, tokenizer files).
        label_map: ``"goemotions"``, ``"identity"`` or ``{model_label: concept}``.
        multi_label: None reads the config's ``problem_type``; True/False forces sigmoid/softmax.
        threshold, top_k: ERV's multi-label rule (0.1, 2).
        related: let a concept missing from the label set count for a nearby one (off: ERV's exact mapping).
        device, batch_size, max_length: inference settings.
    """

    name = "hf"

    def __init__(
        self,
        path: str | Path,
        *,
        label_map: str | Mapping[str, str] = "goemotions",
        multi_label: bool | None = None,
        threshold: float = 0.1,
        top_k: int = 2,
        related: bool = False,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 128,
        memo_size: int = 10_000,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(
                f"judge.path={self.path} has no config.json; expected a saved classification model"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path, local_files_only=True)
        self.model.to(device).eval()
        config = self.model.config
        self.model_labels = model_label_names(config.id2label, label_map)
        self.concepts = concepts_of(self.model_labels, label_map)
        if not any(self.concepts):
            raise ValueError(f"judge.label_map={label_map!r} maps none of the model labels {self.model_labels}")
        self.multi_label = (
            multi_label if multi_label is not None else config.problem_type == "multi_label_classification"
        )
        self.threshold, self.top_k, self.related = threshold, top_k, related
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self.memo_size = memo_size
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __repr__(self) -> str:
        return f"HFJudge(path={str(self.path)!r}, multi_label={self.multi_label}, threshold={self.threshold})"

    @torch.inference_mode()
    def probabilities(self, sentences: Sequence[str]) -> torch.Tensor:
        """``[N, num_model_labels]`` probabilities (sigmoid or softmax); each distinct sentence runs once."""
        missing = list(dict.fromkeys(s for s in sentences if s not in self._memo))
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            inputs = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            logits = self.model(**inputs).logits.float().cpu()
            probs = logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)
            for sentence, row in zip(chunk, probs):
                self._memo[sentence] = row
        rows = []
        for sentence in sentences:
            self._memo.move_to_end(sentence)
            rows.append(self._memo[sentence])
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return torch.stack(rows) if rows else torch.zeros(0, len(self.model_labels))

    def ranked(self, sentences: Sequence[str], labels: Sequence[str]) -> list[list[str]]:
        """Per sentence, the requested labels the model names, most probable first (ERV's top-k/threshold rule)."""
        mapping = concept_to_label(check_labels(labels), related=self.related)
        results = []
        for row in self.probabilities(sentences):
            if self.multi_label:
                values, indices = row.topk(min(self.top_k, row.numel()))
                kept = [i for v, i in zip(values.tolist(), indices.tolist()) if v >= self.threshold]
            else:
                kept = [int(row.argmax())]
            found: list[str] = []
            for i in kept:
                label = mapping.get(self.concepts[i]) if self.concepts[i] else None
                if label is not None and label not in found:
                    found.append(label)
            results.append(found)
        return results

    def classify(self, sentences: Sequence[str], labels: Sequence[str]) -> list[str | None]:
        """The most probable kept label that maps onto ``labels``, else None."""
        return [found[0] if found else None for found in self.ranked(sentences, labels)]

    def classify_sets(self, sentences: Sequence[str], labels: Sequence[str]) -> list[set[str]]:
        """Every kept label that maps onto ``labels``."""
        return [set(found) for found in self.ranked(sentences, labels)]
