"""The overview's plots as PNG bytes, drawn with matplotlib's Agg canvas (never a GUI backend, so the engine
can draw inside a napari worker thread or on a headless cluster).

``images.png``: image sizes (rows, columns, slices) and spacings; ``classes.png``: pixel fraction, objects
and samples per class; ``areas.png``: the area each class covers per sample; ``intensity.png``: intensity
histograms per modality and channel; for a workspace ``review.png``: samples by review status, findings by
check, and each class's pixel fraction as imported and now.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

DPI = 80
# Classes drawn in the area plot (the most frequent by samples); the bar plots draw every class.
AREA_CLASSES = 8
_COLOURS = {"R": "tab:red", "G": "tab:green", "B": "tab:blue", "A": "grey", "grey": "black"}


def render(report) -> dict[str, bytes]:
    d = report.numbers
    out = {"images.png": _images(d, report.images.dims()), "classes.png": _classes(d["labels"])}
    if any(c["samples"] for c in d["labels"]["classes"].values()):
        out["areas.png"] = _areas(d["labels"])
    if d["images"]["intensity"]:
        out["intensity.png"] = _intensity(d["images"]["intensity"])
    if "labels_imported" in d:
        out["review.png"] = _review(d)
    return out


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _images(d: dict[str, Any], dims: dict[str, np.ndarray]) -> bytes:
    panels = [k for k in ("slices", "rows", "cols") if k in dims]
    fig = _figure(3.0 * (len(panels) + 1), 2.8)
    axes = fig.subplots(1, len(panels) + 1)
    for ax, key in zip(axes, panels):
        values, counts = np.unique(dims[key], return_counts=True)
        if len(values) <= 12:  # a few sizes: one bar each, named, not a histogram of one-pixel-wide bins
            ax.bar([str(v) for v in values], counts, color="tab:blue")
        else:
            ax.hist(dims[key], bins=30, color="tab:blue")
        ax.set_title(f"image {key}")
        ax.set_xlabel("pixels" if key != "slices" else "slices")
        ax.set_ylabel("samples")
    spacings = d["images"]["spacings"]
    ax = axes[-1]
    ax.barh(list(spacings)[::-1], list(spacings.values())[::-1], color="tab:gray")
    known = d["images"]["spacing_known"]
    ax.set_title("spacing (mm)" if known else "spacing (px: none in the files)")
    ax.set_xlabel("samples")
    return _png(fig)


def _classes(labels: dict[str, Any]) -> bytes:
    classes = labels["classes"]
    names = list(classes)[::-1]
    fig = _figure(9.0, 1.2 + 0.22 * max(3, len(names)))
    axes = fig.subplots(1, 3, sharey=True)
    for ax, key, title in zip(
        axes,
        ("pixel_fraction", "objects", "samples"),
        ("share of all pixels", "objects (connected)", f"samples holding it (of {labels['masks']})"),
    ):
        ax.barh(names, [classes[n][key] for n in names], color="tab:orange")
        ax.set_title(title)
        if key == "pixel_fraction":
            ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}" if v >= 0.01 or v == 0 else f"{v:.1%}")
    axes[0].tick_params(axis="y", labelsize=8)
    return _png(fig)


def _areas(labels: dict[str, Any]) -> bytes:
    classes = sorted(labels["classes"].items(), key=lambda kv: -kv[1]["samples"])[:AREA_CLASSES]
    fig = _figure(6.0, 3.0)
    ax = fig.subplots()
    for name, c in classes:
        counts = np.asarray(c["area_histogram"])
        edges = np.linspace(0, 100, len(counts) + 1)
        ax.stairs(counts, edges, label=name)
    ax.set_xlabel("share of the image the class covers (%)")
    ax.set_ylabel("samples")
    ax.set_title("mask area per sample")
    ax.legend(fontsize=7)
    return _png(fig)


def _intensity(intensity: dict[str, Any]) -> bytes:
    fig = _figure(4.5 * len(intensity), 2.8)
    axes = np.atleast_1d(fig.subplots(1, len(intensity)))
    for ax, (kind, v) in zip(axes, intensity.items()):
        for ch, c in v["channels"].items():
            h = c["histogram"]
            ax.stairs(h["counts"], h["edges"], label=ch, color=_COLOURS.get(ch))
        ax.set_title(f"{kind} ({v['images']} images)")
        ax.set_xlabel("stored value")
        ax.set_ylabel("pixels (subsample)")
        if len(v["channels"]) > 1:
            ax.legend(fontsize=7)
    return _png(fig)


def _review(d: dict[str, Any]) -> bytes:
    # two rows at about the Overview dock's width (520 px): in one row of three, scaled into the dock, the
    # status names ran into each other, the check names were unreadably small and the last title was cut
    fig = _figure(6.5, 6.0)
    axes = fig.subplot_mosaic([["status", "classes"], ["checks", "checks"]], height_ratios=[1, 1.1])
    a_status, a_checks, a_classes = axes["status"], axes["checks"], axes["classes"]
    by = d["review"]["by_status"]
    a_status.bar(range(len(by)), list(by.values()), color="tab:purple")
    a_status.set_xticks(range(len(by)), list(by), rotation=30, ha="right", fontsize=8)
    a_status.set_title("samples by review status")
    checks = d["findings"]["by_check"]
    if checks:
        a_checks.barh(list(checks)[::-1], list(checks.values())[::-1], color="tab:red")
        a_checks.tick_params(axis="y", labelsize=8)
    else:
        a_checks.set_axis_off()  # its title says why it is empty; no empty axes from 0 to 1
    a_checks.set_title("findings by check" if checks else "findings: none stored (run medseg qc)")
    before, now = d["labels_imported"]["classes"], d["labels"]["classes"]
    names = sorted(before, key=lambda n: -before[n]["pixels"])[:AREA_CLASSES]
    x = np.arange(len(names))
    a_classes.bar(x - 0.2, [before[n]["pixel_fraction"] for n in names], 0.4, label="imported")
    a_classes.bar(x + 0.2, [now[n]["pixel_fraction"] for n in names], 0.4, label="now (not excluded)")
    a_classes.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
    a_classes.set_title("share of pixels: imported / now")
    top = max([before[n]["pixel_fraction"] for n in names] + [now[n]["pixel_fraction"] for n in names] + [0])
    if top > 0:
        a_classes.set_ylim(0, top * 1.4)  # room for the legend above the bars
    a_classes.legend(fontsize=7, loc="upper center")
    return _png(fig)
