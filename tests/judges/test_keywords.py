from __future__ import annotations

import pytest

from src.data.labels import labels_for
from src.judges.keywords import KeywordJudge

DFEW = labels_for("dfew")


@pytest.fixture(scope="module")
def judge() -> KeywordJudge:
    return KeywordJudge()


def test_emotion_words_and_cues(judge):
    sentences = [
        "She is happy.",  # emotion word
        "The woman smiles broadly.",  # cue
        "Tears roll down his cheeks.",  # cue
        "He glares and shouts.",  # two angry cues
        "She gasps, mouth agape.",  # surprise cues
        "He wrinkles his nose.",  # disgust phrase
        "Her voice trembles.",  # shared cue: fear 0.6 + anxiety->fear 0.4
        "The voice is calm and even.",  # neutral
        "The room has two chairs.",  # nothing
        "",  # empty
    ]
    expected = ["happy", "happy", "sad", "angry", "surprise", "disgust", "fear", "neutral", None, None]
    assert judge.classify(sentences, DFEW) == expected


def test_negation_drops_the_hit(judge):
    sentences = [
        "There is no sign of anger.",  # negator three words before
        "There is no trace of a smile.",  # four words before
        "He doesn't smile.",  # n't
        "She is not angry, but sad.",  # the comma ends the negation's scope
        "Without fear, he walks on, smiling.",  # a clause later, the smile counts
        "Not happy.",  # negated: not read as sad either
    ]
    assert judge.classify(sentences, DFEW) == [None, None, None, "sad", "happy", None]


def test_scores_and_ties(judge):
    assert judge.scores("A frown.", DFEW) == [("angry", 0.6), ("sad", 0.4)]  # shared cue split
    assert judge.scores("A frown and tears.", DFEW) == [("sad", 1.4), ("angry", 0.6)]
    # equal scores: the emotion hit first wins
    assert judge.classify(["He smiles, then cries."], DFEW) == ["happy"]
    assert judge.classify(["He cries, then smiles."], DFEW) == ["sad"]


def test_labels_follow_the_dataset(judge):
    sentence = ["He is nervous and fidgets."]
    assert judge.classify(sentence, labels_for("mafw")) == ["anxiety"]
    assert judge.classify(sentence, labels_for("emer")) == ["worried"]
    assert judge.classify(sentence, DFEW) == ["fear"]  # related concept
    assert KeywordJudge(related=False).classify(sentence, DFEW) == [None]
    assert judge.classify(["She smiles."], labels_for("mafw")) == ["happiness"]


def test_unknown_custom_labels_are_matched_literally(judge):
    assert judge.classify(["She looks bored.", "She smiles.", "Not bored."], ["bored", "happy"]) == [
        "bored",
        "happy",
        None,
    ]


def test_classify_sets_keeps_top_k(judge):
    sentence = ["A smile, a frown, then tears of rage."]
    # happy 1 (smile); angry 0.6 (frown) + 2 (rage); sad 0.4 (frown) + 1 (tears)
    assert judge.scores(sentence[0], DFEW) == [("angry", 2.6), ("sad", 1.4), ("happy", 1.0)]
    assert judge.classify_sets(sentence, DFEW) == [{"angry", "sad"}]
    assert KeywordJudge(top_k=3).classify_sets(sentence, DFEW) == [{"angry", "sad", "happy"}]
    assert judge.classify_sets(["Nothing here."], DFEW) == [set()]


def test_is_fast(judge):
    import time

    sentences = ["The woman smiles broadly and her eyes crinkle, but her voice trembles a little."] * 2000
    start = time.perf_counter()
    judge.classify(sentences, DFEW)
    assert time.perf_counter() - start < 1.0  # about 30 µs per sentence here; 500 µs would be a regression


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        KeywordJudge(top_k=0)
    with pytest.raises(ValueError, match="at least one label"):
        KeywordJudge().classify(["x"], [])
