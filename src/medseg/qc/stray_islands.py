"""The ``stray_island`` check: small 3-D pieces of a class beside its main part, and classes of a few voxels.

3-D connected components (26-connected) of a class smaller than
``max_fraction`` of the class's largest component, measured in mm^3 (the
volume's spacing): a stray click or a piece painted on the wrong slice. Pieces
touching the volume's faces are left out (a structure cut by the field of
view leaves such pieces). A class whose whole volume is under ``min_mm3`` is
reported as info (a stray click, or a real tiny structure). The findings name
the slices (:mod:`medseg.qc.volume_slices`).
"""

from __future__ import annotations

import numpy as np

from medseg.qc.checks_base import SampleView, plural
from medseg.qc.findings import Finding
from medseg.qc.volume_slices import class_box, cname, foreground_ids, listing, mm3, slice_words, volume_finding


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
                f"{d['name']}: {plural(d['n'], 'island')} of {mm3(sum(i['mm3'] for i in mine))} on "
                f"{slice_words(zs)} beside its {mm3(d['largest_mm3'])} main part"
            )
        out.append(
            volume_finding(
                v,
                "stray_island",
                "warning",
                f"{plural(len(islands), 'stray 3-D component')} under {p['max_fraction']:.0%} of their class's "
                f"largest ({listing(parts)}): stray clicks or pieces painted on the wrong slice?",
                len(islands),
                slices=slices,
                z=islands[0]["centre"][0],
                islands=islands[:20],
                per_class=per_class,
                locations=[i["centre"] for i in islands[:20]],
                classes=list(per_class),
            )
        )
    if tiny:
        zs = {cid: [int(z) for z in np.flatnonzero(a)] for cid, a in foreground_ids(v) if cid in dict(tiny)}
        parts = [f"{cname(v, c)}: {plural(n, 'voxel')} ({mm3(n * voxel)}) on {slice_words(zs[c])}" for c, n in tiny]
        out.append(
            volume_finding(
                v,
                "stray_island",
                "info",
                f"{plural(len(tiny), 'class', 'classes')} with under {mm3(p['min_mm3'])} in the whole volume "
                f"({listing(parts)}): a stray click, or a real tiny structure?",
                len(tiny),
                slices=sorted({z for c in zs.values() for z in c}),
                z=zs[tiny[0][0]][0],
                tiny={c: {"name": cname(v, c), "voxels": n, "slices": zs[c]} for c, n in tiny},
                classes=[c for c, _ in tiny],
            )
        )
    return out
