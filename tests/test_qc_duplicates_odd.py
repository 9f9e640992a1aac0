"""Which labels of disagreeing copies are the likely errors: the only smallest set in every disagreement."""

from __future__ import annotations

import pytest

from medseg.qc.duplicates_odd import MAX_GROUP, cleared, unique_cover


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


def test_a_group_too_large_to_search_keeps_every_label_an_error():
    hub = [("hub", f"copy{k}") for k in range(MAX_GROUP)]  # MAX_GROUP + 1 labels
    assert cleared(hub) == {}
    assert set(cleared(hub[:-1])) == {f"copy{k}" for k in range(MAX_GROUP - 1)}
    graph = {"a": {"b"}, "b": {"a"}}
    assert unique_cover(graph, {"a", "b"}) is None
