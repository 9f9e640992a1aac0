"""Fixes for what QC finds: binarise grey noise, remove specks, fill holes (safe), and the outline
correction the outline-fit check suggests (a suggestion: one object moved, grown or shrunk to where
the image's edges are; it is offered the same way, as a revision a person asks for and can revert).

``apply_fix`` is pure: it returns a new mask and a summary, and never
touches a file or a workspace. ``offer_fixes`` is the only place fixes are
saved, and only when it is called: each fix becomes its own workspace
revision with origin "auto-fix" (so each can be reviewed and reverted); QC
itself never runs a fix.

Summaries: ``n_changed`` pixels whose label changed; ``gained`` / ``lost``
{class id (0 = background): pixels}; ``changed`` {foreground class id:
pixels entering or leaving it} as the workspace counts revisions. Stored grey
values of a raw mask belong to no class: binarising them counts as a gain
for the class they join and a loss for none.
"""

from __future__ import annotations

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.errors import FixError, UnknownNameError
from medseg.qc.checks_masks import hole_table, speck_threshold
from medseg.workspace.records import AUTO_FIX, EXCLUDED

SAFE_FIXES = frozenset({"binarise", "remove_specks", "fill_holes"})
FIXES = SAFE_FIXES | {"outline_correction"}
# ids first: specks and holes are defined on class ids; the outline last, on the cleaned object
ORDER = ("binarise", "remove_specks", "fill_holes", "outline_correction")
_SPECK_DEFAULTS = {"min_pixels": 20, "min_fraction": 0.0005}


def apply_fix(name: str, mask: np.ndarray, classmap: ClassMap, **params) -> tuple[np.ndarray, dict]:
    """``mask`` with fix ``name`` applied, and a summary of what changed (see the module doc).

    * ``binarise`` (binary class maps): foreground iff value >= half the
      nominal maximum (``rule``, ``nominal_max`` as :func:`medseg.io.masks.binarise`).
    * ``remove_specks``: 8-connected components of at most ``max_pixels``
      pixels (default: below the ``specks`` check's threshold) of ``classes``
      (default all) take the label most common on their outer ring
      (background beside a lone speck; the enclosing class for a speck inside
      another class).
    * ``fill_holes``: enclosed background regions take the class around them;
      with ``max_fraction`` only holes smaller than that share of their object.
    * ``outline_correction``: the object of class ``class_id`` at (or nearest
      to) ``centre`` is moved, grown or shrunk as ``correction`` says
      (``["move", dy, dx]``, ``["grow", k]``, ``["shrink", k]``); pixels it
      leaves become background, pixels it takes keep another class they had.
    """
    if name not in FIXES:
        raise UnknownNameError("fix", name, sorted(FIXES))
    mask = np.asarray(mask)
    fn = {
        "binarise": _binarise,
        "remove_specks": _remove_specks,
        "fill_holes": _fill_holes,
        "outline_correction": _outline_correction,
    }[name]
    try:
        new, extra = fn(mask, classmap, **params)
    except TypeError as e:
        raise FixError(f"fix {name!r}: {e}") from None
    nominal = extra["report"]["nominal_max"] if name == "binarise" else None
    summary = {"fix": name, "params": params, **extra, **_diff(mask, new, classmap, nominal)}
    return new, summary


def _binarise(mask, classmap, rule="half", nominal_max=None):
    from medseg.io.masks import binarise

    if classmap.task != "binary":
        raise FixError(
            f"binarise applies to binary class maps; this one is {classmap.task} "
            f"({', '.join(classmap.names)}): ids outside it have no safe fix"
        )
    new, report = binarise(mask, rule=rule, nominal_max=nominal_max)
    return new, {"report": report.to_dict()}


