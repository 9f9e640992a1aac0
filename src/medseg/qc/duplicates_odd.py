"""Which labels of copies of one picture are the likely errors, when their masks disagree in a telling pattern.

A pair of copies whose masks disagree says that one of the two labels is
wrong, not which. Three or more copies can say which: when one label
disagrees with two copies that do not disagree with each other, the error is
far more likely in that one label than in both of the others (at an error
rate of 20 %, one wrong label is about three times as likely as the two).
The rule, the most economical explanation: the smallest set of labels that
takes part in every disagreement (a minimum vertex cover of the disagreement
graph), when no other set of that size does. Its labels are the likely errors
(the odd ones out); the other copies are likely right. A pair, or copies
split evenly (two against two), leave two equally small explanations: every
label of the group stays an error, queued together. Copies of one picture
with one mask count as one label of their number (a weight): the smallest
explanation takes all of them or none, and 400 such copies against 600 are
two labels to search, not a thousand.

Before, the clean copies of a corrupted frame took first-fifth places of the
queue, flagged only because a near-identical frame's label was wrong. On the
choosing sides of benchmarks/bench_rank.py (its stored predictions re-scored,
QC run again): frames 1-297, seeds 0-1, corrupted masks in the first 20 %
93.2 -> 94.1 %, AUROC 0.992 -> 0.996; frames 298-408, eight seeds, 87.5 ->
90.9 %, AUROC 0.976 -> 0.988. Held out once (frames 409-612, seeds 2-5):
87.2 -> 87.8 %, AUROC 0.976 -> 0.980.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from itertools import combinations

# sets of labels tried per group before giving up (every label stays an error): the search tries the sets of
# one label, then of two, ...; a large group with a small explanation (one odd copy among 50) is cheap, a
# group whose smallest explanation is large is not (2^n sets)
MAX_TRIED = 100_000


def cleared(edges: Iterable[tuple[str, str]], weights: dict[str, int] | None = None) -> dict[str, list[str]]:
    """{label likely right: the odd ones out it disagrees with} over the disagreement graph ``edges``
    (pairs of samples whose masks disagree, in either order); labels of a group that does not tell are
    not in it. ``weights``: how many labels a vertex stands for (identical copies with identical masks,
    which take part in the same disagreements: every smallest explanation takes all of them or none); 1 for
    a vertex it does not name."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if a != b:
            graph[a].add(b)
            graph[b].add(a)
    weight = weights or {}
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        group = _component(graph, start)
        seen |= group
        odd = unique_cover(graph, group, weight)
        if odd is None:
            continue
        for s in sorted(group - odd):
            out[s] = sorted(graph[s])
    return out


def unique_cover(graph: dict[str, set[str]], group: set[str], weight: dict[str, int] | None = None) -> set[str] | None:
    """The group's only lightest set of labels in every disagreement (its weight: the labels its vertices stand
    for, ``weight``, 1 each by default); None when two sets tie, or when finding it would take more than
    ``MAX_TRIED`` sets. Sets are tried by their number of vertices; a vertex weighs at least 1, so once that
    number exceeds the lightest weight found no larger set can be as light."""
    weight = weight or {}
    members = sorted(group)
    pairs = [(a, b) for a in members for b in graph[a] if a < b]
    tried, best, found = 0, math.inf, None
    for k in range(1, len(members)):
        if k > best:
            break
        tried += math.comb(len(members), k)
        if tried > MAX_TRIED:
            return None
        for chosen in combinations(members, k):
            s = set(chosen)
            if all(a in s or b in s for a, b in pairs):
                w = sum(weight.get(x, 1) for x in chosen)
                if w < best:
                    best, found = w, s
                elif w == best:
                    found = None
    return found


def _component(graph: dict[str, set[str]], start: str) -> set[str]:
    group, todo = {start}, [start]
    while todo:
        for other in graph[todo.pop()]:
            if other not in group:
                group.add(other)
                todo.append(other)
    return group
