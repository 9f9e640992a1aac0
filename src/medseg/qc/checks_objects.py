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

A frame the camera took from another side shows fewer or more objects than
its video for a good reason, and the frames next to it show that view too: a
flagged sample that shares its count with one of its neighbours (up to
``signal_neighbours.REACH`` frames either side) whose image shows the same
scene once aligned (``signal_neighbours.scene_match`` at least
``SAME_SCENE``, far stricter than the neighbour fit's) keeps the finding as
info, listed but not moving it up the queue. A label error is the odd one out
among frames of one scene; a planted object more or fewer leaves its
neighbours' counts as they were. Without thumbnails (volumes, no image)
nothing is excused.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from medseg.qc.checks_base import Check, SampleView, plural
from medseg.qc.checks_masks import CHECKS as MASK_CHECKS
from medseg.qc.checks_masks import speck_threshold
from medseg.qc.findings import Finding
from medseg.qc.signal_neighbours import neighbours, scene_match

_SPECKS = next(c for c in MASK_CHECKS if c.name == "specks").defaults
# endoscopy frames look alike (dark surround, bright lumen): among CVC-ClinicDB frames 1-408, random pairs from
# different videos match (the better of both ways round) at median 0.35, 99.9th percentile 0.89, at most 0.927
# (2,205 pairs); so only a match above that counts as one scene here (CVC frames 563 and 564, one view: 0.96)
SAME_SCENE = 0.93


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
            mate = _scene_mate(table, ctx, sid, sigs)
            details = {
                "group": group,
                "objects": dict(sigs[sid]),
                "usual": dict(usual),
                "usual_share": round(n_usual / n_others, 3),
            }
            message = (
                f"{_describe(sigs[sid], per_class)} where {n_usual} of the other {n_others} labelled samples "
                f"of its group ({group}) have {_describe(usual, per_class)}"
            )
            if mate is None:
                severity, message = "warning", f"{message}: {guess}"
            else:
                severity = "info"
                message = f"{message}, as has neighbouring sample {mate}, which shows the same scene: another view?"
                details["same_scene_as"] = mate
            findings.append(
                Finding(sid, "object_count", severity, message, value=own, path=ctx.paths.get(sid), details=details)
            )
    return findings


def _scene_mate(table: dict, ctx, sid: str, sigs: dict) -> str | None:
    """The first neighbour of ``sid`` with its per-class count whose image shows the same scene (module doc)."""
    if "thumbs" not in table:
        return None
    for nid in neighbours(ctx).get(sid, ()):
        if sigs.get(nid) == sigs[sid]:
            # either way round: a move of a few pixels crops one side of each thumbnail (563 onto 564: 0.96,
            # 564 onto 563: 0.82)
            matches = [
                m for m in (scene_match(table, ctx, sid, nid), scene_match(table, ctx, nid, sid)) if m is not None
            ]
            if matches and max(matches) >= SAME_SCENE:
                return nid
    return None


CHECKS = (
    Check(
        "object_count",
        "dataset",
        "labels with more or fewer objects than the rest of their group (frames of a video, slices of a scan)",
        {"min_group": 5, "dominant": 0.8},
        needs=("objects", "thumbs"),
        decide=decide_object_count,
    ),
)
