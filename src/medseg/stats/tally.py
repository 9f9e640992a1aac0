"""Sums over samples: image sizes, spacings, formats, intensities (:class:`ImageTally`) and class balance
(:class:`ClassTally`), each turned into the JSON numbers of ``stats.json`` and the series its plots draw."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from medseg.classmap import ClassMap
from medseg.stats.collect import ImageFacts, MaskFacts, summarise

# Area fractions are binned in twentieths of the image in the JSON (the plot draws the same bins).
AREA_BINS = 20
# Intensity histograms of non-8-bit data: this many bins between the pooled minimum and maximum.
INTENSITY_BINS = 128
# Sizes and spacings listed by count in the JSON; the rest are summed under "other".
LISTED = 20


class ImageTally:
    def __init__(self) -> None:
        self.n = 0
        self.shapes: list[tuple[int, ...]] = []
        self.spacings: list[tuple[float, ...]] = []
        self.spacing_known = 0
        self.formats: Counter = Counter()
        self.kinds: Counter = Counter()
        self.bits: Counter = Counter()
        self.channels: Counter = Counter()
        self.decoded = 0
        self.pixels: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        self.ranges: dict[str, dict[str, list[tuple]]] = defaultdict(lambda: defaultdict(list))
        self.images_per_kind: Counter = Counter()

    def add(self, f: ImageFacts) -> None:
        self.n += 1
        self.shapes.append(f.shape)
        self.spacings.append(f.spacing)
        self.spacing_known += bool(f.spacing_known)
        self.formats[f.format] += 1
        self.kinds[f.kind] += 1
        self.bits[str(f.bits) if f.bits else "unknown"] += 1
        self.channels[f.channels] += 1
        if f.decoded:
            self.decoded += 1
            self.images_per_kind[f.kind] += 1
            for ch, values in f.pixels.items():
                self.pixels[f.kind][ch].append(values)
            for ch, r in f.ranges.items():
                self.ranges[f.kind][ch].append(r)

    def to_dict(self) -> dict[str, Any]:
        shapes = [_shape(s) for s in self.shapes]
        dims = _dims(self.shapes)
        return {
            "n": self.n,
            "read_pixels": self.decoded,
            "sizes": _listed(Counter(shapes)),
            "dims": {axis: summarise(v) for axis, v in dims.items()},
            "spacings": _listed(Counter(_spacing(s) for s in self.spacings)),
            "spacing_known": self.spacing_known,
            "formats": dict(self.formats.most_common()),
            "modalities": dict(self.kinds.most_common()),
            "bit_depths": dict(sorted(self.bits.items())),
            "channels": {str(k): v for k, v in sorted(self.channels.items())},
            "intensity": self.intensity(),
        }

    def dims(self) -> dict[str, np.ndarray]:
        return _dims(self.shapes)

    def intensity(self) -> dict[str, Any]:
        """Per modality (or format and colour) and channel: exact min / max / mean over the decoded images,
        percentiles and a histogram of their pooled pixel subsample."""
        out: dict[str, Any] = {}
        for kind, channels in self.pixels.items():
            per: dict[str, Any] = {}
            for ch, chunks in channels.items():
                pooled = np.concatenate(chunks)
                r = np.asarray(self.ranges[kind][ch], float)
                edges = _edges(pooled)
                counts, _ = np.histogram(pooled, bins=edges)
                p1, p50, p99 = np.percentile(pooled, [1, 50, 99])
                per[ch] = {
                    "min": float(r[:, 0].min()),
                    "max": float(r[:, 1].max()),
                    "mean": float(r[:, 2].sum() / r[:, 3].sum()),
                    "p1": float(p1),
                    "median": float(p50),
                    "p99": float(p99),
                    "histogram": {"edges": [float(e) for e in edges], "counts": counts.tolist()},
                }
            out[kind] = {"images": self.images_per_kind[kind], "channels": per}
        return out


def _edges(pooled: np.ndarray) -> np.ndarray:
    lo, hi = float(pooled.min()), float(pooled.max())
    if lo >= 0 and hi <= 255 and np.all(pooled == np.round(pooled)):
        return np.arange(257, dtype=float) - 0.5  # one bin per 8-bit grey level
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, INTENSITY_BINS + 1)


class ClassTally:
    """Class balance of one set of masks: pixel fraction, objects, samples holding each class, areas."""

    def __init__(self, classmap: ClassMap) -> None:
        self.classmap = classmap
        self.n = 0
        self.total = 0
        self.empty = 0
        self.pixels: Counter = Counter()
        self.objects: Counter = Counter()
        self.samples: Counter = Counter()
        self.areas: dict[int, list[float]] = defaultdict(list)
        self.millilitres: dict[int, list[float]] = defaultdict(list)
        self.unknown: Counter = Counter()  # ids in masks the class map lacks

    def add(self, m: MaskFacts) -> None:
        self.n += 1
        self.total += m.total
        self.empty += not m.pixels
        known = set(self.classmap.ids)
        for cid, n in m.pixels.items():
            if cid not in known:
                self.unknown[cid] += n
                continue
            self.pixels[cid] += n
            self.objects[cid] += m.objects.get(cid, 0)
            self.samples[cid] += 1
            self.areas[cid].append(n / m.total if m.total else 0.0)
            if m.voxel_mm3:
                self.millilitres[cid].append(n * m.voxel_mm3 / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        classes = {}
        for cid in self.classmap.ids:
            areas = self.areas.get(cid, [])
            hist, _ = np.histogram(areas, bins=AREA_BINS, range=(0.0, 1.0))
            classes[self.classmap.name_of(cid)] = {
                "id": cid,
                "pixels": int(self.pixels[cid]),
                "pixel_fraction": self.pixels[cid] / self.total if self.total else 0.0,
                "objects": int(self.objects[cid]),
                "samples": int(self.samples[cid]),
                "area_fraction": summarise(areas),
                "area_histogram": hist.tolist(),
            }
            if self.millilitres.get(cid):
                classes[self.classmap.name_of(cid)]["volume_ml"] = summarise(self.millilitres[cid])
        out = {"masks": self.n, "pixels": self.total, "empty_masks": self.empty, "classes": classes}
        if self.unknown:
            out["ids_not_in_classmap"] = {str(k): int(v) for k, v in sorted(self.unknown.items())}
        return out


def _shape(shape) -> str:
    return "x".join(str(int(v)) for v in shape)


def _spacing(spacing) -> str:
    return " x ".join(f"{float(v):.4g}" for v in spacing)


def _listed(counts: Counter) -> dict[str, int]:
    top = dict(counts.most_common(LISTED))
    rest = sum(counts.values()) - sum(top.values())
    if rest:
        top["other"] = rest
    return top


def _dims(shapes: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
    """rows and cols of every image (and slices of every volume): the spatial sizes."""
    out: dict[str, list[int]] = defaultdict(list)
    for s in shapes:
        if len(s) == 3:
            out["slices"].append(s[0])
        out["rows"].append(s[-2])
        out["cols"].append(s[-1])
    return {k: np.asarray(v) for k, v in out.items()}
