"""``shape-prior`` and ``empty-mask``: masks unlike the dataset's own, and empty masks where masks rarely are.

``shape-prior``: the masks of one dataset share a look (polyps are single
round blobs covering a few percent of the frame, lungs two large lobes), and
a careless label often breaks it: an object too many, a blob grown or shrunk,
a ragged outline. Per 2-D sample QC keeps a few shape measures of its
foreground (``SHAPE_NAMES``; on the mask scaled to at most ``SIDE`` px):
log area share of the image, object count, and the largest object's
roughness (perimeter squared over 4 pi area, log). Solidity and
eccentricity were tried and left out: alone they ranked the planted errors
of CVC-ClinicDB frames 1-300 at AUROC 0.53 and 0.47, and with them the
prior ranked worse (0.65 vs 0.68); the object count (0.99 for an extra
object) and the area relative to the group (0.90 for an eroded outline)
carry it. The prior
is learnt from the dataset itself: each measure's median and median absolute
deviation over the dataset's non-empty masks, and, where the sample's group
(a video) has at least ``MIN_GROUP`` other non-empty masks, the log area
relative to the group's median (frames of one video show an object at a
similar size); there the object count's z is the smaller of the dataset's and
the group's (a video that shows two polyps throughout is not a run of extra
objects; an object more than the video's frames have still is). The raw value
is minus the root mean square of the robust z-scores (each capped at
``CAP``): 0 for a typical mask, more negative the more unusual. Volumes and
empty masks are not judged here.

``empty-mask``: an empty mask where nearly every mask has an object is an
annotation that was lost, not a picture without the object; where empty
masks are common (slices without the organ) it is ordinary. The raw value
of an empty mask is the share of empty masks in the dataset, of a non-empty
mask 1, so that no sample is left unjudged for being empty. Volumes are
judged like images (an empty label volume is empty).
"""

from __future__ import annotations

import numpy as np

from medseg.qc.checks_base import SampleView
from medseg.qc.signals import own_measure

SHAPE_METHOD = "shape-prior"
EMPTY_METHOD = "empty-mask"
SIDE = 256
MIN_GROUP = 4
CAP = 6.0
SHAPE_NAMES = ("log_area", "objects", "log_roughness")


def shape_measure(v: SampleView) -> dict | None:
    """The measure ``shape``: {name: value} for ``SHAPE_NAMES`` (module doc); None for volumes and empty masks."""
    from PIL import Image
    from scipy import ndimage as ndi
    from skimage.measure import perimeter as measure_perimeter

    from medseg.qc.checks_masks import speck_threshold
    from medseg.qc.checks_objects import _SPECKS

    if v.volume or len(v.spatial_shape) != 2:
        return None
    fg = v.foreground()
    total = int(fg.sum())
    if total == 0:
        return None
    h, w = fg.shape
    limit = speck_threshold(v.spatial_shape, _SPECKS["min_pixels"], _SPECKS["min_fraction"])
    objects = sum(int(np.count_nonzero(v.components(cid)[1] >= limit)) for cid, _ in v.class_masks())
    scale = min(1.0, SIDE / max(h, w))
    if scale < 1.0:
        size = (max(4, round(w * scale)), max(4, round(h * scale)))
        small = np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize(size, Image.BOX)) >= 128
        labels, n = ndi.label(small, structure=np.ones((3, 3), bool))
        if n == 0:  # a sliver lost in the scaling: judged at full size
            labels, n = ndi.label(fg, structure=np.ones((3, 3), bool))
    else:  # the foreground's 8-connected components, labelled once for all checks
        labels, n = v.foreground_components()
    # the largest object as skimage's regionprops found it (the first of equal areas, in label order), its
    # perimeter on the same cropped image: regionprops' set-up for every object was most of the time
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    largest = int(np.argmax(sizes[1:])) + 1
    box = ndi.find_objects(labels, max_label=largest)[largest - 1]
    area = float(sizes[largest])
    perimeter = max(float(measure_perimeter(labels[box] == largest, 4)), 1.0)
    return {
        "log_area": float(np.log(total / fg.size)),
        "objects": float(max(objects, 1)),
        "log_roughness": float(np.log(perimeter**2 / (4 * np.pi * area))),
    }


