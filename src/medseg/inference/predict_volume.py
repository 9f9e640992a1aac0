"""A whole volume predicted slice by slice, as one job.

``iter_predict_volume(predictor, volume, cancel=...)`` is a job of
:mod:`medseg.jobs`: ``Started`` ("predict_volume", total = the slices), a
``Progress`` (stage "slices", ``done`` slices of ``total``) after each group of
slices, then ``Result(VolumePrediction)``; when ``cancel`` is set it stops
after the group being predicted and ends with ``Cancelled`` (``done`` slices
predicted; nothing partial is returned: a volume label with holes would look
like a prediction).

The volume may be an array (Z, Y, X), a 3-D ``ImageData``, a lazy
``VolumeSource`` or a ``VolumeInput``: its intensity window is read once
(``medseg.inference.volume_input``) and each slice is read when it is
predicted, so a lazily opened volume is never decoded whole. Slices that fit
the model in one window are batched (``predictor.batch_size`` slices per
forward pass); larger ones are tiled one slice at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.errors import Cancelled
from medseg.inference.outputs import labels_from_probs
from medseg.inference.sliding import plan_tiles
from medseg.inference.uncertainty import predictive_entropy
from medseg.io.volume_geometry import Geometry
from medseg.jobs import CancelToken, Job, Progress, Result, Started, run


@dataclass
class VolumePrediction:
    """``labels`` (Z, Y, X) class ids (multilabel: (Z, Y, X, C) bool); ``probs`` (Z, C, Y, X) float16 when
    asked for (a 512 x 512 x 300 CT with 42 channels is 6.6 GB even so); ``uncertainty`` (Z, Y, X) float32
    (normalised entropy) when asked for; ``geometry`` the volume's grid when its source has one (NIfTI,
    DICOM series) and ``source`` its path, which a label file written beside it takes its header from;
    ``meta``: device, window, slices, batches, times."""

    labels: np.ndarray
    classmap: ClassMap
    probs: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    geometry: Geometry | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.classmap.task

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape[:3])


def slice_group(predictor, shape_yx: tuple[int, int]) -> int:
    """How many slices go through the network together: a batch's worth when a slice is one window."""
    h, w = predictor.resize or shape_yx
    plan = plan_tiles(h, w, predictor.tile, predictor.overlap, predictor.stride, predictor.pad_border)
    return max(1, predictor.batch_size // len(plan.windows))


def iter_predict_volume(
    predictor,
    volume: Any,
    *,
    cancel: CancelToken | None = None,
    probabilities: bool = False,
    uncertainty: bool = False,
) -> Job:
    """Predict every slice of ``volume`` with ``predictor``; see the module docstring."""
    t_start = time.perf_counter()
    vol = predictor.volume_input(volume)
    n, h, w = vol.shape
    group = slice_group(predictor, (h, w))
    yield Started("predict_volume", n, {"shape": [n, h, w], "slices_per_batch": group})
    classmap = predictor.classmap
    labels = probs = unc = None
    timer, t_prep, batches = [0.0], 0.0, 0
    for start in range(0, n, group):
        _check(cancel, start, n)
        zs = list(range(start, min(start + group, n)))
        t0 = time.perf_counter()
        x = predictor.device_batch(vol.batch(zs))
        t_prep += time.perf_counter() - t0
        gen = predictor.blend(x, (h, w), timer)
        try:
            while True:
                try:
                    next(gen)
                except StopIteration as stop:
                    blended = stop.value
                    break
                batches += 1
        finally:
            gen.close()
        # the members' mean (as Predictor.finish), without the entropy and copies nobody asked for
        mean = blended.view(len(zs), -1, classmap.num_classes, h, w).mean(1)
        for j, z in enumerate(zs):
            ids = labels_from_probs(mean[j], classmap, predictor.threshold)
            if labels is None:
                labels = np.zeros((n, *ids.shape), ids.dtype)
                probs = np.zeros((n, classmap.num_classes, h, w), np.float16) if probabilities else None
                unc = np.zeros((n, h, w), np.float32) if uncertainty else None
            labels[z] = ids
            if probs is not None:
                probs[z] = mean[j].cpu().numpy()
            if unc is not None:
                unc[z] = predictive_entropy(mean[j], classmap.task).cpu().numpy()
        del blended, mean
        yield Progress(zs[-1] + 1, n, "slices")
    meta = {
        "device": str(predictor.device),
        "precision": predictor.precision,
        "window": vol.described(),
        "slices": n,
        "slices_per_batch": group,
        "input_slices": [p.slices for p in vol.preps],
        "batches": batches,
        "time_preprocess_s": t_prep,
        "time_forward_s": timer[0],
        "time_s": time.perf_counter() - t_start,
    }
    source = None if vol.reader.path is None else str(vol.reader.path)
    yield Result(VolumePrediction(labels, classmap, probs, unc, vol.reader.geometry, source, meta))


def predict_volume(predictor, volume: Any, cancel: CancelToken | None = None, **options: Any) -> VolumePrediction:
    """:func:`iter_predict_volume` run to its end; raises :class:`~medseg.errors.Cancelled` when stopped."""
    return run(iter_predict_volume(predictor, volume, cancel=cancel, **options))


def _check(cancel: CancelToken | None, done: int, total: int) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"volume prediction cancelled after {done} of {total} slices", done=done, total=total)
