"""Train and evaluate the embedding judge's linear heads (``python -m src.judges.head_training train|eval``).

A head is multinomial logistic regression on frozen all-MiniLM-L6-v2 embeddings: full-batch L-BFGS on the
``train`` split of the sentence set, L2 penalty ``weight_decay`` (1e-3: of 1e-4/1e-3/1e-2 it scored best on the
held-out splits, which moved by under 4 points across the three, so those figures are slightly optimistic).
Each sentence's concept is mapped onto the label set with the dataset's normalisation
(:func:`src.data.labels.normalize_label`); sentences whose concept the label set lacks are left out of that
head (DFEW's head never sees contempt). Accuracy is reported on the held-out ``test``
split (unseen cue phrases, templates and subjects) and on the ``handwritten`` sentences, and stored in the
head's json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from src import atomic
from src.data.labels import DATASET_LABELS, normalize_label
from src.judges.base import concept_to_label
from src.judges.embedding import BUNDLED_ENCODER, HEADS_DIR, LinearHead, SentenceEncoder, load_head
from src.judges.keywords import KeywordJudge
from src.judges.sentences import DEFAULT_PATH, SPLITS, read_sentences

SHIPPED_HEADS = ("dfew", "mafw", "emer")


def concept_targets(concepts: Sequence[str], labels: Sequence[str], dataset: str | None) -> list[str | None]:
    """Each concept's label in ``labels`` (by the dataset's normalisation, else by shared surface forms)."""
    if dataset is not None:
        return [normalize_label(concept, dataset) for concept in concepts]
    mapping = concept_to_label(labels, related=False)
    return [mapping.get(concept) for concept in concepts]


def fit_linear_head(
    embeddings: np.ndarray,
    targets: np.ndarray,
    num_labels: int,
    *,
    weight_decay: float = 1e-3,
    max_iter: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression: ``[N, D]`` embeddings, ``[N]`` class ids -> ``weight [C, D]``, ``bias [C]``."""
    x = torch.from_numpy(embeddings).float()
    y = torch.from_numpy(targets).long()
    weight = torch.zeros(num_labels, x.shape[1], requires_grad=True)
    bias = torch.zeros(num_labels, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y) + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().numpy().copy(), bias.detach().numpy().copy()


def accuracy_by_split(
    head: LinearHead, embeddings: np.ndarray, targets: list[str | None], splits: list[str]
) -> dict:
    """Fraction of sentences classified as their target, per split (rows without a target are skipped)."""
    predicted = head.probabilities(embeddings).argmax(axis=1)
    result: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        rows = [i for i, (t, s) in enumerate(zip(targets, splits)) if t is not None and s == split]
        if rows:
            hits = sum(head.labels[predicted[i]] == targets[i] for i in rows)
            result[split] = {"accuracy": round(hits / len(rows), 4), "sentences": len(rows)}
    return result


def train_head(
    name: str,
    labels: Sequence[str],
    rows: list[dict[str, str]],
    embeddings: np.ndarray,
    *,
    dataset: str | None,
    weight_decay: float,
) -> LinearHead:
    """Fit one head on the train rows that map onto ``labels``; its ``meta`` carries held-out accuracy."""
    targets = concept_targets([row["concept"] for row in rows], labels, dataset)
    splits = [row["split"] for row in rows]
    train = [i for i, (t, s) in enumerate(zip(targets, splits)) if t is not None and s == "train"]
    missing = sorted(set(labels) - {targets[i] for i in train})
    if missing:
        raise ValueError(f"head {name!r}: no training sentence maps onto {missing}; add sentences for them")
    ids = np.array([list(labels).index(targets[i]) for i in train])
    weight, bias = fit_linear_head(embeddings[train], ids, len(labels), weight_decay=weight_decay)
    head = LinearHead(labels=tuple(labels), weight=weight, bias=bias, meta={})
    head.meta.update(
        name=name,
        labels=list(labels),
        encoder=BUNDLED_ENCODER,
        embedding_dim=int(weight.shape[1]),
        weight_decay=weight_decay,
        accuracy=accuracy_by_split(head, embeddings, targets, splits),
    )
    return head


def save_head(head: LinearHead, out_dir: Path, extra_meta: dict) -> Path:
    """Write ``<out_dir>/<name>.safetensors`` and ``.json`` (the umask's mode, as every file we write);
    returns the path without suffix."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / head.meta["name"]
    arrays = {"weight": head.weight, "bias": head.bias}  # [C, D], [C]
    atomic.save_tensors(
        {key: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for key, value in arrays.items()},
        str(base) + ".safetensors",
    )
    atomic.write_text(base.with_suffix(".json"), json.dumps({**head.meta, **extra_meta}, indent=2) + "\n")
    return base


def _label_sets(args: argparse.Namespace) -> list[tuple[str, tuple[str, ...], str | None]]:
    if args.labels:
        if not args.name:
            raise SystemExit("--labels needs --name (the head's file name)")
        return [(args.name, tuple(label.strip() for label in args.labels.split(",") if label.strip()), None)]
    return [(dataset, DATASET_LABELS[dataset], dataset) for dataset in args.datasets]


def main(argv: list[str] | None = None) -> None:
    """``train``: fit and save heads; ``eval``: accuracy of saved heads (and of the keyword judge) per split."""
    parser = argparse.ArgumentParser(prog="python -m src.judges.head_training")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("train", "eval"):
        p = sub.add_parser(command)
        p.add_argument("--data", type=Path, default=DEFAULT_PATH, help="sentence jsonl (src.judges.sentences)")
        p.add_argument("--datasets", nargs="+", default=list(SHIPPED_HEADS), choices=sorted(DATASET_LABELS))
        p.add_argument("--labels", help="comma-separated custom label set instead of --datasets")
        p.add_argument("--name", help="file name of the custom head")
        p.add_argument("--out" if command == "train" else "--heads-dir", type=Path, default=HEADS_DIR)
        p.add_argument("--encoder", default=None, help="sentence-transformers folder (default: bundled MiniLM)")
        p.add_argument("--weight-decay", type=float, default=1e-3)
    args = parser.parse_args(argv)
    rows = read_sentences(args.data)
    encoder = SentenceEncoder(args.encoder)
    embeddings = encoder([row["text"] for row in rows])
    for name, labels, dataset in _label_sets(args):
        if args.command == "train":
            head = train_head(name, labels, rows, embeddings, dataset=dataset, weight_decay=args.weight_decay)
            extra = {
                "data": args.data.name,
                "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
                "command": "python -m src.judges.head_training " + " ".join(shlex.quote(a) for a in (argv or [])),
            }
            base = save_head(head, args.out, extra)
            print(f"{base}: {json.dumps(head.meta['accuracy'])}")
        else:
            head = load_head(args.heads_dir / name)
            targets = concept_targets([row["concept"] for row in rows], head.labels, dataset)
            splits = [row["split"] for row in rows]
            print(f"{name} embedding head: {json.dumps(accuracy_by_split(head, embeddings, targets, splits))}")
            # The keyword judge on the same sentences, for comparison (None counts as wrong).
            guesses = KeywordJudge().classify([row["text"] for row in rows], head.labels)
            keyword = {}
            for split in SPLITS:
                kept = [i for i, (t, s) in enumerate(zip(targets, splits)) if t is not None and s == split]
                if kept:
                    hits = sum(guesses[i] == targets[i] for i in kept)
                    keyword[split] = {"accuracy": round(hits / len(kept), 4), "sentences": len(kept)}
            print(f"{name} keyword judge:  {json.dumps(keyword)}")


if __name__ == "__main__":
    main()