def _robust(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    return med, _unit(med, 1.4826 * float(np.median(np.abs(values - med))))


def _unit(med: float, mad: float) -> float:
    # a measure nearly constant over the dataset (one object everywhere) still gets a usable unit
    return max(mad, 0.05 * abs(med), 0.05)


def _median_without(ordered: np.ndarray, i: int) -> float:
    """``np.median`` of the sorted ``ordered`` with its element ``i`` left out (-1: none left out)."""
    n = len(ordered) - (i >= 0)

    def at(k: int) -> float:  # the k-th of the values left
        return float(ordered[k + (0 <= i <= k)])

    if n % 2:
        return at(n // 2)
    return float(np.mean([at(n // 2 - 1), at(n // 2)]))


class _GroupRobust:
    """:func:`_robust` of a group's values with one of them left out, equal to it to the bit: sorted once, each
    question is a few binary searches (a sample's own value left out of its group's reference is otherwise a
    pass over the group per sample: quadratic in a group of 100,000 frames)."""

    def __init__(self, values: np.ndarray):
        self.ordered = np.sort(np.asarray(values, dtype=float))
        self._deviations: dict[float, np.ndarray] = {}  # centre -> sorted absolute deviations from it

    def __len__(self) -> int:
        return len(self.ordered)

    def without(self, value: float | None) -> tuple[float, float]:
        """(median, unit) of the group without one copy of ``value`` (None: of the whole group)."""
        i = -1 if value is None else int(np.searchsorted(self.ordered, value))
        med = _median_without(self.ordered, i)
        dev = self._deviations.get(med)
        if dev is None:  # a handful of centres per group: those of the values left of, at and right of its middle
            dev = self._deviations[med] = np.sort(np.abs(self.ordered - med))
        j = -1 if value is None else int(np.searchsorted(dev, abs(value - med)))
        return med, _unit(med, 1.4826 * _median_without(dev, j))


def _prior(table: dict, ctx) -> dict:
    key = f"{SHAPE_METHOD}:prior"
    if key not in ctx.cache:
        shapes = {s: m for s, m in table.get("shape", {}).items() if m}
        prior = {}
        if shapes:
            for name in SHAPE_NAMES:
                prior[name] = _robust(np.array([m[name] for m in shapes.values()], dtype=float))
        groups: dict[str, list[tuple[float, float]]] = {}
        for sid, m in shapes.items():
            groups.setdefault(ctx.groups.get(sid, sid), []).append((m["log_area"], m["objects"]))
        ctx.cache[key] = (prior, {g: tuple(map(_GroupRobust, np.array(a).T)) for g, a in groups.items()})
    return ctx.cache[key]


def shape_prior(table: dict, ctx, sid: str, own: dict | None) -> float | None:
    """Minus the root mean square of the capped robust z-scores of the sample's shape (module doc)."""
    m = own_measure(table, sid, own, "shape")
    if not m:
        return None
    prior, groups = _prior(table, ctx)
    if not prior:
        return None
    z = [min(CAP, abs(m[name] - prior[name][0]) / prior[name][1]) for name in SHAPE_NAMES]
    group = groups.get(ctx.groups.get(sid, sid))  # (log area, objects) of the group's masks
    if group is not None:
        # the group's other masks: the sample's stored shape (in the group) is not its own reference
        stored = table.get("shape", {}).get(sid) or None
        area, count = group
        if len(area) - (stored is not None) >= MIN_GROUP:
            med, unit = area.without(None if stored is None else stored["log_area"])
            z.append(min(CAP, abs(m["log_area"] - med) / max(unit, 0.1)))
            # an object count is unusual only if unusual for the video too: one video of two polyps is not
            # a run of extra objects (the dataset-wide z alone put CVC frames 566-571 near the queue's top)
            med, unit = count.without(None if stored is None else stored["objects"])
            k = SHAPE_NAMES.index("objects")
            z[k] = min(z[k], abs(m["objects"] - med) / unit)
    return -float(np.sqrt(np.mean(np.square(z))))


def empty_mask(table: dict, ctx, sid: str, own: dict | None) -> float | None:
    """The share of empty masks in the dataset for an empty mask, 1 for a non-empty one (module doc)."""
    fg = own_measure(table, sid, own, "foreground")
    if fg is None:
        return None
    if fg.get("n", 0) > 0:
        return 1.0
    key = f"{EMPTY_METHOD}:share"
    if key not in ctx.cache:
        counted = [m for m in table.get("foreground", {}).values() if m is not None]
        ctx.cache[key] = sum(1 for m in counted if m.get("n", 0) == 0) / max(1, len(counted))
    return float(ctx.cache[key])
