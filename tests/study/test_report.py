"""The study's statistics and report, against scipy and hand-counted cases (no training)."""

from __future__ import annotations

import math

import pytest

from src.evaluation.predictions import PredictionRecord
from src.study.report import (
    format_failures,
    paired_summary,
    scoped_figures,
    stage_kind,
    study_markdown,
    summarize,
)

LABELS = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]


@pytest.mark.parametrize("values", [[0.1, -0.05, 0.2], [1.0, 2.0, 4.0, 8.0, 16.0], [0.3, 0.31]])
def test_the_t_interval_is_scipys(values):
    import numpy as np
    from scipy import stats

    from src.demo.seeds import t_interval

    mean, half = t_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert mean - half == pytest.approx(low, rel=1e-3) and mean + half == pytest.approx(high, rel=1e-3)


def test_paired_summary_pairs_by_seed_and_skips_undefined_seeds():
    arm = {0: 0.30, 1: 0.20, 2: None, 3: 0.40, 4: 0.10}
    baseline = {0: 0.20, 1: 0.25, 2: 0.50, 3: 0.20, 4: float("nan")}
    summary = paired_summary(arm, baseline)
    # seeds 0, 1, 3 pair: differences +0.10, -0.05, +0.20; mean 0.0833, sd 0.1258; t(0.975, 2) = 4.303
    assert summary["n"] == 4 and summary["n_paired"] == 3
    assert summary["mean"] == pytest.approx(0.25) and summary["sd"] == pytest.approx(0.12910, abs=1e-5)
    assert summary["difference"] == pytest.approx(0.25 / 3)
    half = 4.303 * 0.125830 / math.sqrt(3)
    assert summary["low"] == pytest.approx(0.25 / 3 - half, abs=1e-5)
    assert summary["high"] == pytest.approx(0.25 / 3 + half, abs=1e-5)
    one = paired_summary({0: 0.5}, {0: 0.25})
    assert one["difference"] == 0.25 and one["low"] is None and one["sd"] is None


def _record(i: int, label: str, prediction: str | None, judged: str | None, dominant: str, well_formed=True):
    return PredictionRecord(
        id=f"c{i}",
        dataset="synth",
        label=label,
        completion="",
        answer=prediction,
        prediction=prediction,
        first_segment="visual",
        well_formed=well_formed,
        num_tokens=10,
        truncated=False,
        dominant=dominant,
        judge="keywords|explanation",
        judged=judged,
    )


def test_scoped_figures_count_each_scope_by_hand():
    records = [
        _record(0, "happy", "happy", "happy", "audio"),  # conflict: consistent, right
        _record(1, "happy", "happy", "sad", "audio"),  # conflict: right answer, wrong reasoning
        _record(2, "sad", "angry", "angry", "visual", well_formed=False),  # conflict: consistent, wrong
        _record(3, "fear", "fear", "sad", "visual"),  # neutral cue: right answer, wrong reasoning
    ]
    cues = {"c0": "conflict", "c1": "conflict", "c2": "conflict", "c3": "neutral"}
    scoped = scoped_figures(records, LABELS, cues)
    # conflict clips: EPC 2/3, right answers c0, c1 -> R-wrong/A-right among correct 1/2
    assert scoped["conflict"]["epc"] == pytest.approx(2 / 3)
    assert scoped["conflict"]["r_wrong_a_right_among_correct"] == pytest.approx(0.5)
    assert scoped["conflict | well-formed"]["epc"] == pytest.approx(0.5)  # c2 left out
    assert scoped["all"]["epc"] == pytest.approx(0.5) and scoped["all"]["war"] == pytest.approx(0.75)
    assert scoped["audio/conflict"]["num_samples"] == 2 and scoped["visual/neutral"]["epc"] == 0.0
    assert "visual/conflict | well-formed" not in scoped  # no well-formed clip in that cell


def _summary_of(values: dict[str, dict[int, float]]) -> dict:
    """Figures for one regime in which only format/well_formed and epc (all clips, keyword judge) are set."""
    figures = {
        "conflict": {
            arm: {
                seed: {"keywords": {"all": {"format/well_formed": wf, "epc": 0.8}}}
                for seed, wf in per_seed.items()
            }
            for arm, per_seed in values.items()
        }
    }
    return summarize(figures)


def test_an_arm_under_the_format_threshold_is_flagged_in_the_report():
    summary = _summary_of({"baseline": {0: 1.0, 1: 0.98}, "migr": {0: 0.96, 1: 0.90}})
    assert format_failures(summary, 0.95) == {"conflict": {"migr": pytest.approx(0.93)}}
    text = study_markdown(
        summary, seeds=[0, 1], arms={"conflict": ["baseline", "migr"]}, threshold=0.95, timings={}
    )
    assert "**Failed on format:** migr (93.0% well-formed)" in text
    assert "| well-formed explanations (%) | migr (failed on format) | 2 | 93.0 ± 4.2 | -6.0 (" in text
    assert "| R-wrong/A-right among correct | all arms | 0 | n/a (no value in any seed) | n/a | 0 |" in text
    assert "Anchoring probe: missing" in text


def test_stage_kinds():
    assert [stage_kind(n) for n in ("migr_oracle_build", "migr_sft", "baseline_grpo", "eval_migr", "base")] == [
        "build",
        "sft",
        "grpo",
        "evaluation",
        "base",
    ]
    assert stage_kind("judge_migr_embedding") == "re-judge (embedding)"


