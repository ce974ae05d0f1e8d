"""Seeded, stratified assignment of items to splits (train/val/test), exact in total even for tiny sets.

Each stratum (e.g. a label, or a (label, dominant modality) pair) is shuffled with the seed and cut by
*cumulative* largest-remainder rounding: the running totals over all strata so far always equal the rounded
fractions, so the overall counts are exact and a 14-clip corpus still gets a non-empty val and test split.

Example:
    >>> labels = ["happy", "sad"] * 7
    >>> splits = stratified_split(labels, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    >>> {name: splits.count(name) for name in ("train", "val", "test")}
    {'train': 10, 'val': 2, 'test': 2}
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

import numpy as np


def _largest_remainder(total: int, fractions: Sequence[float]) -> list[int]:
    ideal = [total * fraction for fraction in fractions]
    counts = [math.floor(value) for value in ideal]
    order = sorted(range(len(ideal)), key=lambda index: (-(ideal[index] - counts[index]), index))
    for index in order[: total - sum(counts)]:
        counts[index] += 1
    return counts


def stratified_split(strata: Sequence[Hashable], fractions: Mapping[str, float], *, seed: int) -> list[str]:
    """The split name of each item, stratified by ``strata[i]`` and deterministic for ``seed``.

    Args:
        strata: one hashable key per item (items with equal keys are spread over the splits).
        fractions: split name -> fraction; must be non-negative and sum to 1.
        seed: shuffling seed.
    """
    names = list(fractions)
    weights = [float(fractions[name]) for name in names]
    if any(weight < 0 for weight in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be non-negative and sum to 1; got {dict(fractions)}")
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, key in enumerate(strata):
        groups[key].append(index)
    rng = np.random.default_rng(seed)
    assigned = [0] * len(names)
    seen = 0
    result = [""] * len(strata)
    for key in sorted(groups, key=repr):
        members = [groups[key][i] for i in rng.permutation(len(groups[key]))]
        seen += len(members)
        target = _largest_remainder(seen, weights)
        take = [goal - done for goal, done in zip(target, assigned)]
        # Cumulative rounding can ask a stratum for a negative share; move it to the splits it owes.
        while any(count < 0 for count in take):
            negative = next(i for i, count in enumerate(take) if count < 0)
            positive = max(range(len(take)), key=lambda i: take[i])
            take[negative] += 1
            take[positive] -= 1
        position = 0
        for split_index, count in enumerate(take):
            for member in members[position : position + count]:
                result[member] = names[split_index]
            position += count
            assigned[split_index] += count
    return result
