"""Group-aware splits: no group on two sides, fractions close in samples, deterministic per seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from medseg.datasets import kfold_by_group, split_by_group


@dataclass(frozen=True)
class Item:
    id: str
    group: str


def random_items(rng: random.Random) -> list[Item]:
    n_groups = rng.randint(3, 60)
    items = []
    for g in range(n_groups):
        for k in range(rng.choice([1, 1, 2, 3, 5, 8, 20])):
            items.append(Item(f"g{g}_{k}", f"g{g}"))
    rng.shuffle(items)
    return items


def test_random_splits_never_share_a_group():
    rng = random.Random(1234)
    for trial in range(300):
        items = random_items(rng)
        n_parts = rng.choice([2, 3])
        n_groups = len({i.group for i in items})
        if n_groups < n_parts:
            continue
        fractions = [rng.uniform(0.1, 1) for _ in range(n_parts)]
        parts = split_by_group(items, fractions, seed=trial)
        groups = [{i.group for i in p} for p in parts]
        assert all(parts), (trial, fractions)
        for a in range(n_parts):
            for b in range(a + 1, n_parts):
                assert groups[a].isdisjoint(groups[b]), trial
        assert sorted(i.id for p in parts for i in p) == sorted(i.id for i in items)


def test_fractions_hold_in_samples_within_half_the_largest_group():
    rng = random.Random(7)
    for trial in range(100):
        items = [Item(f"{g}_{k}", str(g)) for g in range(80) for k in range(rng.randint(1, 6))]
        _, val = split_by_group(items, (0.8, 0.2), seed=trial)
        largest = 6
        assert abs(len(val) - 0.2 * len(items)) <= largest, (trial, len(val), len(items))


def test_same_seed_same_split_and_seeds_differ():
    items = [Item(f"{g}_{k}", str(g)) for g in range(40) for k in range(3)]
    a = split_by_group(items, seed=3)
    assert split_by_group(items, seed=3) == a
    # the input order does not matter, only the seed
    shuffled = split_by_group(list(reversed(items)), seed=3)
    assert [sorted(i.id for i in p) for p in shuffled] == [sorted(i.id for i in p) for p in a]
    assert len({frozenset(i.group for i in split_by_group(items, seed=s)[1]) for s in range(10)}) > 5


def test_zero_fraction_part_stays_empty_and_bad_fractions_raise():
    items = [Item(str(k), str(k)) for k in range(10)]
    train, test, val = split_by_group(items, (0.7, 0.0, 0.3))
    assert test == [] and len(train) + len(val) == 10 and val
    for bad in [(), (-0.2, 1.2), (0, 0)]:
        with pytest.raises(ValueError, match="fractions"):
            split_by_group(items, bad)
    with pytest.raises(ValueError, match="2 group"):
        split_by_group([Item("a", "x"), Item("b", "y")], (0.5, 0.3, 0.2))


def test_few_large_groups_still_fill_every_part():
    items = [Item(f"a{k}", "a") for k in range(50)] + [Item("b", "b"), Item("c", "c")]
    for seed in range(20):
        train, val = split_by_group(items, (0.9, 0.1), seed=seed)
        assert train and val
        assert {i.group for i in train}.isdisjoint({i.group for i in val})


def test_samples_without_group_raise():
    with pytest.raises(ValueError, match="no group"):
        split_by_group([Item("a", "")])


def test_kfold_puts_every_group_in_exactly_one_validation_fold():
    rng = random.Random(5)
    items = random_items(rng) + [Item(f"x{k}", f"x{k}") for k in range(10)]
    folds = kfold_by_group(items, k=5, seed=2)
    assert len(folds) == 5
    seen = []
    for train, val in folds:
        assert val and {i.group for i in train}.isdisjoint({i.group for i in val})
        assert len(train) + len(val) == len(items)
        seen += [i.id for i in val]
    assert sorted(seen) == sorted(i.id for i in items)
    assert kfold_by_group(items, k=5, seed=2) == folds
    with pytest.raises(ValueError):
        kfold_by_group(items, k=1)
