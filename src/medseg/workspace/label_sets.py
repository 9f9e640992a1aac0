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


def label_counts(workspace) -> LabelCounts:
    """What a run on each choice of labels trains on in an open workspace. A sample without a label
    revision never trains; one whose source image changed since import is left out by the run itself (a
    problem it lists), which these counts do not look for (that needs every file hashed)."""
    from medseg.workspace.split_groups import split_groups

    records = workspace.samples()
    groups = split_groups(workspace)
    choices = {}
    for name, statuses in LABEL_SETS.items():
        chosen = [r for r in records if r.status in statuses and r.head_revision is not None]
        choices[name] = LabelCount(len(chosen), tuple(sorted({groups[r.id] for r in chosen})))
    return LabelCounts(choices, dict(Counter(r.status for r in records)))


def describe_statuses(by_status: dict[str, int]) -> str:
    """E.g. "24 samples: 20 unreviewed, 3 accepted, 1 excluded" (how a workspace's samples are reviewed)."""
    n = sum(by_status.values())
    parts = [f"{by_status[s]} {s}" for s in STATUSES if by_status.get(s)]
    return f"{n} sample{'s' if n != 1 else ''}" + (f": {', '.join(parts)}" if parts else "")
