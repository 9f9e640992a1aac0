"""Engine results as napari layer data: layer-data tuples (scale from spacing, provenance in metadata, display
window), workspace masks <-> Labels data, and writing labels into a layer as one undoable edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import medseg
from medseg.datasets.classmap import ClassMap
from medseg.io.types import ImageData

LayerDataTuple = tuple[Any, dict[str, Any], str]

TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def layer_name(path: str | Path) -> str:
    """File stem, with both suffixes of ``.nii.gz`` removed; a folder keeps its name."""
    name = Path(path).name
    if name.lower().endswith(".nii.gz"):
        return name[: -len(".nii.gz")]
    return Path(name).stem if Path(path).suffix else name


def provenance(kind: str, source: str | Path, spacing, **extra: Any) -> dict[str, Any]:
    """The ``metadata["medseg"]`` block every layer this plugin makes carries."""
    return {
        "reader": "napari-medseg",
        "engine_version": medseg.__version__,
        "kind": kind,
        "source": str(source),
        "spacing": [float(s) for s in spacing],
        **extra,
    }


def default_window(image: ImageData) -> tuple[float, float] | None:
    """(low, high) contrast limits: the file's first DICOM window, else a 1-99 percentile window
    for data deeper than 8 bits; None lets napari choose (8-bit and RGB)."""
    from medseg.io.normalise import percentile_window

    presets = image.metadata.get("window_presets") or {}
    if presets and not image.rgb:
        center, width = next(iter(presets.values()))
        return float(center) - float(width) / 2, float(center) + float(width) / 2
    if image.rgb or np.dtype(image.array.dtype).itemsize <= 1:
        return None
    return window_limits(*percentile_window(image.array, 1, 99))


def window_limits(center: float, width: float) -> tuple[float, float]:
    """napari contrast limits of a (center, width) window; a zero width is widened to 1 so napari accepts it."""
    width = max(float(width), 1.0)
    return float(center) - width / 2, float(center) + width / 2


def image_layer(image: ImageData, name: str | None = None, **extra: Any) -> LayerDataTuple:
    """One Image layer tuple of an engine image."""
    source = image.source
    meta = dict(image.metadata)
    meta["medseg"] = provenance(
        "image", source, image.spacing, spacing_known=bool(image.metadata.get("spacing_known", False)), **extra
    )
    kwargs: dict[str, Any] = {
        "name": name or layer_name(source),
        "scale": tuple(image.spacing),
        "rgb": bool(image.rgb),
        "metadata": meta,
    }
    limits = default_window(image)
    if limits is not None:
        kwargs["contrast_limits"] = limits
    return image.array, kwargs, "image"


def label_colours(classmap: ClassMap | None) -> dict[Any, Any] | None:
    """Direct label colours of a class map (background and unknown ids transparent)."""
    if classmap is None:
        return None
    colours: dict[Any, Any] = {None: TRANSPARENT, 0: TRANSPARENT}
    for c in classmap.classes:
        colours[c.id] = tuple(v / 255 for v in c.colour) + (1.0,)
    return colours


def labels_layer(
    ids,
    name: str,
    source: str | Path,
    scale,
    classmap: ClassMap | None = None,
    metadata: dict[str, Any] | None = None,
    **extra: Any,
) -> LayerDataTuple:
    """One Labels layer tuple; the class map travels in metadata and sets the colours."""
    meta = dict(metadata or {})
    meta["medseg"] = provenance("labels", source, scale, **extra)
    if classmap is not None:
        meta["medseg"]["classmap"] = classmap.to_dict()
        meta["medseg"]["class_names"] = {0: classmap.background, **{c.id: c.name for c in classmap.classes}}
    kwargs: dict[str, Any] = {"name": name, "scale": tuple(scale), "metadata": meta}
    colours = label_colours(classmap)
    if colours is not None:
        kwargs["colormap"] = colours
    return ids, kwargs, "labels"


def mask_to_labels(mask: np.ndarray, classmap: Any) -> np.ndarray:
    """A workspace mask as Labels data: the ids themselves; multilabel (..., C) booleans as C planes of ids."""
    mask = np.asarray(mask)
    if classmap.task != "multilabel":
        return mask.astype(np.uint8) if mask.dtype == bool else mask
    ids = np.asarray(classmap.ids)
    dtype = np.min_scalar_type(int(ids.max()))
    planes = np.moveaxis(mask.astype(bool), -1, 0)
    return planes.astype(dtype) * ids.astype(dtype).reshape((-1,) + (1,) * (planes.ndim - 1))


def labels_to_mask(data: Any, classmap: Any) -> np.ndarray:
    """Labels data back to the workspace's mask form (the inverse of :func:`mask_to_labels`)."""
    data = np.asarray(data)
    if classmap.task != "multilabel":
        return data
    return np.moveaxis(data != 0, 0, -1)


def set_labels(layer: Any, new: np.ndarray) -> int:
    """Write ``new`` into a Labels layer as one undoable edit (only the pixels that differ); how many changed."""
    old = np.asarray(layer.data)
    if new.shape != old.shape:
        raise ValueError(f"labels of shape {new.shape} do not fit layer {layer.name!r} of shape {old.shape}")
    where = np.nonzero(old != new)
    if where[0].size:
        layer.data_setitem(where, new[where].astype(old.dtype, copy=False))
    return int(where[0].size)
