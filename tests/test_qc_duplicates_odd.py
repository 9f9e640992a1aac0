"""Which labels of disagreeing copies are the likely errors: the only smallest set in every disagreement."""

from __future__ import annotations

import math

import pytest

from medseg.qc.duplicates_odd import MAX_TRIED, cleared, unique_cover


@pytest.mark.parametrize(
    "edges, right",
    [
        ([("a", "b")], {}),  # a pair: either could be wrong
        ([("c", "a"), ("c", "b")], {"a": ["c"], "b": ["c"]}),  # c disagrees with two copies
        ([("a", "b"), ("b", "c"), ("a", "c")], {}),  # three different masks: any two explain it
        ([("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")], {}),  # two against two
        # three copies with one mask, two with another: the two are the odd ones
        ([(r, w) for r in "abc" for w in "xy"], {"a": ["x", "y"], "b": ["x", "y"], "c": ["x", "y"]}),
        # a path a-b-c-d-e: b and d explain every disagreement, nothing else as small does
        ([("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")], {"a": ["b"], "c": ["b", "d"], "e": ["d"]}),
        # two groups, each judged on its own; the order of a pair does not matter
        ([("b", "a"), ("c", "a"), ("p", "q")], {"b": ["a"], "c": ["a"]}),
        ([("a", "a")], {}),
    ],
)
def test_cleared_labels_are_those_outside_the_only_smallest_explanation(edges, right):
    assert cleared(edges) == right
    assert cleared([(b, a) for a, b in edges]) == right


def test_a_large_group_with_a_small_explanation_is_searched_one_whose_search_is_too_long_is_not():
    star = [("hub", f"copy{k:02d}") for k in range(60)]  # one odd copy among 61: 61 sets of one label
    assert set(cleared(star)) == {f"copy{k:02d}" for k in range(60)}
    # two labels of 40 against 38 that agree: the two are found among the 820 sets of two
    two = [(w, f"r{k:02d}") for w in ("w1", "w2") for k in range(38)]
    assert set(cleared(two)) == {f"r{k:02d}" for k in range(38)}
    # 15 labels against 16: the 15 are the only smallest explanation, but finding it takes ~2^30 sets (the
    # search stops at MAX_TRIED and keeps every label an error; without the budget this test would not end)
    halves = [(f"a{i:02d}", f"b{j:02d}") for i in range(15) for j in range(16)]
    assert sum(math.comb(31, k) for k in range(1, 16)) > 1000 * MAX_TRIED
    assert cleared(halves) == {}
    small = [(f"a{i}", f"b{j}") for i in range(3) for j in range(5)]  # 3 against 5: within the budget
    assert set(cleared(small)) == {f"b{j}" for j in range(5)}
    graph = {"a": {"b"}, "b": {"a"}}
    assert unique_cover(graph, {"a", "b"}) is None


@pytest.mark.parametrize(
    "edges, weights, right",
    [
        ([("a", "b")], {"a": 3}, {"a": ["b"]}),  # three identical copies against one: the one is the odd one
        ([("a", "b")], {"a": 2, "b": 2}, {}),  # two against two
        ([("a", "b")], {"a": 600, "b": 400}, {"a": ["b"]}),  # one set of two vertices, not ~2^1000 of labels
        ([("a", "b"), ("a", "c")], {"a": 2}, {}),  # {a} weighs 2, {b, c} too: a tie
        ([("a", "b"), ("a", "c")], {"a": 3}, {"a": ["b", "c"]}),  # {b, c} is lighter though larger
    ],
)
def test_a_vertex_standing_for_identical_copies_weighs_what_they_count(edges, weights, right):
    """Identical copies with identical masks take part in the same disagreements: one vertex of their weight
    gives the explanation the copies would, one label each."""
    assert cleared(edges, weights) == right
    copies = {v: [f"{v}{k}" for k in range(weights.get(v, 1))] for e in edges for v in e}
    if sum(map(len, copies.values())) <= 8:  # the same graph drawn label by label
        expanded = [(x, y) for a, b in edges for x in copies[a] for y in copies[b]]
        want = {x: sorted(y for w in wrong for y in copies[w]) for r, wrong in right.items() for x in copies[r]}
        assert cleared(expanded) == want
