"""The HF judge on a tiny BERT classifier saved in ERV's GoEmotions format (see tiny_classifier.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.data.labels import labels_for
from src.judges.hf import GOEMOTIONS_LABELS, HFJudge
from tests.judges.tiny_classifier import build_classifier


@pytest.fixture(scope="module")
def goemotions_dir(tmp_path_factory) -> Path:
    return build_classifier(tmp_path_factory.mktemp("goemotions"))


@pytest.fixture(scope="module")
def judge(goemotions_dir) -> HFJudge:
    return HFJudge(goemotions_dir)


def test_probabilities_follow_the_crafted_weights(judge):
    probs = judge.probabilities(["joy", "the man is"])
    assert probs.shape == (2, 28)
    assert probs[0, 17].item() == pytest.approx(0.88, abs=0.01)  # joy
    assert probs[0].sum().item() == pytest.approx(0.88 + 27 * 0.018, abs=0.02)  # sigmoid: independent labels
    assert probs[1].max().item() < 0.1  # no emotion word: nothing above ERV's threshold


def test_erv_rule_sigmoid_threshold_top2_then_mapping(judge):
    dfew, mafw = labels_for("dfew"), labels_for("mafw")
    sentences = [
        "the man is joy",  # joy -> happy
        "fear",  # fear
        "grief",  # grief -> helplessness: not a DFEW label, and no related fallback (ERV's mapping)
        "admiration joy",  # top-2 = admiration (unmapped), joy -> happy
        "the man",  # nothing over 0.1
        "joy joy fear",  # both kept, joy (twice) first
        "nervousness sadness",  # nervousness -> anxiety, sadness -> sad
    ]
    assert judge.classify(sentences, dfew) == ["happy", "fear", None, "happy", None, "happy", "sad"]
    assert judge.classify_sets(sentences, dfew) == [
        {"happy"},
        {"fear"},
        set(),
        {"happy"},
        set(),
        {"happy", "fear"},
        {"sad"},
    ]
    assert judge.classify(["grief", "nervousness"], mafw) == ["helplessness", "anxiety"]
    assert judge.classify(["nervousness"], labels_for("emer")) == ["worried"]


def test_threshold_top_k_and_related_are_options(goemotions_dir):
    assert HFJudge(goemotions_dir, threshold=0.9).classify(["joy"], ["happy"]) == [None]  # 0.88 < 0.9
    assert HFJudge(goemotions_dir, top_k=1).classify_sets(["admiration joy"], ["happy"]) == [set()]
    assert HFJudge(goemotions_dir, related=True).classify(["grief"], labels_for("dfew")) == ["sad"]


def test_generic_label_names_are_read_by_goemotions_id(tmp_path):
    judge = HFJudge(build_classifier(tmp_path, generic_names=True))
    assert judge.model_labels == list(GOEMOTIONS_LABELS)
    assert judge.classify(["joy", "fear"], labels_for("dfew")) == ["happy", "fear"]


def test_single_label_models_use_the_argmax(tmp_path):
    judge = HFJudge(build_classifier(tmp_path, problem_type="single_label_classification"))
    assert judge.multi_label is False
    assert judge.probabilities(["joy"]).sum().item() == pytest.approx(1.0)  # softmax
    assert judge.classify(["admiration joy", "fear"], labels_for("dfew")) == [None, "fear"]  # argmax unmapped
    assert HFJudge(tmp_path, multi_label=True).classify(["admiration joy"], labels_for("dfew")) == ["happy"]


def test_custom_label_map(goemotions_dir):
    judge = HFJudge(goemotions_dir, label_map={"admiration": "happy", "joy": "happy"})
    assert judge.classify(["admiration", "fear"], labels_for("dfew")) == ["happy", None]
    with pytest.raises(ValueError, match=r"names labels the model does not have: \['awe'\]"):
        HFJudge(goemotions_dir, label_map={"awe": "happy"})


def test_each_distinct_sentence_runs_once(goemotions_dir):
    judge = HFJudge(goemotions_dir, batch_size=2)
    seen: list[int] = []
    judge.model.register_forward_hook(
        lambda module, args, kwargs, output: seen.append(len(output.logits)), with_kwargs=True
    )
    judge.classify(["joy", "fear", "joy", "grief", "fear"], ["happy", "fear"])
    judge.classify_sets(["joy", "grief"], ["happy", "fear"])
    assert seen == [2, 1]  # three distinct sentences in batches of two; the second call is served from memory


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        HFJudge(tmp_path / "nowhere")