def test_the_anchoring_probe_is_read_from_metrics_and_reported_with_the_keyword_judge():
    from src.study.report import anchoring_figures

    metrics = {"anchoring": {"non_dominant": {"all": {"answer_follows_forced": 0.25, "n": 8}}, "skipped": 2}}
    assert anchoring_figures(metrics) == {
        "anchoring/non_dominant/all/answer_follows_forced": 0.25,
        "anchoring/non_dominant/all/n": 8.0,
        "anchoring/skipped": 2.0,
    }
    assert anchoring_figures({"recognition": {}}) == {}
    key = "anchoring/non_dominant/all/answer_follows_forced"
    figures = {
        "conflict": {
            arm: {s: {j: {"all": {key: v + s / 10}} for j in ("keywords", "embedding")} for s in (0, 1)}
            for arm, v in (("baseline", 0.5), ("migr", 0.25))
        }
    }
    text = study_markdown(summarize(figures), seeds=[0, 1], arms={}, threshold=0.95, timings={})
    assert f"| {key} (%) | migr | 2 | 30.0 ± 7.1 | -25.0 (-25.0, -25.0) | 2 |" in text
    assert text.count(f"| {key} (%) | migr |") == 1  # not repeated under the embedding judge
    assert "Anchoring probe: missing" not in text


def _primary_summary(p1: dict[str, list[float]], p2: dict[str, list[float]], judge_p2=None) -> dict:
    """Conflict-clip figures per arm and seed for the two primary endpoints (both judges), summarised."""
    figures: dict = {"conflict": {}}
    for arm in p1:
        for seed, (r, e) in enumerate(zip(p1[arm], p2[arm], strict=True)):
            embedding_epc = (judge_p2 or p2)[arm][seed]
            figures["conflict"].setdefault(arm, {})[seed] = {
                "keywords": {"conflict": {"r_wrong_a_right_among_correct": r, "epc": e}},
                "embedding": {"conflict": {"r_wrong_a_right_among_correct": r, "epc": embedding_epc}},
            }
    return summarize(figures)


def test_the_verdict_follows_the_protocols_rules_on_hand_computed_intervals():
    from src.study.report import decision, decision_lines

    base = [0.20, 0.22, 0.18, 0.21, 0.19]
    epc = [0.70, 0.72, 0.68, 0.71, 0.69]
    # differences of exactly -0.10 (P1) and +0.15 (P2) in every seed: sd 0, intervals collapse on them -> positive
    better = _primary_summary(
        {"baseline": base, "migr": [b - 0.10 for b in base]}, {"baseline": epc, "migr": [e + 0.15 for e in epc]}
    )
    assert decision(better, {}, "conflict", "migr") == ("positive", [])
    # the same, failed on format: the intervals favour it but it cannot be positive; not negative either
    verdict, notes = decision(better, {"conflict": {"migr": 0.9}}, "conflict", "migr")
    assert verdict == "inconclusive" and "failed on format" in notes[0]
    # the embedding judge sees no EPC difference (differences -0.01, +0.01, 0, 0, 0: interval spans 0)
    flat = _primary_summary(
        {"baseline": base, "migr": [b - 0.10 for b in base]},
        {"baseline": epc, "migr": [e + 0.15 for e in epc]},
        judge_p2={"baseline": epc, "migr": [epc[0] - 0.01, epc[1] + 0.01, *epc[2:]]},
    )
    assert decision(flat, {}, "conflict", "migr")[1] == [
        "judge-dependent: under the embedding judge an interval includes 0 or flips"
    ]
    # differences +-0.01 around 0 in P1 and P2: mean 0, sd 0.01 -> half-width 2.776 * 0.01 / sqrt(5) = 0.0124,
    # both intervals inside (-0.05, +0.05) -> negative
    wobble = [0.01, -0.01, 0.01, -0.01, 0.0]
    level = _primary_summary(
        {"baseline": base, "migr": [b + d for b, d in zip(base, wobble, strict=True)]},
        {"baseline": epc, "migr": [e + d for e, d in zip(epc, wobble, strict=True)]},
    )
    assert decision(level, {}, "conflict", "migr") == ("negative", [])
    # EPC worse in every seed by 0.08 (interval (-0.08, -0.08)), P1 level: negative, noted as worse
    worse = _primary_summary({"baseline": base, "migr": base}, {"baseline": epc, "migr": [e - 0.08 for e in epc]})
    verdict, notes = decision(worse, {}, "conflict", "migr")
    assert verdict == "negative" and notes == ["EPC is lower than the baseline's (interval below 0): worse"]
    # wide: differences -0.20, +0.20, ... -> the interval covers both 0 and +-5 points -> inconclusive
    wide = [-0.2, 0.2, -0.1, 0.1, 0.0]
    noisy = _primary_summary(
        {"baseline": base, "migr": [b + d for b, d in zip(base, wide, strict=True)]},
        {"baseline": epc, "migr": [e + d for e, d in zip(epc, wide, strict=True)]},
    )
    assert decision(noisy, {}, "conflict", "migr") == ("inconclusive", [])
    one_seed = _primary_summary({"baseline": base[:1], "migr": base[:1]}, {"baseline": epc[:1], "migr": epc[:1]})
    assert decision(one_seed, {}, "conflict", "migr")[0] == "undecided"
    text = "\n".join(decision_lines(better, {}))
    assert "- `migr` vs `baseline`, conflict regime (preregistered): **positive**" in text