def _remove_specks(mask, classmap, max_pixels=None, classes=None):
    from scipy import ndimage as ndi

    shape = mask.shape[:-1] if classmap.task == "multilabel" else mask.shape
    if max_pixels is None:
        max_pixels = speck_threshold(shape, **_SPECK_DEFAULTS) - 1
    new = mask.copy()
    removed = 0
    full = np.ones((3,) * len(shape), bool)
    chosen = None if classes is None else {int(c) for c in classes}
    if classmap.task == "multilabel":
        for i, cid in enumerate(classmap.ids):
            if chosen is not None and cid not in chosen:
                continue
            labels, _ = ndi.label(mask[..., i], structure=full)
            sizes = np.bincount(labels.ravel())
            small = np.flatnonzero(sizes <= max_pixels)
            small = small[small > 0]
            new[..., i][np.isin(labels, small)] = False
            removed += small.size
        return new, {"n_components": removed, "max_pixels": int(max_pixels)}
    for cid in [int(c) for c in np.unique(mask) if c != 0 and (chosen is None or int(c) in chosen)]:
        labels, _ = ndi.label(mask == cid, structure=full)
        sizes = np.bincount(labels.ravel())
        small = [int(k) for k in np.flatnonzero(sizes <= max_pixels) if k > 0]
        removed += _relabel(new, mask, labels, small)
    return new, {"n_components": removed, "max_pixels": int(max_pixels)}


def _fill_holes(mask, classmap, max_fraction=None):
    filled = 0
    if classmap.task == "multilabel":
        new = mask.copy()
        for i in range(mask.shape[-1]):
            labels, ids, sizes, hosts = hole_table(mask[..., i])
            keep = ids if max_fraction is None else ids[sizes < max_fraction * hosts]
            new[..., i] |= np.isin(labels, keep)
            filled += keep.size
        return new, {"n_holes": filled}
    new = mask.copy()
    labels, ids, sizes, hosts = hole_table(mask > 0)
    keep = ids if max_fraction is None else ids[sizes < max_fraction * hosts]
    filled = _relabel(new, mask, labels, [int(k) for k in keep], exclude_background=True)
    return new, {"n_holes": filled}


def _check_correction(correction) -> tuple:
    """``["move", dy, dx]``, ``["grow", k]`` or ``["shrink", k]`` with numbers, as a tuple; else FixError."""
    shapes = {"move": 2, "grow": 1, "shrink": 1}
    ok = isinstance(correction, (list, tuple)) and len(correction) >= 1 and correction[0] in shapes
    if ok:
        args = correction[1:]
        ok = len(args) == shapes[correction[0]] and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and np.isfinite(a) for a in args
        )
        ok = ok and (correction[0] == "move" or args[0] > 0)
    if not ok:
        raise FixError(
            f'outline_correction: correction must be ["move", dy, dx], ["grow", k] or '
            f'["shrink", k] with k > 0, got {correction!r}'
        )
    return tuple(correction)


