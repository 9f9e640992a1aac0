"""Which of a workspace's labels a model learns from, by name, and how many samples each choice holds.

A run on a workspace trains on the current label revision of the samples whose review status is in
``data.statuses``. A user picks that set by name (``medseg train --labels``, the Fine-tune dock's "Train
on"): the reviewed samples (accepted + corrected: labels a person has looked at), the corrected ones only,
or all current labels (every sample not excluded, unreviewed ones included: the default, as export's).
Importable without torch: the dock counts the choices before any model is loaded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from medseg.workspace.records import ACCEPTED, CORRECTED, STATUSES, TRAINABLE_STATUSES

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "reviewed": (ACCEPTED, CORRECTED),
    "corrected": (CORRECTED,),
    "all": TRAINABLE_STATUSES,
}
DEFAULT_LABEL_SET = "all"  # what a run without data.statuses trains on


def label_set_name(statuses: list[str] | tuple[str, ...] | None) -> str | None:
    """The name in :data:`LABEL_SETS` of a ``data.statuses`` (None: the default); None for another set."""
    if statuses is None:
        return DEFAULT_LABEL_SET
    return next((name for name, s in LABEL_SETS.items() if set(s) == set(statuses)), None)


@dataclass(frozen=True)
class LabelCount:
    """What one choice of labels trains on: its samples, and the groups a validation split keeps apart
    (QC's duplicate links merged, as the run splits them)."""

    samples: int
    groups: tuple[str, ...]


@dataclass(frozen=True)
class LabelCounts:
    """Every choice's :class:`LabelCount` of one workspace, and its samples by review status."""

    choices: dict[str, LabelCount]
    by_status: dict[str, int]

    def __getitem__(self, name: str) -> LabelCount:
        return self.choices[name]

    def describe_statuses(self) -> str:
        return describe_statuses(self.by_status)


@dataclass(frozen=True)
class LabelRow:
    """What the counts need of one sample: its review status, its split group, whether it has a label."""

    status: str
    group: str
    labelled: bool = True


def label_rows(workspace) -> dict[str, LabelRow]:
    """{sample id: LabelRow} of an open workspace, its groups merged across QC's duplicate links."""
    from medseg.workspace.split_groups import split_groups

    groups = split_groups(workspace)
    return {r.id: LabelRow(r.status, groups[r.id], r.head_revision is not None) for r in workspace.samples()}


def count_statuses(rows: dict[str, LabelRow], statuses) -> LabelCount:
    """What a run with ``data.statuses`` = ``statuses`` (None: every sample not excluded) trains on."""
    wanted = set(statuses or TRAINABLE_STATUSES)
    chosen = [r for r in rows.values() if r.status in wanted and r.labelled]
    return LabelCount(len(chosen), tuple(sorted({r.group for r in chosen})))


def count_labels(rows: dict[str, LabelRow]) -> LabelCounts:
    """What a run on each choice of labels trains on, from :func:`label_rows` (a dock keeps them and
    updates a status as the user reviews, without reading the workspace again)."""
    choices = {name: count_statuses(rows, statuses) for name, statuses in LABEL_SETS.items()}
    return LabelCounts(choices, dict(Counter(r.status for r in rows.values())))


def label_counts(workspace) -> LabelCounts:
    """What a run on each choice of labels trains on in an open workspace. A sample without a label
    revision never trains; one whose source image changed since import is left out by the run itself (a
    problem it lists), which these counts do not look for (that needs every file hashed)."""
    return count_labels(label_rows(workspace))


def describe_statuses(by_status: dict[str, int]) -> str:
    """E.g. "24 samples: 20 unreviewed, 3 accepted, 1 excluded" (how a workspace's samples are reviewed)."""
    n = sum(by_status.values())
    parts = [f"{by_status[s]} {s}" for s in STATUSES if by_status.get(s)]
    return f"{n} sample{'s' if n != 1 else ''}" + (f": {', '.join(parts)}" if parts else "")
