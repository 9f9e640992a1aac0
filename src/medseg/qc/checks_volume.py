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
* ``stray_island``: 3-D connected components (26-connected) of a class
  smaller than ``max_fraction`` of the class's largest component, measured in
  mm^3: a stray click or a piece painted on the wrong slice. Pieces touching
  the volume's faces are left out (a structure cut by the field of view
  leaves such pieces). A class whose whole volume is under ``min_mm3`` is
  reported as info (a stray click, or a real tiny structure).
* ``slice_jump``: a slice whose class mask disagrees with both neighbours
  while the neighbours agree with each other: for slice z, ``1 - max(Dice(z,
  z-1), Dice(z, z+1))`` exceeds by ``margin`` the larger of ``1 - Dice(z-1,
  z+1)`` and the class's typical (median) disagreement between adjacent
  slices. Smooth anatomy changes gradually, so slice z lies between its
  neighbours; a shifted, swapped or half-erased slice does not. Only where
  the class covers at least ``min_pixels`` on all three slices (Dice of a few
  pixels is noise).

Label ids against the class map are ``mask_values``' (which names the slices
for volumes), a label off the image's grid ``grid_mismatch``'s.
"""

from __future__ import annotations

import numpy as np

from medseg.qc.checks_base import Check, SampleView, plural
from medseg.qc.findings import Finding

_LISTED = 4  # classes or slices spelled out in a message; the rest are in the details


def slice_areas(v: SampleView) -> tuple[np.ndarray, np.ndarray]:
    """(ids present, ascending, 0 included when present; (Z, n ids) voxels of each id on each slice)."""

    def make():
        m = v.mask
        top = int(m.max()) if m.size else 0
        if m.dtype.kind in "ub" and top < 1 << 16:
            table = np.stack([np.bincount(m[z].ravel(), minlength=top + 1) for z in range(m.shape[0])])
            ids = np.flatnonzero(table.sum(axis=0))
            return ids, table[:, ids]
        ids = np.unique(m)
        table = np.zeros((m.shape[0], ids.size), np.int64)
        for z in range(m.shape[0]):
            u, c = np.unique(m[z], return_counts=True)
            table[z, np.searchsorted(ids, u)] = c
        return ids, table

    return v.cached("slice_areas", make)


def class_box(v: SampleView, cid: int) -> tuple[slice, slice, slice]:
    """The bounding box of class ``cid`` in the volume (from the per-slice areas and one pass per class)."""

    def make():
        from scipy import ndimage as ndi

        m = v.mask
        top = int(m.max()) if m.size else 0
        if m.dtype.kind in "ub" and top < 1 << 16:
            return {k + 1: box for k, box in enumerate(ndi.find_objects(m)) if box is not None}
        return {}

    boxes = v.cached("class_boxes", make)
    if cid in boxes:
        return boxes[cid]
    where = np.nonzero(v.mask == cid)
    return tuple(slice(int(a.min()), int(a.max()) + 1) for a in where)


def foreground_ids(v: SampleView) -> list[tuple[int, np.ndarray]]:
    """(class id, voxels per slice) for every class of the class map in the volume (ids it lacks are
    ``mask_values``' error, not judged again here)."""
    ids, table = slice_areas(v)
    known = set(v.classmap.ids)
    return [(int(c), table[:, k]) for k, c in enumerate(ids) if int(c) in known]


def runs(zs: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs of sorted indices as (first, last) pairs."""
    if zs.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(zs) > 1)
    starts = np.r_[zs[0], zs[breaks + 1]]
    ends = np.r_[zs[breaks], zs[-1]]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def slice_words(zs, ordered: bool = False) -> str:
    """'slice 4', 'slices 4..6', 'slices 2, 7..9 and 12' for slice indices (sorted and runs joined unless
    ``ordered``: then listed as given, most telling first)."""
    if ordered:
        zs = [int(z) for z in zs]
        parts = [str(z) for z in zs]
    else:
        zs = sorted(int(z) for z in zs)
        parts = [str(a) if a == b else f"{a}..{b}" for a, b in runs(np.asarray(zs, dtype=np.int64))]
    if not parts:
        return "no slice"
    word = "slice" if len(zs) == 1 else "slices"
    if len(parts) > _LISTED + 1:
        parts = [*parts[:_LISTED], f"{len(parts) - _LISTED} more {'slices' if ordered else 'runs'}"]
    return f"{word} {parts[0]}" if len(parts) == 1 else f"{word} {', '.join(parts[:-1])} and {parts[-1]}"


def cname(v: SampleView, cid: int) -> str:
    try:
        return v.classmap.name_of(int(cid))
    except (KeyError, ValueError):
        return f"id {cid}"


def _listing(parts: list[str]) -> str:
    more = f"; {len(parts) - _LISTED} more classes in the details" if len(parts) > _LISTED else ""
    return "; ".join(parts[:_LISTED]) + more


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
        Finding(
            v.id,
            "slice_gap",
            "warning" if solid or bare else "info",
            f"{lead}{_listing(parts)}: {why}",
            value=len(slices),
            path=v.where(),
            details={
                "slices": sorted(slices),
                "z": z,
                "empty_slices": bare,
                "per_class": per_class,
                "classes": solid or list(per_class),
            },
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


# -------------------------------------------------------------- stray_island
def check_stray_island(v: SampleView, p: dict) -> list[Finding]:
    if not v.volume:
        return []
    from scipy import ndimage as ndi

    voxel = float(np.prod(v.spacing))
    shape = v.mask.shape
    full = np.ones((3, 3, 3), bool)
    islands, per_class, tiny = [], {}, []
    for cid, a in foreground_ids(v):
        total = int(a.sum())
        if total * voxel < p["min_mm3"]:
            tiny.append((cid, total))
            continue
        box = class_box(v, cid)
        labels, n = ndi.label(v.mask[box] == cid, structure=full)
        if n < 2:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        small = np.flatnonzero(sizes < p["max_fraction"] * sizes.max()) + 1
        if small.size == 0:
            continue
        where = ndi.find_objects(labels)
        inner, at_border = [], 0
        for k in small.tolist():
            b = [slice(s.start + o.start, s.stop + o.start) for s, o in zip(where[k - 1], box)]
            if any(s.start == 0 or s.stop == n_ax for s, n_ax in zip(b, shape)):
                at_border += 1
            else:
                inner.append((k, b))
        if not inner:
            continue
        for k, b in inner:
            local = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(b, box))
            c = [float(w.mean()) + s.start for w, s in zip(np.nonzero(labels[local] == k), local)]
            islands.append(
                {
                    "class": cid,
                    "voxels": int(sizes[k - 1]),
                    "mm3": round(float(sizes[k - 1]) * voxel, 1),
                    "slices": [b[0].start, b[0].stop - 1],
                    "centre": [round(ci + o.start) for ci, o in zip(c, box)],
                }
            )
        per_class[cid] = {
            "name": cname(v, cid),
            "n": len(inner),
            "largest_mm3": round(float(sizes.max()) * voxel, 1),
            "at_border": at_border,
        }
    out = []
    if islands:
        islands.sort(key=lambda d: -d["mm3"])
        slices = sorted({z for d in islands for z in range(d["slices"][0], d["slices"][1] + 1)})
        parts = []
        for cid, d in per_class.items():
            mine = [i for i in islands if i["class"] == cid]
            zs = sorted({z for i in mine for z in range(i["slices"][0], i["slices"][1] + 1)})
            parts.append(
                f"{d['name']}: {plural(d['n'], 'island')} of {_mm3(sum(i['mm3'] for i in mine))} on "
                f"{slice_words(zs)} beside its {_mm3(d['largest_mm3'])} main part"
            )
        out.append(
            Finding(
                v.id,
                "stray_island",
                "warning",
                f"{plural(len(islands), 'stray 3-D component')} under {p['max_fraction']:.0%} of their class's "
                f"largest ({_listing(parts)}): stray clicks or pieces painted on the wrong slice?",
                value=len(islands),
                path=v.where(),
                details={
                    "slices": slices,
                    "z": islands[0]["centre"][0],
                    "islands": islands[:20],
                    "per_class": per_class,
                    "locations": [i["centre"] for i in islands[:20]],
                    "classes": list(per_class),
                },
            )
        )
    if tiny:
        zs = {cid: [int(z) for z in np.flatnonzero(a)] for cid, a in foreground_ids(v) if cid in dict(tiny)}
        parts = [f"{cname(v, c)}: {plural(n, 'voxel')} ({_mm3(n * voxel)}) on {slice_words(zs[c])}" for c, n in tiny]
        out.append(
            Finding(
                v.id,
                "stray_island",
                "info",
                f"{plural(len(tiny), 'class', 'classes')} with under {_mm3(p['min_mm3'])} in the whole volume "
                f"({_listing(parts)}): a stray click, or a real tiny structure?",
                value=len(tiny),
                path=v.where(),
                details={
                    "slices": sorted({z for c in zs.values() for z in c}),
                    "z": zs[tiny[0][0]][0],
                    "tiny": {c: {"name": cname(v, c), "voxels": n, "slices": zs[c]} for c, n in tiny},
                    "classes": [c for c, _ in tiny],
                },
            )
        )
    return out


def _mm3(v: float) -> str:
    return f"{v / 1000:.3g} ml" if v >= 1000 else f"{v:.3g} mm^3"


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
    for z in worst[:_LISTED]:
        rows = sorted(per_slice[z], key=lambda r: -r["excess"])
        r = rows[0]
        others = f" and {plural(len(rows) - 1, 'more class', 'more classes')}" if len(rows) > 1 else ""
        parts.append(
            f"slice {z}: {r['name']} Dice {r['dice_prev']:.2f} and {r['dice_next']:.2f} with slices {z - 1} and "
            f"{z + 1}, which agree at {r['dice_across']:.2f}{others}"
        )
    more = f"; {len(worst) - _LISTED} more slices in the details" if len(worst) > _LISTED else ""
    return [
        Finding(
            v.id,
            "slice_jump",
            "warning",
            f"{plural(len(worst), 'slice')} unlike both neighbours ({'; '.join(parts)}{more}): "
            "a shifted, swapped or half-drawn slice?",
            value=len(worst),
            path=v.where(),
            details={
                "slices": sorted(per_slice),
                "z": worst[0],
                "worst_slices": worst[:20],
                "per_slice": {z: per_slice[z] for z in sorted(per_slice)},
                "classes": sorted({r["class"] for rows in per_slice.values() for r in rows}),
            },
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
