"""Volume checks: a label volume (one case, (slice, row, col) class ids) judged along its slices.

Each finding is about one volume and names the slices to look at:
``details["slices"]`` (every slice concerned, ascending) and ``details["z"]``
(the one to open first). Sizes are in the volume's own units (spacing from
the image's grid), so one threshold serves a 0.7 mm CT and a 5 mm MR.

* ``slice_gap``: a class missing from slices inside its own extent in z (it
  is on slices below and above). Warning when the class is solid on both
  sides of the gap (at least ``min_fraction`` of its median area per slice):
  an organ does not vanish for a slice and come back, a slice was left
  unlabelled. Info when a side is thin (the tip of a structure breaking up,
  a vessel leaving the plane). A slice with no label at all between labelled
  slices is named as such.
* ``stray_island``: small 3-D pieces of a class beside its main part, in
  mm^3, and classes of a few voxels (:mod:`medseg.qc.stray_islands`).
* ``slice_jump``: a slice whose class mask disagrees with both neighbours
  while the neighbours agree with each other: for slice z, ``1 - max(Dice(z,
  z-1), Dice(z, z+1))`` exceeds by ``margin`` the larger of ``1 - Dice(z-1,
  z+1)`` and the class's typical (median) disagreement between adjacent
  slices. Smooth anatomy changes gradually, so slice z lies between its
  neighbours; a shifted, swapped or half-erased slice does not. Only where
  the class covers at least ``min_pixels`` on all three slices (Dice of a few
  pixels is noise).

Label ids against the class map are ``mask_values``' (which names the slices
for volumes: :func:`bad_ids_finding`), a label off the image's grid
``grid_mismatch``'s. The per-slice tables and words the checks share are in
:mod:`medseg.qc.volume_slices`.
"""

from __future__ import annotations

import numpy as np

from medseg.qc.checks_base import Check, SampleView, plural
from medseg.qc.findings import Finding
from medseg.qc.stray_islands import check_stray_island
from medseg.qc.volume_slices import (
    LISTED,
    class_box,
    cname,
    foreground_ids,
    listing,
    runs,
    slice_areas,
    slice_words,
    volume_finding,
)


# -------------------------------------------------------------- slice_gap
def check_slice_gap(v: SampleView, p: dict) -> list[Finding]:
    if not v.volume:
        return []
    dz = v.spacing[0]
    per_class, slices, best = {}, set(), (-1.0, None)
    parts = []
    for cid, a in foreground_ids(v):
        zs = np.flatnonzero(a)
        if zs.size < 2:
            continue
        lo, hi = int(zs[0]), int(zs[-1])
        missing = np.flatnonzero(a[lo : hi + 1] == 0) + lo
        if missing.size == 0:
            continue
        typical = float(np.median(a[zs]))
        box = class_box(v, cid)
        gaps, solid = [], False
        for s, e in runs(missing):
            bare = _bare_share(v.mask, cid, s, e, box[1:])
            if bare < p["min_background"]:
                continue  # another class holds the place (a disc between vertebrae): anatomy, not a gap
            before, after = int(a[s - 1]), int(a[e + 1])
            firm = min(before, after) >= p["min_fraction"] * typical
            solid |= firm
            gaps.append(
                {"slices": [s, e], "before": before, "after": after, "solid": firm, "background": round(bare, 3)}
            )
            if firm and min(before, after) / typical > best[0]:
                best = (min(before, after) / typical, s)
            slices.update(range(s, e + 1))
        if not gaps:
            continue
        missing = np.asarray([z for g in gaps for z in range(g["slices"][0], g["slices"][1] + 1)])
        per_class[cid] = {"name": cname(v, cid), "extent": [lo, hi], "gaps": gaps, "solid": solid}
        first = gaps[0]
        sides = f"{first['before']:,} and {first['after']:,} voxels on the slices beside it"
        parts.append(
            f"{cname(v, cid)} absent from {slice_words(missing)} ({missing.size * dz:g} mm) inside its extent "
            f"{lo}..{hi} ({sides})"
        )
    if not per_class:
        return []
    solid = [c for c, d in per_class.items() if d["solid"]]
    fg = sum(a for _, a in foreground_ids(v))
    labelled = np.flatnonzero(fg)
    bare = [int(z) for z in np.flatnonzero(fg[labelled[0] : labelled[-1] + 1] == 0) + labelled[0]]
    lead = f"{slice_words(bare)} hold no label at all between labelled slices; " if bare else ""
    why = (
        "a slice left unlabelled? (the class is solid on both sides)"
        if solid
        else "thin on a side of each gap: a structure breaking up near its end, or a slice left unlabelled"
    )
    z = bare[0] if bare else best[1] if best[1] is not None else min(slices)
    return [
        volume_finding(
            v,
            "slice_gap",
            "warning" if solid or bare else "info",
            f"{lead}{listing(parts)}: {why}",
            len(slices),
            slices=sorted(slices),
            z=z,
            empty_slices=bare,
            per_class=per_class,
            classes=solid or list(per_class),
        )
    ]


def _bare_share(mask: np.ndarray, cid: int, first: int, last: int, plane: tuple[slice, slice]) -> float:
    """The share of the class's place on the slices beside the gap that is background on the gap's slices."""
    place = (mask[first - 1][plane] == cid) | (mask[last + 1][plane] == cid)
    n = int(place.sum())
    if n == 0:
        return 1.0
    return float(sum(int((mask[z][plane][place] == 0).sum()) for z in range(first, last + 1))) / (
        n * (last - first + 1)
    )


