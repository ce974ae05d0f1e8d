"""A tiny BERT sequence classifier saved in ERV's GoEmotions format, with hand-set weights (used by judge tests).

The model reads bag-of-words: each emotion word's embedding points along the dimension of its GoEmotions
label, attention averages the tokens, and the classifier reads label j from dimension j. So "joy" alone gives
sigmoid(2) = 0.88 for joy and sigmoid(-4) = 0.018 for every other label.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from src.judges.hf import GOEMOTIONS_LABELS

WORDS = {"joy": 17, "fear": 14, "grief": 16, "admiration": 0, "nervousness": 19, "sadness": 25}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "the", "man", "is"]
HIDDEN = 32


def build_classifier(
    folder: Path, *, generic_names: bool = False, problem_type: str = "multi_label_classification"
):
    id2label = {i: (f"LABEL_{i}" if generic_names else name) for i, name in enumerate(GOEMOTIONS_LABELS)}
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
        max_position_embeddings=32,
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
        problem_type=problem_type,
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.fill_(1.0 if "LayerNorm.weight" in name else 0.0)
        embeddings = model.bert.embeddings.word_embeddings.weight
        for word, label in WORDS.items():
            strength = 5.0 if word == "admiration" else 4.0  # admiration outranks joy when both appear
            embeddings[VOCAB.index(word), label] = strength
            embeddings[VOCAB.index(word), HIDDEN - 1] = -strength
        layer = model.bert.encoder.layer[0].attention
        layer.self.value.weight.copy_(torch.eye(HIDDEN))  # zero query/key: uniform attention = token mean
        layer.output.dense.weight.copy_(torch.eye(HIDDEN))
        model.bert.pooler.dense.weight.copy_(torch.eye(HIDDEN))
        model.classifier.weight[:, : len(GOEMOTIONS_LABELS)] = 6.0 * torch.eye(len(GOEMOTIONS_LABELS))
        model.classifier.bias.fill_(-4.0)
    model.save_pretrained(folder)
    BertTokenizer(vocab={word: i for i, word in enumerate(VOCAB)}).save_pretrained(folder)
    return folder
