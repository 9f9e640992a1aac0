"""Does each labelled object's outline follow the image's edges? A label-quality measure without a model.

A careful annotator draws along the object's visible boundary, so a correct
outline runs where the image's gradient is strongest *locally*: moving it a
little in any direction, or growing or shrinking it, lands on weaker edges,
and what it encloses looks different from what lies just outside. A shifted,
sloppily grown or shrunk outline, an object drawn where the image shows
nothing, or another frame's mask does not. For every object (8-connected
component of a class, at least ``min_pixels`` large) of a 2-D label:

* ``s0``: mean edge strength along the object's outline (its pixels with a
  neighbour outside). Edge strength is the Gaussian gradient magnitude of the
  image (sigma scaled to the image: ``max(1, short side / 150)`` px; colour
  channels combined as the root of the sum of squares). Near the rim of a
  dark surround (endoscopes, collimated X-rays), an edge of the picture, not
  of anything an annotator outlines, nothing is judged: outline pixels there
  are left out, and an outline that is mostly there is not judged.
* ``fit``: at two distances ``k`` (a quarter and a half of the object's
  equivalent radius, at least 2 px), ``s0 / max(s_alt)`` where ``s_alt`` are
  the same outline moved by ``k`` in 8 directions, grown by ``k`` and shrunk
  by ``k``; ``fit`` is the product of the two ratios (the near alternatives
  catch small errors, the far ones large errors whose true edge the near
  ones do not reach). Below 1: some alternative follows the edges better;
  the one that does so most is reported (``better``, ``best_ratio``).
* ``contrast = s0 / typical``: the outline's edge strength over the image's
  median edge strength (over pixels that are not flat). An outline in a
  featureless region fits "locally" by chance but has no contrast.
* ``distinct``: how different the inside looks from a ring just outside
  (width: the near ``k``, inside the field of view): the distance between
  their mean colours over the mean of their per-channel standard deviations.
* ``quality = fit * sqrt(contrast) * sqrt(distinct)``; a sample's quality is
  its worst object's.

On CVC-ClinicDB with 20 % of the masks corrupted on purpose
(benchmarks/bench_rank.py) this measure ranks shifted, grown and shrunk
outlines, objects drawn on nothing and another video's masks before clean
ones far better than the out-of-fold predictions of small CPU-trained
models (the README's results give the figures). Each factor earned its
place there: fit alone ranked those errors with AUROC 0.85-0.96; adding
contrast, the second distance and distinctness each raised the queue's
AUROC. It cannot see an object left out (there is no outline to judge) nor
grey noise (the binarised outline is right): the model scores and the rule
checks do. Samples without an image, with an empty label or a volume (3-D)
label get no value.

The review queue folds this measure in as the score method ``outline-fit``:
:func:`dataset_scores` turns qualities into percentile ranks within the
dataset (0 = the worst outline in the dataset), which have the same meaning
whatever the modality's edge contrast.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from medseg.qc.edge_maps import edge_strength, eroded, typical_strength

METHOD = "outline-fit"

# (dy, dx) unit moves, named as a person would say which way the outline should go
_MOVES = {
    (-1, 0): "up",
    (1, 0): "down",
    (0, -1): "left",
    (0, 1): "right",
    (-1, -1): "up-left",
    (-1, 1): "up-right",
    (1, -1): "down-left",
    (1, 1): "down-right",
}


@dataclass(frozen=True)
class ObjectFit:
    """One object's outline measures (module doc); ``better`` names the alternative that follows the
    edges best and ``best_ratio`` is ``s0`` over its edge strength (below 1: it follows them better)."""

    class_id: int
    centre: tuple[int, int]
    pixels: int
    fit: float
    contrast: float
    distinct: float
    quality: float
    better: str
    best_ratio: float
    correction: tuple = ()  # ("move", dy, dx) | ("grow", k) | ("shrink", k): ``better`` as data

    def advice(self) -> str:
        return (
            advice_phrase({"best_ratio": self.best_ratio, "better": self.better})
            or "its outline is on the strongest edge around"
        )


@dataclass(frozen=True)
class OutlineFit:
    """A sample's measure: ``quality`` of its worst object (None when nothing could be judged)."""

    quality: float | None
    objects: tuple[ObjectFit, ...]

    @property
    def worst(self) -> ObjectFit | None:
        return min(self.objects, key=lambda o: o.quality) if self.objects else None

    def summary(self) -> dict | None:
        """JSON-safe facts about the worst object (what the score details and findings keep)."""
        w = self.worst
        if w is None:
            return None
        return {
            "quality": w.quality,
            "fit": w.fit,
            "contrast": w.contrast,
            "distinct": w.distinct,
            "class_id": w.class_id,
            "centre": list(w.centre),
            "pixels": w.pixels,
            "better": w.better,
            "best_ratio": w.best_ratio,
            "correction": list(w.correction),
            "objects": len(self.objects),
        }