def _outline_correction(mask, classmap, class_id, centre, correction):
    from scipy import ndimage as ndi

    from medseg.qc.outline_fit import corrected

    correction = _check_correction(correction)
    if mask.ndim != (3 if classmap.task == "multilabel" else 2):
        raise FixError(f"outline_correction applies to 2-D labels, got shape {mask.shape}")
    try:
        cid = int(class_id)
        y, x = (int(round(float(c))) for c in centre)
    except (TypeError, ValueError):
        raise FixError(
            f"outline_correction: class_id must be a class id and centre (y, x), got {class_id!r} and {centre!r}"
        ) from None
    if cid not in classmap.ids:
        raise FixError(f"outline_correction: class {cid} is not in the class map (ids {list(classmap.ids)})")
    if classmap.task == "multilabel":
        channel = list(classmap.ids).index(cid)
        present = mask[..., channel].astype(bool)
    else:
        present = mask == cid
    labels, n = ndi.label(present, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask.copy(), {"moved": 0}
    y, x = min(max(y, 0), mask.shape[0] - 1), min(max(x, 0), mask.shape[1] - 1)
    k = labels[y, x]
    if k == 0:  # the centre of a concave object can lie outside it: take the nearest object
        _, (iy, ix) = ndi.distance_transform_edt(labels == 0, return_indices=True)
        k = labels[iy[y, x], ix[y, x]]
    region = labels == k
    moved = corrected(region, correction)
    new = mask.copy()
    if classmap.task == "multilabel":
        new[..., channel][region] = False
        new[..., channel][moved] = True
    else:
        new[region] = 0
        new[moved & ((new == 0) | (new == cid))] = cid
    return new, {"moved": int(region.sum()), "correction": list(correction)}


def _relabel(new: np.ndarray, mask: np.ndarray, labels: np.ndarray, ids, exclude_background=False) -> int:
    """Give each region ``ids`` of ``labels`` the label most common on its outer (8-connected) ring."""
    from scipy import ndimage as ndi

    boxes = ndi.find_objects(labels)
    full = np.ones((3,) * labels.ndim, bool)
    for k in ids:
        sl = boxes[k - 1]
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        local = labels[grown] == k
        ring = ndi.binary_dilation(local, structure=full) & ~local
        values = mask[grown][ring]
        if exclude_background:
            values = values[values != 0]
        if values.size == 0 and exclude_background:
            continue
        value = np.bincount(values.astype(np.int64)).argmax() if values.size else 0
        new[grown][local] = value
    return len(ids)


def _diff(old: np.ndarray, new: np.ndarray, classmap: ClassMap, raw_nominal: float | None) -> dict:
    if classmap.task == "multilabel":
        lost = {cid: int((old[..., i] & ~new[..., i]).sum()) for i, cid in enumerate(classmap.ids)}
        gained = {cid: int((new[..., i] & ~old[..., i]).sum()) for i, cid in enumerate(classmap.ids)}
        n = int((old != new).any(axis=-1).sum())
        return {
            "n_changed": n,
            "gained": gained,
            "lost": lost,
            "changed": {c: gained[c] + lost[c] for c in classmap.ids},
        }
    if raw_nominal is not None:
        # a raw 0/255 mask: 0 is background, the nominal maximum is class 1, anything else no class yet
        old = np.where(old == 0, 0, np.where(old == raw_nominal, 1, -1))
    classes = [0, *classmap.ids]
    gained = {c: int(((new == c) & (old != c)).sum()) for c in classes}
    lost = {c: int(((old == c) & (new != c)).sum()) for c in classes}
    return {
        "n_changed": int((old != new).sum()),
        "gained": gained,
        "lost": lost,
        "changed": {c: gained[c] + lost[c] for c in classmap.ids},
    }


def offer_fixes(ws, findings, names=None, author: str | None = None) -> list:
    """Save the fixes ``findings`` offer as "auto-fix" revisions of a workspace; the new revisions.

    Only findings whose ``fix`` is in ``names`` count (default: the safe fixes; the outline correction,
    a suggestion, only when named, as the Review widget does for the sample a person looks at).
    Each sample gets at most one revision per fix, applied to its current
    head in the order binarise, remove_specks, fill_holes with the parameters
    the finding recorded, and none where the fix changes nothing (already
    fixed, or corrected since QC). Excluded samples are left alone.
    """
    wanted = set(SAFE_FIXES if names is None else ([names] if isinstance(names, str) else names))
    unknown = sorted(wanted - FIXES)
    if unknown:
        raise UnknownNameError("fix", unknown[0], sorted(FIXES))
    todo: dict[str, dict[str, dict]] = {}
    for f in findings:
        if f.fix in wanted:
            todo.setdefault(f.sample_id, {})[f.fix] = dict((f.details or {}).get("fix_params") or {})
    saved = []
    for sid, fixes in todo.items():
        if ws.sample(sid).status == EXCLUDED:
            continue
        for name in (n for n in ORDER if n in fixes):
            head = ws.sample(sid).head_revision
            new, summary = apply_fix(name, ws.current_mask(sid), ws.classmap, **fixes[name])
            if summary["n_changed"] == 0:
                continue
            rev = ws.save_revision(sid, new, origin=AUTO_FIX, author=author, note=_note(summary))
            if rev.id != head:
                saved.append(rev)
    return saved


def _note(summary: dict) -> str:
    parts = {
        "remove_specks": lambda s: f"removed {s['n_components']} speck(s) of <= {s['max_pixels']} px",
        "fill_holes": lambda s: f"filled {s['n_holes']} hole(s)",
        "binarise": lambda s: "binarised grey values",
        "outline_correction": lambda s: f"outline {_correction_words(s['correction'])}",
    }
    return f"auto-fix {summary['fix']}: {parts[summary['fix']](summary)}, {summary['n_changed']:,} pixels changed"


def _correction_words(correction) -> str:
    kind, *args = correction
    if kind == "move":
        return f"moved by {args[0]:+d} rows, {args[1]:+d} columns"
    return f"{'grown' if kind == 'grow' else 'shrunk'} by {args[0]} px"
