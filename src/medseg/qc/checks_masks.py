"""Per-sample mask checks: grey noise, specks, holes, empty / full masks, border-only objects.

Rules (each threshold is a parameter; see ``CHECKS``):

* ``mask_values``: binary masks: stored values other than 0 and the nominal
  foreground value (255 for 8-bit) are grey noise. Warning, or info when every
  level lies within ``jpeg_tolerance`` of 0 or of the maximum (JPEG ringing,
  which binarising snaps back unambiguously). Id masks: ids the class map
  lacks are an error (no safe fix). Read from the source file as stored;
  for volumes from the label itself, naming the slices that hold them.
* ``specks``: 8-connected components of a class smaller than
  ``max(min_pixels, min_fraction * image area)``; volumes are ``stray_island``'s
  (sizes in mm^3, :mod:`medseg.qc.checks_volume`). Warning when the class also
  has a larger component (specks beside a real object are noise; fix offered
  for those classes); info without a fix when all of the class's objects are
  that small (possibly a real tiny lesion).
* ``holes``: background regions (4-connected, as ``binary_fill_holes``) that
  do not reach the image border, i.e. fully enclosed by foreground. Warning
  for holes smaller than ``max_fraction`` of the filled object (the fix fills
  only those); info without a fix when every hole is larger (a ring-shaped
  structure may be real anatomy).
* ``full_mask``: foreground fraction >= ``min_fraction``: warning; every pixel
  foreground: error (an inverted or blank-white mask).
* ``border_only``: every foreground component touches the outermost row or
  column (any face of other 3-D arrays; for volumes, whose first and last
  slices are where the scan stopped, only the in-plane faces). Warning when all foreground pixels lie in a
  band of ``band_fraction`` of the shorter side (at least 2 px) along the
  border: a frame or line, not an object. Info otherwise: objects cut by the
  field of view, or a shifted / padded mask, worth a look.
* ``empty_mask`` is decided for the whole dataset: see :func:`decide_empty`.
"""

from __future__ import annotations

import numpy as np

from medseg.qc.checks_base import Check, SampleView, centroids, plural, span
from medseg.qc.findings import Finding


def speck_threshold(shape: tuple[int, ...], min_pixels: int, min_fraction: float) -> int:
    return int(max(min_pixels, round(min_fraction * float(np.prod(shape)))))


def border_labels(labels: np.ndarray, axes=None) -> np.ndarray:
    """Labels (> 0) present on any face of the array (the faces across ``axes``: default all)."""
    axes = range(labels.ndim) if axes is None else axes
    faces = [np.take(labels, i, axis=ax).ravel() for ax in axes for i in (0, -1)]
    found = np.unique(np.concatenate(faces))
    return found[found > 0]


def hole_labels(foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, ids) of background regions enclosed by ``foreground``.

    Same pixels as ``scipy.ndimage.binary_fill_holes(fg) & ~fg`` (background
    4-connected, outside = anything reaching the border), but labelled, which
    also makes it several times faster than fill_holes' iterated dilation.
    """
    from scipy import ndimage as ndi

    labels, n = ndi.label(~foreground)
    if n == 0:
        return labels, np.zeros(0, np.int64)
    outside = np.zeros(n + 1, bool)
    outside[border_labels(labels)] = True
    outside[0] = True
    return labels, np.flatnonzero(~outside)


def hole_table(foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, ids, sizes, host sizes): each hole and the size of the filled object it sits in."""
    from scipy import ndimage as ndi

    labels, ids = hole_labels(foreground)
    if ids.size == 0:
        return labels, ids, np.zeros(0, np.int64), np.zeros(0, np.int64)
    sizes = np.bincount(labels.ravel(), minlength=int(ids.max()) + 1)[ids]
    hole = np.isin(labels, ids)
    objects, _ = ndi.label(foreground | hole, structure=np.ones((3,) * foreground.ndim, bool))
    # a hole lies inside one object: any of its voxels names it (ndi.maximum over the labels took 18 s on a
    # 512 x 512 x 300 label volume, this 0.3 s)
    host_of = np.zeros(int(ids.max()) + 1, np.int64)
    host_of[labels[hole]] = objects[hole]
    hosts = np.bincount(objects.ravel())[host_of[ids]]
    return labels, ids, sizes, hosts