def _outline(region: np.ndarray) -> np.ndarray:
    return region & ~eroded(region)


def _outline_mean(edges: np.ndarray, region: np.ndarray, outline: np.ndarray | None = None) -> float:
    """Mean edge strength along ``region``'s outline (``outline`` when the caller has it already); NaN when
    under half of it can be judged."""
    values = edges[_outline(region) if outline is None else outline]
    judged = values[np.isfinite(values)]
    return float(judged.mean()) if judged.size and judged.size >= 0.5 * values.size else float("nan")


def _moved(region: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(region)
    h, w = region.shape
    if abs(dy) >= h or abs(dx) >= w:  # moved off the image (a 2-pixel-high strip shifted by 3)
        return out
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = region[
        max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    return out


def object_fit(
    edges: np.ndarray,
    component: np.ndarray,
    typical: float,
    class_id: int = 1,
    image: np.ndarray | None = None,
    field: np.ndarray | None = None,
) -> ObjectFit | None:
    """The measures of one object (bool mask of the image's size); None when it has no outline to judge.

    ``image`` (H, W[, C]) and ``field`` give ``distinct``; without an image it is 1 (no say).
    """
    from scipy import ndimage as ndi

    pixels = int(component.sum())
    radius = float(np.sqrt(pixels / np.pi))
    near, far = (max(2, round(f * radius)) for f in (0.25, 0.5))
    ys, xs = np.nonzero(component)
    pad = 2 * far + 3  # room for the moved and grown outlines
    window = (
        slice(max(0, ys.min() - pad), min(component.shape[0], ys.max() + pad + 1)),
        slice(max(0, xs.min() - pad), min(component.shape[1], xs.max() + pad + 1)),
    )
    region, e = component[window], edges[window]
    line = _outline(region)
    s0 = _outline_mean(e, region, line)
    if not np.isfinite(s0) or typical <= 0:
        return None
    outside = ndi.distance_transform_edt(~region)
    inside = ndi.distance_transform_edt(region)
    fit, better, best_ratio, correction = 1.0, "", float("inf"), ()
    by_distance = []
    for k in (near, far):
        options = [(f"moved {k} px {name}", ("move", dy * k, dx * k)) for (dy, dx), name in _MOVES.items()]
        options.append((f"grown by {k} px", ("grow", k)))
        if (inside > k).any():
            options.append((f"shrunk by {k} px", ("shrink", k)))
        by_distance.append(options)
    values = iter(_candidates(e, region, line, [key[1] for options in by_distance for key in options], outside, inside))
    for options in by_distance:
        strengths = {key: v for key, v in zip(options, values) if np.isfinite(v) and v > 0}
        if not strengths:
            continue
        key, best = max(strengths.items(), key=lambda kv: kv[1])
        fit *= s0 / best
        if s0 / best < best_ratio:
            (better, correction), best_ratio = key, s0 / best
    if not better:
        return None
    distinct = 1.0
    if image is not None:
        ring = (outside <= near) & ~region
        if field is not None:
            ring &= field[window]
        distinct = _distinctness(np.asarray(image)[window], region, ring)
    contrast = s0 / typical
    return ObjectFit(
        int(class_id),
        (int(round(ys.mean())), int(round(xs.mean()))),
        pixels,
        float(fit),
        float(contrast),
        float(distinct),
        float(fit * np.sqrt(contrast) * np.sqrt(distinct)),
        better,
        float(best_ratio),
        correction,
    )


def _candidates(e, region, line, corrections, outside, inside) -> list[float]:
    """The outline strength of ``region`` under each correction, in order.

    A move that keeps the region a pixel inside the window moves its outline too (one erosion per object
    instead of one per move): those outlines' edge values are gathered at once, one row per move, in the
    order boolean indexing gives them, and each row summed as ``_outline_mean`` does (numpy sums a row
    pairwise either way: the same float32 sums to the bit, one reduction instead of 16).
    """
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    h, w = region.shape
    out, moves = [float("nan")] * len(corrections), []
    for i, c in enumerate(corrections):
        if c[0] == "move":
            dy, dx = int(c[1]), int(c[2])
            if rows[0] + dy >= 1 and rows[-1] + dy <= h - 2 and cols[0] + dx >= 1 and cols[-1] + dx <= w - 2:
                moves.append((i, dy, dx))
                continue
        out[i] = _outline_mean(e, corrected(region, c, outside, inside))
    if moves:
        ly, lx = np.nonzero(line)
        at, dys, dxs = (np.array(x) for x in zip(*moves))
        values = e[ly + dys[:, None], lx + dxs[:, None]]
        finite = np.isfinite(values)
        means = np.add.reduce(values, axis=1) / np.float32(values.shape[1])
        for j, i in enumerate(at):
            out[i] = float(means[j]) if finite[j].all() else _outline_mean(e, None, _moved(line, dys[j], dxs[j]))
    return out


def corrected(
    region: np.ndarray, correction, outside: np.ndarray | None = None, inside: np.ndarray | None = None
) -> np.ndarray:
    """``region`` (bool) moved, grown or shrunk as ``correction`` says (see :class:`ObjectFit`).

    ``outside`` / ``inside``: the region's distance maps when the caller has them already.
    """
    from scipy import ndimage as ndi

    kind, *args = correction
    if kind == "move":
        return _moved(region, int(args[0]), int(args[1]))
    if kind == "grow":
        return (ndi.distance_transform_edt(~region) if outside is None else outside) <= args[0]
    if kind == "shrink":
        return (ndi.distance_transform_edt(region) if inside is None else inside) > args[0]
    raise ValueError(f"unknown outline correction {correction!r}; valid: move, grow, shrink")


def _distinctness(image: np.ndarray, region: np.ndarray, ring: np.ndarray) -> float:
    """Distance of the mean colours inside and in the ring over their mean per-channel std (1 if no ring)."""
    if ring.sum() < 10:
        return 1.0
    a = image.astype(np.float32)
    a = a.reshape(*region.shape, -1)
    inner, outer = a[region], a[ring]
    spread = float(inner.std(0).mean() + outer.std(0).mean())
    return float(np.linalg.norm(inner.mean(0) - outer.mean(0)) / spread) if spread > 0 else 1.0


def outline_fit(
    image: np.ndarray | None,
    class_masks: list[tuple[int, np.ndarray]],
    *,
    channels_last: bool,
    field: np.ndarray | None = None,
    min_pixels: int = 30,
    components=None,
) -> OutlineFit:
    """Measures of every object of every class (``class_masks``: [(class id, bool (H, W) mask)]).

    ``field``: the image's field of view (see :func:`edge_strength`), None for the whole image;
    ``components``: ``SampleView.components`` (class id -> (labels, sizes of labels 1..n)) where the caller
    has the masks' 8-connected labels already.
    """
    from scipy import ndimage as ndi

    if image is None or not class_masks or any(m.ndim != 2 for _, m in class_masks):
        return OutlineFit(None, ())
    spatial = image.shape[:-1] if channels_last else image.shape
    if tuple(spatial) != tuple(class_masks[0][1].shape):
        return OutlineFit(None, ())
    edges = edge_strength(image, channels_last, field)
    colour = image[..., :3] if channels_last else image
    typical = typical_strength(edges)
    objects = []
    for cid, mask in class_masks:
        if components is None:
            labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
            sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        else:
            labels, sizes = components(cid)
        for lab in range(1, len(sizes) + 1):
            if sizes[lab - 1] >= min_pixels:
                o = object_fit(edges, labels == lab, typical, cid, colour, field)
                if o is not None:
                    objects.append(o)
    quality = min(o.quality for o in objects) if objects else None
    return OutlineFit(quality, tuple(objects))


def dataset_scores(qualities: Mapping[str, dict | None]) -> tuple[dict[str, float], Mapping[str, dict]]:
    """({sample: percentile rank of its quality in [0, 1], 0 = worst}, {sample: details}) for judged samples.

    ``qualities``: {sample: ``OutlineFit.summary()``} (None for samples not judged, which get no score).
    Ties share their mean rank; one judged sample gets 0.5. The details (:class:`RankedDetails`) are made when
    read from ``qualities``, which must stay as it is while they are read.
    """
    from medseg.qc.ranks import average_ranks

    ids, values = [], []
    for sid, s in qualities.items():
        if s is not None and np.isfinite(s.get("quality", np.nan)):
            ids.append(sid)
            values.append(s["quality"])
    if not ids:
        return {}, {}
    ranks = average_ranks(np.array(values, dtype=np.float64))
    del values
    pct = ranks / (len(ids) - 1) if len(ids) > 1 else np.full(len(ids), 0.5)
    scores = {sid: float(p) for sid, p in zip(ids, pct)}
    return scores, RankedDetails(qualities, scores, np.floor(ranks).astype(np.int64) + 1)


class RankedDetails(Mapping):
    """{sample: its summary with "percentile", "rank" (1 = worst) and "judged"}, each dict made when read.

    The summaries are the QC table's packed measures (:class:`medseg.qc.spill.PackedTable`); unpacked and
    copied into details for every judged sample at once they took 1.6 KB a sample (160 MB at 100,000) until
    the scores were stored.
    """

    def __init__(self, qualities: Mapping[str, dict | None], scores: dict[str, float], ranks: np.ndarray):
        self._qualities, self._scores, self._ranks = qualities, scores, ranks
        self._at: dict[str, int] | None = None  # sample -> its position in ``scores``, made at the first read

    def __getitem__(self, sample_id: str) -> dict:
        if self._at is None:
            self._at = {sid: k for k, sid in enumerate(self._scores)}
        k = self._at[sample_id]
        return {
            **self._qualities[sample_id],
            "percentile": self._scores[sample_id],
            "rank": int(self._ranks[k]),
            "judged": len(self._scores),
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)


def standing_phrase(details: dict) -> str:
    """Where a sample's outline stands: "the worst outline of the 40 judged", "outline 5th worst of the 40 judged"."""
    rank, n = details.get("rank"), details.get("judged")
    if not rank or not n:
        return f"outline fit percentile {details.get('percentile', 0.0):.2f}"
    if rank == 1:
        return f"the worst outline of the {n} judged"
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"outline {rank}{suffix} worst of the {n} judged"


def advice_phrase(details: dict) -> str:
    """E.g. "moved 6 px up it would follow the image's edges 35% better" ("" when the outline fits)."""
    ratio = details.get("best_ratio")
    if ratio is None or ratio >= 1.0 or ratio <= 0 or not details.get("better"):
        return ""
    return f"{details['better']} it would follow the image's edges {1 / ratio - 1:.0%} better"
