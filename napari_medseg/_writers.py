"""npe2 writers: a Labels layer as one label file, image + Labels layers as a dataset folder.

Both are thin: the files are written by :mod:`medseg.export.arrays` (class ids
kept, spacing from the layer's scale, the folders export layout and its
manifest). Here the layers become arrays: a dataset stack opened by this
plugin (its metadata lists the sample ids) is split back into its samples and
un-padded; multilabel planes (one per class) become per-class channels.

Where the layers came from (their metadata's provenance: source file, dataset
root, workspace) is never written into: :mod:`medseg.destinations` refuses it,
and any dataset source folder or workspace above the chosen path. napari's save
dialog has asked before replacing a file, so an existing file is replaced, but
only one medseg wrote and nobody changed since (:mod:`medseg.ownership`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer to .png / .tif / .tiff / .nii / .nii.gz keeping class ids and spacing."""
    from medseg.export.arrays import write_label_file

    ids = np.asarray(data)
    affine = (meta.get("metadata") or {}).get("affine")
    affine = affine if affine is not None and ids.ndim == 3 and np.shape(affine) == (4, 4) else None
    written = write_label_file(
        path, ids, _spacing(meta, ids.ndim), affine=affine, sources=layer_sources(meta), overwrite=True
    )
    return [str(written)]


def write_dataset(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write Image layers and their Labels layers (paired in order) as a plain-folders dataset with a manifest."""
    from medseg.export.arrays import export_arrays

    samples, classmap = dataset_samples(layer_data)
    sources = [s for _, meta, _ in layer_data for s in layer_sources(meta)]
    result = export_arrays(path, samples, classmap, overwrite=True, sources=sources)
    return [str(result.out)]


def layer_sources(meta: dict) -> list[str]:
    """The files and folders a layer was read from, by its metadata: never to be written into."""
    from pathlib import Path

    md = meta.get("metadata") or {}
    ours = md.get("medseg") or {}
    found = [md.get("source"), ours.get("source"), ours.get("root"), ours.get("workspace")]
    # "model prediction", "synthetic": provenance that names no place on disk
    return list(dict.fromkeys(str(p) for p in found if isinstance(p, str) and p and Path(p).exists()))


def dataset_samples(layer_data: list[tuple[Any, dict, str]]) -> tuple[list, Any]:
    """(ArraySamples, class map or None) of the selected layers: the i-th Image layer with the i-th Labels layer."""
    from medseg.errors import ExportError

    images = [(d, m) for d, m, kind in layer_data if kind == "image"]
    labels = [(d, m) for d, m, kind in layer_data if kind == "labels"]
    if not images or len(images) != len(labels):
        names = ", ".join(f"{m.get('name')!r} ({kind})" for _, m, kind in layer_data)
        raise ExportError(
            f"a dataset is written from Image layers and as many Labels layers, paired in order; "
            f"got {len(images)} image and {len(labels)} labels layer(s): {names}"
        )
    classmap = next((cm for cm in (_classmap(m) for _, m in labels) if cm is not None), None)
    samples = []
    for (idata, imeta), (ldata, lmeta) in zip(images, labels):
        samples.extend(_pair(idata, imeta, ldata, lmeta, _classmap(lmeta) or classmap))
    return samples, classmap


def _pair(idata, imeta: dict, ldata, lmeta: dict, classmap) -> list:
    from medseg.export.arrays import ArraySample
    from medseg.io.types import ImageData
    from napari_medseg._layer_data import labels_to_mask

    rgb = bool(imeta.get("rgb"))
    image = np.asarray(idata)
    mask = np.asarray(ldata)
    ours = (lmeta.get("metadata") or {}).get("medseg") or {}
    if ours.get("mask_task") == "multilabel" and ours.get("class_axis") == 0 and classmap is not None:
        mask = labels_to_mask(mask, classmap)
    spatial = image.ndim - (1 if rgb else 0)
    stack = ((imeta.get("metadata") or {}).get("medseg") or {}).get("sample_ids")
    source = {"image_layer": imeta.get("name"), "labels_layer": lmeta.get("name")}
    if stack and image.shape[0] == len(stack) and mask.shape[0] == len(stack) and spatial >= 3:
        # a dataset stack: one sample per frame, frames cut back to their own size
        spacing = tuple(float(s) for s in imeta.get("scale", (1.0,) * spatial)[1:spatial])
        shapes = ((imeta.get("metadata") or {}).get("medseg") or {}).get("sample_shapes")
        out = []
        for k, sid in enumerate(stack):
            crop = tuple(slice(0, n) for n in shapes[k]) if shapes else (slice(None),)
            img = ImageData(image[k][crop], spacing, {"source": str(imeta.get("name"))}, rgb=rgb)
            out.append(ArraySample(str(sid), img, mask[k][crop], {**source, "frame": k}))
        return out
    img = ImageData(image, _spacing(imeta, spatial), {"source": str(imeta.get("name"))}, rgb=rgb)
    return [ArraySample(str(imeta.get("name") or "image"), img, mask, source)]


def _spacing(meta: dict, ndim: int) -> tuple[float, ...]:
    scale = tuple(float(s) for s in (meta.get("scale") if meta.get("scale") is not None else ()))
    return scale[-ndim:] if len(scale) >= ndim else (1.0,) * ndim


def _classmap(meta: dict):
    from medseg.datasets.classmap import ClassMap

    cm = ((meta.get("metadata") or {}).get("medseg") or {}).get("classmap")
    return ClassMap.from_dict(cm) if cm else None
