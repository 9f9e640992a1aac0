"""Object count consistency: a label whose number of objects differs from the rest of its group.

Frames of one video, or slices of one scan in a series labelled the same
way, usually show the same number of objects per class: in CVC-ClinicDB 98 %
of the labelled frames of a video share their count. A label with an object
more than its neighbours is often one drawn where there is none (or a stray
second outline); one with an object fewer has left one out. A model scores
both badly only when it sees the objects itself, which a model trained on a
few hundred frames often does not: the count needs no model.

Objects are 8-connected components of each class at least the ``specks``
check's size (specks are that check's business). Only labelled (non-empty)
samples take part: an empty label is ``empty_mask``'s, and in a scan where
most slices are empty the count of the others must not be judged against
the empty ones. A sample is flagged (warning) when at least ``min_group``
other labelled samples of its group exist and at least ``dominant`` of them
share one per-class count that differs from the sample's. Groups where the
count varies (an organ that splits and merges through a volume) flag
nothing.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from medseg.qc.checks_base import Check, SampleView, plural
from medseg.qc.checks_masks import CHECKS as MASK_CHECKS
from medseg.qc.checks_masks import speck_threshold
from medseg.qc.findings import Finding

_SPECKS = next(c for c in MASK_CHECKS if c.name == "specks").defaults


def object_counts(v: SampleView) -> dict:
    """The measure ``object_count`` decides on: {class id: objects not smaller than a speck}.

    A volume gives none: its slices are judged against each other by the volume checks (``slice_jump``,
    ``stray_island``), and two scans of one patient need not show an organ in as many pieces."""
    if v.volume:
        return {}
    limit = speck_threshold(v.spatial_shape, _SPECKS["min_pixels"], _SPECKS["min_fraction"])
    out = {}
    for cid, _ in v.class_masks():
        _, sizes = v.components(cid)
        n = int(np.count_nonzero(sizes >= limit))
        if n:
            out[int(cid)] = n
    return out


def _signature(counts: dict) -> tuple:
    return tuple(sorted((int(c), int(n)) for c, n in counts.items()))


def _describe(sig: tuple, per_class: bool) -> str:
    total = sum(n for _, n in sig)
    if not per_class:
        return plural(total, "object")
    return f"{plural(total, 'object')} (" + ", ".join(f"class {c}: {n}" for c, n in sig) + ")"


def decide_object_count(table: dict, ctx, p: dict) -> list[Finding]:
    counts = table["objects"]
    by_group: dict[str, list[str]] = {}
    for sid in ctx.sample_ids:
        if counts.get(sid):  # labelled samples only (module doc)
            by_group.setdefault(ctx.groups.get(sid, sid), []).append(sid)
    findings = []
    for group, members in by_group.items():
        if len(members) <= p["min_group"]:
            continue
        sigs = {sid: _signature(counts[sid]) for sid in members}
        tally = Counter(sigs.values())
        for sid in members:
            others = tally.copy()
            others[sigs[sid]] -= 1
            usual, n_usual = others.most_common(1)[0]
            n_others = len(members) - 1
            if usual == sigs[sid] or n_usual < p["dominant"] * n_others:
                continue
            own, theirs = sum(n for _, n in sigs[sid]), sum(n for _, n in usual)
            per_class = len({c for c, _ in sigs[sid] + usual}) > 1
            guess = (
                "an object drawn where there is none, or a stray outline?"
                if own > theirs
                else "an object left out?"
                if own < theirs
                else "objects given the wrong class?"
            )
            findings.append(
                Finding(
                    sid,
                    "object_count",
                    "warning",
                    f"{_describe(sigs[sid], per_class)} where {n_usual} of the other {n_others} labelled samples "
                    f"of its group ({group}) have {_describe(usual, per_class)}: {guess}",
                    value=own,
                    path=ctx.paths.get(sid),
                    details={
                        "group": group,
                        "objects": dict(sigs[sid]),
                        "usual": dict(usual),
                        "usual_share": round(n_usual / n_others, 3),
                    },
                )
            )
    return findings


CHECKS = (
    Check(
        "object_count",
        "dataset",
        "labels with more or fewer objects than the rest of their group (frames of a video, slices of a scan)",
        {"min_group": 5, "dominant": 0.8},
        needs=("objects",),
        decide=decide_object_count,
    ),
)
