"""npe2 reader: image files, DICOM series folders, mask files and dataset folders -> napari layers.

``napari_get_reader`` decides cheaply (suffix, magic bytes, folder names) and
never raises; the reader function it returns does the decoding and raises the
engine's ReadError, naming the file, when a file it took turns out unreadable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_medseg._layer_data import (
    LayerDataTuple,
    image_layer,
    labels_layer,
    layer_name,
)

ReaderFunction = Callable[[str | list[str]], list[LayerDataTuple]]


def napari_get_reader(path: str | list[str]) -> ReaderFunction | None:
    """The reader function for ``path`` (a file, a folder or a list of files), or None."""
    try:
        if isinstance(path, (list, tuple)):
            paths = [Path(p) for p in path]
            if paths and all(_kind(p) in ("image", "mask") for p in paths):
                return read_paths
            return None
        return read_paths if _kind(Path(path)) is not None else None
    except Exception:  # noqa: BLE001  napari asks every plugin; a failing check must only mean "not mine"
        return None


def read_paths(path: str | list[str]) -> list[LayerDataTuple]:
    """Layers of one path or of each path of a list (one layer per file; a dataset folder gives two)."""
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    layers: list[LayerDataTuple] = []
    for p in paths:
        kind = _kind(p)
        if kind == "dataset":
            from napari_medseg._dataset_layers import dataset_layers

            layers.extend(dataset_layers(p))
        elif kind == "mask":
            layers.append(read_mask_layer(p))
        else:
            layers.append(read_image_layer(p))
    return layers


def read_image_layer(path: str | Path) -> LayerDataTuple:
    """One image file or DICOM series folder as an Image layer (raises ReadError when unreadable)."""
    from medseg.io import load

    return image_layer(load(path), name=layer_name(path))


def read_mask_layer(path: str | Path) -> LayerDataTuple:
    """A mask file as a Labels layer.

    Palette PNGs keep their indices and colours; a few small integer ids stay
    class ids; anything else (0/255, grey noise) is binarised by the engine,
    whose report goes into the layer metadata.
    """
    from medseg.classmap import MAX_STORED_ID, ClassMap
    from medseg.datasets.files import header_mode
    from medseg.io.loader import suffix_of
    from medseg.io.masks import binarise, classmap_from_palette, read_mask

    path = Path(path)
    if suffix_of(path) in (".nii", ".nii.gz"):
        return _nifti_labels_layer(path)
    ids = read_mask(path)
    spacing = (1.0,) * ids.ndim
    extra: dict = {}
    nonzero = [int(v) for v in np.unique(ids) if v > 0]
    if header_mode(path) == "P":
        classmap = classmap_from_palette(path)
        extra["mask_encoding"] = "palette indices"
    elif len(nonzero) >= 2 and max(nonzero) <= MAX_STORED_ID:
        classmap = ClassMap.from_names([f"class_{i}" for i in range(1, max(nonzero) + 1)], task="multiclass")
        extra["mask_encoding"] = "integer ids"
    else:
        ids, report = binarise(ids)
        classmap = ClassMap.binary("foreground")
        extra["mask_encoding"] = "binarised"
        extra["binarise"] = report.to_dict()
    return labels_layer(ids, name=layer_name(path), source=path, scale=spacing, classmap=classmap, **extra)


def _nifti_labels_layer(path: Path) -> LayerDataTuple:
    """A NIfTI label (volume or slice) keeps its class ids, however many and however sparse (TotalSegmentator's
    go up to 117): NIfTI labels are ids, never grey levels. Names come from a labels JSON beside it (or the
    dataset's), the spacing from the header, reoriented as its image is, so the two overlay."""
    from medseg.classmap import ClassMap
    from medseg.datasets.label_names import label_names_file, read_label_names
    from medseg.errors import ReadError
    from medseg.io.loader import suffix_of
    from medseg.io.volume_labels import label_ids

    image = _load(path)
    ids = label_ids(image, path) if image.spatial_ndim == 3 else np.asarray(image.array)
    present = [int(v) for v in np.unique(ids) if v > 0]
    own = path.with_name(path.name[: -len(suffix_of(path))] + ".json")  # ct_labels.nii.gz -> ct_labels.json
    names = own if own.is_file() else label_names_file(path.parent, path.parent.parent)
    classmap, note = None, {}
    if names is not None:
        try:
            classmap = read_label_names(names)
        except ReadError as e:  # the labels still open, unnamed; the layer says why
            note = {"label_names_problem": str(e)}
    if classmap is None or not set(present) <= set(classmap.ids):
        classmap = (
            ClassMap.from_id_names({v: f"class_{v}" for v in present}) if present else ClassMap.binary("foreground")
        )
    extra = {"mask_encoding": "integer ids", **note}
    if classmap.extra.get("source") and names is not None:
        extra["label_names"] = str(names)
    return labels_layer(ids, name=layer_name(path), source=path, scale=image.spacing, classmap=classmap, **extra)


def _load(path: Path):
    from medseg.io import load

    return load(path)


def load_spacing(path: Path) -> tuple[float, ...]:
    return _load(path).spacing


_LABEL_DIRS = ("labelsTr", "labelsTs")  # nnU-Net and the Decathlon keep their labels here


def is_mask_path(path: Path) -> bool:
    """A mask by name: its folder is a mask folder (masks/, labels/, Ground Truth/ ...)
    or its stem ends with a mask suffix (_mask, _seg, _label, _gt ...), as the engine pairs them."""
    from medseg.datasets.files import MASK_SUFFIX, norm_name
    from medseg.datasets.layout_generic import MASK_DIR_NAMES

    match = MASK_SUFFIX.search(layer_name(path))
    if match and match.start() > 0:
        return True
    return norm_name(path.parent.name) in {norm_name(n) for n in (*MASK_DIR_NAMES, *_LABEL_DIRS)}


def _kind(path: Path) -> str | None:
    """'image', 'mask', 'series' or 'dataset' when this plugin takes ``path``, else None. Never raises."""
    try:
        if path.is_dir():
            from medseg.datasets import is_dataset_folder
            from medseg.io.dicom import is_dicom_series_folder

            if is_dicom_series_folder(path):
                return "series"
            return "dataset" if is_dataset_folder(path) else None
        from medseg.io import can_load
        from medseg.io.dicom import is_dicom_file

        if not can_load(path):
            return None
        if is_mask_path(path) and not is_dicom_file(path):
            return "mask"
        return "image"
    except Exception:  # noqa: BLE001  a cheap check: any failure means "not ours"
        return None