# -------------------------------------------------------------- mask_values
def check_mask_values(v: SampleView, p: dict) -> list[Finding]:
    out = []
    if v.volume and v.raw_bad_ids is None:
        from medseg.qc.checks_volume import bad_ids_finding

        found = bad_ids_finding(v)
        return [found] if found is not None else []
    if v.raw_bad_ids:
        listing = ", ".join(f"{i} ({c:,} px)" for i, c in v.raw_bad_ids[:8])
        valid = ", ".join(str(i) for i in [0, *v.classmap.ids])
        out.append(
            Finding(
                v.id,
                "mask_values",
                "error",
                f"mask holds ids not in the class map ({valid}): {listing}; no safe fix, "
                "the class map or the mask is wrong",
                value=len(v.raw_bad_ids),
                path=v.mask_path,
                details={"ids": [i for i, _ in v.raw_bad_ids], "pixels": [c for _, c in v.raw_bad_ids]},
            )
        )
    reports = v.raw_reports or ({None: v.raw_report} if v.raw_report is not None else {})
    for cid, rep in reports.items():
        if rep is None or not rep.grey_levels:
            continue
        out.append(_grey_finding(v, cid, rep, p["jpeg_tolerance"]))
    return out


def _grey_finding(v: SampleView, cid, rep, tolerance: float) -> Finding:
    nominal = rep.nominal_max
    levels = rep.grey_levels
    jpeg_like = all(x <= tolerance or x >= nominal - tolerance for x in levels)
    where = f"class {cid} file" if cid is not None else "mask"
    n_nominal = f"{{0, {int(nominal) if float(nominal).is_integer() else nominal}}}"
    cause = (
        "JPEG compression ringing along edges, which binarising snaps back unambiguously"
        if jpeg_like
        else "looks like compression or annotation-tool noise"
    )
    msg = (
        f"{where} holds {plural(len(levels), 'grey level')} ({span(levels)}) in {rep.n_ambiguous:,} pixels "
        f"outside the class map {n_nominal}: {cause}; binarising (foreground iff value >= "
        f"{rep.threshold:g}) sends {rep.n_to_background:,} to background and {rep.n_to_foreground:,} to foreground"
    )
    details = {
        "levels": levels[:64],
        "level_counts": rep.grey_level_counts[:64],
        "n_pixels": rep.n_ambiguous,
        "to_background": rep.n_to_background,
        "to_foreground": rep.n_to_foreground,
        "threshold": rep.threshold,
        "nominal_max": nominal,
        "class": cid,
    }
    fix = "binarise"
    if v.in_workspace:
        # The workspace imported the mask already binarised by this rule: re-binarising the head changes nothing.
        msg += "; the workspace's imported revision was binarised by this rule, review those pixels"
        fix = None
    elif cid is not None:
        fix = None  # per-class files are merged on load; the merged ids hold no grey values to binarise
    if v.raw is not None:
        rows = np.nonzero((v.raw != 0) & (v.raw != nominal))
        details["bbox"] = [[int(a.min()), int(a.max())] for a in rows] if rows[0].size else []
    return Finding(
        v.id,
        "mask_values",
        "info" if jpeg_like else "warning",
        msg,
        value=len(levels),
        path=v.mask_path,
        fix=fix,
        details=details,
    )


