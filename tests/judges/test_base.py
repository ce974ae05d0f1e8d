from __future__ import annotations

import doctest
import importlib

import pytest

from src.data.labels import labels_for
from src.judges.base import check_labels, concept_to_label, label_sets
from src.judges.keywords import KeywordJudge


def test_concept_to_label_follows_each_datasets_spelling():
    assert concept_to_label(labels_for("mafw"))["happy"] == "happiness"  # MAFW spells the concept its own way
    assert concept_to_label(labels_for("mafw"))["joy"] == "happiness"  # and its surface forms
    assert concept_to_label(labels_for("emer"))["anxiety"] == "worried"  # anxiety is EMER's worry, always
    assert concept_to_label(labels_for("emer"), related=False)["anxiety"] == "worried"


def test_related_concepts_only_when_allowed_and_missing():
    dfew = labels_for("dfew")
    assert concept_to_label(dfew)["anxiety"] == "fear"  # nervous reads as fear on DFEW
    assert concept_to_label(dfew)["helplessness"] == "sad"
    assert concept_to_label(dfew)["contempt"] == "disgust"
    assert "anxiety" not in concept_to_label(dfew, related=False)
    assert concept_to_label(labels_for("mafw"))["contempt"] == "contempt"  # present: no fallback


def test_custom_labels_map_onto_themselves():
    assert concept_to_label(["bored", "happy"]) == {**concept_to_label(["happy"]), "bored": "bored"}


def test_label_sets_of_single_and_multi_label_judges():
    class Single:
        name = "single"

        def classify(self, sentences, labels):
            return ["happy", None]

    assert label_sets(Single(), ["a", "b"], ["happy"]) == [{"happy"}, set()]
    assert label_sets(KeywordJudge(), ["A smile and a furious shout."], ["happy", "angry"]) == [{"happy", "angry"}]


def test_check_labels_rejects_empty_and_duplicates():
    with pytest.raises(ValueError, match="at least one label"):
        check_labels([])
    with pytest.raises(ValueError, match=r"distinct; got \['sad', 'sad'\]"):
        check_labels(["sad", "sad"])


@pytest.mark.parametrize(
    "module",
    ["src.judges.base", "src.judges.keywords", "src.judges.factory", "src.judges.cache", "src.judges.openai"],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
