"""A CT or MR volume on screen: read lazily, its spacing as the layers' scale, a first window from a few slices.

``open_volume_view(path)`` runs in a worker. It opens the volume without
decoding it where the format allows (:func:`medseg.io.volume_source.open_volume`:
a memory-mapped .nii, one DICOM file per slice on demand) and reads only a few
evenly spaced slices for the intensity statistics: the modality when the file
does not say it (CT holds air at about -1000 HU; MR never goes that low), the
value range, and the first window. CT opens in the soft-tissue window (the CT
presets, lung and bone among them, are offered by the Display dock); MR and
anything else in the 1-99 percentile window of those slices, the MR
normalisation.

The layers are then made or updated on the main thread (:func:`put_volume_image`),
and the dims slider is put on the slice axis (:func:`go_to_slice`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.io.dicom_window import CT_PRESETS

CT_DEFAULT = "soft_tissue"  # 40/400: the window abdominal CT is read in
MR_PERCENTILES = (1.0, 99.0)
AIR_HU = -500.0  # a volume whose 0.5th percentile is below this holds air in Hounsfield units: CT


@dataclass
class VolumeView:
    """A volume as napari shows it: ``data`` (Z, Y, X), lazy where the format allows; spacing (slice, row, col);
    ``stats`` of a few evenly spaced slices ("min", "max", "p0_5", "p1", "p99", and which "slices")."""

    data: Any
    spacing: tuple[float, float, float]
    metadata: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    stamp: tuple | None = None  # the file's identity and modification time at open (None: a DICOM folder)

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def modality(self) -> str | None:
        return self.metadata.get("modality")

    @property
    def lazy(self) -> bool:
        return not isinstance(self.data, np.ndarray)


def open_volume_view(path, modality: str | None = None, reuse: VolumeView | None = None) -> VolumeView:
    """Open the volume at ``path`` (a NIfTI file or a DICOM series folder) for display (in a worker, no Qt).
    ``modality``: what the dataset says ("CT", "MR"), when the file does not. ``reuse``: the view on screen,
    whose decoded voxels are shared when it shows the same file, unchanged since (no second copy, no decode)."""
    from medseg.io.volume_source import open_volume

    stamp = file_stamp(path)
    if reuse is not None and stamp is not None and reuse.stamp == stamp and Path(reuse.data.path) == Path(path):
        return VolumeView(reuse.data, reuse.spacing, dict(reuse.metadata), dict(reuse.stats), stamp)
    source = open_volume(path)
    meta = dict(source.metadata or {})
    meta.setdefault("source", str(path))
    found = source.sample_stats()  # a few evenly spaced slices, never the whole volume
    stats = {
        "min": found.min,
        "max": found.max,
        "p0_5": found.percentile(0.5),
        "p1": found.percentile(MR_PERCENTILES[0]),
        "p99": found.percentile(MR_PERCENTILES[1]),
        "slices": list(found.slices),
    }
    if not meta.get("modality") and modality:
        meta["modality"] = str(modality).upper()
    if not meta.get("modality") and guess_ct(stats):
        meta["modality"], meta["modality_guessed"] = "CT", True
    return VolumeView(source, tuple(float(s) for s in source.spacing), meta, stats, stamp)


def file_stamp(path) -> tuple | None:
    """(device, inode, size, mtime in ns) of a file: a file replaced or rewritten gets another; None for a
    folder (a DICOM series' files change without their folder's stamp changing) or a path that is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def guess_ct(stats: dict[str, Any]) -> bool:
    return bool(stats) and stats["p0_5"] <= AIR_HU


def percentile_limits(stats: dict[str, Any]) -> tuple[float, float]:
    """The MR normalisation's window: the 1st to the 99th percentile (of the sampled slices)."""
    lo, hi = stats["p1"], stats["p99"]
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def first_window(view: VolumeView) -> tuple[float, float] | None:
    """Contrast limits the volume opens with: the file's own window, CT's soft tissue, else 1-99 %."""
    from napari_medseg._layer_data import window_limits

    presets = view.metadata.get("window_presets") or {}
    if presets:
        return window_limits(*next(iter(presets.values())))
    if str(view.modality or "").upper() == "CT":
        return window_limits(*CT_PRESETS[CT_DEFAULT])
    return percentile_limits(view.stats) if view.stats else None


def volume_image_layer(view: VolumeView, name: str, **extra: Any) -> tuple[Any, dict[str, Any], str]:
    """The Image layer tuple of a volume: lazy data, spacing as scale, the first window, provenance."""
    from napari_medseg._layer_data import provenance

    meta = {k: v for k, v in view.metadata.items() if k != "affine"}
    meta["medseg"] = provenance(
        "image",
        view.source,
        view.spacing,
        spacing_known=bool(view.metadata.get("spacing_known", True)),
        volume=True,
        lazy=view.lazy,
        stats=dict(view.stats),
        **extra,
    )
    kwargs: dict[str, Any] = {"name": name, "scale": tuple(view.spacing), "rgb": False, "metadata": meta}
    limits = first_window(view)
    if limits is not None:
        kwargs["contrast_limits"] = limits
    return view.data, kwargs, "image"


def limits_range(view: VolumeView, limits: tuple[float, float]) -> tuple[float, float]:
    """The contrast slider's range: the sampled values' range, wide enough for the window (napari would
    otherwise decode the volume to find it)."""
    lo = min(view.stats.get("min", limits[0]), limits[0])
    hi = max(view.stats.get("max", limits[1]), limits[1])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def put_volume_image(viewer: Any, view: VolumeView, name: str, **extra: Any) -> Any:
    """Show ``view`` as the Image layer ``name``: updated in place when it already shows a volume, else
    (a 2-D image or RGB) replaced at its place."""
    from napari.layers import Image

    from napari_medseg._viewer_access import layer_named

    data, kwargs, _ = volume_image_layer(view, name, **extra)
    limits = kwargs.pop("contrast_limits", None)
    layer = layer_named(viewer, name, Image)
    index = None
    if layer is not None and (layer.rgb or layer.ndim != 3):
        index = viewer.layers.index(layer)  # napari cannot turn a 2-D layer into a volume in place
        viewer.layers.remove(layer)
        layer = None
    if layer is None:
        if name in viewer.layers:
            viewer.layers.remove(name)  # a layer of another kind took the name
        # with limits given napari reads no voxel to find a range
        layer = viewer.add_image(data, contrast_limits=limits or (0.0, 1.0), **kwargs)
        if index is not None:
            viewer.layers.move(viewer.layers.index(layer), index)
    else:
        layer.data = data
        if not np.allclose(layer.scale, kwargs["scale"]):
            layer.scale = kwargs["scale"]
        layer.metadata = kwargs["metadata"]
    if limits is not None:
        layer.contrast_limits_range = limits_range(view, limits)
        layer.contrast_limits = limits
    return layer


def go_to_slice(viewer: Any, z: int) -> None:
    """Put the dims slider of the slice axis (axis 0, shown in 2-D) at slice ``z``."""
    if viewer.dims.ndisplay != 2:
        viewer.dims.ndisplay = 2
    viewer.dims.set_current_step(0, int(z))


def current_slice(viewer: Any, layer: Any) -> int:
    """The slice of ``layer`` the slider is on."""
    point = layer.world_to_data(viewer.dims.point)
    return int(np.clip(round(float(point[0])), 0, layer.data.shape[0] - 1))


def slices_holding(labels: np.ndarray, class_id: int) -> np.ndarray:
    """The slices (axis 0) where ``class_id`` is drawn."""
    return np.flatnonzero((np.asarray(labels) == class_id).any(axis=(1, 2)))