# -------------------------------------------------------------- specks
def check_specks(v: SampleView, p: dict) -> list[Finding]:
    if v.volume:
        return []  # a fraction of a whole volume's voxels is no speck size: stray_island judges volumes in mm^3
    limit = speck_threshold(v.spatial_shape, p["min_pixels"], p["min_fraction"])
    per_class, locations, beside, n_total = {}, [], [], 0
    for cid, _ in v.class_masks():
        labels, sizes = v.components(cid)
        small = np.flatnonzero(sizes < limit) + 1
        if small.size == 0:
            continue
        n_total += small.size
        if small.size < sizes.size:
            beside.append(cid)
        per_class[cid] = {
            "n": int(small.size),
            "pixels": int(sizes[small - 1].sum()),
            "sizes": sorted(int(s) for s in sizes[small - 1])[:20],
            "objects": int(sizes.size),
        }
        locations += centroids(labels, small.tolist(), 20 - len(locations))
    if not n_total:
        return []
    parts = "; ".join(
        f"{_cname(v, c)}: {plural(d['n'], 'component')} of {d['pixels']:,} px (of {d['objects']} objects)"
        for c, d in per_class.items()
    )
    why = (
        "beside larger objects: annotation specks"
        if beside
        else "and no larger object of that class: a real tiny lesion or stray clicks"
    )
    msg = f"{plural(n_total, 'connected component')} smaller than {limit} px {why} ({parts})"
    # Removing is safe only beside a larger object of the same class: a lone tiny object may be the lesion.
    fix = "remove_specks" if beside else None
    return [
        Finding(
            v.id,
            "specks",
            "warning" if beside else "info",
            msg,
            value=n_total,
            path=v.where(),
            fix=fix,
            details={
                "threshold": limit,
                "per_class": per_class,
                "locations": locations,
                "fix_params": {"max_pixels": limit - 1, "classes": beside} if beside else {},
            },
        )
    ]


# -------------------------------------------------------------- holes
def check_holes(v: SampleView, p: dict) -> list[Finding]:
    if v.multilabel:
        masks = [m for _, m in v.class_masks()]
    else:
        masks = [v.foreground()] if v.foreground().any() else []
    sizes_all, small, locations, zs = [], 0, [], set()
    for fg in masks:
        labels, ids, sizes, hosts = hole_table(fg)
        if ids.size == 0:
            continue
        if v.volume:  # the slices to open
            zs.update(np.flatnonzero(np.isin(labels, ids).any(axis=(1, 2))).tolist())
        small += int((sizes < p["max_fraction"] * hosts).sum())
        sizes_all += [int(s) for s in sizes]
        locations += centroids(labels, ids.tolist(), 20 - len(locations))
    if not sizes_all:
        return []
    n = len(sizes_all)
    severity = "warning" if small else "info"
    why = (
        f"{small} of them under {p['max_fraction']:.0%} of their object: unlabelled gaps inside it"
        if small
        else f"each over {p['max_fraction']:.0%} of its object: possibly a real ring-shaped structure"
    )
    msg = f"{plural(n, 'hole')} ({sum(sizes_all):,} px) enclosed by foreground; {why}"
    # Filling is safe only for the small holes; large ones may be real (a ring), so none is offered for them.
    return [
        Finding(
            v.id,
            "holes",
            severity,
            msg,
            value=n,
            path=v.where(),
            fix="fill_holes" if small else None,
            details={
                "sizes": sorted(sizes_all)[:20],
                "n_small": int(small),
                "locations": locations,
                "fix_params": {"max_fraction": p["max_fraction"]} if small else {},
                **({"slices": sorted(zs), "z": locations[0][0]} if v.volume and locations else {}),
            },
        )
    ]


# -------------------------------------------------------------- full / border / empty
def check_full(v: SampleView, p: dict) -> list[Finding]:
    frac = float(v.foreground().mean()) if v.foreground().size else 0.0
    if frac < p["min_fraction"]:
        return []
    if frac >= 1.0:
        return [
            Finding(
                v.id,
                "full_mask",
                "error",
                "every pixel is foreground: an inverted or blank-white mask",
                value=frac,
                path=v.where(),
            )
        ]
    return [
        Finding(
            v.id,
            "full_mask",
            "warning",
            f"{frac:.1%} of the pixels are foreground (limit {p['min_fraction']:.0%}): "
            "an inverted mask or a region drawn around the whole image?",
            value=frac,
            path=v.where(),
        )
    ]


