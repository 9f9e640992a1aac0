"""What every format writer receives per sample, and the split they lay out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ExportError
from medseg.export.images import WrittenFile
from medseg.io.types import ImageData
from medseg.io.volume_geometry import Geometry


@dataclass
class ExportItem:
    """One selected sample: its head-revision mask and (lazily) its decoded image."""

    sample_id: str
    stem: str  # file-name-safe, unique: the case identifier in every format
    record: Any  # the workspace's SampleRecord
    mask: np.ndarray
    load_image: Callable[[], ImageData]
    volume: bool = False  # 3 spatial axes: written as NIfTI in every format
    geometry: Geometry | None = None  # a volume's grid as the workspace recorded it (None: read from the image)
    _image: ImageData | None = field(default=None, repr=False)

    @property
    def image_path(self) -> Path:
        return Path(self.record.image_path)

    def image(self) -> ImageData:
        if self._image is None:
            self._image = self.load_image()
        return self._image

    def volume_geometry(self) -> Geometry:
        """The image's grid in display order: given, recorded on the sample, or (decoding the image) read."""
        if self.geometry is None:
            recorded = getattr(self.record, "geometry", None)
            if isinstance(recorded, Geometry):
                self.geometry = recorded
            elif isinstance(recorded, dict):
                self.geometry = Geometry.from_dict(recorded)
            else:
                image = self.image()
                if image.spatial_ndim != 3:
                    raise ExportError(
                        f"sample {self.sample_id}: its labels are a volume but {self.image_path} is not "
                        f"(array shape {image.array.shape})"
                    )
                self.geometry = Geometry.from_image(image)
        return self.geometry


@dataclass
class Written:
    """The files one sample became."""

    images: list[WrittenFile]
    masks: list[WrittenFile]


@dataclass
class SplitPlan:
    """A group-aware split of the exported stems.

    ``folds`` holds one (train, val) pair for a fractions split and k pairs for
    a k-fold split; ``part_of`` names each stem's side ("train"/"val" or
    "fold<k>").
    """

    method: str  # "split_by_group" | "kfold_by_group"
    seed: int
    folds: list[tuple[list[str], list[str]]]
    part_of: dict[str, str]
    fractions: list[float] | None = None
    k: int | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"method": self.method, "seed": self.seed}
        if self.fractions is not None:
            d["fractions"] = self.fractions
            d["train"], d["val"] = self.folds[0]
        else:
            d["k"] = self.k
            d["folds"] = [{"train": tr, "val": va} for tr, va in self.folds]
        return d
