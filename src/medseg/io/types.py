"""The one image type every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImageData:
    """Pixels plus physical geometry plus provenance.

    ``array`` axes:
      * 2-D grey: (row, col)
      * 2-D colour: (row, col, channel) with 3 (RGB) or 4 (RGBA) channels, ``rgb=True``
      * volume / stack / multi-frame: (slice, row, col) or (slice, row, col, channel)

    ``spacing`` has one entry per *spatial* axis, in the same order as the array's
    spatial axes (so it can be used directly as a napari layer ``scale``):
    (row, col) for 2-D, (slice, row, col) for volumes. Units are millimetres where
    the file says so, else 1.0 per pixel (``metadata['spacing_known']`` is False).

    ``metadata`` is a plain, JSON-serialisable dict. Keys every reader sets:
      ``source`` (str path), ``format`` ("png", "jpeg", "tiff", "bmp", "dicom",
      "nifti"), ``modality`` (DICOM modality such as "CT"/"MR"/"CR", or None),
      ``photometric`` (e.g. "MONOCHROME2", "RGB", "RGBA", "PALETTE"), ``dtype``
      (of the stored pixels), ``spacing_known`` (bool).
    Optional keys: ``study_uid``, ``series_uid``, ``sop_uids`` (list, one per
      slice), ``window_presets`` ({name: [center, width]}), ``rescale``
      ({"slope", "intercept"}), ``orientation`` (str), ``files`` (list of paths
      of a series), ``inverted`` (True when MONOCHROME1 was inverted).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    rgb: bool = False

    @property
    def spatial_ndim(self) -> int:
        return self.array.ndim - (1 if self.rgb else 0)

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)
        if len(self.spacing) != self.spatial_ndim:
            raise ValueError(
                f"spacing {self.spacing} has {len(self.spacing)} entries for "
                f"{self.spatial_ndim} spatial axes of array shape {self.array.shape}"
            )