def check_border_only(v: SampleView, p: dict) -> list[Finding]:
    fg = v.foreground()
    if not fg.any():
        return []
    labels, n = v.foreground_components()
    # a volume's first and last slices are where the scan stopped, and organs run through them: only the
    # in-plane field of view counts
    axes = range(1, fg.ndim) if v.volume else range(fg.ndim)
    if border_labels(labels, axes).size < n:
        return []
    band = max(2, round(p["band_fraction"] * min(fg.shape[a] for a in axes)))
    inner = np.zeros_like(fg)
    inner[tuple(slice(band, -band) if a in axes else slice(None) for a in range(fg.ndim))] = True
    in_band = not (fg & inner).any()
    if in_band:
        msg = (
            f"all foreground lies within {band} px of the image border: a frame or line drawn by the "
            "annotation tool, not an object"
        )
    else:
        msg = (
            f"every one of the {plural(n, 'object')} touches the image border: objects cut by the field of "
            "view, or a shifted or padded mask"
        )
    return [
        Finding(
            v.id,
            "border_only",
            "warning" if in_band else "info",
            msg,
            value=n,
            path=v.where(),
            details={"band": band, "in_band": in_band},
        )
    ]


def foreground_pixels(v: SampleView) -> dict:
    """The measure ``empty_mask`` decides on: foreground pixels, total and per class."""
    if v.volume:  # from the per-slice counts: no bool volume per class (41 of them for a CT)
        from medseg.qc.volume_slices import slice_areas

        ids, table = slice_areas(v)
        per = {int(c): int(table[:, k].sum()) for k, c in enumerate(ids) if c != 0}
        return {"n": sum(per.values()), "classes": per}
    return {"n": int(v.foreground().sum()), "classes": {c: int(m.sum()) for c, m in v.class_masks()}}


def decide_empty(table: dict, ctx, p: dict) -> list[Finding]:
    """Empty masks are suspicious where they are rare (a missing annotation) and normal where common
    (slices without the organ): more than ``common_fraction`` empty makes them info, else warning; at
    most ``rare_fraction`` empty in a dataset of at least ``min_samples`` makes them errors (a dataset of
    polyp frames where 1 % of the masks are empty has lost those annotations, it did not sample them)."""
    fg = table["foreground"]
    empty = [sid for sid in ctx.sample_ids if sid in fg and fg[sid]["n"] == 0]
    if not empty:
        return []
    frac = len(empty) / max(1, len(fg))
    common = frac > p["common_fraction"]
    rare = frac <= p["rare_fraction"] and len(fg) >= p["min_samples"]
    if common:
        severity, why = "info", f"{len(empty)} of {len(fg)} masks are empty ({frac:.0%}): common here, likely intended"
    elif rare:
        severity, why = (
            "error",
            (f"only {len(empty)} of {len(fg)} masks are empty ({frac:.1%}): almost surely a missing annotation"),
        )
    else:
        severity, why = "warning", f"only {len(empty)} of {len(fg)} masks are empty: a missing annotation?"
    return [
        Finding(sid, "empty_mask", severity, f"mask has no foreground pixel; {why}", value=0, path=ctx.paths.get(sid))
        for sid in empty
    ]


def _cname(v: SampleView, cid) -> str:
    try:
        return v.classmap.name_of(int(cid))
    except KeyError:
        return f"class {cid}"


CHECKS = (
    Check(
        "mask_values",
        "sample",
        "mask values outside the class map (grey noise, unknown ids)",
        {"jpeg_tolerance": 16},
        fix="binarise",
        run=check_mask_values,
    ),
    Check(
        "specks",
        "sample",
        "connected components below a size, per class",
        {"min_pixels": 20, "min_fraction": 0.0005},
        fix="remove_specks",
        run=check_specks,
    ),
    Check(
        "holes",
        "sample",
        "background regions fully enclosed by foreground",
        {"max_fraction": 0.25},
        fix="fill_holes",
        run=check_holes,
    ),
    Check(
        "empty_mask",
        "dataset",
        "masks without any foreground pixel",
        {"common_fraction": 0.2, "rare_fraction": 0.05, "min_samples": 20},
        needs=("foreground",),
        decide=decide_empty,
    ),
    Check("full_mask", "sample", "masks that are (almost) all foreground", {"min_fraction": 0.95}, run=check_full),
    Check(
        "border_only",
        "sample",
        "masks whose every object touches the image border",
        {"band_fraction": 0.02},
        run=check_border_only,
    ),
)
