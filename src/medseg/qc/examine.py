"""Examining one sample: decode it, run every per-sample check on it, take the measures the dataset-wide
checks need. The serial pass of :mod:`medseg.qc.run` and the worker processes of :mod:`medseg.qc.pool` both
use :func:`examiner`, so they decide alike."""

from __future__ import annotations

import time
from collections.abc import Callable

from medseg.errors import MedsegError
from medseg.qc.checks_base import SampleView
from medseg.qc.checks_files import problem_finding
from medseg.qc.checks_registry import FEATURES
from medseg.qc.findings import Finding


def examiner(src, per_sample, features, p, names) -> Callable[[str], tuple]:
    want_raw = "mask_values" in names

    def examine(sid: str) -> tuple[list[Finding], dict, dict]:
        spent: dict[str, float] = {}
        t = time.perf_counter()
        try:
            view = src.load(sid, want_raw)
        except (MedsegError, OSError, ValueError) as e:
            found = [problem_finding("unreadable", getattr(e, "path", None), f"cannot be decoded: {e}", sid)]
            return [f for f in found if f.check in names], {}, {"decode": time.perf_counter() - t}
        spent["decode"] = time.perf_counter() - t
        found = _size_mismatch(view) if "size_mismatch" in names else []
        if "grid_mismatch" in names:
            found += _grid_mismatch(view)
        for c in per_sample:
            t = time.perf_counter()
            found += _guarded(c, view, p[c.name])
            spent[c.name] = time.perf_counter() - t
        measured = {}
        for name in features:
            t = time.perf_counter()
            try:
                measured[name] = FEATURES[name](view)
            except (ValueError, MedsegError, MemoryError) as e:
                found.append(_failed(name, view, e))
            spent[name] = time.perf_counter() - t
        return found, measured, spent

    return examine


def _guarded(check, view: SampleView, params: dict) -> list[Finding]:
    """One odd sample (a 1-pixel mask, a 4-D array) fails its own check, not the whole run."""
    try:
        return check.run(view, params)
    except (ValueError, IndexError, TypeError, MedsegError, MemoryError) as e:
        return [_failed(check.name, view, e)]


def _failed(name: str, view: SampleView, e: BaseException) -> Finding:
    return Finding(
        view.id,
        name,
        "error",
        f"check could not run on this sample: {type(e).__name__}: {e}",
        path=view.where(),
        details={"failed": True},
    )


def _size_mismatch(view: SampleView) -> list[Finding]:
    if view.image is None:
        return []
    shape = view.image.shape[:-1] if view.rgb else view.image.shape
    if tuple(shape) == tuple(view.spatial_shape):
        return []
    return [
        Finding(
            view.id,
            "size_mismatch",
            "error",
            f"image is {'x'.join(map(str, shape))} but its mask is "
            f"{'x'.join(map(str, view.spatial_shape))}: mask checks ran on the mask alone",
            path=view.where(),
            details={"image_shape": list(shape), "mask_shape": list(view.spatial_shape)},
        )
    ]


def _grid_mismatch(view: SampleView) -> list[Finding]:
    if view.geometry is None or view.label_geometry is None:
        return []
    why = view.geometry.mismatch(view.label_geometry)
    if why is None:
        return []
    return [
        Finding(
            view.id,
            "grid_mismatch",
            "error",
            f"label volume {view.mask_path} is not on the grid of its image {view.image_path}: {why}; "
            "volume checks ran on the label alone",
            path=view.mask_path,
            details={"image": view.geometry.to_dict(), "label": view.label_geometry.to_dict()},
        )
    ]