# -------------------------------------------------------------- slice_jump
def jump_table(v: SampleView, cid: int, a: np.ndarray, p: dict) -> list[dict]:
    """The slices of class ``cid`` that disagree with both neighbours (rule in the module doc)."""
    ok = a >= p["min_pixels"]
    if ok.sum() < 3:
        return []
    box = class_box(v, cid)
    z0 = box[0].start
    sub = v.mask[box] == cid
    az = a[z0 : z0 + sub.shape[0]].astype(np.float64)
    if az.size < 3:
        return []
    near = 2.0 * (sub[:-1] & sub[1:]).sum(axis=(1, 2)) / np.maximum(az[:-1] + az[1:], 1.0)
    across = 2.0 * (sub[:-2] & sub[2:]).sum(axis=(1, 2)) / np.maximum(az[:-2] + az[2:], 1.0)
    okz = ok[z0 : z0 + az.size]
    pairs = okz[:-1] & okz[1:]
    if not pairs.any():
        return []
    typical = float(np.median(1.0 - near[pairs]))
    out = []
    for j in range(1, az.size - 1):
        if not (okz[j - 1] and okz[j] and okz[j + 1]):
            continue
        jump = 1.0 - max(near[j - 1], near[j])
        expected = max(1.0 - across[j - 1], typical)
        if jump > expected + p["margin"]:
            out.append(
                {
                    "z": z0 + j,
                    "class": cid,
                    "name": cname(v, cid),
                    "dice_prev": round(float(near[j - 1]), 3),
                    "dice_next": round(float(near[j]), 3),
                    "dice_across": round(float(across[j - 1]), 3),
                    "typical_dice": round(1.0 - typical, 3),
                    "excess": round(jump - expected, 3),
                }
            )
    return out


def check_slice_jump(v: SampleView, p: dict) -> list[Finding]:
    if not v.volume or v.mask.shape[0] < 3:
        return []
    per_slice: dict[int, list[dict]] = {}
    for cid, a in foreground_ids(v):
        for row in jump_table(v, cid, a, p):
            per_slice.setdefault(row["z"], []).append(row)
    if not per_slice:
        return []
    worst = sorted(per_slice, key=lambda z: -max(r["excess"] for r in per_slice[z]))
    parts = []
    for z in worst[:LISTED]:
        rows = sorted(per_slice[z], key=lambda r: -r["excess"])
        r = rows[0]
        others = f" and {plural(len(rows) - 1, 'more class', 'more classes')}" if len(rows) > 1 else ""
        parts.append(
            f"slice {z}: {r['name']} Dice {r['dice_prev']:.2f} and {r['dice_next']:.2f} with slices {z - 1} and "
            f"{z + 1}, which agree at {r['dice_across']:.2f}{others}"
        )
    more = f"; {len(worst) - LISTED} more slices in the details" if len(worst) > LISTED else ""
    return [
        volume_finding(
            v,
            "slice_jump",
            "warning",
            f"{plural(len(worst), 'slice')} unlike both neighbours ({'; '.join(parts)}{more}): "
            "a shifted, swapped or half-drawn slice?",
            len(worst),
            slices=sorted(per_slice),
            z=worst[0],
            worst_slices=worst[:20],
            per_slice={z: per_slice[z] for z in sorted(per_slice)},
            classes=sorted({r["class"] for rows in per_slice.values() for r in rows}),
        )
    ]


# -------------------------------------------------------------- label ids (for mask_values)
def bad_ids_finding(v: SampleView) -> Finding | None:
    """Ids of a volume the class map lacks, with the slices holding them (``mask_values`` for volumes)."""
    valid = {0, *v.classmap.ids}
    ids, table = slice_areas(v)
    bad = [(int(c), table[:, k]) for k, c in enumerate(ids) if int(c) not in valid]
    if not bad:
        return None
    per_id = {c: [int(z) for z in np.flatnonzero(a)] for c, a in bad}
    listing = ", ".join(f"{c} ({int(a.sum()):,} voxels on {slice_words(per_id[c])})" for c, a in bad[:8])
    known = [0, *v.classmap.ids]
    shown = ", ".join(str(i) for i in known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
    slices = sorted({z for zs in per_id.values() for z in zs})
    return Finding(
        v.id,
        "mask_values",
        "error",
        f"label volume holds ids not in the class map ({shown}): {listing}; no safe fix, "
        "the class map or the label is wrong",
        value=len(bad),
        path=v.mask_path or v.where(),
        details={
            "ids": [c for c, _ in bad],
            "pixels": [int(a.sum()) for _, a in bad],
            "slices": slices,
            "z": slices[0],
            "per_id": per_id,
        },
    )


CHECKS = (
    Check(
        "slice_gap",
        "sample",
        "volumes: a class missing from slices inside its own extent in z",
        {"min_fraction": 0.25, "min_background": 0.5},
        run=check_slice_gap,
    ),
    Check(
        "stray_island",
        "sample",
        "volumes: small 3-D components beside a class's main part (mm^3), and classes of a few voxels",
        {"max_fraction": 0.1, "min_mm3": 50.0},
        run=check_stray_island,
    ),
    Check(
        "slice_jump",
        "sample",
        "volumes: a slice whose mask disagrees with both neighbours while they agree",
        {"margin": 0.2, "min_pixels": 20},
        run=check_slice_jump,
    ),
)
