"""A dataset folder as two lazy napari layers: an image stack and a mask stack.

Nothing is decoded at open except the first image (its dtype, spacing and
display window); every other frame is a ``dask.delayed`` load through the
engine, decoded when napari shows it. Sizes and colour modes come from file
headers. Samples of different sizes are padded with zeros at the bottom and
right to the largest size (recorded in metadata as ``padded`` and
``sample_shapes``); grey frames in a colour stack are repeated to RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg._layer_data import (
    LayerDataTuple,
    default_window,
    image_layer,
    labels_layer,
    provenance,
)

# Pillow modes -> what a decoded frame holds: colour or not, and its dtype
_COLOUR_MODES = frozenset({"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "RGBX", "LAB", "HSV"})
_MODE_DTYPES = {
    "1": np.uint8,
    "L": np.uint8,
    "LA": np.uint8,
    "P": np.uint8,
    "PA": np.uint8,
    "RGB": np.uint8,
    "RGBA": np.uint8,
    "I;16": np.uint16,
    "I;16B": np.uint16,
    "I;16L": np.uint16,
    "I": np.int32,
    "F": np.float32,
}


def dataset_layers(folder: str | Path) -> list[LayerDataTuple]:
    """[images, masks...] layer tuples of a dataset folder (one Labels layer per class if multilabel)."""
    import dask.array as da

    from medseg.datasets import open_dataset
    from medseg.datasets.files import header_mode, header_size
    from medseg.errors import ReadError

    ds = open_dataset(folder)
    if not ds.samples:
        listed = "; ".join(str(p) for p in ds.problems[:5]) or "no image/mask pairs"
        raise ReadError(ds.root, f"dataset ({ds.layout}) has no usable sample: {listed}")
    if ds.samples[0].is_volume:
        return _first_case_layers(ds)
    first = ds.samples[0].load_image()
    sizes = [header_size(s.image_path) for s in ds.samples]
    modes = [header_mode(s.image_path) for s in ds.samples]
    rgb = first.rgb or any(m in _COLOUR_MODES for m in modes)
    dtype = np.result_type(first.array.dtype, *[_MODE_DTYPES.get(m or "", first.array.dtype) for m in modes])
    rows, cols = max(r for r, _ in sizes), max(c for _, c in sizes)
    frame_shape = (rows, cols, 3) if rgb else (rows, cols)
    padded = len(set(sizes)) > 1

    images = da.stack(
        [da.from_delayed(_delayed_image(s, frame_shape, dtype), shape=frame_shape, dtype=dtype) for s in ds.samples]
    )
    spacing = (1.0, *first.spacing[-2:])
    common = {
        "layout": ds.layout,
        "root": str(ds.root),
        "sample_ids": [s.id for s in ds.samples],
        "groups": [s.group for s in ds.samples],
        "image_paths": [str(s.image_path) for s in ds.samples],
        "problems": [p.to_dict() for p in ds.problems],
        "padded": padded,
        "sample_shapes": [list(rc) for rc in sizes] if padded else None,
    }
    name = ds.root.name
    image_meta = {
        "format": "dataset",
        "source": str(ds.root),
        "modality": first.metadata.get("modality"),
        "spacing_known": bool(first.metadata.get("spacing_known", False)),
    }
    image_meta["medseg"] = provenance("dataset images", ds.root, spacing, **common)
    kwargs: dict[str, Any] = {"name": f"{name} images", "scale": spacing, "rgb": rgb, "metadata": image_meta}
    if not rgb:
        # 8-bit: the type range, so napari does not sample frames to guess one
        window = default_window(first) if np.dtype(dtype).itemsize > 1 else (0.0, 255.0)
        if window is not None:
            kwargs["contrast_limits"] = window
    layers: list[LayerDataTuple] = [(images, kwargs, "image")]
    layers.extend(_mask_layers(ds, (rows, cols), spacing, common))
    return layers


def _first_case_layers(ds) -> list[LayerDataTuple]:
    """A volume dataset's cases differ in shape and cannot be stacked: its first case opens (image and label
    volume, the dataset's class names and colours); the layers' metadata lists every case, and the Dataset
    dock (Plugins > napari-medseg) reviews them all."""
    from medseg.io import load

    case = ds.samples[0]
    image = load(case.image_path)
    note = (
        f"case 1 of {len(ds.samples)} of the {ds.layout} dataset {ds.root.name}: "
        "open the folder in the Dataset dock to review every case"
    )
    common = {"layout": ds.layout, "root": str(ds.root), "sample_ids": [s.id for s in ds.samples], "note": note}
    layers = [image_layer(image, name=f"{case.id} image", **common)]
    layers.append(
        labels_layer(
            case.load_mask(), f"{case.id} labels", case.mask_paths[1], image.spacing, classmap=ds.classmap, **common
        )
    )
    return layers


def _mask_layers(ds, frame: tuple[int, int], spacing, common: dict) -> list[LayerDataTuple]:
    import dask.array as da

    cm = ds.classmap
    reports: dict[str, Any] = {}  # filled with the engine's binarisation report of each frame as it is decoded
    multilabel = cm.task == "multilabel"
    shape = (*frame, len(cm.classes)) if multilabel else frame
    dtype = np.dtype(bool) if multilabel else np.min_scalar_type(max(cm.ids))
    masks = da.stack(
        [da.from_delayed(_delayed_mask(s, shape, dtype, reports), shape=shape, dtype=dtype) for s in ds.samples]
    )
    extra = {**common, "binarise_reports": reports} if cm.task == "binary" else common
    name = f"{ds.root.name} masks"
    if not multilabel:
        return [labels_layer(masks, name=name, source=ds.root, scale=spacing, classmap=cm, mask_task=cm.task, **extra)]
    from medseg.datasets import ClassMap, LabelClass

    # overlapping classes cannot share one label image: one Labels layer per class
    return [
        labels_layer(
            masks[..., k].astype(np.uint8),
            name=f"{name} {c.name}",
            source=ds.root,
            scale=spacing,
            classmap=ClassMap([LabelClass(1, c.name, c.colour)], task="binary"),
            mask_task="multilabel",
            class_id=c.id,
            **extra,
        )
        for k, c in enumerate(cm.classes)
    ]


def _delayed_image(sample, shape: tuple[int, ...], dtype):
    from dask import delayed

    return delayed(_load_image, pure=True)(sample, shape, dtype, dask_key_name=f"medseg-image-{sample.image_path}")


def _delayed_mask(sample, shape: tuple[int, ...], dtype, reports: dict):
    from dask import delayed

    return delayed(_load_mask, pure=True)(
        sample, shape, dtype, reports, dask_key_name=f"medseg-mask-{sample.image_path}"
    )


def _load_image(sample, shape: tuple[int, ...], dtype) -> np.ndarray:
    a = np.asarray(sample.load_image().array)
    if len(shape) == 3:
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        elif a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
    return _pad(a.astype(dtype, copy=False), shape, sample.image_path)


def _load_mask(sample, shape: tuple[int, ...], dtype, reports: dict) -> np.ndarray:
    mask, report = sample.load_mask(return_report=True)
    if report is not None:
        reports[sample.id] = report.to_dict()
    return _pad(np.asarray(mask).astype(dtype, copy=False), shape, next(iter(sample.mask_paths.values())))


def _pad(a: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """Zero-pad bottom/right to ``shape``; a frame that does not fit is a ReadError naming its file."""
    from medseg.errors import ReadError

    if a.shape == shape:
        return a
    if a.ndim != len(shape) or any(n > m for n, m in zip(a.shape, shape)):
        raise ReadError(
            path, f"decoded shape {a.shape} does not fit the dataset stack frame {shape} (its header said otherwise)"
        )
    out = np.zeros(shape, dtype=a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out
