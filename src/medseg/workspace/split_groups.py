"""The groups a split keeps together, with the leaks QC found closed.

A split by group (video block, patient, case) keeps a sample and its near
copies on one side, as far as the groups know. They do not always: frames 266
and 275 of CVC-ClinicDB are near-duplicates in two different frame blocks,
so a model validated (or an out-of-fold score computed) on one has trained on
the other. QC's ``exact_duplicate`` and ``near_duplicate`` findings name such
pairs; here every group linked by one is merged with the group across the
link (transitively), and the merged group, named by its members joined with
"+", is what training's validation split, the out-of-fold ranking's folds
and export's split use. Without QC findings the groups are the workspace's.
"""

from __future__ import annotations

from collections.abc import Iterable

LINKING_CHECKS = ("exact_duplicate", "near_duplicate")


def merged_groups(groups: dict[str, str], links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{sample: group} with the groups of every linked pair of samples merged (union-find over groups)."""
    parent: dict[str, str] = {}

    def root(g: str) -> str:
        parent.setdefault(g, g)
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for a, b in links:
        if groups.get(a) and groups.get(b):  # a sample without a group stays without one
            ra, rb = root(groups[a]), root(groups[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, set[str]] = {}
    for g in set(groups.values()):
        members.setdefault(root(g), set()).add(g)
    name = {r: "+".join(sorted(m)) for r, m in members.items()}
    return {sid: name[root(g)] for sid, g in groups.items()}


def split_groups(workspace) -> dict[str, str]:
    """{sample id: group for splitting} of a workspace: its groups merged across QC's duplicate links."""
    groups = {rec.id: str(rec.group or "") for rec in workspace.samples()}
    links = [
        (f.sample_id, str(other))
        for check in LINKING_CHECKS
        for f in workspace.findings(check=check)
        for other in (f.details or {}).get("cross_group", ())
    ]
    return merged_groups(groups, links)
