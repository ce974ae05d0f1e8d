"""Corpus preconditions (src/analysis/synth_check.py): the judge, the text-only classifier, the media probe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from src.analysis.synth_check import (
    check,
    description_words,
    fit_logistic,
    format_report,
    judge_gold,
    main,
    text_only,
)
from src.data.manifest import Reasoning, Sample
from src.data.synth import SynthConfig, ensure_corpus, plan_corpus
from src.data.synth.corpus import clip_sample


def _text_corpus(regime: str, n: int = 700, seed: int = 0, phrasings: int | None = None) -> list[Sample]:
    """The manifest samples of a corpus, text only (no media rendered: the text has its own random stream)."""
    config = SynthConfig(n=n, seed=seed, regime=regime, phrasings=phrasings)
    return [
        clip_sample(plan, config, Path(f"{plan.id}.mp4"), Path(f"{plan.id}.csv")) for plan in plan_corpus(config)
    ]


def test_logistic_regression_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6))
    targets = rng.integers(0, 3, size=300)
    features = centers[targets] + rng.normal(scale=1.5, size=(300, 6))
    names = [f"c{t}" for t in targets]
    for c in (0.05, 1.0):
        ours = fit_logistic(features[:200], names[:200], c=c)
        reference = LogisticRegression(C=c, max_iter=10_000, tol=1e-8).fit(features[:200], names[:200])
        assert ours.classes == list(reference.classes_)
        np.testing.assert_allclose(
            ours.predict_proba(features[200:]), reference.predict_proba(features[200:]), atol=2e-3
        )
        assert np.mean(np.array(ours.predict(features[200:])) == reference.predict(features[200:])) >= 0.98, c


@pytest.fixture(scope="module")
def conflict_text() -> list[Sample]:
    return _text_corpus("conflict")


def test_text_leaves_the_conflict_label_open_but_gives_the_faint_one(conflict_text: list[Sample]) -> None:
    figures = text_only(conflict_text)
    assert figures["n_other_emotion_cue"] == 116
    assert figures["accuracy_other_emotion_cue"] <= figures["upper_bound_of_chance"]  # not above 50%
    assert figures["names_one_of_the_two"] > 0.95  # it does read the two named emotions
    # scikit-learn's classifier on scikit-learn's word counts gets the same accuracy
    train = [s for s in conflict_text if s.split == "train"]
    test = [s for s in conflict_text if s.split == "test" and s.extra["synth"]["cue"] == "conflict"]
    vectorizer = CountVectorizer(token_pattern=r"\S+", lowercase=False)
    x_train = vectorizer.fit_transform([" ".join(description_words(s)) for s in train])
    model = LogisticRegression(C=1.0, max_iter=10_000).fit(x_train, [s.label for s in train])
    predicted = model.predict(vectorizer.transform([" ".join(description_words(s)) for s in test]))
    reference = float(np.mean(predicted == np.array([s.label for s in test])))
    assert abs(figures["accuracy_other_emotion_cue"] - reference) <= 0.03
    faint = text_only(_text_corpus("faint", phrasings=1))  # today's demo corpus: the words give the label
    assert faint["accuracy_other_emotion_cue"] > faint["upper_bound_of_chance"]
    assert faint["accuracy_other_emotion_cue"] == 1.0


def test_the_judge_reads_every_gold_explanation_in_both_orders(conflict_text: list[Sample]) -> None:
    figures = judge_gold(conflict_text)
    assert figures["visual_first"] == figures["audio_first"] == 1.0 and figures["n"] == 700
    # a corpus whose think names the conflicting emotion breaks it
    broken = [
        replace(s, reasoning=Reasoning(s.reasoning.visual, s.reasoning.audio, "So the person feels happy."))
        if s.label == "sad" and s.extra["synth"]["cue"] == "conflict"
        else s
        for s in conflict_text
    ]
    assert judge_gold(broken)["audio_first"] < 1.0


@pytest.mark.slow
def test_a_small_conflict_corpus_meets_its_preconditions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = ensure_corpus(tmp_path / "corpus", n=210, seed=0, regime="conflict").parent
    report = check(corpus, cache_dir=corpus / ".cache")
    assert report["regime"] == "conflict" and report["judge"]["visual_first"] == 1.0
    assert report["passed"]["text"] and report["passed"]["judge"]
    # 136 training clips: the probe is far above chance (1/3) but short of the 90% it reaches on the full 700
    # clips (96.0%: README); the brief (conflict) display is what it tells apart best
    assert report["media"]["accuracy"] >= 0.8 and report["media"]["accuracy_other_emotion_cue"] >= 0.8
    assert not report["passed"]["power"]  # 210 clips hold fewer than 100 conflict test clips: the command fails
    assert main([str(corpus), "--no-media", "--json", str(tmp_path / "c.json")]) == 1
    printed = capsys.readouterr().out
    assert printed.strip() == format_report({k: v for k, v in report.items() if k != "media"})
    assert "[FAIL] power" in printed and "[PASS] text" in printed
