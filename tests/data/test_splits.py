from __future__ import annotations

from collections import Counter

import pytest

from src.data.splits import stratified_split

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def test_totals_are_exact_and_each_stratum_is_spread() -> None:
    labels = [f"emotion{index % 7}" for index in range(140)]
    splits = stratified_split(labels, FRACTIONS, seed=3)
    assert Counter(splits) == {"train": 98, "val": 21, "test": 21}
    per_label = Counter(zip(labels, splits))
    assert all(per_label[(f"emotion{k}", "test")] == 3 for k in range(7))  # 20 per label -> 14/3/3


def test_tiny_sets_still_get_every_split() -> None:
    splits = stratified_split([index % 7 for index in range(14)], FRACTIONS, seed=0)
    assert Counter(splits) == {"train": 10, "val": 2, "test": 2}


def test_deterministic_for_a_seed_and_varies_with_it() -> None:
    labels = [index % 5 for index in range(50)]
    assert stratified_split(labels, FRACTIONS, seed=1) == stratified_split(labels, FRACTIONS, seed=1)
    assert stratified_split(labels, FRACTIONS, seed=1) != stratified_split(labels, FRACTIONS, seed=2)


def test_fractions_are_validated() -> None:
    with pytest.raises(ValueError, match="must be non-negative and sum to 1"):
        stratified_split([1, 2], {"train": 0.5, "test": 0.2}, seed=0)
    with pytest.raises(ValueError, match="must be non-negative and sum to 1"):
        stratified_split([1, 2], {"train": 1.2, "test": -0.2}, seed=0)
