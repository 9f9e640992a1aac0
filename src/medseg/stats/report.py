"""``StatsReport``: the overview's numbers (``stats.json``), a compact text summary and the plots."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.stats.tally import ClassTally, ImageTally

JSON_NAME = "stats.json"
# Every file an overview may write (the plots a source has no data for are left out)
FILE_NAMES = (JSON_NAME, "images.png", "classes.png", "areas.png", "intensity.png", "review.png")
# Classes named one by one in the text summary; the JSON and the plots hold every class.
LISTED_CLASSES = 12


@dataclass
class StatsReport:
    numbers: dict[str, Any]
    images: ImageTally
    labels: ClassTally
    imported: ClassTally | None = None  # a workspace's labels as imported

    def to_dict(self) -> dict[str, Any]:
        return self.numbers

    def plots(self) -> dict[str, bytes]:
        """PNG bytes by file name (see :mod:`medseg.stats.plots`)."""
        from medseg.stats.plots import render

        return render(self)

    def files(self) -> dict[str, bytes]:
        """``stats.json`` and the PNG plots, by file name (a subset of :data:`FILE_NAMES`)."""
        return {JSON_NAME: json.dumps(self.numbers, indent=1).encode("utf-8"), **self.plots()}

    def write(self, out: str | Path) -> list[Path]:
        """:meth:`files` into the folder ``out`` (created); the files written. The CLI writes them through
        :class:`medseg.ownership.OutputFolder`, which refuses a dataset, a workspace or a foreign file."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in self.files().items():
            (out / name).write_bytes(data)
            written.append(out / name)
        return written

    def lines(self) -> list[str]:
        """A compact human summary: what the source is, its images, classes, findings, review."""
        d = self.numbers
        src, img = d["source"], d["images"]
        g = d["groups"]
        lines = [
            f"{src['kind']} {src['path']}: layout {src['layout']}, {src['task']}, "
            f"{d['samples']} samples in {g['n']} groups"
            + (f" (size {g['size']['min']}-{g['size']['max']}, median {g['size']['median']})" if g["size"] else "")
        ]
        known = img["spacing_known"]
        unit = "mm" if known == img["n"] else ("px (no spacing in the files)" if not known else f"mm in {known}")
        lines.append(f"images: sizes {_few(img['sizes'])}; spacing {_few(img['spacings'])} {unit}")
        lines.append(
            f"  {_few(img['modalities'])}; bits {_few(img['bit_depths'])}; pixels read for intensities from "
            f"{img['read_pixels']} of {img['n']}"
        )
        for kind, v in img["intensity"].items():
            chans = ", ".join(
                f"{ch} {c['min']:.4g}..{c['max']:.4g} mean {c['mean']:.4g} (p1 {c['p1']:.4g}, p99 {c['p99']:.4g})"
                for ch, c in v["channels"].items()
            )
            lines.append(f"  intensity {kind} ({v['images']} images): {chans}")
        lines += _class_lines(d["labels"], "labels" if src["kind"] == "dataset" else "labels now (not excluded)")
        if "labels_imported" in d:
            c = d["cleaning"]
            lines.append(
                f"cleaning: {c['samples_changed']} labels changed since import, {c['samples_excluded']} excluded"
            )
            lines += _shift_lines(d["labels_imported"], d["labels"])
        if "review" in d:
            by = d["review"]["by_status"]
            lines.append("review: " + ", ".join(f"{n} {s}" for s, n in by.items()))
        f = d["findings"]["by_check"]
        what = "findings by check" if src["kind"] == "workspace" else "index problems"
        lines.append(f"{what}: " + (", ".join(f"{k} {n}" for k, n in f.items()) if f else "none"))
        if d["unreadable"]:
            first = d["unreadable"][0]
            lines.append(f"unreadable: {len(d['unreadable'])} samples, e.g. {first['sample']}: {first['error']}")
        return lines


def _class_lines(labels: dict, title: str) -> list[str]:
    classes = labels["classes"]
    lines = [f"{title}: {labels['masks']} masks, {labels['empty_masks']} empty"]
    ranked = sorted(classes.items(), key=lambda kv: -kv[1]["pixels"])
    for name, c in ranked[:LISTED_CLASSES]:
        area = c["area_fraction"]
        where = f", area median {area['median']:.2%} max {area['max']:.2%}" if area else ""
        if c.get("volume_ml"):
            where += f", median {c['volume_ml']['median']:.4g} mL"
        lines.append(
            f"  {name}: {c['pixel_fraction']:.3%} of pixels, {c['objects']} objects in {c['samples']} samples{where}"
        )
    if len(ranked) > LISTED_CLASSES:
        lines.append(f"  ... and {len(ranked) - LISTED_CLASSES} more classes (stats.json / --json lists them)")
    return lines


def _shift_lines(before: dict, after: dict) -> list[str]:
    lines = []
    for name, b in before["classes"].items():
        a = after["classes"][name]
        if (b["pixels"], b["objects"], b["samples"]) != (a["pixels"], a["objects"], a["samples"]):
            lines.append(
                f"  {name}: {b['pixel_fraction']:.3%} -> {a['pixel_fraction']:.3%} of pixels, "
                f"objects {b['objects']} -> {a['objects']}, samples {b['samples']} -> {a['samples']}"
            )
    return lines[:LISTED_CLASSES]


def _few(counts: dict, limit: int = 3) -> str:
    items = list(counts.items())
    text = ", ".join(f"{k} ({v})" for k, v in items[:limit])
    return text + (f" (+{len(items) - limit} more)" if len(items) > limit else "")
