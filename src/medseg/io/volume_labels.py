"""Label volumes: class ids per voxel, in the display order and on the grid of their image.

A label volume is a NIfTI file (what nnU-Net, the Decathlon, MONAI and
TotalSegmentator write). Its values must be whole, non-negative class ids;
a float file holding whole numbers (some tools save labels as float32) is
accepted and stored as integers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.errors import MaskError
from medseg.io.mask_read import fractional_values
from medseg.io.types import ImageData
from medseg.io.volume_geometry import Geometry


def read_label_volume(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """(ids (slice, row, col) in the smallest unsigned type that holds them, the label's own grid).

    MaskError naming the file for a label that is not a 3-D volume of whole,
    non-negative values; ReadError for a file that cannot be read.
    """
    from medseg.io.nifti import read_nifti

    path = Path(path)
    image = read_nifti(path)
    return label_ids(image, path), Geometry.from_image(image)


def label_ids(image: ImageData, path: Path) -> np.ndarray:
    a = image.array
    if image.spatial_ndim != 3:
        raise MaskError(path, f"a label volume has 3 axes, this one has shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise MaskError(path, "label volume holds NaN or infinite values; labels are whole class ids")
        if (frac := fractional_values(a)) is not None:
            raise MaskError(
                path,
                f"label volume holds non-integer values (e.g. {frac[1]:g}, {frac[0]} voxels): "
                "labels are whole class ids, not probabilities",
            )
    elif a.dtype.kind not in "biu":
        raise MaskError(path, f"label volume has voxel type {a.dtype}; labels are whole class ids")
    if a.size and a.min() < 0:
        raise MaskError(path, f"label volume holds negative values (min {a.min():g}); 0 is background")
    top = int(a.max()) if a.size else 0
    dtype = np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32
    return np.ascontiguousarray(a, dtype=dtype)
